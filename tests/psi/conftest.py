"""Helpers: write party tables, run both parties of an alignment on 127.0.0.1 in threads."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

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
    port: list[int] = []
    bound = threading.Event()
    result: dict[str, object] = {}

    def leader() -> None:
        job = AlignJob("job-1", "leader", lpath, "id", "127.0.0.1:0", seed)

        def on_bound(p: int) -> None:
            port.append(p)
            bound.set()

        try:
            result["leader"] = align(
                job, lcfg, leader_security or PlaintextSecurity(), keys=keys, on_bound=on_bound
            )
        except BaseException as exc:
            result["leader"] = exc
            bound.set()

    thread = threading.Thread(target=leader)
    thread.start()
    assert bound.wait(30)
    try:
        if not port:
            raise result["leader"]  # type: ignore[misc]
        job = AlignJob("job-1", "follower", fpath, "id", f"127.0.0.1:{port[0]}", seed)
        follower = align(job, fcfg, sec, keys=keys)
    finally:
        thread.join(60)
    if isinstance(result["leader"], BaseException):
        raise result["leader"]
    return Outcome(
        leader=result["leader"],  # type: ignore[arg-type]
        follower=follower,
        leader_table=read_aligned(lcfg.output, keys, _fmt(suffix), id_column="id"),
        follower_table=read_aligned(fcfg.output, keys, _fmt(fsuffix), id_column="id"),
    )


def align_case(
    tmp: Path, leader_ids: Sequence[object], follower_ids: Sequence[object], **kw: object
) -> None:
    """Align the two id lists and check the outcome against their set intersection.

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
