"""kill -9 of the follower under load: requests get the fallback in time; service recovers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from cvfl.api.tomlout import dumps
from cvfl.bridge.security import PlaintextSecurity
from cvfl.online import start_party
from cvfl.online.service import LeaderService
from cvfl.train.config import job_from_mapping
from tests.conftest import job_tables, make_tables
from tests.online.helpers import post, serve_section
from tests.serve.helpers import export_untrained

TIMEOUT = 0.5


def _follower(folder: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    return subprocess.Popen(
        [sys.executable, "-m", "cvfl", "serve", "--config", str(folder / "follower.toml")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )


def _load(port: int, ids: list[str], stop: threading.Event, out: list[tuple[float, str]]) -> None:
    """Single-id requests in a loop: (seconds, outcome) for each."""
    k = 0
    while not stop.is_set():
        started = time.perf_counter()
        status, body = post(port, "/v1/score", {"ids": [ids[k % len(ids)]]}, timeout=10)
        item = body["scores"][0] if status == 200 else {"reason": f"http {status}"}
        out.append((time.perf_counter() - started, item.get("reason", "scored")))
        k += 1


def _scored_again(port: int, example: str, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if post(port, "/v1/score", {"ids": [example]})[1]["scores"][0]["scored"]:
            return True
        time.sleep(0.2)
    return False


def _stopped(pid: int, within: float = 10.0) -> bool:
    """Wait until every thread of ``pid`` is stopped (SIGSTOP takes effect asynchronously)."""
    deadline = time.monotonic() + within
    tasks = Path(f"/proc/{pid}/task")
    while time.monotonic() < deadline:
        states = {(t / "stat").read_text().rsplit(")", 1)[1].split()[0] for t in tasks.iterdir()}
        if states <= {"T", "t"}:
            return True
        time.sleep(0.001)
    return False


def _stalled_then_resumed(proc: subprocess.Popen[bytes], port: int, ids: list[str]) -> None:
    """A stopped (not dead) follower: the timeout answers; late answers are skipped after."""
    before = post(port, "/v1/score", {"ids": [ids[4]]})[1]["scores"][0]
    proc.send_signal(signal.SIGSTOP)
    try:
        # On a loaded machine a thread of the follower can still answer a lookup sent right
        # after the signal (seen: 'split' scores in 2-7 ms); only a stopped process is stalled.
        assert _stopped(proc.pid)
        started = time.perf_counter()
        status, body = post(port, "/v1/score", {"ids": ids[2:4]})
        waited = time.perf_counter() - started
    finally:
        proc.send_signal(signal.SIGCONT)
    assert status == 200 and TIMEOUT <= waited < TIMEOUT + 0.5, (status, waited, body)
    assert [s["reason"] for s in body["scores"]] == ["follower_unavailable"] * 2
    assert _scored_again(port, ids[4], 10)
    # the late answer to the stalled batch is skipped, not taken for this one
    assert post(port, "/v1/score", {"ids": [ids[4]]})[1]["scores"][0] == before


def test_follower_killed_under_load_then_back(tmp_path: Path) -> None:
    leader_data, follower_data = make_tables(tmp_path, rows=200)
    port_file = str(tmp_path / "leader.port")
    raw = {
        role: job_tables(tmp_path, data, role, peer__port_file=port_file)
        for role, data in (("leader", leader_data), ("follower", follower_data))
    }
    lead = job_from_mapping(raw["leader"], tmp_path / "leader.toml")
    follow = job_from_mapping(raw["follower"], tmp_path / "follower.toml")
    export_untrained(lead)
    export_untrained(follow)
    raw["follower"]["serve"] = {"table": str(follower_data)}
    (tmp_path / "follower.toml").write_text(dumps(raw["follower"]))
    leader = start_party(lead, serve_section(lead, follower_timeout=TIMEOUT), PlaintextSecurity())
    assert isinstance(leader, LeaderService)
    proc = _follower(tmp_path)
    try:
        assert leader.wait_for_follower(60)
        ids = list(leader.party.table.ids[:50])
        assert _scored_again(leader.http_port, ids[0], 10)
        stop, seen = threading.Event(), list[tuple[float, str]]()
        load = threading.Thread(target=_load, args=(leader.http_port, ids, stop, seen))
        load.start()
        time.sleep(0.3)
        proc.kill()  # SIGKILL: no goodbye on the stream
        proc.wait(10)
        time.sleep(1.5)
        stop.set()
        load.join(15)
        assert not load.is_alive()
        outcomes = {outcome for _, outcome in seen}
        assert "scored" in outcomes and "follower_unavailable" in outcomes, outcomes
        assert outcomes <= {"scored", "follower_unavailable"}
        assert max(seconds for seconds, _ in seen) < TIMEOUT + 0.5  # the leader's own work
        proc = _follower(tmp_path)
        assert _scored_again(leader.http_port, ids[1], 60)
        _stalled_then_resumed(proc, leader.http_port, ids)
        proc.send_signal(signal.SIGHUP)  # reloads the same export and greets the leader again
        time.sleep(0.5)
        assert proc.poll() is None and _scored_again(leader.http_port, ids[5], 20)
        proc.send_signal(signal.SIGTERM)  # drains and exits cleanly
        assert proc.wait(15) == 0
    finally:
        proc.kill()
        proc.wait(10)
        leader.drain()
