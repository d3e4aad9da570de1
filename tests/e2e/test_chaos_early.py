"""kill -9 a party of an early-stopping job: the restarted job stops, and exports, as before."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.e2e.jobs import Party, write_small_job
from tests.e2e.test_chaos import PEER, _fingerprints, _run

pytestmark = pytest.mark.e2e
TRAIN = 'checkpoint_every = 7\nearly_stopping_metric = "log_loss"\nearly_stopping_patience = 1'


def _finish(folder: Path, parties: dict[str, Party]) -> dict[str, object]:
    for role, party in parties.items():
        assert party.finish() == 0, f"{role}:\n{party.output}"
    result: dict[str, object] = json.loads((folder / "leader" / "leader-result.json").read_text())
    return result


def test_kill_after_a_best_epoch_and_restart(tmp_path: Path) -> None:
    base = tmp_path / "baseline"
    base.mkdir()
    write_small_job(base, peer_extra=PEER, train_extra=TRAIN, epochs=6)
    first = _finish(base, dict(zip(("leader", "follower"), _run(base), strict=True)))
    stopping = first["early_stopping"]
    assert isinstance(stopping, dict) and stopping["stopped_early"], stopping
    assert 0 < stopping["best_step"] < first["steps"]
    history = first["history"]
    assert isinstance(history, list)
    first_epoch_end = int(history[0]["step"])

    chaos = tmp_path / "chaos"
    chaos.mkdir()
    write_small_job(chaos, peer_extra=PEER, train_extra=TRAIN, epochs=6)
    parties = dict(zip(("leader", "follower"), _run(chaos), strict=True))
    # The follower dies just after its checkpoint of the first epoch's end (a best so far).
    victim = parties["follower"]
    assert victim.wait_for(f"checkpoint of step {first_epoch_end} written", 120), victim.output
    time.sleep(0.2)
    victim.proc.kill()
    victim.proc.wait()
    parties["follower"] = Party(chaos, "train", "--config", "follower.toml")
    again = _finish(chaos, parties)
    assert "resumed from the checkpoint of step" in parties["follower"].output
    assert again["early_stopping"] == stopping
    assert again["steps"] == first["steps"]
    assert _fingerprints(chaos) == _fingerprints(base)
