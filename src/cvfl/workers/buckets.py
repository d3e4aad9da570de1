"""Sealed buckets: the AES-GCM records a worker group exchanges instead of clear tensors.

Every record a rank puts on gloo's wire is ``header || ciphertext || tag``, under the group key
(32 bytes, AES-256-GCM) with a fresh random 96-bit nonce. Layout (big-endian)::

    offset  size  field
    0       4     magic        b"CVWB"
    4       1     version      1
    5       4     sender       the sealing rank
    9       4     world_size   the group size
    13      8     step         the per-kind call counter (every rank counts the same calls)
    21      4     index        the DDP bucket index (0 for other collectives)
    25      8     length       plaintext bytes
    33      12    nonce        random, fresh per record
    45      n     ciphertext   AES-256-GCM(key, nonce, payload, aad)
    45+n    16    tag

The associated data is ``DOMAIN || len16(label) || label || len16(job_id) || job_id ||
len16(role) || role || header`` where ``label`` names the kind of record (``"ddp-bucket"``, or
``"gather:<what>"``). The opener rebuilds the header from the values *it expects* (sender = the
rank the record came from in the all-gather, its own step counter, the bucket index it is
reducing), so a record replayed from another step, bucket, rank, job, role or group size fails
authentication even before the explicit field checks name what differs.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cvfl.errors import SealingError, mismatch

MAGIC = b"CVWB"
VERSION = 1
KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16
DOMAIN = b"cvfl-workers-v1\x00"
_HEADER = struct.Struct(">4sBIIQIQ12s")
HEADER_SIZE = _HEADER.size
OVERHEAD = HEADER_SIZE + TAG_SIZE
BUCKET_LABEL = "ddp-bucket"


@dataclass(frozen=True)
class Binding:
    """What every record of one kind in one group is bound to, beside its own header fields.

    Attributes:
        label: The kind of record (``"ddp-bucket"``, ``"gather:<what>"``).
        job_id: The job the group trains.
        role: The party (``"leader"`` or ``"follower"``).
        world_size: The group size.
    """

    label: str
    job_id: str
    role: str
    world_size: int

    def aad(self, header: bytes) -> bytes:
        """The associated data for a record with ``header``."""
        parts = [DOMAIN]
        for text in (self.label, self.job_id, self.role):
            raw = text.encode()
            parts.append(struct.pack(">H", len(raw)) + raw)
        parts.append(header)
        return b"".join(parts)


@dataclass(frozen=True)
class RecordHeader:
    """The parsed clear header of a sealed record."""

    sender: int
    world_size: int
    step: int
    index: int
    length: int
    nonce: bytes


def sealed_size(payload_len: int) -> int:
    """The size of the record that seals ``payload_len`` bytes."""
    return payload_len + OVERHEAD


Buffer = bytes | bytearray | memoryview


def seal_bucket(
    key: bytes,
    binding: Binding,
    payload: Buffer,
    *,
    sender: int,
    step: int,
    index: int,
    nonce: bytes | None = None,
) -> bytes:
    """Seal ``payload`` as rank ``sender``'s record for ``step`` and bucket ``index``.

    Args:
        key: The 32-byte group key.
        binding: The label, job, role and group size the record is bound to.
        payload: The clear bytes (a flattened bucket, or an encoded tensor).
        sender: The sealing rank.
        step: The per-kind call counter.
        index: The bucket index (0 for collectives other than DDP buckets).
        nonce: Only for tests; a fresh random nonce is drawn when None.

    Returns:
        ``header || ciphertext || tag``.
    """
    out = bytearray(sealed_size(memoryview(payload).nbytes))
    seal_bucket_into(
        key, binding, payload, memoryview(out), sender=sender, step=step, index=index, nonce=nonce
    )
    return bytes(out)


def seal_bucket_into(
    key: bytes,
    binding: Binding,
    payload: Buffer,
    out: memoryview,
    *,
    sender: int,
    step: int,
    index: int,
    nonce: bytes | None = None,
) -> None:
    """Like :func:`seal_bucket`, writing the record into ``out`` (no intermediate copies).

    ``out`` must be a writable byte buffer of exactly ``sealed_size(len(payload))`` bytes.
    """
    _check_key(key)
    data = memoryview(payload).cast("B")
    if out.nbytes != sealed_size(data.nbytes):
        raise SealingError(
            mismatch("record buffer size", sealed_size(data.nbytes), out.nbytes),
            code="workers.bucket",
        )
    nonce = os.urandom(NONCE_SIZE) if nonce is None else nonce
    header = _HEADER.pack(
        MAGIC, VERSION, sender, binding.world_size, step, index, data.nbytes, nonce
    )
    target = out.cast("B")
    target[:HEADER_SIZE] = header
    AESGCM(key).encrypt_into(nonce, data, binding.aad(header), target[HEADER_SIZE:])


def parse_header(sealed: Buffer) -> RecordHeader:
    """Parse and check the clear header of a record (magic, version and total length).

    Raises:
        SealingError: the record is truncated, too long, or not a version-1 bucket record.
    """
    size = memoryview(sealed).nbytes
    if size < OVERHEAD:
        raise SealingError(
            mismatch("sealed record size", f"at least {OVERHEAD} bytes", size),
            code="workers.bucket",
        )
    magic, version, sender, world, step, index, length, nonce = _HEADER.unpack_from(sealed)
    if magic != MAGIC:
        raise SealingError(
            mismatch("record magic", MAGIC.hex(), magic.hex()), code="workers.bucket"
        )
    if version != VERSION:
        raise SealingError(mismatch("record version", VERSION, version), code="workers.bucket")
    if size != sealed_size(length):
        raise SealingError(
            mismatch("sealed record size", sealed_size(length), size), code="workers.bucket"
        )
    return RecordHeader(sender, world, step, index, length, bytes(nonce))


def open_bucket(
    key: bytes,
    binding: Binding,
    sealed: Buffer,
    *,
    sender: int,
    step: int,
    index: int,
    length: int | None = None,
) -> bytes:
    """Open rank ``sender``'s record for ``step`` and bucket ``index``; return the payload.

    Args:
        key: The 32-byte group key.
        binding: What the record must be bound to.
        sealed: The record as received.
        sender: The rank the record must come from.
        step: The step counter the record must carry.
        index: The bucket index the record must carry.
        length: The payload size expected, if known.

    Raises:
        SealingError: code ``workers.bucket``; the message names the sender rank, the step and
            the bucket index, and the field that failed (or that authentication failed: tampered
            bytes, a replayed record or another key).
    """
    head = _checked_header(binding, sealed, sender, step, index, length)
    out = bytearray(head.length)
    open_bucket_into(key, binding, sealed, memoryview(out), sender=sender, step=step, index=index)
    return bytes(out)


def open_bucket_into(
    key: bytes,
    binding: Binding,
    sealed: Buffer,
    out: memoryview,
    *,
    sender: int,
    step: int,
    index: int,
) -> None:
    """Like :func:`open_bucket`, decrypting into ``out`` (exactly the payload's size).

    On any failure ``out`` is zeroed before the error is raised, so no unauthenticated plaintext
    is left behind.
    """
    _check_key(key)
    target = out.cast("B")
    head = _checked_header(binding, sealed, sender, step, index, target.nbytes)
    header = _HEADER.pack(
        MAGIC, VERSION, sender, binding.world_size, step, index, head.length, head.nonce
    )
    body = memoryview(sealed).cast("B")[HEADER_SIZE:]
    try:
        AESGCM(key).decrypt_into(head.nonce, body, binding.aad(header), target)
    except InvalidTag:
        target[:] = bytes(target.nbytes)
        raise SealingError(
            f"{_where(sender, step, index)}: "
            f"{mismatch('authentication tag', 'valid under the group key', 'invalid')} "
            "(tampered, replayed from another step, bucket, rank or job, or another key)",
            code="workers.bucket",
        ) from None


def _where(sender: int, step: int, index: int) -> str:
    return f"sealed bucket from rank {sender}, step {step}, bucket {index}"


def _checked_header(
    binding: Binding, sealed: Buffer, sender: int, step: int, index: int, length: int | None
) -> RecordHeader:
    where = _where(sender, step, index)
    try:
        head = parse_header(sealed)
    except SealingError as exc:
        raise SealingError(f"{where}: {exc.message}", code="workers.bucket") from None
    for field, expected, seen in (
        ("sender rank", sender, head.sender),
        ("world size", binding.world_size, head.world_size),
        ("step", step, head.step),
        ("bucket index", index, head.index),
        ("payload size", head.length if length is None else length, head.length),
    ):
        if expected != seen:
            raise SealingError(f"{where}: {mismatch(field, expected, seen)}", code="workers.bucket")
    return head


def _check_key(key: bytes) -> None:
    if len(key) != KEY_SIZE:
        raise SealingError(
            mismatch("group key size", f"{KEY_SIZE} bytes", f"{len(key)} bytes"),
            code="workers.key",
        )
