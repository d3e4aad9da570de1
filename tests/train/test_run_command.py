"""``cvfl run --config FILE``: runs ``[job] steps`` in order and stops at the first failure."""

from __future__ import annotations

from pathlib import Path

import pytest

from cvfl.cli.app import main


def _job(folder: Path, steps: str, extra: str = "") -> Path:
    path = folder / "job.toml"
    path.write_text(
        f"""
[job]
id = "run-job"
role = "leader"
workdir = "out"
plaintext_outputs = true
{steps}

[data]
path = "missing.parquet"

[peer]
listen = "127.0.0.1:1"
security = "insecure"
{extra}"""
    )
    return path


@pytest.fixture(autouse=True)
def _wide_log(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # one log record per line on stderr


def _run(path: Path) -> int:
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--config", str(path)])
    assert isinstance(exit_.value.code, int)
    return exit_.value.code


def test_first_failing_step_ends_the_run_with_its_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _job(tmp_path, 'steps = ["train", "predict"]')
    assert _run(config) == 3  # DataError, as `cvfl train --config` gives for a missing table
    err = capsys.readouterr().err
    assert "[data.missing_file]" in err
    assert f"step 1 of 2: cvfl train --config {config}" in err
    assert "step 2 of 2" not in err and "all 2 steps finished" not in err


def test_align_step_runs_first_and_its_failure_stops_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Default steps: align, then train. Align honours [peer] security = "insecure" as train
    # does, then refuses an aligned table neither sealed nor asked for in plaintext.
    config = _job(tmp_path, "", extra='[psi]\noutput = "aligned.parquet"\n')
    assert _run(config) == 2
    err = capsys.readouterr().err
    assert "[psi.unsealed_output]" in err and "[psi.no_security]" not in err
    assert f"step 1 of 2: cvfl align --config {config}" in err
    assert "step 2 of 2" not in err
    assert not (tmp_path / "out").exists()


def test_invalid_steps_refused_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(_job(tmp_path, 'steps = ["train", "align"]')) == 2
    err = capsys.readouterr().err
    assert "[config.steps]" in err and "[job] steps: expected" in err


def test_one_worker_of_several_does_not_align(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in {
        "RANK": "1",
        "WORLD_SIZE": "2",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29500",
    }.items():
        monkeypatch.setenv(name, value)
    assert _run(_job(tmp_path, 'steps = ["align", "train"]')) == 2
    err = capsys.readouterr().err
    assert "[config.steps]" in err and "no align step" in err


def test_fallback_step_runs_after_train_and_is_refused_for_a_follower(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _job(tmp_path, 'steps = ["fallback"]')
    assert _run(config) == 3  # the leader-only model reads the same (missing) training table
    err = capsys.readouterr().err
    assert f"step 1 of 1: cvfl fallback --config {config}" in err
    assert "[data.missing_file]" in err
    config.write_text(config.read_text().replace('role = "leader"', 'role = "follower"'))
    assert _run(config) == 2
    err = capsys.readouterr().err
    assert "[config.steps]" in err and "expected a leader's job, seen follower's job" in err
    assert "step 1 of 1" not in err
