"""Bucketed storage of (32-byte key, row) records that spills to sealed files past a threshold.

Keys are blinded or doubly-blinded points, which look uniformly random, so their top bits split
the records into buckets of even size. Walking the buckets in order, each sorted, yields every
record in global key order while holding one bucket in memory at a time. Spill files are sealed
under an ephemeral key that exists only in this process's memory for this run, unless the store
is durable (:class:`Durable`: a resumable alignment's state folder, sealed under the job's key),
when :meth:`BucketStore.commit` makes its records survive the process and
:meth:`BucketStore.reopen` takes them back.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import struct
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from cvfl.errors import AlignmentError, mismatch
from cvfl.logs import get_logger
from cvfl.sealing import KeyProvider, read_sealed, write_sealed

log = get_logger(__name__)

KEY_BYTES = 32
BUCKET_BITS = 4
BUCKETS = 1 << BUCKET_BITS
_PURPOSE = "psi-spill"
STATE_PURPOSE = "psi-state"

Keys = npt.NDArray[np.bytes_]
Rows = npt.NDArray[np.int64]


class EphemeralKeys:
    """A sealing key provider whose key is random, per run, and never written anywhere."""

    def __init__(self) -> None:
        self.key_id = f"ephemeral-{secrets.token_hex(4)}"
        self._key = secrets.token_bytes(32)

    def __repr__(self) -> str:
        return f"EphemeralKeys({self.key_id})"

    def key(self) -> bytes:
        """Return the run's spill key."""
        return self._key


def keys_from_bytes(data: bytes) -> Keys:
    """View concatenated 32-byte keys as a numpy ``S32`` array (a copy-free reinterpretation)."""
    return np.frombuffer(data, dtype=f"S{KEY_BYTES}")


def keys_to_bytes(keys: Keys) -> bytes:
    """Concatenate keys back into bytes (full 32 bytes each, trailing zeros kept)."""
    return np.ascontiguousarray(keys).tobytes()


def bucket_of(keys: Keys) -> npt.NDArray[np.uint8]:
    """Return the bucket number of each key (its top ``BUCKET_BITS`` bits)."""
    first = np.frombuffer(keys.tobytes(), dtype=np.uint8)[::KEY_BYTES]
    return np.right_shift(first, np.uint8(8 - BUCKET_BITS))


@dataclass(frozen=True)
class Durable:
    """Where a durable store keeps its files (a state folder) and the key that seals them."""

    folder: Path
    keys: KeyProvider


@dataclass(frozen=True)
class StoreState:
    """What :meth:`BucketStore.commit` made durable: the record count and each bucket's files."""

    count: int
    spills: int
    files: tuple[tuple[str, ...], ...]

    def to_json(self) -> dict[str, object]:
        """Return a JSON-ready dict (see :func:`store_state_from_json`)."""
        return {"count": self.count, "spills": self.spills, "files": [list(f) for f in self.files]}


def _state_refusal(what: str, expected: object, seen: object) -> AlignmentError:
    return AlignmentError(mismatch(f"psi state: {what}", expected, seen), code="psi.bad_state")


def store_state_from_json(name: str, value: object) -> StoreState:
    """Read a :class:`StoreState` of the store called ``name``, checking every field.

    Raises:
        AlignmentError: ``psi.bad_state``, naming the field.
    """
    if not isinstance(value, Mapping) or set(value) != {"count", "spills", "files"}:
        raise _state_refusal(f"store {name}", "count, spills and files", repr(value)[:80])
    count, spills, files = value["count"], value["spills"], value["files"]
    for field, number in (("count", count), ("spills", spills)):
        if type(number) is not int or number < 0:
            raise _state_refusal(f"store {name} {field}", "an integer >= 0", repr(number)[:40])
    if not isinstance(files, list) or len(files) != BUCKETS:
        raise _state_refusal(f"store {name} files", f"{BUCKETS} lists", repr(files)[:80])
    pattern = re.compile(rf"{re.escape(name)}-b(\d\d)-(\d{{5,9}})\.sealed")
    checked: list[tuple[str, ...]] = []
    for b, names in enumerate(files):
        if not isinstance(names, list):
            raise _state_refusal(f"store {name} bucket {b}", "a list", repr(names)[:40])
        for file in names:
            found = pattern.fullmatch(file) if isinstance(file, str) else None
            if found is None or int(found[1]) != b or int(found[2]) >= spills:
                raise _state_refusal(
                    f"store {name} bucket {b} file", f"{name}-b{b:02d}-<spill>.sealed", file
                )
        checked.append(tuple(names))
    return StoreState(count, spills, tuple(checked))


