"""kill -9 a party mid-training, restart it: the job ends with the uninterrupted run's model."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cvfl.models.export import load_half, parameter_fingerprint
from cvfl.sealing import FileKeyProvider
from tests.e2e.jobs import Party, write_small_job

pytestmark = pytest.mark.e2e
PEER = "heartbeat_interval = 0.3\nheartbeat_timeout = 2.0\ngive_up_after = 60.0"
TRAIN = "checkpoint_every = 4"


def _fingerprints(folder: Path) -> list[str]:
    return [
        parameter_fingerprint(
            load_half(
                folder / role / "export" / f"{role}.safetensors.sealed",
                FileKeyProvider(folder / "keys" / f"{role}.key"),
            ).tensors
        )
        for role in ("leader", "follower")
    ]


def _run(folder: Path) -> tuple[Party, Party]:
    return Party(folder, "train", "--config", "leader.toml"), Party(
        folder, "train", "--config", "follower.toml"
    )


def _train(staleness: int) -> str:
    return f"{TRAIN}\nstaleness = {staleness}"


@pytest.fixture(scope="module")
def baselines(tmp_path_factory: pytest.TempPathFactory) -> Callable[[int], list[str]]:
    """The uninterrupted run's fingerprints for a ``[train] staleness`` (each trained once)."""
    done: dict[int, list[str]] = {}

    def baseline(staleness: int) -> list[str]:
        if staleness not in done:
            folder = tmp_path_factory.mktemp(f"baseline-{staleness}")
            write_small_job(folder, peer_extra=PEER, train_extra=_train(staleness), epochs=4)
            leader, follower = _run(folder)
            assert follower.finish() == 0, follower.output
            assert leader.finish() == 0, leader.output
            done[staleness] = _fingerprints(folder)
        return done[staleness]

    return baseline


@pytest.mark.parametrize(
    ("victim", "seed", "staleness"), [("follower", 1, 0), ("leader", 2, 0), ("follower", 3, 2)]
)
def test_kill_and_restart(
    baselines: Callable[[int], list[str]], tmp_path: Path, victim: str, seed: int, staleness: int
) -> None:
    """Pipelined (staleness 2) too: its checkpoints fall where nothing is in flight."""
    baseline = baselines(staleness)
    rng = random.Random(seed)
    write_small_job(tmp_path, peer_extra=PEER, train_extra=_train(staleness), epochs=4)
    parties = dict(zip(("leader", "follower"), _run(tmp_path), strict=True))
    # Kill at a random moment after a random checkpoint (sometimes while one is being written).
    step = rng.choice([4, 8, 12, 16, 20, 24])
    assert parties[victim].wait_for(f"checkpoint of step {step} written", 120), parties[
        victim
    ].output
    time.sleep(rng.uniform(0.0, 0.4))
    parties[victim].proc.kill()
    parties[victim].proc.wait()
    time.sleep(rng.uniform(0.0, 1.0))
    parties[victim] = Party(tmp_path, "train", "--config", f"{victim}.toml")
    for role, party in parties.items():
        assert party.finish() == 0, f"{role}:\n{party.output}"
    survivor = parties["follower" if victim == "leader" else "leader"]
    assert "restarted" in survivor.output
    assert "resumed from the checkpoint of step" in parties[victim].output
    assert _fingerprints(tmp_path) == baseline


def test_peer_that_never_comes_back(tmp_path: Path) -> None:
    write_small_job(
        tmp_path,
        peer_extra="heartbeat_interval = 0.3\nheartbeat_timeout = 1.5\ngive_up_after = 6.0",
        train_extra=TRAIN,
        epochs=4,
    )
    leader, follower = _run(tmp_path)
    assert leader.wait_for("checkpoint of step 8 written", 120), leader.output
    follower.proc.kill()
    killed = time.monotonic()
    code = leader.finish(timeout=60)
    waited = time.monotonic() - killed
    assert code == 8, leader.output
    assert waited < 6.0 + 1.5 + 10, waited  # give-up timeout plus detection, with slack
    said = " ".join(leader.output.split())
    assert "restart it, then restart this party with the same job file" in said
    # The lost peer is named, with the newest checkpoint both parties hold.
    assert re.search(r"lost the follower \(on port \d+\): ", said), said
    assert re.search(r"the newest checkpoint both parties hold is step \d+", said), said
    # The last good checkpoint is intact and loads.
    from cvfl.sealing import Artifacts
    from cvfl.train.checkpoint import decode
    from cvfl.train.recovery import CheckpointStore

    store = CheckpointStore(
        tmp_path / "leader" / "checkpoints",
        "leader",
        Artifacts(FileKeyProvider(tmp_path / "keys" / "leader.key")),
    )
    newest = store.inventory()[-1]
    assert newest.step >= 8
    assert decode(store.load(newest.step, newest.digest), store.folder).step == newest.step
