"""Fast mode end to end: correctness, the attested-evidence gate, and refusals (real gRPC)."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import TypedDict

import pytest

from cvfl.attestation.simulated import SimulatedVerifier
from cvfl.bridge.security import PlaintextSecurity
from cvfl.errors import AlignmentError
from cvfl.psi import AlignJob, align
from cvfl.ratls import RatlsSecurity
from cvfl.sealing import new_key_file
from tests.ratls.helpers import FLAG_DEBUG, CraftedProvider, PlatformVerifier, policy, terms

from .conftest import align_case, check_aligned, psi_config, run_pair, write_table


class Fast(TypedDict):
    mode: str


class Insecure(TypedDict):
    mode: str
    insecure_fast_mode: bool


FAST: Fast = {"mode": "fast"}
INSECURE: Insecure = {"mode": "fast", "insecure_fast_mode": True}
LONG = "x" * 5000

CASES = {
    "half-overlap": ([f"id{i}" for i in range(0, 300)], [f"id{i}" for i in range(150, 420)]),
    "empty-leader": ([], ["a", "b"]),
    "both-empty": ([], []),
    "disjoint": (["a", "b", "c"], ["d", "e"]),
    "identical": (["p", "q", "r", "s"], ["s", "r", "q", "p"]),
    "one-element": (["only"], ["only"]),
    "unicode-and-long": (["é", "e\u0301", "東京", LONG, "z"], [LONG, "東京", "e\u0301", "y"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_fast_mode_matches_set_intersection(tmp: Path, case: str) -> None:
    leader, follower = CASES[case]
    if not set(leader) & set(follower):  # nothing in common: refused, nothing written
        align_case(tmp, leader, follower, batch_size=16, **INSECURE)
        return
    out = run_pair(tmp, leader, follower, batch_size=16, **INSECURE)
    check_aligned(out, leader, follower)
    assert out.leader.mode == out.follower.mode == "fast"
    assert out.leader.peer_items == len(follower) and out.follower.peer_items == len(leader)


def test_fast_mode_sealed_csv_and_dropped_duplicates(tmp: Path) -> None:
    keys = new_key_file(tmp / "k.hex")
    leader = ["a", "b", "a", "c", "d"]
    follower = ["d", "a", "x"]
    out = run_pair(tmp, leader, follower, suffix=".csv", keys=keys, duplicates="drop", **INSECURE)
    assert out.leader.duplicates_dropped == 1 and out.leader.sealed
    lids = out.leader_table.column("id").to_pylist()
    assert lids == out.follower_table.column("id").to_pylist() and sorted(lids) == ["a", "d"]
    assert out.leader_table.column("l_row").to_pylist()[lids.index("a")] == 0  # first row kept


def test_duplicates_refused_by_default_and_peer_told(tmp: Path) -> None:
    with pytest.raises(AlignmentError) as err:
        run_pair(tmp, ["a", "b"], ["c", "c", "d", "c"], **INSECURE)
    assert err.value.code == "psi.duplicates"  # the follower's own refusal
    assert "2 rows repeat an id" in err.value.message and "first at rows 1, 3" in err.value.message
    assert "c" not in err.value.message.replace("col", "").split("(")[0].split(":")[-1]
    assert not list(tmp.glob("*-aligned*"))


def _ratls(
    provider: CraftedProvider, verifier: object, role: str = "follower", **pol: object
) -> RatlsSecurity:
    job = terms(role, job_id="job-1", command="align", psi_mode="fast")
    return RatlsSecurity(provider, verifier, policy(**pol), terms=job)  # type: ignore[arg-type]


def test_over_ratls_with_simulated_evidence_and_the_insecure_flag(tmp: Path) -> None:
    leader, follower = [f"u{i}" for i in range(40)], [f"u{i}" for i in range(20, 70)]
    out = run_pair(
        tmp,
        leader,
        follower,
        security=_ratls(CraftedProvider(), SimulatedVerifier()),
        leader_security=_ratls(CraftedProvider(), SimulatedVerifier(), "leader"),
        **INSECURE,
    )
    check_aligned(out, leader, follower)
    assert out.leader.channel == out.follower.channel == "ratls-simulated-INSECURE"


def _real(role: str = "follower") -> RatlsSecurity:
    """Real-looking evidence: the quote verifies for real, reported as an UpToDate platform."""
    provider = CraftedProvider(simulated=False, name="sgx-double")
    return _ratls(provider, PlatformVerifier("UpToDate"), role, allow_simulated=False)


def test_real_up_to_date_evidence_runs_without_any_flag(tmp: Path) -> None:
    leader, follower = [f"u{i}" for i in range(50)], [f"u{i}" for i in range(25, 60)]
    out = run_pair(tmp, leader, follower, security=_real(), leader_security=_real("leader"), **FAST)
    check_aligned(out, leader, follower)
    assert out.leader.channel == "ratls"


def _outdated(role: str = "follower", **pol: object) -> RatlsSecurity:
    provider = CraftedProvider(simulated=False, name="sgx-double")
    return _ratls(provider, PlatformVerifier("OutOfDate"), role, allow_simulated=False, **pol)


def test_out_of_date_peer_refused_unless_its_status_is_listed(tmp: Path) -> None:
    allow = frozenset({"UpToDate", "OutOfDate"})
    with pytest.raises(AlignmentError) as err:
        run_pair(
            tmp,
            ["a"],
            ["a"],
            security=_outdated(allowed_tcb_statuses=allow),
            leader_security=_outdated("leader", allowed_tcb_statuses=allow),
            **FAST,
        )
    assert "peer tcb_status: expected UpToDate, seen OutOfDate" in err.value.message
    assert not list(tmp.glob("*-aligned*"))
    out = run_pair(
        tmp,
        ["a", "b"],
        ["b"],
        security=_outdated(allowed_tcb_statuses=allow),
        leader_security=_outdated("leader", allowed_tcb_statuses=allow),
        fast_tcb_statuses=("UpToDate", "OutOfDate"),
        **FAST,
    )
    check_aligned(out, ["a", "b"], ["b"])


def test_debug_peer_refused(tmp: Path) -> None:
    debug = CraftedProvider(simulated=False, name="sgx-double", flags=FLAG_DEBUG | 0x05)
    leader = _ratls(debug, PlatformVerifier("UpToDate"), "leader", allow_debug=True)
    follower = _ratls(debug, PlatformVerifier("UpToDate"), allow_debug=True)
    with pytest.raises(AlignmentError) as err:
        run_pair(tmp, ["a"], ["a"], security=follower, leader_security=leader, **FAST)
    assert "peer enclave debug: expected false (production enclave), seen true" in err.value.message


def test_simulated_peer_refused_by_a_real_side_without_the_flag(tmp: Path) -> None:
    """The leader is real; the simulated follower may opt in, but the leader refuses it."""
    real = CraftedProvider(simulated=False, name="sgx-double")
    real_leader = _ratls(real, SimulatedVerifier(), "leader")
    follower = _ratls(CraftedProvider(), SimulatedVerifier())
    lpath = write_table(tmp / "leader.parquet", ["a", "b"], "l")
    fpath = write_table(tmp / "follower.parquet", ["a"], "f")
    errors: dict[str, BaseException] = {}
    port: list[int] = []
    bound = threading.Event()

    def on_bound(p: int) -> None:
        port.append(p)
        bound.set()

    def lead() -> None:
        job = AlignJob("job-1", "leader", lpath, "id", "127.0.0.1:0")
        try:
            align(
                job,
                psi_config(tmp, "leader", **FAST),
                real_leader,
                keys=None,
                on_bound=on_bound,
            )
        except BaseException as exc:
            errors["leader"] = exc
            bound.set()

    thread = threading.Thread(target=lead)
    thread.start()
    assert bound.wait(20) and port
    job = AlignJob("job-1", "follower", fpath, "id", f"127.0.0.1:{port[0]}")
    with pytest.raises(AlignmentError) as err:
        align(job, psi_config(tmp, "follower", **INSECURE), follower, keys=None)
    thread.join(30)
    assert err.value.code == "psi.peer_abort"
    leader_error = errors["leader"]
    assert isinstance(leader_error, AlignmentError) and leader_error.code == "psi.fast_refused"
    assert "peer evidence simulated: expected false (real SGX), seen true" in leader_error.message
    assert not list(tmp.glob("*-aligned*"))


@pytest.mark.parametrize("channel", ["plaintext", "simulated-ratls"])
def test_refused_locally_without_the_flag(tmp: Path, channel: str) -> None:
    path = write_table(tmp / "leader.parquet", ["a"], "l")
    security = (
        PlaintextSecurity()
        if channel == "plaintext"
        else _ratls(CraftedProvider(), SimulatedVerifier(), "leader")
    )
    job = AlignJob("job-1", "leader", path, "id", "127.0.0.1:0")
    cfg = psi_config(tmp, "leader", **FAST)
    with pytest.raises(AlignmentError) as err:
        align(job, cfg, security, keys=None, on_bound=lambda _: pytest.fail("it listened"))
    assert err.value.code == "psi.fast_refused"
    expected = (
        "fast mode channel: expected attested RA-TLS, seen insecure-plaintext"
        if channel == "plaintext"
        else "fast mode own evidence: expected real SGX (not simulated), seen simulated"
    )
    assert expected in err.value.message and "--insecure-fast-mode" in err.value.message
    assert not cfg.output.exists()
    assert replace(cfg, insecure_fast_mode=True).insecure_fast_mode


def test_fresh_key_per_run_and_spilling(tmp: Path) -> None:
    """Two runs on the same tables (fresh session keys) give the same rows in the same order."""
    leader, follower = [f"k{i}" for i in range(200)], [f"k{i}" for i in range(100, 260)]
    runs = []
    for n in range(2):
        folder = tmp / f"run{n}"
        folder.mkdir()
        out = run_pair(
            folder, leader, follower, spill_threshold=30, spill_dir=folder / "spill", **INSECURE
        )
        check_aligned(out, leader, follower)
        assert out.leader.spills > 0 and out.follower.spills > 0
        assert not list((folder / "spill").glob("*/*")), "spill files left behind"
        runs.append(out)
    # The order comes from the job id and seed, not from the run's session key.
    assert runs[0].leader.order_fingerprint == runs[1].leader.order_fingerprint
    first = runs[0].leader_table.column("id").to_pylist()
    assert first == runs[1].leader_table.column("id").to_pylist()
    assert first != sorted(first)
