"""The reader on random and mutated input: it only ever raises SealingError."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from cvfl.errors import SealingError
from cvfl.sealing import SealedReader, new_key_file
from cvfl.sealing.format import MAGIC

from .conftest import PURPOSE, seal_bytes

_KEY_DIR = tempfile.TemporaryDirectory()
KEYS = new_key_file(Path(_KEY_DIR.name) / "k.key")
VALID = seal_bytes(bytes(range(200)), KEYS, chunk_size=32)


def _open(blob: bytes) -> bytes | None:
    try:
        return SealedReader(io.BytesIO(blob), purpose=PURPOSE, keys=KEYS).readall()
    except SealingError:
        return None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes(blob: bytes) -> None:
    assert _open(blob) is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_behind_a_valid_magic_and_version(tail: bytes) -> None:
    assert _open(MAGIC + b"\x00\x01" + tail) is None


@settings(max_examples=300, deadline=None)
@given(
    edits=st.lists(
        st.tuples(st.integers(0, len(VALID) + 10), st.sampled_from(["flip", "ins", "del"])),
        min_size=1,
        max_size=4,
    ),
    byte=st.integers(1, 255),
)
def test_mutated_valid_file(edits: list[tuple[int, str]], byte: int) -> None:
    blob = bytearray(VALID)
    for raw_pos, op in edits:
        pos = raw_pos % (len(blob) + 1)
        if op == "flip" and pos < len(blob):
            blob[pos] ^= byte
        elif op == "ins":
            blob[pos:pos] = bytes([byte])
        elif op == "del" and pos < len(blob):
            del blob[pos]
    result = _open(bytes(blob))
    assert result is None or bytes(blob) == VALID
