"""scikit-learn's breast-cancer table (569 rows, 30 features), split vertically as FATE does.

The leader (FATE's guest) gets the label and the first 10 features, the follower (FATE's host)
the other 20; ids are the row numbers as strings. The table ships inside scikit-learn, so no
network is needed. Each party standardises its own columns with statistics of the training rows
only (the held-out rows the schedule picks from the job's seed are never looked at), as each
organisation would do on its own data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from cvfl.train.schedule import Schedule

ROWS = 569
LEADER_FEATURES = 10
FOLLOWER_FEATURES = 20
ID_COLUMN = "example_id"
LABEL_COLUMN = "label"


@dataclass(frozen=True)
class VerticalSplit:
    """The two parties' tables (same ids, same order) and the held-out row indices."""

    leader: pa.Table
    follower: pa.Table
    holdout_rows: np.ndarray


def _column_names(names: list[str]) -> list[str]:
    return [name.replace(" ", "_") for name in names]


def standardise(values: np.ndarray, train_rows: np.ndarray) -> np.ndarray:
    """Centre and scale each column by the mean and deviation of ``train_rows`` only.

    A constant column (deviation below 1e-12) is centred and left unscaled.
    """
    train = values[train_rows].astype(np.float64)
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std[std < 1e-12] = 1.0
    scaled: np.ndarray = ((values - mean) / std).astype(np.float32)
    return scaled


def _table(
    ids: list[str], names: list[str], values: np.ndarray, labels: np.ndarray | None
) -> pa.Table:
    columns: dict[str, pa.Array] = {ID_COLUMN: pa.array(ids, type=pa.string())}
    if labels is not None:
        columns[LABEL_COLUMN] = pa.array(labels.astype(np.int64))
    for j, name in enumerate(names):
        columns[name] = pa.array(values[:, j], type=pa.float32())
    return pa.table(columns)


def breast_cancer_split(seed: int, holdout_fraction: float) -> VerticalSplit:
    """Both parties' standardised tables for a job with this ``seed`` and holdout fraction."""
    from sklearn.datasets import load_breast_cancer  # type: ignore[import-untyped]

    bunch = load_breast_cancer()
    data = np.asarray(bunch.data, dtype=np.float64)
    labels = np.asarray(bunch.target, dtype=np.int64)
    names = _column_names([str(n) for n in bunch.feature_names])
    split = Schedule(
        num_rows=len(labels), holdout_fraction=holdout_fraction, seed=seed, batch_size=1, epochs=1
    )
    values = standardise(data, split.train_rows)
    ids = [str(i) for i in range(len(labels))]
    cut = LEADER_FEATURES
    return VerticalSplit(
        leader=_table(ids, names[:cut], values[:, :cut], labels),
        follower=_table(ids, names[cut:], values[:, cut:], None),
        holdout_rows=split.holdout_rows,
    )
