"""Round trips over the sizes that matter, with any split of writes and reads (hypothesis)."""

from __future__ import annotations

import io
import itertools
import os
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from cvfl.sealing import (
    FileKeyProvider,
    SealedReader,
    SealedWriter,
    is_sealed,
    new_key_file,
    read_header_of,
    read_sealed,
    reseal,
    seal_file,
    sealed_reader,
    sealed_writer,
    unseal_file,
    write_sealed,
)
from cvfl.sealing.format import TAG_SIZE

from .conftest import PURPOSE, header_len

_KEY_DIR = tempfile.TemporaryDirectory()
KEYS = new_key_file(Path(_KEY_DIR.name) / "k.key")

CHUNKS = st.sampled_from([16, 17, 64])


@st.composite
def sized(draw: st.DrawFn) -> tuple[int, bytes]:
    cs = draw(CHUNKS)
    n = draw(
        st.sampled_from([0, 1, cs - 1, cs, cs + 1, 2 * cs, 3 * cs - 1, 7 * cs + 5])
        | st.integers(0, 12 * cs)
    )
    return cs, draw(st.binary(min_size=n, max_size=n))


def splits(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


@settings(max_examples=150, deadline=None)
@given(
    case=sized(),
    write_cuts=st.lists(st.integers(0, 10_000), max_size=6),
    read_size=st.integers(1, 100),
)
def test_round_trip_in_memory(
    case: tuple[int, bytes], write_cuts: list[int], read_size: int
) -> None:
    cs, data = case
    sink = io.BytesIO()
    writer = SealedWriter(sink, purpose=PURPOSE, keys=KEYS, chunk_size=cs)
    for piece in splits(data, write_cuts):
        assert writer.write(piece) == len(piece)
    writer.finish()
    blob = sink.getvalue()
    n_chunks = max(1, -(-len(data) // cs))
    assert len(blob) == header_len(blob) + len(data) + n_chunks * TAG_SIZE
    if len(data) >= 16:
        assert data not in blob  # nothing travels in the clear
    reader = SealedReader(io.BytesIO(blob), purpose=PURPOSE, keys=KEYS)
    got = bytearray()
    while piece := reader.read(read_size):
        got += piece
    assert bytes(got) == data
    assert reader.read(5) == b""


@settings(max_examples=40, deadline=None)
@given(case=sized())
def test_round_trip_through_files(case: tuple[int, bytes]) -> None:
    cs, data = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.sealed"
        write_sealed(path, data, purpose=PURPOSE, keys=KEYS, chunk_size=cs)
        assert is_sealed(path)
        assert read_header_of(path).chunk_size == cs
        assert read_sealed(path, purpose=PURPOSE, keys=KEYS) == data
        with sealed_reader(path, purpose=PURPOSE, keys=KEYS) as reader:
            assert reader.read() == data
        assert os.stat(path).st_mode & 0o777 == 0o600


def test_streaming_writer_and_file_helpers(tmp_path: Path, keys: FileKeyProvider) -> None:
    data = os.urandom(10_000)
    plain, sealed, back = tmp_path / "p", tmp_path / "s", tmp_path / "b"
    plain.write_bytes(data)
    seal_file(plain, sealed, purpose="aligned-table", keys=keys, chunk_size=1000)
    assert not is_sealed(plain) and is_sealed(sealed)
    unseal_file(sealed, back, purpose="aligned-table", keys=keys)
    assert back.read_bytes() == data
    with sealed_writer(tmp_path / "w", purpose=PURPOSE, keys=keys, chunk_size=64) as writer:
        for i in range(0, len(data), 333):
            writer.write(memoryview(data)[i : i + 333])
    assert read_sealed(tmp_path / "w", purpose=PURPOSE, keys=keys) == data


def test_writer_failure_leaves_nothing(tmp_path: Path, keys: FileKeyProvider) -> None:
    target = tmp_path / "never"
    try:
        with sealed_writer(target, purpose=PURPOSE, keys=keys) as writer:
            writer.write(b"half of a checkpoint")
            raise RuntimeError("crash mid-write")
    except RuntimeError:
        pass
    assert os.listdir(tmp_path) == ["keys"]


def test_reseal_rotates_the_key(
    tmp_path: Path, keys: FileKeyProvider, other_keys: FileKeyProvider
) -> None:
    path = tmp_path / "f.sealed"
    data = os.urandom(5000)
    write_sealed(path, data, purpose=PURPOSE, keys=keys, chunk_size=100)
    reseal(path, keys, other_keys, purpose=PURPOSE)
    header = read_header_of(path)
    assert header.key_id == other_keys.key_id and header.chunk_size == 100
    assert read_sealed(path, purpose=PURPOSE, keys=other_keys) == data
    reseal(path, other_keys, keys, chunk_size=4096)
    assert read_header_of(path).chunk_size == 4096
    assert read_sealed(path, purpose=PURPOSE, keys=keys) == data
    assert sorted(os.listdir(tmp_path)) == ["f.sealed", "keys"]


def test_two_seals_of_the_same_data_differ(keys: FileKeyProvider) -> None:
    blobs = set()
    for _ in range(2):
        sink = io.BytesIO()
        w = SealedWriter(sink, purpose=PURPOSE, keys=keys, chunk_size=32)
        w.write(b"same bytes" * 10)
        w.finish()
        blobs.add(sink.getvalue())
    assert len(blobs) == 2
