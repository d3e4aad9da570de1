"""An interrupted ECDH alignment continues on a rerun, with the uninterrupted run's tables.

Both parties run in threads over real gRPC servers on 127.0.0.1; the interruption is a failure
raised right after one party's second exchange checkpoint (the state a crash there leaves).
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import shutil
import threading
from pathlib import Path

import pyarrow as pa
import pytest

from cvfl.bridge.security import PlaintextSecurity
from cvfl.errors import AlignmentError
from cvfl.psi import AlignJob, AlignReport, PsiConfig, align, read_aligned, serde
from cvfl.psi.ecdh import resuming
from cvfl.sealing import KeyProvider, new_key_file

from .conftest import align_both, psi_config, write_table
from .test_peer_faults import GOOD, FakeFollower

LEADER_IDS = [f"id{i}" for i in range(0, 300)]
FOLLOWER_IDS = [f"id{i}" for i in range(100, 400)]
SETTINGS = {"plaintext_output": False, "checkpoint_batches": 4, "window": 4, "timeout_s": 60}


class Pair:
    """Two parties' tables and settings in one folder; :meth:`run` aligns them once."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.keys: KeyProvider = new_key_file(tmp / "key.hex")
        self.paths = {
            "leader": write_table(tmp / "leader.parquet", LEADER_IDS, "l"),
            "follower": write_table(tmp / "follower.parquet", FOLLOWER_IDS, "f"),
        }
        self.cfg: dict[str, PsiConfig] = {
            role: psi_config(tmp, role, **SETTINGS) for role in ("leader", "follower")
        }

    def run(self) -> dict[str, AlignReport | BaseException]:
        paths = (self.paths["leader"], self.paths["follower"])
        return align_both(paths, (self.cfg["leader"], self.cfg["follower"]), keys=self.keys)

    def tables(self) -> list[pa.Table]:
        return [
            read_aligned(self.cfg[role].output, self.keys, "parquet", id_column="id")
            for role in ("leader", "follower")
        ]


def _ok(result: dict[str, AlignReport | BaseException]) -> None:
    for role, outcome in result.items():
        assert isinstance(outcome, AlignReport), f"{role}: {outcome!r}"


def _cut_after_checkpoints(monkeypatch: pytest.MonkeyPatch, role: str, count: int) -> None:
    """``role`` fails right after its ``count``-th exchange checkpoint (as if killed there).

    Not before the other side saved once, so that both have progress to resume from.
    """
    original = resuming.Saver.checkpoint
    seen = {"leader": 0, "follower": 0}

    def checkpoint(self: resuming.Saver, own: int, peer: int) -> None:
        original(self, own, peer)
        mine = str(self.manifest.binding["role"])
        seen[mine] += 1
        other = "leader" if mine == "follower" else "follower"
        if mine == role and seen[mine] >= count and seen[other] >= 1:
            raise RuntimeError("cut here")

    monkeypatch.setattr(resuming.Saver, "checkpoint", checkpoint)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> list[pa.Table]:
    pair = Pair(tmp_path_factory.mktemp("baseline"))
    _ok(pair.run())
    assert not pair.cfg["leader"].state_path.exists(), "the state goes once the output is written"
    return pair.tables()


def _interrupted(tmp: Path, monkeypatch: pytest.MonkeyPatch, victim: str) -> Pair:
    pair = Pair(tmp)
    with monkeypatch.context() as patch:
        _cut_after_checkpoints(patch, victim, 2)
        result = pair.run()
    assert all(isinstance(r, AlignmentError) for r in result.values()), result
    for role in ("leader", "follower"):
        assert not pair.cfg[role].output.exists()
        assert (pair.cfg[role].state_path / "manifest.sealed").exists()
    return pair


def _resent_from(text: str) -> list[int]:
    return [
        int(m)
        for m in re.findall(
            r"resuming session \w+: \d+ own batches answered \(resending from (\d+)\)", text
        )
    ]


@pytest.mark.parametrize("victim", ["follower", "leader"])
def test_a_cut_session_resumes_with_the_uninterrupted_tables(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    baseline: list[pa.Table],
    victim: str,
) -> None:
    pair = _interrupted(tmp_path, monkeypatch, victim)
    with caplog.at_level(logging.INFO, logger="cvfl.psi"):
        result = pair.run()
    _ok(result)
    resent = _resent_from(caplog.text)
    assert len(resent) == 2, caplog.text  # both sides resumed
    assert max(resent) > 0, "a resumed side sent its batches again from the start"
    assert "starting over" not in caplog.text
    tables = pair.tables()
    assert tables[0].equals(baseline[0]) and tables[1].equals(baseline[1])
    for role in ("leader", "follower"):
        assert not pair.cfg[role].state_path.exists()


