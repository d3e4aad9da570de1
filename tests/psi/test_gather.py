"""The streamed aligned output against a plain in-memory computation, and its spill runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from cvfl.errors import DataError, SealingError
from cvfl.psi import gather
from cvfl.psi.gather import ordered_rows
from cvfl.psi.order import agreed_order
from cvfl.psi.output import read_aligned, write_aligned
from cvfl.psi.runs import open_records, seal_record
from cvfl.psi.spill import EphemeralKeys

ROWS = 3000
GROUP = 100


def _table(rng: np.random.Generator) -> pa.Table:
    ids = [f"user-{n}" for n in rng.permutation(10 * ROWS)[:ROWS]]
    return pa.table(
        {
            "x": pa.array(rng.normal(size=ROWS)),
            "id": pa.array(ids),
            "c": pa.array(rng.integers(0, 101, size=ROWS), type=pa.int16()),
        }
    )


@pytest.fixture
def small_buckets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many buckets, several flushes to the encrypted runs, many record batches."""
    monkeypatch.setattr(gather, "BUCKET_BYTES", 4096)
    monkeypatch.setattr(gather, "PENDING_BYTES", 20_000)
    monkeypatch.setattr(gather, "MAX_PENDING_BYTES", 20_000)
    monkeypatch.setattr(gather, "RECORD_BYTES", 64)
    monkeypatch.setattr(gather, "SCAN_ROWS", (64, 256))


def _streamed(path: Path, wanted: np.ndarray, out: Path, keys: EphemeralKeys | None) -> bytes:
    mask = np.zeros(ROWS, dtype=np.bool_)
    mask[wanted] = True
    with ordered_rows(path, "id", "job-7", 3, path.parent / "spill") as ordered:
        ordered.distribute(mask)
        fmt = "csv" if out.suffix == ".csv" else "parquet"
        tables = ordered.sorted_tables()
        write_aligned(
            out, fmt, keys, ordered.schema, tables, expected=len(wanted), group_rows=GROUP
        )
        return ordered.fingerprint()


@pytest.mark.usefixtures("small_buckets")
@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_streamed_output_matches_in_memory_order(tmp_path: Path, suffix: str) -> None:
    rng = np.random.default_rng(5)
    table = _table(rng)
    path = tmp_path / f"in{suffix}"
    if suffix == ".csv":
        pacsv.write_csv(table, path)
        table = pacsv.read_csv(
            path, convert_options=pacsv.ConvertOptions(column_types={"id": pa.string()})
        )
    else:
        pq.write_table(table, path, row_group_size=500)
    wanted = rng.permutation(ROWS)[:1999]
    expected, fingerprint = agreed_order(
        table.take(pa.array(np.sort(wanted))), "id", "job-7", 3, path
    )
    out = tmp_path / f"out{suffix}"
    assert _streamed(path, wanted, out, None) == fingerprint
    assert not any((tmp_path / "spill").iterdir())  # the runs are gone
    if suffix == ".csv":
        sink = pa.BufferOutputStream()
        pacsv.write_csv(expected, sink)
        assert out.read_bytes() == sink.getvalue().to_pybytes()
        return
    got = pq.ParquetFile(out)
    sizes = [got.metadata.row_group(i).num_rows for i in range(got.metadata.num_row_groups)]
    assert sizes == [GROUP] * (len(wanted) // GROUP) + [len(wanted) % GROUP]
    assert got.read().equals(expected)


@pytest.mark.usefixtures("small_buckets")
def test_sealed_streamed_output_reads_back(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    table = _table(rng)
    path = tmp_path / "in.parquet"
    pq.write_table(table, path, row_group_size=700)
    wanted = rng.permutation(ROWS)[:1234]
    expected, fingerprint = agreed_order(
        table.take(pa.array(np.sort(wanted))), "id", "job-7", 3, path
    )
    keys = EphemeralKeys()
    out = tmp_path / "out.parquet.sealed"
    assert _streamed(path, wanted, out, keys) == fingerprint
    assert read_aligned(out, keys, "parquet").equals(expected)


@pytest.mark.usefixtures("small_buckets")
def test_each_flush_writes_one_record_per_bucket(tmp_path: Path) -> None:
    path = tmp_path / "in.parquet"
    pq.write_table(_table(np.random.default_rng(8)), path, row_group_size=300)
    with ordered_rows(path, "id", "job-7", 3, tmp_path) as ordered:
        flushes = 0
        flush = ordered._flush

        def counted() -> None:
            nonlocal flushes
            flushes += bool(ordered._pending)
            flush()

        ordered._flush = counted  # type: ignore[method-assign]
        ordered.distribute(np.ones(ROWS, dtype=np.bool_))
        counted()
        counts = ordered._runs._counts[: 1 << ordered.bits]
        assert ordered.bits >= 4 and flushes >= 4
        assert max(counts) <= flushes < sum(counts)
        assert sum(len(t) for t in ordered.sorted_tables()) == ROWS


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.integers(-(2**15), 2**15 - 1), min_size=1, max_size=50),
    text=st.text(max_size=8),
)
def test_run_records_round_trip(values: list[int], text: str) -> None:
    table = pa.table({"c": pa.array(values, type=pa.int16()), "s": pa.array([text] * len(values))})
    tags = np.array([bytes([i % 256]) * 32 for i in range(len(values))], dtype="S32")
    got_tags, batch = gather._decode(gather._encode(tags, table), table.schema)
    assert got_tags.tolist() == tags.tolist()
    assert pa.Table.from_batches([batch], schema=table.schema).equals(table)


