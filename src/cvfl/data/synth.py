"""Synthetic two-party data in Fedlearner's wide&deep shape, with a label that needs both parties.

Each party holds ``slots`` categorical columns (values ``0..vocab-1``). A few informative slots
per party carry a hidden per-value weight; the label is a noisy threshold of the sum of both
parties' contributions, so the leader alone can only see half of the signal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

ID_COLUMN = "example_id"
LABEL_COLUMN = "label"


@dataclass(frozen=True)
class SynthSpec:
    """What to generate.

    Attributes:
        rows: Number of rows in the shared population.
        slots: Categorical columns per party.
        vocab: Category values per slot (``0..vocab-1``).
        informative: Slots per party that carry signal.
        noise: Standard deviation of the label noise (signal per party has variance 1).
        overlap: Fraction of the population both parties hold (1.0 = already aligned).
        shuffle: Shuffle each party's rows independently (for alignment demos).
        seed: Random seed.
    """

    rows: int = 20_000
    slots: int = 512
    vocab: int = 101
    informative: int = 8
    noise: float = 0.5
    overlap: float = 1.0
    shuffle: bool = False
    seed: int = 0


@dataclass(frozen=True)
class SynthTables:
    """The two parties' tables."""

    leader: pa.Table
    follower: pa.Table


def _contribution(rng: np.random.Generator, codes: np.ndarray, spec: SynthSpec) -> np.ndarray:
    k = min(spec.informative, spec.slots)
    weights = rng.normal(size=(k, spec.vocab))
    raw: np.ndarray = weights[np.arange(k)[None, :], codes[:, :k]].sum(axis=1)
    out: np.ndarray = (raw - raw.mean()) / (raw.std() + 1e-12)
    return out


def _party_table(ids: np.ndarray, codes: np.ndarray, prefix: str) -> dict[str, pa.Array]:
    columns: dict[str, pa.Array] = {ID_COLUMN: pa.array(ids, type=pa.string())}
    for slot in range(codes.shape[1]):
        columns[f"{prefix}{slot}"] = pa.array(codes[:, slot], type=pa.int16())
    return columns


def synthesize(spec: SynthSpec) -> SynthTables:
    """Generate both parties' tables (leader with ``label``)."""
    rng = np.random.default_rng(spec.seed)
    # Informative slots are spread over the columns so no prefix of them is special.
    leader_codes = rng.integers(0, spec.vocab, size=(spec.rows, spec.slots), dtype=np.int16)
    follower_codes = rng.integers(0, spec.vocab, size=(spec.rows, spec.slots), dtype=np.int16)
    signal = _contribution(rng, leader_codes, spec) + _contribution(rng, follower_codes, spec)
    labels = (signal + rng.normal(scale=spec.noise, size=spec.rows) > 0).astype(np.int8)
    ids = np.array([f"u{n:09d}" for n in rng.permutation(10 * spec.rows)[: spec.rows]])

    leader_rows, follower_rows = _membership(rng, spec)
    leader = _party_table(ids[leader_rows], leader_codes[leader_rows], "l")
    leader[LABEL_COLUMN] = pa.array(labels[leader_rows], type=pa.int8())
    follower = _party_table(ids[follower_rows], follower_codes[follower_rows], "f")
    return SynthTables(pa.table(leader), pa.table(follower))


def _membership(rng: np.random.Generator, spec: SynthSpec) -> tuple[np.ndarray, np.ndarray]:
    """Row indices each party holds; shared rows first unless shuffled."""
    everyone = np.arange(spec.rows)
    if spec.overlap >= 1.0:
        leader_rows, follower_rows = everyone, everyone.copy()
    else:
        shared = round(spec.rows * spec.overlap)
        rest = spec.rows - shared
        order = rng.permutation(spec.rows)
        leader_rows = np.concatenate([order[:shared], order[shared : shared + rest // 2]])
        follower_rows = np.concatenate([order[:shared], order[shared + rest // 2 :]])
    if spec.shuffle:
        leader_rows = rng.permutation(leader_rows)
        follower_rows = rng.permutation(follower_rows)
    return leader_rows, follower_rows
