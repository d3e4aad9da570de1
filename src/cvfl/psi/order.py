"""The aligned order: the same two tables and job give the same row order on every run.

Each party sorts its rows of the intersection by ``HMAC-SHA256(K, canonical id)`` with
``K = SHA-256("cvfl/psi/aligned-order/v1" ‖ len ‖ job id ‖ len ‖ seed)``. Both parties know the
intersection's ids and agree on the job id and ``[job] seed`` (the training hello refuses a
difference), so both derive the same order, and neither can steer where a row lands without
changing what the other agreed to. The order fingerprint is a SHA-256 over the keyed hashes in
output order: equal on both sides, and equal across runs of the same job on the same tables.
"""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import numpy as np
import pyarrow as pa

from cvfl.psi.keyed import KeyedHasher
from cvfl.psi.source import canonical_ids
from cvfl.psi.spill import keys_from_bytes, keys_to_bytes

ORDER_DOMAIN = b"cvfl/psi/aligned-order/v1"
FINGERPRINT_DOMAIN = b"cvfl/psi/order-fingerprint/v1"


def order_key(job_id: str, seed: int) -> bytes:
    """The key of the order hash, from what both parties fix for the job."""
    h = hashlib.sha256(ORDER_DOMAIN)
    for part in (job_id.encode("utf-8"), str(seed).encode("ascii")):
        h.update(struct.pack("<I", len(part)))
        h.update(part)
    return h.digest()


def agreed_order(
    table: pa.Table, id_column: str, job_id: str, seed: int, source: Path
) -> tuple[pa.Table, bytes]:
    """``table``'s rows sorted by their ids' order hash, and the order fingerprint."""
    column = table.column(id_column).combine_chunks()
    ids = canonical_ids(column, path=source, name=id_column, start=0)
    tags = keys_from_bytes(KeyedHasher(order_key(job_id, seed)).tags(ids))
    perm = np.argsort(tags, kind="stable")
    fingerprint = hashlib.sha256(FINGERPRINT_DOMAIN + keys_to_bytes(tags[perm])).digest()
    return table.take(pa.array(perm)), fingerprint
