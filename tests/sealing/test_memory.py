"""Streaming seal and unseal keep memory bounded by a few chunks, whatever the file size."""

from __future__ import annotations

import hashlib
import tracemalloc
from pathlib import Path

from cvfl.sealing import FileKeyProvider, seal_file, sealed_reader, sealed_writer, unseal_file

MIB = 1024 * 1024
TOTAL = 48 * MIB
CHUNK = 256 * 1024


def test_streaming_peak_memory_is_a_few_chunks(tmp_path: Path, keys: FileKeyProvider) -> None:
    block = hashlib.sha256(b"seed").digest() * (MIB // 32)
    path = tmp_path / "big.sealed"
    tracemalloc.start()
    try:
        with sealed_writer(path, purpose="big", keys=keys, chunk_size=CHUNK) as writer:
            for _ in range(TOTAL // MIB):
                writer.write(block)
        _, write_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        digest = hashlib.sha256()
        with sealed_reader(path, purpose="big", keys=keys) as reader:
            while piece := reader.read(MIB):
                digest.update(piece)
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert digest.digest() == hashlib.sha256(block * (TOTAL // MIB)).digest()
    assert write_peak < 4 * MIB, ("write", write_peak)  # two chunk buffers, whatever TOTAL is
    # the caller's 1 MiB reads (a bytearray, its bytes copy, the previous piece) plus two chunks
    assert read_peak < 6 * MIB, ("read", read_peak)


def test_file_to_file_peak_memory(tmp_path: Path, keys: FileKeyProvider) -> None:
    plain, sealed, back = tmp_path / "p", tmp_path / "s", tmp_path / "b"
    with plain.open("wb") as handle:
        for i in range(TOTAL // MIB):
            handle.write(bytes([i]) * MIB)
    tracemalloc.start()
    try:
        seal_file(plain, sealed, purpose="big", keys=keys, chunk_size=CHUNK)
        unseal_file(sealed, back, purpose="big", keys=keys)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * MIB, peak  # the 1 MiB copy block plus a few chunks
    assert back.stat().st_size == TOTAL
    assert plain.read_bytes() == back.read_bytes()
