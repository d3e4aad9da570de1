"""Reruns as an operator does them, both parties as OS processes over the attested channel.

Re-aligning gives the same order and training resumes with the same held-out AUC; other input
data, another lr or more epochs are refused by name; ``--resume-from`` extends on purpose,
``--fresh`` starts over and keeps the old run; Ctrl-C names the kept checkpoint.
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.e2e.jobs import Party, write_small_job

pytestmark = pytest.mark.e2e
PEER = "heartbeat_interval = 0.3\nheartbeat_timeout = 2.0\ngive_up_after = 60.0"


def _both(folder: Path, command: str, *options: str) -> tuple[Party, Party]:
    return (
        Party(folder, command, "--config", "leader.toml", *options),
        Party(folder, command, "--config", "follower.toml", *options),
    )


def _finish(*parties: Party, code: int = 0) -> None:
    for party in parties:
        assert party.finish() == code, party.output


def _result(folder: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((folder / "leader" / "leader-result.json").read_text())
    return data


def _order(folder: Path, role: str) -> str:
    report = folder / "aligned" / f"{role}.parquet.sealed.report.json"
    value: str = json.loads(report.read_text())["order_fingerprint"]
    return value


def _edit(folder: Path, old: str, new: str) -> None:
    for role in ("leader", "follower"):
        job = folder / f"{role}.toml"
        text = job.read_text()
        assert old in text, text
        job.write_text(text.replace(old, new))


def test_realign_resumes_with_the_same_auc_other_data_is_refused_fresh_starts_over(
    tmp_path: Path,
) -> None:
    write_small_job(tmp_path, align=True, train_extra="checkpoint_every = 7")
    leader, follower = _both(tmp_path, "run")
    _finish(follower, leader)
    assert "no checkpoint yet: starting from step 0" in leader.output
    first, order = _result(tmp_path), _order(tmp_path, "leader")
    assert order == _order(tmp_path, "follower")

    # The same tables and job align in the same order, so training resumes where it stopped.
    leader, follower = _both(tmp_path, "run")
    _finish(follower, leader)
    assert _order(tmp_path, "leader") == _order(tmp_path, "follower") == order
    assert "resumed from the checkpoint of step" in leader.output
    again = _result(tmp_path)
    assert again["steps"] == first["steps"] and again["fingerprint"] == first["fingerprint"]
    auc = (first["metrics"]["auc"], again["metrics"]["auc"])  # type: ignore[index]
    assert abs(auc[0] - auc[1]) <= 1e-6, auc

    # Other input data: another intersection, another order; the old checkpoints are refused.
    data = tmp_path / "data" / "follower.parquet"
    pq.write_table(pq.read_table(data).slice(40), data)
    leader, follower = _both(tmp_path, "run")
    _finish(leader, follower, code=2)
    assert _order(tmp_path, "leader") != order
    for party in (leader, follower):
        text = " ".join(party.output.split())
        assert "[config.checkpoint_changed]" in text
        assert "order_fingerprint (the aligned table's rows and order): checkpoint" in text
        assert "--fresh" in text

    # --fresh starts over and keeps the old run.
    leader, follower = _both(tmp_path, "train", "--fresh")
    _finish(follower, leader)
    assert "no checkpoint yet: starting from step 0" in leader.output
    for role in ("leader", "follower"):
        (kept,) = (tmp_path / role / "previous-runs").iterdir()
        assert list((kept / "checkpoints").glob(f"{role}-step-*"))
        assert list((kept / "export").glob(f"{role}.*"))
    assert (
        json.loads(
            next((tmp_path / "leader" / "previous-runs").glob("*/leader-result.json")).read_text()
        )
        == again
    )


def test_changed_lr_and_epochs_refused_more_epochs_extended_on_purpose(tmp_path: Path) -> None:
    write_small_job(tmp_path, train_extra="checkpoint_every = 10")
    _finish(*_both(tmp_path, "train"))

    _edit(tmp_path, "lr = 0.01", "lr = 0.02")
    _edit(tmp_path, "epochs = 2", "epochs = 3")
    leader, follower = _both(tmp_path, "train")
    _finish(leader, follower, code=2)
    for party in (leader, follower):
        text = " ".join(party.output.split())
        assert "epochs: checkpoint 2, job 3; lr: checkpoint 0.01, job 0.02." in text
        assert "--resume-from 60" in text
    assert _result(tmp_path)["steps"] == 60  # the refused rerun exported nothing

    _edit(tmp_path, "lr = 0.02", "lr = 0.01")  # more epochs, on purpose
    leader, follower = _both(tmp_path, "train", "--resume-from", "60")
    _finish(follower, leader)
    out = " ".join(leader.output.split())
    assert "continuing that checkpoint on purpose with these changes: epochs: checkpoint 2" in out
    assert "training steps 61 to 90 (resumed at step 60)" in out
    shown = [int(n) for n in re.findall(r"step (\d+)/90", out)]
    assert shown and min(shown) > 60, shown
    result = _result(tmp_path)
    assert result["steps"] == 90 and result["metrics"] is not None
    assert len(result["history"]) == 3  # type: ignore[arg-type]


def test_ctrl_c_names_the_kept_checkpoint_and_the_same_command_resumes(tmp_path: Path) -> None:
    write_small_job(tmp_path, peer_extra=PEER, train_extra="checkpoint_every = 4", epochs=4)
    leader, follower = _both(tmp_path, "train")
    assert leader.wait_for("checkpoint of step 12 written", 120), leader.output
    leader.proc.send_signal(signal.SIGINT)
    assert leader.finish(60) == 130, leader.output
    said = " ".join(leader.output.split())
    kept = re.search(r"interrupted: checkpoint of step (\d+) kept[^;]*; run the same command", said)
    assert kept is not None, leader.output
    step = int(kept.group(1))
    assert step >= 12
    leader = Party(tmp_path, "train", "--config", "leader.toml")
    _finish(follower, leader)
    resumed = re.search(r"resumed from the checkpoint of step (\d+)", leader.output)
    assert resumed is not None and 8 <= int(resumed.group(1)) <= step, leader.output
    assert f"(resumed at step {resumed.group(1)})" in leader.output
    assert "restarted" in follower.output