def test_a_failed_write_keeps_the_old_table(tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    out.write_bytes(b"the good table")
    schema = pa.schema([("id", pa.string())])

    def tables() -> Iterator[pa.Table]:
        yield pa.table({"id": ["a"] * 150}, schema=schema)
        raise DataError("the input went away", code="data.changed")

    with pytest.raises(DataError):
        write_aligned(out, "parquet", None, schema, tables(), expected=200, group_rows=GROUP)
    assert out.read_bytes() == b"the good table"
    assert [p.name for p in tmp_path.iterdir()] == ["out.parquet"]


def test_fewer_rows_than_wanted_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "in.parquet"
    pq.write_table(_table(np.random.default_rng(1)), path)
    with ordered_rows(path, "id", "j", 0, None) as ordered, pytest.raises(DataError) as err:
        ordered.distribute(np.arange(ROWS + 1) % 2 == 0)
    assert err.value.code == "data.changed"


_payloads = st.lists(st.binary(max_size=64), max_size=5)


@settings(max_examples=60, deadline=None)
@given(payloads=_payloads, bucket=st.integers(0, 1 << 16))
def test_runs_round_trip(payloads: list[bytes], bucket: int) -> None:
    aead = AESGCM(bytes(32))
    data = b"".join(seal_record(aead, bucket, i, p) for i, p in enumerate(payloads))
    assert list(open_records(aead, bucket, data, len(payloads), "run")) == payloads


@settings(max_examples=120, deadline=None)
@given(payloads=_payloads.filter(bool), data=st.data())
def test_runs_refuse_any_change(payloads: list[bytes], data: st.DataObject) -> None:
    aead = AESGCM(bytes(32))
    run = b"".join(seal_record(aead, 1, i, p) for i, p in enumerate(payloads))
    how = data.draw(st.sampled_from(["flip", "cut", "extend", "count", "bucket"]))
    at = data.draw(st.integers(0, len(run) - 1))
    count, bucket = len(payloads), 1
    if how == "flip":
        run = run[:at] + bytes([run[at] ^ 1]) + run[at + 1 :]
    elif how == "cut":
        run = run[:at]
    elif how == "extend":
        run += seal_record(aead, 1, len(payloads), b"more")
    elif how == "count":
        count += 1
    else:
        bucket = 2
    with pytest.raises(SealingError) as err:
        list(open_records(aead, bucket, run, count, "run"))
    assert err.value.code in ("sealing.truncated", "sealing.chunk_tampered")
