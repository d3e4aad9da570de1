"""Both parties reload a newer export while serving, in either order, with no gap.

Requests scored all along are scored by the old pair of halves until the new pair is complete,
then by the new pair: never ``follower_unavailable``, never a mixed pair.
"""

from __future__ import annotations

import dataclasses
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cvfl.bridge.security import PlaintextSecurity
from cvfl.online import ServeSection, start_party
from cvfl.online.service import FollowerService, LeaderService
from cvfl.train.config import JobConfig
from tests.online.helpers import post, predicted, serve_section
from tests.serve.helpers import export_untrained

TOL = 1e-6
SWITCH_WAIT = 20.0


def _keep(cfg: JobConfig, name: str) -> Path:
    """Copy the party's current export folder to ``name``; the copied weights' path."""
    source = cfg.job.workdir / "export"
    shutil.copytree(source, cfg.job.workdir / name)
    return cfg.job.workdir / name / f"{cfg.role}.safetensors.sealed"


def _export(cfg: JobConfig, seed: int, steps: int) -> None:
    """Export freshly initialised weights of another seed (same job, so the export fits)."""
    export_untrained(dataclasses.replace(cfg, job=dataclasses.replace(cfg.job, seed=seed)), steps)


@dataclass
class Versions:
    """Exports of both halves, by version, and ``cvfl predict``'s scores of the scored ones."""

    lead: JobConfig
    follow: JobConfig
    scores: list[dict[str, float]] = field(default_factory=list)
    sections: list[tuple[ServeSection, ServeSection]] = field(default_factory=list)

    def start(self, version: int) -> tuple[LeaderService, FollowerService]:
        """Both parties serving ``version``, the follower connected."""
        security = PlaintextSecurity()
        leader = start_party(self.lead, self.sections[version][0], security)
        follower = start_party(self.follow, self.sections[version][1], security)
        assert isinstance(leader, LeaderService) and isinstance(follower, FollowerService)
        assert leader.wait_for_follower(SWITCH_WAIT)
        return leader, follower


def _versions(
    small_job: Callable[..., tuple[JobConfig, JobConfig]], tmp: Path, cache_ids: int
) -> Versions:
    """Versions 0 and 1 (scored by ``cvfl predict``) and 2 (another step count, not scored)."""
    lead, follow = small_job(peer__port_file=str(tmp / "leader.port"))
    made = Versions(lead, follow)
    for version, (seed, steps) in enumerate(((7, 3), (99, 5), (5, 9))):
        _export(lead, seed, steps)
        _export(follow, seed, steps)
        if version < 2:
            table = predicted(lead, follow, tmp / f"v{version}")
            names, scores = table["example_id"].to_pylist(), table["score"].to_pylist()
            made.scores.append(dict(zip(names, scores, strict=True)))
        lead_export, follow_export = _keep(lead, f"v{version}"), _keep(follow, f"v{version}")
        made.sections.append(
            (
                serve_section(lead, export=lead_export, cache_ids=cache_ids),
                serve_section(follow, export=follow_export, cache_ids=cache_ids),
            )
        )
        shutil.rmtree(lead.job.workdir / "export")
        shutil.rmtree(follow.job.workdir / "export")
    return made


def _scores(port: int, ids: list[str]) -> list[dict[str, object]]:
    status, body = post(port, "/v1/score", {"ids": ids})
    assert status == 200, body
    scores: list[dict[str, object]] = body["scores"]
    return scores


def _version_of(answer: list[dict[str, object]], versions: Versions) -> int:
    """Which version's pair scored every id of ``answer`` (fails on anything else)."""
    assert all(item["scored"] is True for item in answer), answer  # no follower_unavailable
    assert all(item["model"] == "split" for item in answer), answer
    for version, expected in enumerate(versions.scores):
        score = {str(item["id"]): float(item["score"]) for item in answer}  # type: ignore[arg-type]
        if all(abs(value - expected[example]) <= TOL for example, value in score.items()):
            return version
    raise AssertionError(f"scored by neither pair: {answer}")


