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


def seal_bucket(
    key: bytes,
    binding: Binding,
    payload: bytes | bytearray | memoryview,
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
    _check_key(key)
    nonce = os.urandom(NONCE_SIZE) if nonce is None else nonce
    data = bytes(payload)
    header = _HEADER.pack(MAGIC, VERSION, sender, binding.world_size, step, index, len(data), nonce)
    return header + AESGCM(key).encrypt(nonce, data, binding.aad(header))


def parse_header(sealed: bytes | bytearray | memoryview) -> RecordHeader:
    """Parse and check the clear header of a record (magic, version and total length).

    Raises:
        SealingError: the record is truncated, too long, or not a version-1 bucket record.
    """
    if len(sealed) < OVERHEAD:
        raise SealingError(
            mismatch("sealed record size", f"at least {OVERHEAD} bytes", len(sealed)),
            code="workers.bucket",
        )
    magic, version, sender, world, step, index, length, nonce = _HEADER.unpack_from(sealed)
    if magic != MAGIC:
        raise SealingError(
            mismatch("record magic", MAGIC.hex(), magic.hex()), code="workers.bucket"
        )
    if version != VERSION:
        raise SealingError(mismatch("record version", VERSION, version), code="workers.bucket")
    if len(sealed) != sealed_size(length):
        raise SealingError(
            mismatch("sealed record size", sealed_size(length), len(sealed)), code="workers.bucket"
        )
    return RecordHeader(sender, world, step, index, length, bytes(nonce))


def open_bucket(
    key: bytes,
    binding: Binding,
    sealed: bytes | bytearray | memoryview,
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
    where = f"sealed bucket from rank {sender}, step {step}, bucket {index}"
    _check_key(key)
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
    header = _HEADER.pack(
        MAGIC, VERSION, sender, binding.world_size, step, index, head.length, head.nonce
    )
    try:
        return AESGCM(key).decrypt(head.nonce, bytes(sealed[HEADER_SIZE:]), binding.aad(header))
    except InvalidTag:
        raise SealingError(
            f"{where}: {mismatch('authentication tag', 'valid under the group key', 'invalid')} "
            "(tampered, replayed from another step, bucket, rank or job, or another key)",
            code="workers.bucket",
        ) from None


def _check_key(key: bytes) -> None:
    if len(key) != KEY_SIZE:
        raise SealingError(
            mismatch("group key size", f"{KEY_SIZE} bytes", f"{len(key)} bytes"),
            code="workers.key",
        )
