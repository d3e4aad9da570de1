"""Fingerprints and keyed hashes of example ids, so both parties can prove they agree on rows.

Neither reveals an id: the fingerprint is a domain-separated SHA-256 over the whole ordered id
list (a peer that holds the same rows computes the same value), and each batch carries an
HMAC-SHA256 under a per-session key.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Iterable, Sequence

_FP_DOMAIN = b"cvfl/id-order/v1"
_MAC_DOMAIN = b"cvfl/batch-ids/v1"


def _feed(h: hmac.HMAC | hashlib._Hash, ids: Iterable[str]) -> None:
    for example_id in ids:
        raw = example_id.encode("utf-8")
        h.update(struct.pack("<I", len(raw)))
        h.update(raw)


def id_order_fingerprint(job_id: str, ids: Sequence[str]) -> bytes:
    """SHA-256 over the job id and the ordered, length-prefixed ids."""
    return streamed_order_fingerprint(job_id, len(ids), [ids])


def streamed_order_fingerprint(job_id: str, count: int, parts: Iterable[Iterable[str]]) -> bytes:
    """:func:`id_order_fingerprint` of ``count`` ids given in consecutive ``parts``."""
    h = hashlib.sha256(_FP_DOMAIN)
    h.update(job_id.encode("utf-8") + b"\0")
    h.update(struct.pack("<Q", count))
    for part in parts:
        _feed(h, part)
    return h.digest()


def session_mac_key(job_id: str, leader_nonce: bytes, follower_nonce: bytes) -> bytes:
    """Derive the per-session batch MAC key from both sides' hello nonces."""
    h = hashlib.sha256(_MAC_DOMAIN)
    for part in (job_id.encode("utf-8"), leader_nonce, follower_nonce):
        h.update(struct.pack("<I", len(part)))
        h.update(part)
    return h.digest()


def batch_mac(key: bytes, step: int, phase: int, ids: Iterable[str]) -> bytes:
    """HMAC-SHA256 of one batch's ordered ids, bound to its step and phase."""
    h = hmac.new(key, struct.pack("<QI", step, phase), hashlib.sha256)
    _feed(h, ids)
    return h.digest()


def macs_equal(a: bytes, b: bytes) -> bool:
    """Compare two MACs in constant time."""
    return hmac.compare_digest(a, b)
