"""Practice tables: scikit-learn datasets split vertically and made as untidy as real ones.

Each split gives the two parties what two organisations would really hold: string example ids
in each party's own row order, a few rows only one party has, a string category, missing cells
and raw magnitudes (values in the tens of thousands next to values below one). They exercise
cvfl's per-party preprocessing and its three tasks on data small enough for a test:

- ``wine``: multiclass (3 cultivars, 178 rows); the follower holds the strongest measurements.
- ``diabetes``: regression (disease progression, 442 rows); the follower holds BMI and serum.
- ``digits``: binary (digit >= 5, 1,797 rows); the leader holds the left half of each 8x8
  image, the follower the right half.

The tables ship inside scikit-learn: nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from cvfl.datasets.jobfile import adam_lines, mlp_tables, peer_table, trust_tables

ID_COLUMN = "example_id"
LABEL_COLUMN = "label"
PRACTICE = ("wine", "diabetes", "digits")
Task = Literal["binary", "multiclass", "regression"]


@dataclass(frozen=True)
class PracticeSplit:
    """Two parties' untidy tables and what the leader's label is.

    Attributes:
        name: The dataset (one of :data:`PRACTICE`).
        task: The learning task the label calls for.
        num_classes: Classes of the label (0 for regression).
        leader: The leader's table: ids, the label and its own columns.
        follower: The follower's table: ids and its own columns.
        categorical: Per role, the columns holding string categories.
    """

    name: str
    task: Task
    num_classes: int
    leader: pa.Table
    follower: pa.Table
    categorical: dict[str, tuple[str, ...]]


@dataclass(frozen=True)
class _Raw:
    task: Task
    num_classes: int
    labels: np.ndarray
    leader: dict[str, np.ndarray]
    follower: dict[str, np.ndarray]


def practice_split(name: str, seed: int = 0) -> PracticeSplit:
    """Build the practice split ``name`` deterministically from ``seed``.

    Raises:
        ValueError: ``name`` is not one of :data:`PRACTICE`.
    """
    builders: dict[str, Callable[[np.random.Generator], _Raw]] = {
        "wine": _wine,
        "diabetes": _diabetes,
        "digits": _digits,
    }
    if name not in builders:
        raise ValueError(f"practice dataset: expected one of {', '.join(PRACTICE)}, seen {name!r}")
    rng = np.random.default_rng(seed)
    raw = builders[name](rng)
    rows = len(raw.labels)
    ids = np.array([f"id-{n:06d}" for n in rng.permutation(rows) * 7 + 1000])
    leader_rows, follower_rows = _holdings(rows, rng)
    leader = _table(ids, leader_rows, raw.leader, raw.labels, raw.task)
    follower = _table(ids, follower_rows, raw.follower, None, raw.task)
    return PracticeSplit(
        name=name,
        task=raw.task,
        num_classes=raw.num_classes,
        leader=leader,
        follower=follower,
        categorical={
            "leader": tuple(k for k, v in raw.leader.items() if v.dtype.kind in "OU"),
            "follower": tuple(k for k, v in raw.follower.items() if v.dtype.kind in "OU"),
        },
    )


def _holdings(rows: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Each party's rows in its own order; about 3% of rows are held by one party only."""
    order = rng.permutation(rows)
    only = max(1, rows * 3 // 100)
    leader_only, follower_only = order[:only], order[only : 2 * only]
    leader = rng.permutation(np.setdiff1d(np.arange(rows), follower_only))
    follower = rng.permutation(np.setdiff1d(np.arange(rows), leader_only))
    return leader, follower


def _table(
    ids: np.ndarray,
    rows: np.ndarray,
    columns: dict[str, np.ndarray],
    labels: np.ndarray | None,
    task: Task,
) -> pa.Table:
    out: dict[str, pa.Array] = {ID_COLUMN: pa.array(ids[rows].tolist(), type=pa.string())}
    if labels is not None:
        kind = pa.float64() if task == "regression" else pa.int64()
        out[LABEL_COLUMN] = pa.array(labels[rows].tolist(), type=kind)
    for name, values in columns.items():
        out[name] = _column(values[rows])
    return pa.table(out)


def _column(values: np.ndarray) -> pa.Array:
    if values.dtype.kind in "OU":
        return pa.array([None if v is None else str(v) for v in values], type=pa.string())
    floats = values.astype(np.float64)
    return pa.array(floats, mask=np.isnan(floats), type=pa.float64())


def _with_gaps(values: np.ndarray, rng: np.random.Generator, fraction: float) -> np.ndarray:
    """A float copy with about ``fraction`` of its cells missing (NaN becomes a null cell)."""
    gapped = values.astype(np.float64).copy()
    gapped[rng.random(len(gapped)) < fraction] = np.nan
    return gapped


def _bands(values: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """Strings naming which quantile band each value falls in."""
    edges = np.quantile(values, np.linspace(0, 1, len(names) + 1)[1:-1])
    return np.array(names, dtype=object)[np.searchsorted(edges, values)]


def _noise_category(rows: int, rng: np.random.Generator, prefix: str, count: int) -> np.ndarray:
    return np.array([f"{prefix}-{k}" for k in rng.integers(0, count, rows)], dtype=object)


def _sklearn() -> Any:
    """scikit-learn's bundled datasets (imported only when a practice split is built)."""
    import sklearn.datasets  # type: ignore[import-untyped]

    return sklearn.datasets


def _wine(rng: np.random.Generator) -> _Raw:
    data = _sklearn().load_wine()
    x = {name.replace("/", "_"): data.data[:, j] for j, name in enumerate(data.feature_names)}
    rows = len(data.target)
    leader = {
        "alcohol": x["alcohol"],
        "malic_acid": x["malic_acid"],
        "ash": x["ash"],
        "alcalinity_of_ash": x["alcalinity_of_ash"],
        "magnesium": _with_gaps(x["magnesium"], rng, 0.05),
        "cellar": _noise_category(rows, rng, "cellar", 4),
    }
    follower = {
        "total_phenols": x["total_phenols"],
        "flavanoids": x["flavanoids"],
        "nonflavanoid_phenols": x["nonflavanoid_phenols"],
        "proanthocyanins": x["proanthocyanins"],
        "colour_band": _bands(x["color_intensity"], ("pale", "medium", "deep")),
        "hue": x["hue"],
        "od280_od315": _with_gaps(x["od280_od315_of_diluted_wines"], rng, 0.05),
        "proline_mg_per_hl": x["proline"] * 100.0,  # raw magnitude: ~3e4 to 1.7e5
    }
    return _Raw("multiclass", 3, data.target.astype(np.int64), leader, follower)


def _diabetes(rng: np.random.Generator) -> _Raw:
    data = _sklearn().load_diabetes(scaled=False)
    x = {name: data.data[:, j] for j, name in enumerate(data.feature_names)}
    leader = {
        "age": x["age"],
        "sex": np.where(x["sex"] > 1.5, "M", "F").astype(object),
        "bp": _with_gaps(x["bp"], rng, 0.05),
        "s1": x["s1"],
        "s2": x["s2"],
    }
    follower = {
        "bmi": x["bmi"],
        "s3": _with_gaps(x["s3"], rng, 0.05),
        "s4": x["s4"],
        "s5": x["s5"],
        "s6_umol": x["s6"] * 1000.0,  # raw magnitude: ~6e4 to 1.2e5
    }
    return _Raw("regression", 0, data.target.astype(np.float64), leader, follower)


def _digits(rng: np.random.Generator) -> _Raw:
    data = _sklearn().load_digits()
    pixels = data.data.reshape(-1, 8, 8)
    rows = len(data.target)
    leader: dict[str, np.ndarray] = {
        f"px_{r}_{c}": pixels[:, r, c] for r in range(8) for c in range(4)
    }
    leader["px_3_1"] = _with_gaps(leader["px_3_1"], rng, 0.05)
    leader["scanner"] = _noise_category(rows, rng, "scanner", 5)
    follower: dict[str, np.ndarray] = {
        f"px_{r}_{c}": pixels[:, r, c] * 1000.0 for r in range(8) for c in range(4, 8)
    }
    follower["px_4_5"] = _with_gaps(follower["px_4_5"], rng, 0.05)
    labels = (data.target >= 5).astype(np.int64)
    return _Raw("binary", 2, labels, leader, follower)


@dataclass(frozen=True)
class PracticeTraining:
    """Model and training settings that suit a practice split (both parties use the same)."""

    epochs: int
    batch_size: int
    lr: float = 0.01
    cut_width: int = 8
    hidden: int = 16
    early_stopping: str = ""  # a held-out metric to stop on ("" = train every epoch)


TRAINING: dict[str, PracticeTraining] = {
    "wine": PracticeTraining(epochs=30, batch_size=16),
    "diabetes": PracticeTraining(epochs=60, batch_size=32, early_stopping="rmse"),
    "digits": PracticeTraining(epochs=8, batch_size=32),
}


def _stopping(run: PracticeTraining) -> str:
    if not run.early_stopping:
        return ""
    return (
        f'\nearly_stopping_metric = "{run.early_stopping}"  # keep the best held-out epoch'
        "\nearly_stopping_patience = 5"
    )


SAME_AS_SELF = "same_as_self = true  # the peer runs exactly the enclave this party runs"


def practice_job_toml(split: PracticeSplit, role: str, table: str, port: int) -> str:
    """One party's job file for ``split``: align, then train an MLP split model of its task.

    ``table`` is the party's input file name (relative to the job file); the policy accepts
    the simulated TEE by name and requires the peer to run this very enclave
    (``same_as_self``).
    """
    run = TRAINING[split.name]
    label = '\nlabel_column = "label"' if role == "leader" else ""
    task = f'task = "{split.task}"'
    if split.task == "multiclass":
        task += f"\nnum_classes = {split.num_classes}"
    return f"""# cvfl practice job ({split.name}, {split.task}): {role}.
# cvfl check --config {role}.toml, then cvfl run --config {role}.toml (align, then train)
[job]
id = "practice-{split.name}"
role = "{role}"
seed = 7
workdir = "{role}"
steps = ["align", "train"]

[data]
path = "{table}"
id_column = "{ID_COLUMN}"{label}

[data.columns]
# Text columns are categories, number columns numeric (standardised, gaps filled and flagged),
# all fitted on this party's own training rows and stored in its sealed export.
default = "auto"

{mlp_tables(run.cut_width, run.hidden, task)}
{adam_lines(run.lr, run.batch_size, run.epochs)}{_stopping(run)}

{peer_table(role, port)}
[psi]
output = "aligned/{role}.parquet.sealed"
{trust_tables(role, SAME_AS_SELF, notes=False)}"""
