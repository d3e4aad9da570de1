"""What each party sets up before training: its table, model half, optimiser, schedule, hello."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

from cvfl import __version__
from cvfl.bridge.handshake import PROTOCOL_VERSION
from cvfl.bridge.serde import Hello, TensorSpec
from cvfl.data.ids import id_order_fingerprint
from cvfl.data.tables import PartyTable, TableSchema, read_party_table, table_format, validate
from cvfl.errors import ConfigError, DataError, SealingError
from cvfl.logs import get_logger
from cvfl.models.export import export_half
from cvfl.models.factory import build_follower, build_leader
from cvfl.sealing import Artifacts, is_sealed, key_provider_from_config
from cvfl.train import checkpoint
from cvfl.train.config import JobConfig, TrainSection
from cvfl.train.metrics import Metrics
from cvfl.train.result import TrainResult
from cvfl.train.schedule import Schedule

log = get_logger(__name__)


class Progress(Protocol):
    """Receives progress from a training loop (the CLI renders it; tests may record it)."""

    def start(self, total_steps: int, description: str) -> None:
        """Training is about to start."""
        ...

    def step(self, number: int, loss: float | None) -> None:
        """A step finished (the leader knows the loss; the follower passes None)."""
        ...

    def evaluated(self, step: int, metrics: Metrics) -> None:
        """Held-out metrics after ``step`` (leader only)."""
        ...


class NoProgress:
    """A progress sink that ignores everything."""

    def start(self, total_steps: int, description: str) -> None:
        """Ignore."""

    def step(self, number: int, loss: float | None) -> None:
        """Ignore."""

    def evaluated(self, step: int, metrics: Metrics) -> None:
        """Ignore."""


@dataclass
class Party:
    """One party's training state."""

    cfg: JobConfig
    table: PartyTable
    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    artifacts: Artifacts

    @property
    def outputs(self) -> Path:
        """The folder this party writes to."""
        return self.cfg.job.workdir

    def hello(self, cut: tuple[TensorSpec, ...], last_step: int = 0) -> Hello:
        """This party's session hello."""
        return Hello(
            protocol_version=PROTOCOL_VERSION,
            job_id=self.cfg.job.id,
            role=self.cfg.role,
            cut_layer=cut,
            batch_size=self.cfg.train.batch_size,
            seed=self.cfg.job.seed,
            id_order_fingerprint=id_order_fingerprint(self.cfg.job.id, self.table.ids),
            last_committed_step=last_step,
            nonce=secrets.token_bytes(32),
            num_rows=self.table.rows,
            schedule_digest=self.schedule.digest(),
            software_version=__version__,
        )


def set_threads(threads: int) -> None:
    """Use ``threads`` intra-op threads (0: every core this process may use)."""
    count = threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(max(1, count))


def make_optimizer(train: TrainSection, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    """SGD or Adam from the job's ``[train]`` section."""
    if train.optimizer == "sgd":
        return torch.optim.SGD(params, lr=train.lr)
    return torch.optim.Adam(params, lr=train.lr)


def make_schedule(cfg: JobConfig, rows: int) -> Schedule:
    """The schedule both parties derive from the shared job settings."""
    t = cfg.train
    return Schedule(
        num_rows=rows,
        holdout_fraction=cfg.data.holdout_fraction,
        seed=cfg.job.seed,
        batch_size=t.batch_size,
        epochs=t.epochs,
        max_steps=t.max_steps,
        eval_batch_size=t.eval_batch_size,
    )


def schema_for(cfg: JobConfig) -> TableSchema:
    """The table schema this party's data must satisfy."""
    return TableSchema(
        kind=cfg.data.kind,
        id_column=cfg.data.id_column,
        label_column=cfg.data.label_column if cfg.role == "leader" else None,
        vocab=cfg.model.vocab,
    )


def load_party(cfg: JobConfig) -> Party:
    """Read the table and build the model half and optimiser for ``cfg``'s role."""
    set_threads(cfg.train.threads)
    artifacts = artifacts_for(cfg)
    table = read_training_table(cfg, artifacts)
    build = build_leader if cfg.role == "leader" else build_follower
    model = build(cfg.model, table.features.shape[1], cfg.job.seed)
    optimizer = make_optimizer(cfg.train, model.parameters())
    return Party(cfg, table, model, optimizer, make_schedule(cfg, table.rows), artifacts)


def read_training_table(cfg: JobConfig, artifacts: Artifacts) -> PartyTable:
    """Read the (aligned) table this party trains on, unsealing it when it is sealed."""
    path = cfg.training_table
    if not path.is_file():
        hint = " (run `cvfl align --config` first)" if cfg.psi is not None else ""
        raise DataError(f"{path}: no such file{hint}", code="data.missing_file")
    if not is_sealed(path):
        return read_party_table(path, schema_for(cfg))
    from cvfl.psi import read_aligned

    if artifacts.keys is None:
        raise SealingError(f"{path}: the table is sealed; add [sealing]", code="sealing.no_key")
    fmt = table_format(path)
    arrow = read_aligned(path, artifacts.keys, fmt, id_column=cfg.data.id_column)
    return validate(arrow, path, schema_for(cfg))


def artifacts_for(cfg: JobConfig) -> Artifacts:
    """Sealed outputs from ``[sealing]``; plaintext only with ``[job] plaintext_outputs = true``."""
    if cfg.sealing is not None:
        return Artifacts(key_provider_from_config(cfg.sealing))
    if cfg.job.plaintext_outputs:
        return Artifacts(None)
    raise ConfigError(
        f"{cfg.source}: no [sealing] section, so checkpoints and exports would be plaintext; "
        'add [sealing] (e.g. provider = "file", key_file = "party.key" made by '
        "`cvfl keys new`) or ask for plaintext by name with [job] plaintext_outputs = true",
        code="config.sealing",
    )


def save_checkpoint(party: Party, step: int) -> None:
    """Write this party's checkpoint for ``step`` when the schedule calls for one."""
    every = party.cfg.train.checkpoint_every
    if every and step % every == 0:
        path = checkpoint.checkpoint_path(party.outputs / "checkpoints", party.cfg.role, step)
        written = checkpoint.save(
            party.artifacts, path, step, party.cfg.job.id, party.model, party.optimizer
        )
        log.info("checkpoint at step %s: %s", step, written.name)


def export(party: Party, result: TrainResult, cut: tuple[TensorSpec, ...]) -> None:
    """Export this party's half (sealed unless plaintext was asked for) into ``result``."""
    cfg = party.cfg
    spec = {
        "role": cfg.role,
        "job_id": cfg.job.id,
        "model": cfg.model.to_json(),
        "cut_layer": [s.describe() for s in cut],
        "feature_names": list(party.table.feature_names),
        "steps": result.steps,
        "cvfl_version": __version__,
    }
    result.export, result.fingerprint = export_half(
        party.outputs / "export", cfg.role, party.model, spec, party.artifacts
    )
    log.info("exported the %s's half: %s", cfg.role, result.export)


def features(table: PartyTable, rows: np.ndarray) -> torch.Tensor:
    """The feature rows as a tensor (int64 codes or float32 values)."""
    return torch.from_numpy(table.features[rows])
