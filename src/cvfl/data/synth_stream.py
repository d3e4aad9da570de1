"""``cvfl data synth``: the two parties' synthetic tables written chunk by chunk, any size.

The same model as :func:`cvfl.data.synth.synthesize` (``slots`` categorical columns per party,
the first ``informative`` of each carrying a hidden per-value weight, a label that is a noisy
threshold of both parties' standardised contributions; ``overlap`` and ``shuffle`` as there),
but every value is a function of its position: a category is a keyed 64-bit hash (SplitMix64)
of its population row and slot, an id a bijective hash of its row, the shuffles keyed
permutations (a Feistel network, cycle-walking onto ``[0, n)``). So a chunk of any rows can be
made alone, memory stays at one row group of :data:`GROUP_ROWS` rows, and the files do not
depend on the chunk size. The tables have the same distribution as :func:`synthesize`'s, not
the same values (that one draws whole arrays from one generator and holds both tables in
memory).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from cvfl.data.synth import ID_COLUMN, LABEL_COLUMN, SynthSpec
from cvfl.fsutil import atomic_writer

CHUNK_ROWS = 8192
GROUP_ROWS = 65536
"""Rows per Parquet row group (as :data:`cvfl.psi.output.ALIGNED_ROW_GROUP_ROWS`): a footer's
parsed size grows with row groups times columns, about 1 KB each in memory."""
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
U64 = npt.NDArray[np.uint64]
PARTIES = ("leader", "follower")


def _mix(x: U64) -> U64:
    """The SplitMix64 finaliser (a bijection of 64-bit integers)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    out: U64 = x ^ (x >> np.uint64(31))
    return out


def stream_key(seed: int, name: str) -> np.uint64:
    """A 64-bit key for one named stream of values under ``seed``."""
    digest = hashlib.sha256(f"cvfl/synth/{seed}/{name}".encode()).digest()
    return np.uint64(int.from_bytes(digest[:8], "little"))


def hashed(key: np.uint64, counters: U64) -> U64:
    """The ``counters``-th outputs of the SplitMix64 stream keyed by ``key``."""
    with np.errstate(over="ignore"):
        return _mix(key + (counters + np.uint64(1)) * GOLDEN)


def unit(key: np.uint64, counters: U64) -> npt.NDArray[np.float64]:
    """Uniform floats in ``[0, 1)`` (53 bits each)."""
    out: npt.NDArray[np.float64] = (hashed(key, counters) >> np.uint64(11)).astype(np.float64)
    return out * (2.0**-53)


