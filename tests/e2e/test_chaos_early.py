"""kill -9 a party of an early-stopping job: the restarted job stops, and exports, as before."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.jobs import Party, write_small_job
from tests.e2e.test_chaos import PEER, _fingerprints, _run

pytestmark = pytest.mark.e2e
TRAIN = 'checkpoint_every = 7\nearly_stopping_metric = "log_loss"\nearly_stopping_patience = 1'


def _finish(folder: Path, parties: dict[str, Party]) -> dict[str, Any]:
    for role, party in parties.items():
        assert party.finish() == 0, f"{role}:\n{party.output}"
    result: dict[str, Any] = json.loads((folder / "leader" / "leader-result.json").read_text())
    return result


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], list[str]]:
    folder = tmp_path_factory.mktemp("baseline")
    write_small_job(folder, peer_extra=PEER, train_extra=TRAIN, epochs=6)
    first = _finish(folder, dict(zip(("leader", "follower"), _run(folder), strict=True)))
    stopping = first["early_stopping"]
    assert isinstance(stopping, dict) and stopping["stopped_early"], stopping
    assert 0 < stopping["best_step"] < first["steps"]
    return first, _fingerprints(folder)


@pytest.mark.parametrize(("victim", "epoch"), [("follower", 0), ("leader", 0)])
def test_kill_at_an_epoch_end_and_restart(
    baseline: tuple[dict[str, Any], list[str]], tmp_path: Path, victim: str, epoch: int
) -> None:
    first, fingerprints = baseline
    epoch_end = int(first["history"][epoch]["step"])
    write_small_job(tmp_path, peer_extra=PEER, train_extra=TRAIN, epochs=6)
    parties = dict(zip(("leader", "follower"), _run(tmp_path), strict=True))
    # The victim dies just after its checkpoint of an epoch's end, around the decision (the
    # job is short: a later kill could come after the stop, when the survivor has finished).
    assert parties[victim].wait_for(f"checkpoint of step {epoch_end} written", 120), parties[
        victim
    ].output
    parties[victim].proc.kill()
    parties[victim].proc.wait()
    parties[victim] = Party(tmp_path, "train", "--config", f"{victim}.toml")
    again = _finish(tmp_path, parties)
    assert "resumed from the checkpoint of step" in parties[victim].output
    assert again["early_stopping"] == first["early_stopping"]
    assert again["steps"] == first["steps"]
    assert _fingerprints(tmp_path) == fingerprints
