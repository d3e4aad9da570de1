"""The seekable sealed reader: random seeks and reads equal the plaintext; tampering is caught."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvfl.errors import SealingError
from cvfl.sealing import FileKeyProvider, new_key_file, write_sealed
from cvfl.sealing.seekable import SeekableSealedReader, open_seekable

from .conftest import PURPOSE, header_len, records, seal_bytes

_KEY_DIR = tempfile.TemporaryDirectory()
KEYS = new_key_file(Path(_KEY_DIR.name) / "k.key")
OTHER = new_key_file(Path(_KEY_DIR.name) / "o.key")


def _reader(blob: bytes, keys: FileKeyProvider = KEYS) -> SeekableSealedReader:
    return SeekableSealedReader(io.BytesIO(blob), purpose=PURPOSE, keys=keys)


@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(max_size=600),
    chunk=st.integers(16, 80),
    ops=st.lists(st.tuples(st.integers(0, 700), st.integers(0, 300)), max_size=12),
)
def test_random_seeks_and_reads_equal_the_plaintext_slice(
    data: bytes, chunk: int, ops: list[tuple[int, int]]
) -> None:
    reader = _reader(seal_bytes(data, KEYS, chunk_size=chunk))
    assert reader.size == len(data)
    for offset, size in ops:
        assert reader.seek(offset) == offset
        assert reader.read(size) == data[offset : offset + size]
        assert reader.tell() == min(offset + size, max(offset, len(data)))
    reader.seek(0)
    assert reader.readall() == data
    reader.seek(-min(5, len(data)), io.SEEK_END)
    assert reader.read() == data[len(data) - min(5, len(data)) :]


@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(min_size=1, max_size=400),
    chunk=st.integers(16, 64),
    where=st.integers(0, 10_000),
    bit=st.integers(0, 7),
)
def test_a_flipped_bit_in_a_chunk_is_refused_when_read(
    data: bytes, chunk: int, where: int, bit: int
) -> None:
    blob = bytearray(seal_bytes(data, KEYS, chunk_size=chunk))
    h = header_len(bytes(blob))
    position = h + where % (len(blob) - h)
    blob[position] ^= 1 << bit
    with pytest.raises(SealingError) as caught:
        _reader(bytes(blob)).readall()
    assert caught.value.code in {"sealing.chunk_tampered", "sealing.truncated"}


@settings(max_examples=40, deadline=None)
@given(data=st.binary(min_size=40, max_size=400), chunk=st.integers(16, 32), cut=st.integers(1, 60))
def test_truncation_and_extension_are_refused_at_open(data: bytes, chunk: int, cut: int) -> None:
    blob = seal_bytes(data, KEYS, chunk_size=chunk)
    h = header_len(blob)
    with pytest.raises(SealingError):
        _reader(blob[: max(h, len(blob) - cut)])
    with pytest.raises(SealingError):
        _reader(blob + bytes(cut))


def test_dropping_the_final_whole_chunk_is_refused() -> None:
    head, recs = records(seal_bytes(bytes(range(200)), KEYS), 32)
    with pytest.raises(SealingError) as caught:
        _reader(head + b"".join(recs[:-1]))
    assert caught.value.code == "sealing.chunk_tampered"


def test_swapped_chunks_are_refused_where_read() -> None:
    data = bytes(range(200))
    head, recs = records(seal_bytes(data, KEYS), 32)
    reader = _reader(head + recs[1] + recs[0] + b"".join(recs[2:]))
    reader.seek(100)
    assert reader.read(20) == data[100:120]  # untouched chunks still read
    reader.seek(0)
    with pytest.raises(SealingError):
        reader.read(10)
    with pytest.raises(SealingError):  # and every later read fails too
        reader.seek(100) and reader.read(1)


def test_wrong_key_and_purpose_are_refused() -> None:
    blob = seal_bytes(b"x" * 100, KEYS)
    with pytest.raises(SealingError) as caught:
        _reader(blob, OTHER)
    assert caught.value.code == "sealing.wrong_key"
    with pytest.raises(SealingError) as caught:
        SeekableSealedReader(io.BytesIO(blob), purpose="aligned-table", keys=KEYS)
    assert caught.value.code == "sealing.purpose_mismatch"


def test_arrow_reads_one_row_group_of_a_sealed_parquet_file(tmp_path: Path) -> None:
    table = pa.table({"id": [str(i) for i in range(1000)], "x": list(range(1000))})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, row_group_size=100)
    path = tmp_path / "t.parquet.sealed"
    write_sealed(path, sink.getvalue().to_pybytes(), purpose="aligned-table", keys=KEYS)
    with open_seekable(path, purpose="aligned-table", keys=KEYS) as reader:
        parquet = pq.ParquetFile(reader)
        assert parquet.metadata.num_row_groups == 10
        assert parquet.read_row_group(7).equals(table.slice(700, 100))
    with pytest.raises(SealingError) as caught:
        open_seekable(tmp_path / "none", purpose="aligned-table", keys=KEYS)
    assert caught.value.code == "sealing.missing"
