"""Every region of a sealed file is tamper-evident, and a refusal never yields plaintext."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from cvfl.errors import SealingError
from cvfl.sealing import FileKeyProvider, read_sealed, reseal, sealed_reader, unseal_file
from cvfl.sealing.format import TAG_SIZE, read_header
from cvfl.sealing.stream import ChunkOpener, authenticate

from .conftest import CS, PURPOSE, header_len, records, seal_bytes, unseal_bytes

DATA = bytes(range(256))[: CS * 4 + 7]  # five chunks, the last one partial


def assert_refused(
    blob: bytes,
    keys: FileKeyProvider,
    folder: Path,
    code: str | None = None,
    *,
    purpose: str = PURPOSE,
) -> SealingError:
    """The blob is refused in memory, by read_sealed and by unseal_file, which writes nothing."""
    with pytest.raises(SealingError) as mem:
        unseal_bytes(blob, keys, purpose=purpose)
    sealed, plain = folder / "t.sealed", folder / "t.plain"
    sealed.write_bytes(blob)
    with pytest.raises(SealingError) as whole:
        read_sealed(sealed, purpose=purpose, keys=keys)
    with pytest.raises(SealingError):
        unseal_file(sealed, plain, purpose=purpose, keys=keys)
    assert not plain.exists()
    assert not [p for p in os.listdir(folder) if p.endswith(".tmp")]
    assert str(sealed) in whole.value.message  # the error names the file
    if code is not None:
        assert mem.value.code == code, mem.value.message
        assert whole.value.code == code, whole.value.message
    return whole.value


@pytest.fixture
def blob(keys: FileKeyProvider) -> bytes:
    b = seal_bytes(DATA, keys)
    assert unseal_bytes(b, keys) == DATA
    return b


def flip(blob: bytes, pos: int, mask: int = 0x01) -> bytes:
    out = bytearray(blob)
    out[pos] ^= mask
    return bytes(out)


def test_every_single_bit_flip_is_refused(
    blob: bytes, keys: FileKeyProvider, tmp_path: Path
) -> None:
    f = tmp_path / "f"
    for pos in range(len(blob)):
        bad = flip(blob, pos, 1 << (pos % 8))
        with pytest.raises(SealingError):
            unseal_bytes(bad, keys)
        f.write_bytes(bad)
        with pytest.raises(SealingError):
            read_sealed(f, purpose=PURPOSE, keys=keys)


@pytest.mark.parametrize(
    ("field", "pos", "mask", "code"),
    [
        ("magic", 0, 0x01, "sealing.not_sealed"),
        ("version", 9, 0x01, "sealing.version"),
        ("chunk size", 13, 0x01, "sealing.header_tampered"),
        ("chunk size out of bounds", 10, 0x80, "sealing.header_invalid"),
        ("file nonce", 20, 0x01, "sealing.header_tampered"),
        ("purpose", 48, 0x01, "sealing.header_tampered"),
    ],
)
def test_header_fields(
    blob: bytes, keys: FileKeyProvider, tmp_path: Path, field: str, pos: int, mask: int, code: str
) -> None:
    err = assert_refused(flip(blob, pos, mask), keys, tmp_path, code)
    assert field.split(maxsplit=1)[0] in err.message or code.endswith("tampered")


def test_key_id_and_tag_and_lengths(blob: bytes, keys: FileKeyProvider, tmp_path: Path) -> None:
    h = header_len(blob)
    key_id_pos = h - 32 - 3
    err = assert_refused(flip(blob, key_id_pos), keys, tmp_path, "sealing.wrong_key")
    assert "key id: expected" in err.message
    assert_refused(flip(blob, h - 1), keys, tmp_path, "sealing.header_tampered")  # the tag
    assert_refused(flip(blob, 46, 0x80), keys, tmp_path)  # purpose length
    assert_refused(flip(blob, 47 + blob[46], 0x02), keys, tmp_path)  # key id length


def test_any_chunk_byte(blob: bytes, keys: FileKeyProvider, tmp_path: Path) -> None:
    h = header_len(blob)
    for index in range(5):
        start = h + index * (CS + TAG_SIZE)
        for pos in (start, start + 5, min(start + CS + TAG_SIZE, len(blob)) - 1):
            err = assert_refused(flip(blob, pos), keys, tmp_path, "sealing.chunk_tampered")
            assert f"chunk {index} " in err.message


def test_truncation_at_every_byte_and_chunk_boundary(
    blob: bytes, keys: FileKeyProvider, tmp_path: Path
) -> None:
    head, recs = records(blob)
    boundaries = {len(head) + i * (CS + TAG_SIZE) for i in range(len(recs))}
    for cut in range(len(blob)):
        err = assert_refused(blob[:cut], keys, tmp_path) if cut in boundaries else None
        if err is None:
            with pytest.raises(SealingError):
                unseal_bytes(blob[:cut], keys)
        else:
            assert err.code in {"sealing.truncated", "sealing.chunk_tampered"}


@pytest.mark.parametrize("extra", [b"\x00", b"x" * TAG_SIZE, b"y" * (CS + TAG_SIZE), b"z" * 100])
def test_appended_bytes(blob: bytes, keys: FileKeyProvider, tmp_path: Path, extra: bytes) -> None:
    assert_refused(blob + extra, keys, tmp_path)


def test_appended_bytes_after_a_full_last_chunk(keys: FileKeyProvider, tmp_path: Path) -> None:
    full = seal_bytes(DATA[: CS * 2], keys)
    err = assert_refused(full + b"\x00", keys, tmp_path)
    assert err.code in {"sealing.truncated", "sealing.chunk_tampered"}
    _, recs = records(full)
    assert_refused(full + recs[-1], keys, tmp_path, "sealing.chunk_tampered")


def test_reordered_dropped_and_duplicated_chunks(
    blob: bytes, keys: FileKeyProvider, tmp_path: Path
) -> None:
    head, r = records(blob)
    for order in ([1, 0, 2, 3, 4], [0, 1, 3, 2, 4], [0, 2, 3, 4], [0, 1, 1, 2, 3, 4], [0, 1, 2, 3]):
        assert_refused(head + b"".join(r[i] for i in order), keys, tmp_path)


def test_chunk_or_header_from_another_file(
    blob: bytes, keys: FileKeyProvider, tmp_path: Path
) -> None:
    twin = seal_bytes(DATA, keys)  # same key, purpose, size: only the file nonce differs
    head, r = records(blob)
    head2, r2 = records(twin)
    assert_refused(head + r[0] + r2[1] + b"".join(r[2:]), keys, tmp_path, "sealing.chunk_tampered")
    assert_refused(head2 + b"".join(r), keys, tmp_path, "sealing.chunk_tampered")


def test_file_sealed_for_another_purpose(keys: FileKeyProvider, tmp_path: Path) -> None:
    export = seal_bytes(DATA, keys, purpose="model-export")
    err = assert_refused(export, keys, tmp_path, "sealing.purpose_mismatch")
    assert "purpose: expected checkpoint, seen model-export" in err.message


def test_wrong_key(blob: bytes, other_keys: FileKeyProvider, tmp_path: Path) -> None:
    err = assert_refused(blob, other_keys, tmp_path, "sealing.wrong_key")
    assert other_keys.key_id in err.message


def test_not_a_sealed_file_and_empty(keys: FileKeyProvider, tmp_path: Path) -> None:
    assert_refused(b"PAR1 plain parquet bytes" * 4, keys, tmp_path, "sealing.not_sealed")
    assert_refused(b"", keys, tmp_path, "sealing.header_truncated")


def test_streaming_reader_returns_only_verified_chunks(
    blob: bytes, keys: FileKeyProvider, tmp_path: Path
) -> None:
    h = header_len(blob)
    bad = flip(blob, h + 3 * (CS + TAG_SIZE) + 1)  # chunk 3 altered
    path = tmp_path / "bad.sealed"
    path.write_bytes(bad)
    got = bytearray()
    with pytest.raises(SealingError) as info, sealed_reader(path, purpose=PURPOSE, keys=keys) as r:
        while piece := r.read(7):
            got += piece
    assert info.value.code == "sealing.chunk_tampered"
    assert bytes(got) == DATA[: len(got)] and len(got) <= 3 * CS  # verified prefix only
    reader_again = pytest.raises(SealingError)
    with reader_again, sealed_reader(path, purpose=PURPOSE, keys=keys) as reader:
        reader.read(3 * CS)
        reader.read(1)


def test_failed_chunk_leaves_no_plaintext_in_the_buffer(blob: bytes, keys: FileKeyProvider) -> None:
    source = io.BytesIO(blob)
    header = read_header(source, "mem")
    opener = ChunkOpener(header, authenticate(header, PURPOSE, keys, "mem"), "mem")
    _, r = records(blob)
    bad = bytearray(r[1])
    bad[-1] ^= 1  # only the tag is wrong: GCM would still have produced the plaintext
    out = memoryview(bytearray(CS))
    with pytest.raises(SealingError):
        opener.open_into(1, memoryview(bad), False, out)
    assert bytes(out) == bytes(CS)


def test_partial_read_then_close_still_verifies_the_rest(
    blob: bytes, keys: FileKeyProvider, tmp_path: Path
) -> None:
    path = tmp_path / "bad.sealed"
    path.write_bytes(blob[:-1])
    with pytest.raises(SealingError), sealed_reader(path, purpose=PURPOSE, keys=keys) as reader:
        assert reader.read(CS) == DATA[:CS]
    with sealed_reader(path, purpose=PURPOSE, keys=keys, verify_rest=False) as reader:
        assert reader.read(CS) == DATA[:CS]


def test_reseal_of_a_tampered_file_changes_nothing(
    blob: bytes, keys: FileKeyProvider, other_keys: FileKeyProvider, tmp_path: Path
) -> None:
    path = tmp_path / "f.sealed"
    bad = flip(blob, len(blob) - 2)
    path.write_bytes(bad)
    with pytest.raises(SealingError):
        reseal(path, keys, other_keys)
    assert path.read_bytes() == bad
    assert sorted(os.listdir(tmp_path)) == ["f.sealed", "keys"]


def test_bytes_appended_while_reading_are_caught(keys: FileKeyProvider, tmp_path: Path) -> None:
    path = tmp_path / "f.sealed"
    path.write_bytes(seal_bytes(DATA, keys))
    with pytest.raises(SealingError) as info, sealed_reader(path, purpose=PURPOSE, keys=keys) as r:
        with path.open("ab") as handle:
            handle.write(b"\x00" * 7)
        r.read()
    assert info.value.code == "sealing.extended"
