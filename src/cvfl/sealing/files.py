"""Sealed files on disk: atomic writes, verified reads, file-to-file seal and unseal, rotation."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from cvfl.errors import SealingError, mismatch
from cvfl.fsutil import atomic_writer
from cvfl.logs import get_logger
from cvfl.sealing.format import (
    DEFAULT_CHUNK_SIZE,
    MAGIC,
    TAG_SIZE,
    ReadableSource,
    SealedHeader,
    check_purpose,
    plaintext_length,
    read_header,
)
from cvfl.sealing.keys import KeyProvider
from cvfl.sealing.reader import SealedReader
from cvfl.sealing.records import iter_records
from cvfl.sealing.stream import ChunkOpener, SealedWriter, authenticate

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

log = get_logger(__name__)

PathLike = str | os.PathLike[str]
COPY_BLOCK = 1024 * 1024


@contextlib.contextmanager
def _open_read(path: PathLike) -> Iterator[io.BufferedReader]:
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        raise SealingError(f"{path}: cannot open: {exc.strerror}", code="sealing.io") from None
    with handle:
        yield handle


@contextlib.contextmanager
def sealed_writer(
    path: PathLike, *, purpose: str, keys: KeyProvider, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> Iterator[SealedWriter]:
    """Yield a stream that seals into ``path``; the file appears only if the block succeeds."""
    target = Path(path)
    check_purpose(purpose)
    in_body = False
    try:
        with atomic_writer(target) as sink:
            writer = SealedWriter(
                sink, purpose=purpose, keys=keys, chunk_size=chunk_size, name=str(target)
            )
            in_body = True
            yield writer
            in_body = False
            writer.finish()
            writer.close()
    except OSError as exc:
        if in_body:
            raise
        raise SealingError(
            f"{target}: cannot write: {exc.strerror or exc}", code="sealing.io"
        ) from exc


def write_sealed(
    path: PathLike,
    data: bytes | bytearray | memoryview,
    *,
    purpose: str,
    keys: KeyProvider,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> None:
    """Seal ``data`` into ``path`` atomically (temporary file, fsync, rename)."""
    with sealed_writer(path, purpose=purpose, keys=keys, chunk_size=chunk_size) as writer:
        writer.write(data)


@contextlib.contextmanager
def sealed_reader(
    path: PathLike, *, purpose: str, keys: KeyProvider, verify_rest: bool = True
) -> Iterator[SealedReader]:
    """Yield a verifying reader of ``path``.

    With ``verify_rest`` (the default) the chunks the block did not read are verified when it
    ends, so a block that finishes without error has seen an intact file.
    """
    check_purpose(purpose)
    with (
        _open_read(path) as handle,
        SealedReader(handle, purpose=purpose, keys=keys, name=str(path)) as reader,
    ):
        yield reader
        if verify_rest:
            reader.verify_rest()


def read_sealed(path: PathLike, *, purpose: str, keys: KeyProvider) -> bytes:
    """Return the plaintext of ``path``; nothing is returned unless the whole file verified."""
    check_purpose(purpose)
    name = str(path)
    with _open_read(path) as handle:
        header = read_header(handle, name)
        opener = ChunkOpener(header, authenticate(header, purpose, keys, name), name)
        size = _plaintext_size(handle, header, name)
        out = bytearray(size)
        view = memoryview(out)
        try:
            _open_all_into(handle, header, opener, view, name)
        except BaseException:
            view[:] = bytes(size)
            raise
    return bytes(out)


def _plaintext_size(handle: io.BufferedReader, header: SealedHeader, name: str) -> int:
    body = os.fstat(handle.fileno()).st_size - header.length
    size = plaintext_length(body, header.chunk_size)
    if size is None:
        raise SealingError(
            f"{name}: truncated or extended: {body} bytes after the header fit no chunk layout "
            f"of chunk size {header.chunk_size}",
            code="sealing.truncated",
        )
    return size


def _open_all_into(
    handle: io.BufferedReader, header: SealedHeader, opener: ChunkOpener, out: memoryview, name: str
) -> None:
    offset = 0
    for index, record, last in iter_records(handle, header.chunk_size, name):
        n = len(record) - TAG_SIZE
        if offset + n > len(out):
            raise SealingError(f"{name}: file grew while being read", code="sealing.extended")
        offset += opener.open_into(index, record, last, out[offset : offset + n])
    if offset != len(out):
        raise SealingError(
            f"{name}: " + mismatch("plaintext length", len(out), offset), code="sealing.io"
        )


def is_sealed(path: PathLike) -> bool:
    """Tell whether ``path`` starts with the sealed-file magic (not a proof of integrity)."""
    with _open_read(path) as handle:
        return handle.read(len(MAGIC)) == MAGIC


def read_header_of(path: PathLike) -> SealedHeader:
    """Parse the header of ``path`` WITHOUT authenticating it (for display and diagnostics)."""
    with _open_read(path) as handle:
        return read_header(handle, str(path))


def seal_file(
    src: PathLike,
    dst: PathLike,
    *,
    purpose: str,
    keys: KeyProvider,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> None:
    """Seal the plain file ``src`` into ``dst`` (streaming, atomic)."""
    with (
        _open_read(src) as source,
        sealed_writer(dst, purpose=purpose, keys=keys, chunk_size=chunk_size) as writer,
    ):
        _copy(source, writer, str(src))
    log.info("sealed %s -> %s (purpose %s, key %s)", src, dst, purpose, keys.key_id)


def unseal_file(src: PathLike, dst: PathLike, *, purpose: str, keys: KeyProvider) -> None:
    """Unseal ``src`` into the plain file ``dst``; on any failure ``dst`` is left untouched."""
    with sealed_reader(src, purpose=purpose, keys=keys) as reader:
        try:
            with atomic_writer(dst) as sink:
                _copy(reader, sink, str(src))
                reader.verify_rest()  # before the rename: nothing appears unless all verified
        except OSError as exc:
            raise SealingError(
                f"{dst}: cannot write: {exc.strerror or exc}", code="sealing.io"
            ) from exc
    log.info("unsealed %s -> %s (purpose %s)", src, dst, purpose)


def reseal(
    path: PathLike,
    old_keys: KeyProvider,
    new_keys: KeyProvider,
    *,
    purpose: str | None = None,
    chunk_size: int | None = None,
) -> None:
    """Re-seal ``path`` under ``new_keys`` in place, atomically (key rotation).

    The file keeps its purpose (checked against ``purpose`` when given) and, unless
    ``chunk_size`` is given, its chunk size. If any chunk fails to verify, ``path`` is unchanged.
    """
    name = str(path)
    with _open_read(path) as handle:
        header = read_header(handle, name)
        handle.seek(0)
        reader = SealedReader(handle, purpose=purpose or header.purpose, keys=old_keys, name=name)
        with (
            reader,
            sealed_writer(
                path,
                purpose=header.purpose,
                keys=new_keys,
                chunk_size=chunk_size or header.chunk_size,
            ) as writer,
        ):
            _copy(reader, writer, name)
            reader.verify_rest()
    log.info("resealed %s: key %s -> %s", path, old_keys.key_id, new_keys.key_id)


class _Sink(Protocol):
    def write(self, data: ReadableBuffer, /) -> int | None: ...


def _copy(source: ReadableSource, sink: _Sink, name: str) -> None:
    buf = memoryview(bytearray(COPY_BLOCK))
    while True:
        try:
            n = source.readinto(buf)
        except OSError as exc:
            raise SealingError(
                f"{name}: cannot read: {exc.strerror or exc}", code="sealing.io"
            ) from exc
        if not n:
            return
        sink.write(buf[:n])
