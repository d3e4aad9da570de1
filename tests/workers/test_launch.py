"""The local launcher: N real worker processes, and a failed worker stops the launch."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cvfl.errors import (
    EXIT_CODES,
    CvflError,
    DataError,
    PeerUnavailableError,
    ProtocolError,
    exit_code_of,
)
from cvfl.workers.launch import Exit, _failure, _stop, _watch, free_ports, worker_env


def test_exit_descriptions() -> None:
    assert Exit(1, -signal.SIGKILL).describe() == "was killed by SIGKILL"
    assert Exit(0, 4).describe() == "exited with code 4"


def test_failure_keeps_the_worker_error_class() -> None:
    assert isinstance(_failure(Exit(1, 4), 2), ProtocolError)
    killed = _failure(Exit(1, -9), 2)
    assert isinstance(killed, PeerUnavailableError)
    assert killed.code == "workers.failed"
    assert "worker 1 of 2 was killed by SIGKILL" in killed.message
    assert isinstance(_failure(Exit(0, 1), 3), PeerUnavailableError)  # an unexpected crash


@pytest.mark.parametrize(
    "cls", [c for c in EXIT_CODES if c is not CvflError], ids=lambda c: c.__name__
)
def test_failure_maps_every_documented_exit_code_to_its_class(cls: type[CvflError]) -> None:
    error = _failure(Exit(0, EXIT_CODES[cls]), 2)
    assert type(error) is cls and exit_code_of(error) == EXIT_CODES[cls]


def test_worker_env_is_what_torchrun_sets() -> None:
    master, enrol = free_ports(2)
    assert master != enrol
    env = worker_env(1, 2, master, enrol)
    assert {k: env[k] for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_PORT")} == {
        "RANK": "1",
        "LOCAL_RANK": "1",
        "WORLD_SIZE": "2",
        "MASTER_PORT": str(master),
    }
    assert env["MASTER_ADDR"] == "127.0.0.1" and env["CVFL_ENROL_PORT"] == str(enrol)


def _sleeper(seconds: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({seconds})"])


def test_one_failed_worker_stops_the_others() -> None:
    survivor = _sleeper(60)
    failing = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    failed = _watch([survivor, failing])
    assert failed == Exit(1, 3)
    assert survivor.poll() == -signal.SIGTERM


def test_all_workers_succeeding_is_success() -> None:
    assert _watch([_sleeper(0.1), _sleeper(0.2)]) is None


def test_stop_kills_a_worker_that_ignores_sigterm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("cvfl.workers.launch.GRACE_SECONDS", 0.5)
    stubborn = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
    )
    assert stubborn.stdout is not None and stubborn.stdout.readline() == b"ready\n"
    _stop([stubborn])
    assert stubborn.returncode == -signal.SIGKILL


def test_a_launch_whose_workers_fail_names_the_worker(tmp_path: Path) -> None:
    from cvfl.workers.launch import launch_local

    job = tmp_path / "job.toml"
    job.write_text(
        '[job]\nid = "j"\nrole = "leader"\nplaintext_outputs = true\n'
        '[data]\npath = "missing.parquet"\n[train]\nworkers = 2\n'
        '[peer]\nsecurity = "insecure"\n'
    )
    with pytest.raises(DataError) as info:
        launch_local(job, 2)
    assert info.value.code == "workers.failed"
    assert "of 2 exited with code 3" in info.value.message
