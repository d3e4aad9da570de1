"""The state folder of a resumable ECDH alignment: binding, sealed manifest, answer log, mask.

Every file but the answer log is sealed under the job's key provider with purpose
``psi-state`` and written atomically. The answer log records, before each of the peer's batches
is answered, its index, size and SHA-256 digest, each record authenticated with HMAC-SHA256 under
a key kept in the sealed manifest; a rerun answers only those same points again (checked by
digest) and counts them against the peer's announced total, so the secret never answers more
than that many points however often the peer restarts.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import struct
from pathlib import Path

import numpy as np
import numpy.typing as npt

from cvfl.errors import AlignmentError, SealingError, mismatch
from cvfl.fsutil import fsync_dir
from cvfl.logs import get_logger
from cvfl.psi.config import AlignJob, PsiConfig
from cvfl.psi.ecdh.state import Binding, Manifest, encode_manifest, parse_manifest, refuse
from cvfl.psi.spill import STATE_PURPOSE, Durable
from cvfl.sealing import KeyProvider, read_sealed, write_sealed

log = get_logger(__name__)

MANIFEST = "manifest.sealed"
MASK = "mask.sealed"
ANSWER_LOG = "answered.log"
_STATE_FILES = (
    MANIFEST,
    MASK,
    ANSWER_LOG,
    "own-b*.sealed",
    "own-d-b*.sealed",
    "peer-d-b*.sealed",
    ".*.tmp",  # an atomic write cut short
)
_RECORD = struct.Struct("<QQ32s32s")  # index, items, digest, tag


def binding_of(job: AlignJob, cfg: PsiConfig) -> Binding:
    """What a saved state is for: a rerun with any of these changed starts fresh."""
    data = job.data.resolve()
    stat = data.stat()
    return {
        "job_id": job.job_id,
        "role": job.role,
        "group": cfg.group,
        "batch_size": cfg.batch_size,
        "duplicates": cfg.duplicates,
        "id_column": job.id_column,
        "input": str(data),
        "input_size": stat.st_size,
        "input_mtime_ns": stat.st_mtime_ns,
        "output": str(cfg.output.resolve()),
        "seed": job.seed,
    }


class StateFolder:
    """One party's state folder for one alignment job (sealed under ``keys``)."""

    def __init__(self, folder: Path, keys: KeyProvider, binding: Binding) -> None:
        self.folder = folder
        self.keys = keys
        self.binding = binding

    @property
    def durable(self) -> Durable:
        """Where the durable stores keep their files."""
        return Durable(self.folder, self.keys)

    def load(self) -> Manifest | None:
        """The saved manifest if it is for this job; None (state discarded) otherwise.

        Raises:
            SealingError: the manifest does not open under this job's key (tampered or another
                key): delete the folder to start over.
            AlignmentError: ``psi.bad_state``, the manifest opened but is malformed.
        """
        path = self.folder / MANIFEST
        if not path.exists():
            return None
        try:
            manifest = parse_manifest(read_sealed(path, purpose=STATE_PURPOSE, keys=self.keys))
        except SealingError as exc:
            raise SealingError(
                f"{exc.message}; the saved PSI state in {self.folder} cannot be used: delete "
                "that folder to start the alignment over",
                code=exc.code,
            ) from None
        for field in sorted(set(self.binding) | set(manifest.binding)):
            expected, seen = manifest.binding.get(field), self.binding.get(field)
            if expected != seen:
                log.warning(
                    "psi: saved state in %s is for another run (%s); starting fresh",
                    self.folder,
                    mismatch(field, expected, seen),
                )
                self.discard()
                return None
        return manifest

    def save(self, manifest: Manifest) -> None:
        """Write the manifest (sealed, atomically)."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_sealed(
            self.folder / MANIFEST, encode_manifest(manifest), purpose=STATE_PURPOSE, keys=self.keys
        )

    def save_mask(self, mask: npt.NDArray[np.bool_]) -> None:
        """Write the intersection's row mask (sealed, atomically)."""
        payload = struct.pack("<Q", len(mask)) + np.packbits(mask).tobytes()
        write_sealed(self.folder / MASK, payload, purpose=STATE_PURPOSE, keys=self.keys)

    def load_mask(self, rows: int) -> npt.NDArray[np.bool_]:
        """Read the row mask of ``rows`` rows.

        Raises:
            AlignmentError: ``psi.bad_state``, the mask has another length.
        """
        payload = read_sealed(self.folder / MASK, purpose=STATE_PURPOSE, keys=self.keys)
        (n,) = struct.unpack_from("<Q", payload) if len(payload) >= 8 else (-1,)
        if n != rows or len(payload) != 8 + (rows + 7) // 8:
            raise refuse("mask rows", rows, n)
        bits = np.unpackbits(np.frombuffer(payload, dtype=np.uint8, offset=8), count=rows)
        return bits.astype(np.bool_)

    def answer_log(self, session: bytes, log_key: bytes, *, fresh: bool) -> AnswerLog:
        """Open the answer log of ``session`` (``fresh``: delete any older one first)."""
        path = self.folder / ANSWER_LOG
        if fresh:
            path.unlink(missing_ok=True)
        return AnswerLog(path, log_key, session)

    def drop_exchange_files(self) -> None:
        """Delete the exchange's stores and answer log (checkpoint B, or a fresh session)."""
        for pattern in ("own-d-b*.sealed", "peer-d-b*.sealed", ANSWER_LOG):
            for path in self.folder.glob(pattern):
                path.unlink()

    def discard(self) -> None:
        """Delete the state's files (only those: the folder may have been named by hand)."""
        if not self.folder.is_dir():
            return
        for pattern in _STATE_FILES:
            for path in self.folder.glob(pattern):
                path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.folder.rmdir()  # kept when something else is in it


class AnswerLog:
    """The digests of the peer's batches answered in one session, written before each answer."""

    def __init__(self, path: Path, key: bytes, session: bytes) -> None:
        self._path = path
        self._key = key
        self._session = session
        self.entries: list[tuple[int, bytes]] = self._read()

    def _tag(self, index: int, items: int, digest: bytes) -> bytes:
        message = self._session + struct.pack("<QQ", index, items) + digest
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def _read(self) -> list[tuple[int, bytes]]:
        data = self._path.read_bytes() if self._path.exists() else b""
        entries: list[tuple[int, bytes]] = []
        whole = len(data) - len(data) % _RECORD.size  # a torn last record was never answered
        for offset in range(0, whole, _RECORD.size):
            index, items, digest, tag = _RECORD.unpack_from(data, offset)
            good = hmac.compare_digest(tag, self._tag(index, items, digest))
            if not good or index != len(entries):
                raise AlignmentError(
                    mismatch(f"{self._path} record {len(entries)}", "authentic", "tampered"),
                    code="psi.bad_state",
                )
            entries.append((items, digest))
        if whole != len(data):
            with open(self._path, "r+b") as handle:
                handle.truncate(whole)
        return entries

    def append(self, items: int, digest: bytes) -> None:
        """Record the next batch (synced to disk before it is answered)."""
        index = len(self.entries)
        record = _RECORD.pack(index, items, digest, self._tag(index, items, digest))
        new = not self._path.exists()
        with open(self._path, "ab") as handle:
            handle.write(record)
            handle.flush()
            os.fsync(handle.fileno())
        if new:
            fsync_dir(self._path.parent)  # the log's name survives a crash too
        self.entries.append((items, digest))

    def items_before(self, index: int) -> int:
        """Items in the logged batches before ``index``."""
        return sum(items for items, _ in self.entries[:index])
