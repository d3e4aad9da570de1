"""The leader's scores: one row per scored example, in the columns of the job's task.

- binary: the id, ``score`` (probability of class 1) and ``log_odds``;
- multiclass: the id, ``p_0`` .. ``p_{K-1}`` (class probabilities) and ``predicted`` (the most
  probable class);
- regression: the id and ``prediction`` (the predicted value).

Written through :class:`~cvfl.sealing.Artifacts`, so they are sealed unless plaintext was asked
for by name; :func:`read_scores` reads them back in the form its caller's key says.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import torch

from cvfl.data.tables import table_format
from cvfl.errors import ConfigError, DataError, mismatch
from cvfl.sealing import Artifacts
from cvfl.sealing.artifacts import read_artifact
from cvfl.sealing.keys import KeyProvider
from cvfl.train.tasks import TargetScale

SCORES_PURPOSE = "cvfl/predict/scores"
SCORE_COLUMN = "score"
LOGIT_COLUMN = "log_odds"
PREDICTED_COLUMN = "predicted"
PREDICTION_COLUMN = "prediction"


def class_column(k: int) -> str:
    """The probability column of class ``k`` in multiclass scores."""
    return f"p_{k}"


def scores_store(keys: KeyProvider | None, plaintext: bool) -> Artifacts:
    """Sealed with ``keys``; plaintext only when ``plaintext`` is set by name."""
    if plaintext:
        return Artifacts(None)
    if keys is None:
        raise ConfigError(
            mismatch(
                "scores protection",
                "a [sealing] key or [predict] plaintext_scores = true",
                "neither",
            ),
            code="config.predict",
        )
    return Artifacts(keys)


def scores_table(
    id_column: str,
    ids: tuple[str, ...],
    logits: torch.Tensor,
    task: str = "binary",
    target: TargetScale | None = None,
) -> pa.Table:
    """The leader's outputs as an Arrow table of ``task``'s score columns.

    A regression half trained on a scaled target (``target``) predicts in the target's units.
    """
    columns = score_columns(logits, task, target)
    id_array = pa.array(ids, type=pa.string())
    return pa.table({id_column: id_array, **{k: pa.array(v) for k, v in columns.items()}})


def score_columns(
    logits: torch.Tensor | np.ndarray, task: str = "binary", target: TargetScale | None = None
) -> dict[str, np.ndarray]:
    """``task``'s score columns (in their order) of the leader's outputs, one row per example.

    What :func:`scores_table` writes beside the ids; ``cvfl serve`` answers with the same values.
    Computed in float64 whatever the outputs' type.
    """
    if isinstance(logits, torch.Tensor):
        logits = logits.detach().to(torch.float64).numpy()
    x = np.asarray(logits, dtype=np.float64).reshape(len(logits), -1)
    if task == "regression":
        values = x[:, 0].copy()
        return {PREDICTION_COLUMN: target.unscale(values) if target is not None else values}
    shifted = x - x.max(axis=1, keepdims=True)
    if task == "multiclass":
        probs = np.exp(shifted)
        probs /= probs.sum(axis=1, keepdims=True)
        columns = {class_column(k): probs[:, k] for k in range(probs.shape[1])}
        return {**columns, PREDICTED_COLUMN: probs.argmax(axis=1).astype(np.int64)}
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return {SCORE_COLUMN: np.exp(log_probs[:, 1]), LOGIT_COLUMN: log_probs[:, 1] - log_probs[:, 0]}


def encode(table: pa.Table, fmt: str) -> bytes:
    """Serialise a table as Parquet or CSV bytes."""
    sink = io.BytesIO()
    if fmt == "parquet":
        pq.write_table(table, sink)
    else:
        pacsv.write_csv(table, sink)
    return sink.getvalue()


def write_scores(store: Artifacts, path: Path, table: pa.Table) -> Path:
    """Write the scores atomically (``path`` or ``path.sealed``); return where they went."""
    return store.write(path, encode(table, table_format(path)), SCORES_PURPOSE)


def read_scores(path: Path, keys: KeyProvider | None = None) -> pa.Table:
    """Read scores written by :func:`write_scores`: sealed with ``keys``, else plaintext.

    The form comes from the caller's key, not from the file: with ``keys`` a plaintext file is
    refused (``sealing.unexpected_plaintext``), without them a sealed one.
    """
    if not path.is_file():
        raise DataError(f"{path}: no such file", code="data.missing_file")
    data = read_artifact(path, SCORES_PURPOSE, keys, expect_sealed=keys is not None)
    source = pa.BufferReader(data)
    try:
        if table_format(path) == "parquet":
            return pq.read_table(source)
        options = pacsv.ConvertOptions(column_types={"example_id": pa.string()})
        return pacsv.read_csv(source, convert_options=options)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: unreadable scores: {exc}", code="data.unreadable") from exc