class Client:
    """Threads that score ``ids`` back to back until stopped, keeping each answer in order."""

    def __init__(self, port: int, ids: list[str], threads: int = 2) -> None:
        self.answers: list[list[list[dict[str, object]]]] = [[] for _ in range(threads)]
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(port, ids, kept), daemon=True)
            for kept in self.answers
        ]
        for thread in self._threads:
            thread.start()

    def _run(self, port: int, ids: list[str], kept: list[list[dict[str, object]]]) -> None:
        try:
            while not self._stop.is_set():
                kept.append(_scores(port, ids))
        except BaseException as exc:  # handed to the test
            self.errors.append(exc)

    def stop(self) -> None:
        """Stop scoring and wait for the threads."""
        self._stop.set()
        for thread in self._threads:
            thread.join(10.0)
        assert not self.errors, self.errors


def _wait_for_switch(leader: LeaderService, fingerprint: str) -> None:
    deadline = time.monotonic() + SWITCH_WAIT
    while leader.party.half.fingerprint != fingerprint or leader.staged is not None:
        assert time.monotonic() < deadline, "the leader never switched to the new half"
        time.sleep(0.05)


@pytest.mark.parametrize(("first", "cache_ids"), [("leader", 100_000), ("follower", 5)])
def test_reload_in_either_order_keeps_scoring(
    small_job: Callable[..., tuple[JobConfig, JobConfig]],
    tmp_path: Path,
    first: str,
    cache_ids: int,
) -> None:
    versions = _versions(small_job, tmp_path, cache_ids)
    ids = sorted(versions.scores[0])[:20]
    assert any(abs(versions.scores[0][i] - versions.scores[1][i]) > 1e-3 for i in ids)
    leader, follower = versions.start(0)
    old = leader.party.half.fingerprint
    client = Client(leader.http_port, ids)
    try:
        time.sleep(0.3)
        if first == "leader":
            leader.reload(versions.sections[1][0])
            staged = leader.staged
            assert staged is not None and staged.half.fingerprint != old
        else:
            follower.reload(versions.sections[1][1])
        time.sleep(1.0)  # the first party alone has reloaded: the old pair keeps scoring
        assert leader.party.half.fingerprint == old
        assert _version_of(_scores(leader.http_port, ids), versions) == 0
        if first == "leader":
            follower.reload(versions.sections[1][1])
        else:
            leader.reload(versions.sections[1][0])
        new = (leader.staged or leader.party).half.fingerprint
        assert new != old
        _wait_for_switch(leader, new)
        assert leader.follower_connected
        time.sleep(0.3)
    finally:
        client.stop()
        follower.drain()
        leader.drain()
    for answers in client.answers:
        seen = [_version_of(answer, versions) for answer in answers]
        assert seen[0] == 0 and seen[-1] == 1, seen
        assert seen == sorted(seen), seen  # old pair, then the new pair, never back


def test_a_follower_greeting_neither_half_is_refused(
    small_job: Callable[..., tuple[JobConfig, JobConfig]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    versions = _versions(small_job, tmp_path, 100_000)
    ids = sorted(versions.scores[0])[:20]
    leader, follower = versions.start(0)
    old = leader.party.half.fingerprint
    stranger: FollowerService | None = None
    try:
        leader.reload(versions.sections[1][0])  # staged: version 1
        stranger_section = versions.sections[2][1]  # version 2: neither staged nor serving
        started = start_party(versions.follow, stranger_section, PlaintextSecurity())
        assert isinstance(started, FollowerService)
        stranger = started
        deadline = time.monotonic() + SWITCH_WAIT
        while "refused a follower stream" not in caplog.text:
            assert time.monotonic() < deadline, "the stranger was never refused"
            time.sleep(0.05)
        assert stranger.running  # refused, it retries
        assert leader.party.half.fingerprint == old and leader.staged is not None
        assert leader.follower_connected
        for _ in range(3):
            assert _version_of(_scores(leader.http_port, ids), versions) == 0
    finally:
        if stranger is not None:
            stranger.drain()
        follower.drain()
        leader.drain()
    refusal = next(r.getMessage() for r in caplog.records if "refused a follower" in r.message)
    assert "protocol.hello" in refusal
    assert "trained_steps: expected 5, seen 9" in refusal  # against the staged half
    assert "trained_steps: expected 3, seen 9" in refusal  # against the serving half