def test_mismatched_sessions_start_over_once(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    baseline: list[pa.Table],
) -> None:
    pair = _interrupted(tmp_path, monkeypatch, "follower")
    shutil.rmtree(pair.cfg["follower"].state_path)  # the follower lost its state
    with caplog.at_level(logging.INFO, logger="cvfl.psi"):
        result = pair.run()
    _ok(result)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    over = [w for w in warnings if w.endswith("; starting over")]
    assert len(over) == 2, warnings  # each side once (one of them told by the other's abort)
    assert all("resume state did not match the peer's: session: expected " in w for w in over)
    assert any(re.search(r"expected [0-9a-f]{8}, seen none", w) for w in over), over
    assert not _resent_from(caplog.text)
    tables = pair.tables()
    assert tables[0].equals(baseline[0]) and tables[1].equals(baseline[1])


def test_the_saved_intersection_needs_no_peer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, baseline: list[pa.Table]
) -> None:
    """Killed after the exchange, before the output: the rerun writes it alone."""
    pair = Pair(tmp_path)
    from cvfl.psi.ecdh import run
    from cvfl.psi.report import finish_alignment as original

    def finish(*args: object, **kw: object) -> AlignReport:
        if "follower" in str(args[0]):
            raise RuntimeError("killed before the output")
        return original(*args, **kw)  # type: ignore[arg-type]

    with monkeypatch.context() as patch:
        patch.setattr(run, "finish_alignment", finish)
        result = pair.run()
    assert isinstance(result["leader"], AlignReport)
    assert isinstance(result["follower"], RuntimeError)
    job = AlignJob("job-1", "follower", pair.paths["follower"], "id", "127.0.0.1:1")
    report = align(job, pair.cfg["follower"], PlaintextSecurity(), keys=pair.keys)
    assert report.intersection == len(baseline[1])
    assert pair.tables()[1].equals(baseline[1])
    assert not pair.cfg["follower"].state_path.exists()


class _Leader:
    """A real leader with a sealed output (so it keeps state) in a thread."""

    def __init__(self, pair: Pair) -> None:
        self.error: BaseException | None = None
        self.port = 0
        bound = threading.Event()

        def on_bound(port: int) -> None:
            self.port = port
            bound.set()

        def run() -> None:
            job = AlignJob("job-1", "leader", pair.paths["leader"], "id", "127.0.0.1:0")
            try:
                align(
                    job, pair.cfg["leader"], PlaintextSecurity(), keys=pair.keys, on_bound=on_bound
                )
            except BaseException as exc:
                self.error = exc
                bound.set()

        self._thread = threading.Thread(target=run)
        self._thread.start()
        assert bound.wait(30)

    def join(self) -> BaseException | None:
        self._thread.join(30)
        assert not self._thread.is_alive()
        return self.error


def _hello(peer: FakeFollower, resume: serde.Resume | None) -> bytes:
    nonce = secrets.token_bytes(16)
    hello = serde.PsiHello("job-1", "follower", 6, "ecdh", 7, "x25519", nonce=nonce, resume=resume)
    peer.out.put(serde.hello_to_proto(hello))
    return nonce


@pytest.mark.parametrize("same", [True, False], ids=["same-points", "other-points"])
def test_a_peer_that_changes_its_points_on_resume_is_refused(tmp_path: Path, same: bool) -> None:
    pair = Pair(tmp_path)
    first = [GOOD(), GOOD()]
    leader = _Leader(pair)
    peer = FakeFollower(leader.port)
    nonce = _hello(peer, None)
    theirs = peer.until("hello")
    assert theirs is not None
    session = hashlib.sha256(theirs.hello.nonce + nonce).digest()
    peer.out.put(serde.batch_to_proto(0, b"".join(first)))
    assert peer.until("ret") is not None
    peer.close()  # cut
    assert isinstance(leader.join(), AlignmentError)

    leader = _Leader(pair)
    peer = FakeFollower(leader.port)
    _hello(peer, serde.Resume(session, 0, 0))
    again = first if same else [GOOD(), first[1]]
    peer.out.put(serde.batch_to_proto(0, b"".join(again)))
    if same:
        # the same points are answered again; then the peer goes away
        assert peer.until("ret") is not None
        peer.close()
        error = leader.join()
        assert isinstance(error, AlignmentError) and error.code == "psi.peer_lost"
        return
    assert peer.until("abort") is not None
    peer.close()
    error = leader.join()
    assert isinstance(error, AlignmentError), repr(error)
    assert error.code == "psi.protocol", error.message
    assert "peer batch 0 of the resumed session" in error.message
    assert "other points" in error.message
