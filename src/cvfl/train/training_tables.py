"""The table a party trains on and the schedule both parties derive for it.

``[data] reader = "memory"`` reads the whole table (:class:`~cvfl.data.tables.PartyTable`) and
uses :class:`~cvfl.train.schedule.Schedule`; ``"stream"`` opens a
:class:`~cvfl.train.stream.StreamTable` and uses
:class:`~cvfl.train.stream_schedule.StreamSchedule` (docs/scale.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cvfl.data.check import prepare_table
from cvfl.data.ids import id_order_fingerprint
from cvfl.data.prep import unscaled_columns
from cvfl.data.tables import FeatureKind, PartyTable, TableSchema, validate
from cvfl.errors import DataError
from cvfl.logs import get_logger
from cvfl.sealing import Artifacts
from cvfl.train.config import JobConfig
from cvfl.train.inputs import aligned_arrow, input_arrow
from cvfl.train.precheck import UNSCALED_LIMIT, unscaled_warning
from cvfl.train.schedule import Schedule
from cvfl.train.stream import StreamTable, open_stream
from cvfl.train.stream_schedule import StreamSchedule

log = get_logger(__name__)


def order_fingerprint(job_id: str, table: PartyTable | StreamTable) -> bytes:
    """The id-order fingerprint of ``table`` (a streamed table's comes from its id pass)."""
    if isinstance(table, StreamTable):
        return table.fingerprint
    return id_order_fingerprint(job_id, table.ids)


def schedule_for(cfg: JobConfig, table: PartyTable | StreamTable) -> Schedule | StreamSchedule:
    """The schedule of ``table``: the streamed reader's, or the in-memory one."""
    if not isinstance(table, StreamTable):
        return make_schedule(cfg, table.rows)
    return StreamSchedule(
        num_rows=table.rows,
        **_shared_terms(cfg),
        block_rows=cfg.data.block_rows,
        shuffle_blocks=cfg.data.shuffle_blocks,
        holdout=table.holdout,
        workers=cfg.train.workers,
    )


def make_schedule(cfg: JobConfig, rows: int) -> Schedule:
    """The schedule both parties derive from the shared job settings."""
    return Schedule(num_rows=rows, **_shared_terms(cfg))


def _shared_terms(cfg: JobConfig) -> dict[str, Any]:
    """The job settings both readers' schedules are derived from."""
    t = cfg.train
    return {
        "holdout_fraction": cfg.data.holdout_fraction,
        "seed": cfg.job.seed,
        "batch_size": t.batch_size,
        "epochs": t.epochs,
        "max_steps": t.max_steps,
        "eval_batch_size": t.eval_batch_size,
    }


def schema_for(cfg: JobConfig) -> TableSchema:
    """The table schema this party's data must satisfy."""
    return TableSchema(
        kind=cfg.data.kind,
        id_column=cfg.data.id_column,
        label_column=cfg.data.label_column if cfg.role == "leader" else None,
        vocab=cfg.model.vocab,
        task=cfg.model.task,
        num_classes=cfg.model.num_classes,
    )


def require_training_table(cfg: JobConfig) -> Path:
    """The table this party trains on, which must exist.

    Raises:
        DataError: ``data.missing_file``, with a hint to align first when ``[psi]`` writes it.
    """
    path = cfg.training_table
    if not path.is_file():
        hint = " (run `cvfl align --config` first)" if cfg.psi is not None else ""
        raise DataError(f"{path}: no such file{hint}", code="data.missing_file")
    return path


def training_table(cfg: JobConfig, artifacts: Artifacts) -> PartyTable | StreamTable:
    """The table this party trains on, in memory or streamed as ``[data] reader`` says."""
    if cfg.data.reader == "memory":
        return read_training_table(cfg, artifacts)
    path = require_training_table(cfg)
    return open_stream(
        path,
        schema_for(cfg),
        artifacts.keys,
        sealed=None if cfg.psi is None else artifacts.sealed,
        split=(cfg.job.id, cfg.job.seed, cfg.data.holdout_fraction),
        block_rows=cfg.data.block_rows,
        columns=cfg.data.columns,
    )


def read_training_table(cfg: JobConfig, artifacts: Artifacts) -> PartyTable:
    """Read the table this party trains on, preprocessed when ``[data.columns]`` is given.

    With ``[psi]`` that is the aligned table, an artifact read only in the job's form (sealed
    with ``[sealing]``); without, it is the user's own ``[data] path`` (plaintext or sealed).
    The preprocessing is fitted on the schedule's training rows only (never the held-out ones).
    """
    path = require_training_table(cfg)
    schema = schema_for(cfg)
    if cfg.psi is None:
        arrow = input_arrow(path, schema.id_column, artifacts.keys)
    else:
        arrow = aligned_arrow(path, schema.id_column, artifacts.keys, sealed=artifacts.sealed)
    if cfg.data.columns is None:
        table = validate(arrow, path, schema)
        warn_unscaled(cfg, table)
        return table
    if arrow.num_rows == 0:
        raise DataError(f"{path}: the table is empty (0 rows)", code="data.empty")
    train_rows = make_schedule(cfg, arrow.num_rows).train_rows
    return prepare_table(arrow, path, cfg.data.columns, schema, train_rows)


def warn_unscaled(cfg: JobConfig, table: PartyTable) -> list[str]:
    """Warn once about numeric columns used as they are whose magnitude exceeds 1e3.

    Returns:
        The columns named (largest magnitude or standard deviation above 1e3 over the table's
        rows); values are never logged.
    """
    if cfg.data.kind is not FeatureKind.NUMERIC:
        return []
    names = unscaled_columns(table.features, table.feature_names, UNSCALED_LIMIT)
    if names:
        log.warning("%s", unscaled_warning(table.path, names))
    return names