class Permutation:
    """A keyed permutation of ``range(n)``, computed for any indices (bounded memory)."""

    ROUNDS = 6

    def __init__(self, n: int, key: np.uint64) -> None:
        self.n = n
        self._half = max(1, (max(1, n - 1).bit_length() + 1) // 2)
        self._mask = np.uint64((1 << self._half) - 1)
        self._keys = [hashed(key, np.array([r], dtype=np.uint64))[0] for r in range(self.ROUNDS)]

    def __call__(self, idx: U64) -> U64:
        """Return the images of ``idx`` (each in ``range(n)``)."""
        x = idx.astype(np.uint64, copy=True)
        todo = np.arange(len(x))
        while len(todo):
            x[todo] = self._rounds(x[todo])
            todo = todo[x[todo] >= np.uint64(self.n)]
        return x

    def _rounds(self, x: U64) -> U64:
        shift = np.uint64(self._half)
        left, right = x >> shift, x & self._mask
        for key in self._keys:
            left, right = right, left ^ (hashed(key, right) & self._mask)
        out: U64 = (left << shift) | right
        return out


@dataclass(frozen=True)
class Layout:
    """Which population rows each party holds, in its file's order."""

    spec: SynthSpec

    @property
    def shared(self) -> int:
        """Rows both parties hold."""
        spec = self.spec
        return spec.rows if spec.overlap >= 1.0 else round(spec.rows * spec.overlap)

    def count(self, party: int) -> int:
        """Rows in ``party``'s table (0: leader, 1: follower)."""
        rest = self.spec.rows - self.shared
        return self.shared + (rest // 2 if party == 0 else rest - rest // 2)

    def rows(self, party: int, positions: U64) -> U64:
        """Population rows at ``positions`` of ``party``'s table."""
        spec = self.spec
        members = positions
        if spec.shuffle:
            members = Permutation(self.count(party), stream_key(spec.seed, f"shuffle{party}"))(
                positions
            )
        if spec.overlap >= 1.0:
            return members
        if party == 1:
            skip = np.uint64((spec.rows - self.shared) // 2)
            members = np.where(members < np.uint64(self.shared), members, members + skip)
        return Permutation(spec.rows, stream_key(spec.seed, "order"))(members)


def codes(spec: SynthSpec, party: int, rows: U64, slots: int) -> npt.NDArray[np.int16]:
    """Category codes of ``rows`` in the first ``slots`` slots, one row of the result a slot."""
    key = stream_key(spec.seed, f"codes{party}")
    counters = np.arange(slots, dtype=np.uint64)[:, None] * np.uint64(spec.rows) + rows[None, :]
    out: npt.NDArray[np.int16] = (unit(key, counters) * spec.vocab).astype(np.int16)
    return out


class Signal:
    """Both parties' standardised contributions to the label (weights, mean and spread)."""

    def __init__(self, spec: SynthSpec) -> None:
        self.spec = spec
        self.k = min(spec.informative, spec.slots)
        rng = np.random.default_rng(spec.seed)
        self.weights = [rng.normal(size=(self.k, spec.vocab)) for _ in PARTIES]
        self.stats = [self._stats(party) for party in range(len(PARTIES))]

    def raw(self, party: int, rows: U64) -> npt.NDArray[np.float64]:
        """The unstandardised contribution of ``party``'s informative slots for ``rows``."""
        informative = codes(self.spec, party, rows, self.k)
        weights = self.weights[party]
        total: npt.NDArray[np.float64] = np.zeros(len(rows))
        for j in range(self.k):
            total += weights[j, informative[j]]
        return total

    def labels(self, rows: U64) -> npt.NDArray[np.int8]:
        """The label of each of ``rows``."""
        signal = np.zeros(len(rows))
        for party, (mean, std) in enumerate(self.stats):
            signal += (self.raw(party, rows) - mean) / std
        key = stream_key(self.spec.seed, "noise")
        u1 = 1.0 - unit(key, rows * np.uint64(2))
        u2 = unit(key, rows * np.uint64(2) + np.uint64(1))
        noise = np.sqrt(-2.0 * np.log(u1)) * np.cos(2 * np.pi * u2)
        out: npt.NDArray[np.int8] = (signal + self.spec.noise * noise > 0).astype(np.int8)
        return out

    def _stats(self, party: int) -> tuple[float, float]:
        total, squares = 0.0, 0.0
        for start in range(0, self.spec.rows, CHUNK_ROWS):
            rows = np.arange(start, min(start + CHUNK_ROWS, self.spec.rows), dtype=np.uint64)
            raw = self.raw(party, rows)
            total += float(raw.sum())
            squares += float((raw * raw).sum())
        n = max(1, self.spec.rows)
        mean = total / n
        return mean, float(np.sqrt(max(0.0, squares / n - mean * mean))) + 1e-12


def ids(spec: SynthSpec, rows: U64) -> pa.Array:
    """Each row's id: ``u`` and 16 hex digits of a keyed bijective hash of the row."""
    value = hashed(stream_key(spec.seed, "ids"), rows)
    shifts = np.arange(60, -1, -4, dtype=np.uint64)
    digits = (value[:, None] >> shifts[None, :]) & np.uint64(0xF)
    chars = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)[digits.astype(np.intp)]
    text = np.concatenate([np.full((len(rows), 1), ord("u"), dtype=np.uint8), chars], axis=1)
    return pa.array(np.ascontiguousarray(text).view("S17").ravel()).cast(pa.string())


def party_chunks(
    spec: SynthSpec, party: int, signal: Signal, chunk_rows: int = CHUNK_ROWS
) -> Iterator[pa.Table]:
    """``party``'s table in chunks of ``chunk_rows`` rows, in file order."""
    layout = Layout(spec)
    prefix = "l" if party == 0 else "f"
    names = [ID_COLUMN, *(f"{prefix}{s}" for s in range(spec.slots))]
    count = layout.count(party)
    for start in range(0, max(count, 1), chunk_rows):  # an empty table still has its columns
        positions = np.arange(start, min(start + chunk_rows, count), dtype=np.uint64)
        rows = layout.rows(party, positions)
        columns = [ids(spec, rows), *(pa.array(c) for c in codes(spec, party, rows, spec.slots))]
        table = pa.table(columns, names=names)
        if party == 0:
            table = table.append_column(LABEL_COLUMN, pa.array(signal.labels(rows)))
        yield table


def write_synth(spec: SynthSpec, out: Path, fmt: str) -> dict[str, tuple[Path, int, int]]:
    """Write ``out/leader.<fmt>`` and ``out/follower.<fmt>`` (atomic, chunk by chunk).

    Returns each role's path, rows and columns.
    """
    signal = Signal(spec)
    written: dict[str, tuple[Path, int, int]] = {}
    for party, role in enumerate(PARTIES):
        path = out / f"{role}.{fmt}"
        rows, columns = _write_party(path, fmt, party_chunks(spec, party, signal))
        written[role] = (path, rows, columns)
    return written


def _write_party(path: Path, fmt: str, chunks: Iterator[pa.Table]) -> tuple[int, int]:
    """Write the chunks; Parquet in row groups of :data:`GROUP_ROWS` rows (the last shorter)."""
    rows, columns = 0, 0
    held: list[pa.Table] = []
    with atomic_writer(path) as handle:
        writer: pq.ParquetWriter | pacsv.CSVWriter | None = None
        try:
            for table in chunks:
                if writer is None:
                    schema = table.schema
                    writer = (
                        pq.ParquetWriter(handle, schema)
                        if fmt == "parquet"
                        else pacsv.CSVWriter(handle, schema)
                    )
                rows, columns = rows + table.num_rows, table.num_columns
                if isinstance(writer, pacsv.CSVWriter):
                    writer.write_table(table)
                    continue
                held.append(table)
                if sum(t.num_rows for t in held) >= GROUP_ROWS:
                    writer.write_table(pa.concat_tables(held), row_group_size=GROUP_ROWS)
                    held = []
            if held and isinstance(writer, pq.ParquetWriter):
                writer.write_table(pa.concat_tables(held), row_group_size=GROUP_ROWS)
        finally:
            if writer is not None:
                writer.close()
    return rows, columns
