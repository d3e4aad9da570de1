"""Run both parties in one process over a real loopback gRPC bridge."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any

from cvfl.bridge.security import ChannelSecurity, PlaintextSecurity
from cvfl.train import Progress, TrainResult, load_party, run_follower, run_leader
from cvfl.train.config import JobConfig

Outcome = TrainResult | BaseException


def run_pair(
    leader_cfg: JobConfig,
    follower_cfg: JobConfig,
    *,
    via: Callable[[int], int] | None = None,
    leader_progress: Progress | None = None,
    securities: tuple[ChannelSecurity, ChannelSecurity] | None = None,
    leader_stop: threading.Event | None = None,
) -> tuple[Outcome, Outcome]:
    """Train both sides; each outcome is a result or the exception that side raised.

    ``via`` maps the leader's port to the port the follower dials (e.g. a proxy's);
    ``securities`` are the leader's and the follower's (plaintext by default); setting
    ``leader_stop`` stops the leader between steps.
    """
    lead_sec, follow_sec = securities or (PlaintextSecurity(), PlaintextSecurity())
    port_file = leader_cfg.job.workdir.parent / f"{leader_cfg.job.workdir.name}.port"
    leader_cfg = dataclasses.replace(
        leader_cfg, peer=dataclasses.replace(leader_cfg.peer, port_file=port_file)
    )
    outcome: dict[str, Any] = {}

    def lead() -> None:
        try:
            party = load_party(leader_cfg)
            outcome["leader"] = run_leader(party, lead_sec, leader_progress, leader_stop)
        except BaseException as exc:
            outcome["leader"] = exc

    thread = threading.Thread(target=lead)
    thread.start()
    deadline = time.monotonic() + 20
    while not port_file.exists() and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    if port_file.exists():
        port = int(port_file.read_text().strip())
        target = f"127.0.0.1:{via(port) if via else port}"
        follower_cfg = dataclasses.replace(
            follower_cfg, peer=dataclasses.replace(follower_cfg.peer, connect=target)
        )
        try:
            outcome["follower"] = run_follower(load_party(follower_cfg), follow_sec)
        except BaseException as exc:
            outcome["follower"] = exc
    thread.join(120)
    return outcome.get("leader", RuntimeError("leader did not finish")), outcome.get(
        "follower", RuntimeError("follower did not start")
    )