class BucketStore:
    """Collects records, holding at most ``threshold`` in memory before spilling them to disk."""

    def __init__(
        self,
        name: str,
        *,
        threshold: int,
        spill_dir: Path | None,
        durable: Durable | None = None,
    ) -> None:
        self.name = name
        self.threshold = threshold
        self.count = 0
        self.spills = 0
        self._spill_root = spill_dir
        self._dir: Path | None = None
        self._durable = durable
        self._keys: KeyProvider = EphemeralKeys()
        self._purpose = _PURPOSE
        if durable is not None:
            self._dir, self._keys, self._purpose = durable.folder, durable.keys, STATE_PURPOSE
        self._pending: list[list[tuple[Keys, Rows]]] = [[] for _ in range(BUCKETS)]
        self._pending_count = 0
        self._files: list[list[Path]] = [[] for _ in range(BUCKETS)]

    def add(self, keys: Keys, rows: Rows) -> None:
        """Add records (keys with their row numbers)."""
        buckets = bucket_of(keys)
        order = np.argsort(buckets, kind="stable")
        bounds = np.searchsorted(buckets[order], np.arange(BUCKETS + 1))
        for b in range(BUCKETS):
            sel = order[bounds[b] : bounds[b + 1]]
            if len(sel):
                self._pending[b].append((keys[sel], rows[sel]))
        self.count += len(keys)
        self._pending_count += len(keys)
        if self._pending_count > self.threshold:
            self._spill()

    def bucket(self, b: int) -> tuple[Keys, Rows]:
        """Return bucket ``b``'s records sorted by key (stable: equal keys keep insertion order)."""
        parts = [self._load(path) for path in self._files[b]] + self._pending[b]
        if not parts:
            return np.empty(0, dtype=f"S{KEY_BYTES}"), np.empty(0, dtype=np.int64)
        keys = np.concatenate([p[0] for p in parts])
        rows = np.concatenate([p[1] for p in parts])
        order = np.argsort(keys, kind="stable")
        keys, rows = keys[order], rows[order]
        if not self._files[b]:
            # keep the in-memory part sorted: the next walk re-sorts sorted data (cheap)
            self._pending[b] = [(keys, rows)]
        return keys, rows

    def sorted_buckets(self) -> Iterator[tuple[Keys, Rows]]:
        """Yield every bucket in key order."""
        for b in range(BUCKETS):
            yield self.bucket(b)

    def commit(self) -> StoreState:
        """Durable store: write every pending record to disk and return what is durable now."""
        if self._durable is None:
            raise TypeError(f"psi store {self.name} is not durable")
        if self._pending_count:
            self._spill()
        names = tuple(tuple(path.name for path in paths) for paths in self._files)
        return StoreState(self.count, self.spills, names)

    @classmethod
    def reopen(
        cls, name: str, *, threshold: int, durable: Durable, state: StoreState
    ) -> BucketStore:
        """Take back a durable store as of ``state``; its files written later are deleted."""
        store = cls(name, threshold=threshold, spill_dir=None, durable=durable)
        store.count, store.spills = state.count, state.spills
        store._files = [[durable.folder / file for file in files] for files in state.files]
        keep = {path for paths in store._files for path in paths}
        for path in durable.folder.glob(f"{name}-b*.sealed"):
            if path not in keep:
                path.unlink()
        return store

    def drop(self) -> None:
        """Delete every record, durable files included."""
        for paths in self._files:
            for path in paths:
                path.unlink(missing_ok=True)
        self._files = [[] for _ in range(BUCKETS)]
        self.close()

    def close(self) -> None:
        """Drop the records held in memory and delete the spill files (a durable store's stay)."""
        self._pending = [[] for _ in range(BUCKETS)]
        self._pending_count = 0
        if self._dir is not None and self._durable is None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> BucketStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _spill(self) -> None:
        if self._dir is None:  # an ephemeral store's first spill
            root = self._spill_root or Path(tempfile.gettempdir())
            root.mkdir(parents=True, exist_ok=True)
            self._dir = Path(tempfile.mkdtemp(prefix=f"cvfl-psi-{self.name}-", dir=root))
        for b in range(BUCKETS):
            if not self._pending[b]:
                continue
            keys = np.concatenate([p[0] for p in self._pending[b]])
            rows = np.concatenate([p[1] for p in self._pending[b]])
            path = self._dir / f"{self.name}-b{b:02d}-{self.spills:05d}.sealed"
            payload = struct.pack("<Q", len(keys)) + keys_to_bytes(keys) + rows.tobytes()
            write_sealed(path, payload, purpose=self._purpose, keys=self._keys)
            self._files[b].append(path)
            self._pending[b] = []
        log.debug(
            "psi store %s: spilled %d records (spill %d)",
            self.name,
            self._pending_count,
            self.spills,
        )
        self.spills += 1
        self._pending_count = 0

    def _load(self, path: Path) -> tuple[Keys, Rows]:
        payload = read_sealed(path, purpose=self._purpose, keys=self._keys)
        (n,) = struct.unpack_from("<Q", payload)
        end = 8 + n * KEY_BYTES
        keys = keys_from_bytes(payload[8:end])
        rows = np.frombuffer(payload[end : end + n * 8], dtype=np.int64)
        return keys, rows


def default_threads() -> int:
    """Return the number of cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)
