"""Helpers: write party tables, run both parties of an alignment on 127.0.0.1 in threads."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from cvfl.bridge.security import ChannelSecurity, PlaintextSecurity
from cvfl.errors import AlignmentError
from cvfl.psi import AlignJob, AlignReport, PsiConfig, align, read_aligned
from cvfl.sealing import KeyProvider


def write_table(path: Path, ids: Sequence[object], prefix: str) -> Path:
    column = pa.array(list(ids)) if ids else pa.array([], type=pa.string())
    table = pa.table({"id": column, f"{prefix}_row": pa.array(range(len(ids)), type=pa.int64())})
    if path.suffix == ".csv":
        pacsv.write_csv(table, path)
    else:
        pq.write_table(table, path)
    return path


def _fmt(suffix: str) -> str:
    return "csv" if suffix == ".csv" else "parquet"


@dataclass
class Outcome:
    leader: AlignReport
    follower: AlignReport
    leader_table: pa.Table
    follower_table: pa.Table


def psi_config(tmp: Path, role: str, **kw: object) -> PsiConfig:
    base = PsiConfig(
        output=tmp / f"{role}-aligned.parquet",
        plaintext_output=True,
        batch_size=7,
        threads=2,
        connect_timeout_s=10,
        timeout_s=30,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def align_both(
    paths: tuple[Path, Path],
    cfgs: tuple[PsiConfig, PsiConfig],
    *,
    keys: KeyProvider | None,
    security: ChannelSecurity | None = None,
    leader_security: ChannelSecurity | None = None,
    seed: int = 0,
) -> dict[str, AlignReport | BaseException]:
    """Align job-1 on 127.0.0.1 (the leader in a thread, on port 0): each side's report or error.

    Without a ``"follower"`` entry the leader failed before it listened.
    """
    port: list[int] = []
    bound = threading.Event()
    results: dict[str, AlignReport | BaseException] = {}

    def on_bound(p: int) -> None:
        port.append(p)
        bound.set()

    def leader() -> None:
        job = AlignJob("job-1", "leader", paths[0], "id", "127.0.0.1:0", seed)
        try:
            results["leader"] = align(
                job, cfgs[0], leader_security or PlaintextSecurity(), keys=keys, on_bound=on_bound
            )
        except BaseException as exc:
            results["leader"] = exc
            bound.set()

    thread = threading.Thread(target=leader)
    thread.start()
    assert bound.wait(30)
    if port:
        job = AlignJob("job-1", "follower", paths[1], "id", f"127.0.0.1:{port[0]}", seed)
        try:
            results["follower"] = align(job, cfgs[1], security or PlaintextSecurity(), keys=keys)
        except BaseException as exc:
            results["follower"] = exc
    thread.join(60)
    assert not thread.is_alive()
    return results


def run_pair(
    tmp: Path,
    leader_ids: Sequence[object],
    follower_ids: Sequence[object],
    *,
    suffix: str = ".parquet",
    follower_suffix: str | None = None,
    keys: KeyProvider | None = None,
    security: ChannelSecurity | None = None,
    leader_security: ChannelSecurity | None = None,
    seed: int = 0,
    **cfg: object,
) -> Outcome:
    lpath = write_table(tmp / f"leader{suffix}", leader_ids, "l")
    fsuffix = follower_suffix or suffix
    fpath = write_table(tmp / f"follower{fsuffix}", follower_ids, "f")
    sec = security or PlaintextSecurity()
    lcfg = psi_config(tmp, "leader", output=tmp / f"leader-aligned{suffix}", **cfg)
    fcfg = psi_config(tmp, "follower", output=tmp / f"follower-aligned{fsuffix}", **cfg)
    results = align_both(
        (lpath, fpath),
        (lcfg, fcfg),
        keys=keys,
        security=sec,
        leader_security=leader_security,
        seed=seed,
    )
    if "follower" not in results:  # the leader failed before it listened
        raise results["leader"]  # type: ignore[misc]
    for role in ("follower", "leader"):
        if isinstance(results[role], BaseException):
            raise results[role]  # type: ignore[misc]
    return Outcome(
        leader=results["leader"],  # type: ignore[arg-type]
        follower=results["follower"],  # type: ignore[arg-type]
        leader_table=read_aligned(lcfg.output, keys, _fmt(suffix), id_column="id"),
        follower_table=read_aligned(fcfg.output, keys, _fmt(fsuffix), id_column="id"),
    )


def align_case(
    tmp: Path, leader_ids: Sequence[object], follower_ids: Sequence[object], **kw: Any
) -> None:
    """Align the two id lists and check the outcome against their set intersection.

    ``kw`` are keyword arguments of :func:`run_pair` (mostly PsiConfig overrides).

    No common id is a refusal (``psi.empty``) that writes no aligned table.
    """
    if {str(i) for i in leader_ids} & {str(i) for i in follower_ids}:
        check_aligned(run_pair(tmp, leader_ids, follower_ids, **kw), leader_ids, follower_ids)
        return
    with pytest.raises(AlignmentError) as info:
        run_pair(tmp, leader_ids, follower_ids, **kw)
    assert info.value.code == "psi.empty"
    assert not list(tmp.glob("*-aligned*"))


def check_aligned(
    out: Outcome, leader_ids: Sequence[object], follower_ids: Sequence[object]
) -> None:
    common = {str(i) for i in leader_ids} & {str(i) for i in follower_ids}
    lids = [str(v) for v in out.leader_table.column("id").to_pylist()]
    fids = [str(v) for v in out.follower_table.column("id").to_pylist()]
    assert lids == fids, "rows do not line up id for id"
    assert set(lids) == common and len(lids) == len(common)
    assert out.leader.intersection == out.follower.intersection == len(common)
    assert out.leader.order_fingerprint == out.follower.order_fingerprint
    # each output row is the input row with that id (features travel with their id)
    lpos = {str(v): i for i, v in enumerate(leader_ids)}
    assert [lpos[i] for i in lids] == out.leader_table.column("l_row").to_pylist()
    fpos = {str(v): i for i, v in enumerate(follower_ids)}
    assert [fpos[i] for i in fids] == out.follower_table.column("f_row").to_pylist()


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path
