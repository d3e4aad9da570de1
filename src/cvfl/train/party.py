"""What each party sets up before training: its table, model half, optimiser, schedule, hello."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from torch import nn

from cvfl import __version__
from cvfl.bridge.handshake import PROTOCOL_VERSION
from cvfl.bridge.serde import CheckpointState, Hello, TensorSpec
from cvfl.data.tables import PartyTable
from cvfl.logs import get_logger
from cvfl.models.export import export_half
from cvfl.models.factory import build_follower, build_leader
from cvfl.sealing import Artifacts, key_provider_from_config
from cvfl.train import checkpoint
from cvfl.train.binding import Binding, training_binding
from cvfl.train.config import JobConfig, PeerSection, TrainSection, outputs_sealed
from cvfl.train.device import resolve_device
from cvfl.train.metrics import Metrics
from cvfl.train.precheck import check_own_rows
from cvfl.train.recovery import CheckpointStore
from cvfl.train.reruns import resumable
from cvfl.train.result import TrainResult
from cvfl.train.rng import training_generator
from cvfl.train.schedule import Schedule
from cvfl.train.stream import StreamTable
from cvfl.train.stream_schedule import StreamSchedule
from cvfl.train.tasks import TargetScale, fit_target, resolve_classes
from cvfl.train.training_tables import order_fingerprint, schedule_for, training_table

if TYPE_CHECKING:
    from cvfl.workers import SecureGroup

log = get_logger(__name__)


class Progress(Protocol):
    """Receives progress from a training loop (the CLI renders it; tests may record it)."""

    def start(self, total_steps: int, description: str, done: int = 0) -> None:
        """Training is about to start after step ``done`` (the resumed step, 0 at first)."""
        ...

    def step(self, number: int, loss: float | None) -> None:
        """A step finished (the leader knows the loss; the follower passes None)."""
        ...

    def evaluated(self, step: int, metrics: Metrics) -> None:
        """Held-out metrics after ``step`` (leader only)."""
        ...

    def finish(self) -> None:
        """The loop has ended, successfully or not: nothing more will be shown."""
        ...


class NoProgress:
    """A progress sink that ignores everything."""

    def start(self, total_steps: int, description: str, done: int = 0) -> None:
        """Ignore."""

    def step(self, number: int, loss: float | None) -> None:
        """Ignore."""

    def evaluated(self, step: int, metrics: Metrics) -> None:
        """Ignore."""

    def finish(self) -> None:
        """Ignore."""


@dataclass
class Party:
    """One party's training state."""

    cfg: JobConfig
    table: PartyTable | StreamTable  # [data] reader: memory or stream
    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Schedule | StreamSchedule
    artifacts: Artifacts
    initial_state: dict[str, torch.Tensor] = field(default_factory=dict)
    worker: int = 0
    group: SecureGroup | None = None  # several workers: their group, given at construction
    target: TargetScale | None = None  # a regression leader's target scaling (training rows)
    rng: torch.Generator = field(init=False, repr=False)  # training draws (cvfl.train.rng)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    _trainable: nn.Module | None = field(default=None, init=False, repr=False)
    _binding: Binding | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.rng = self.fresh_rng()
        if not self.initial_state:
            self.initial_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def fresh_rng(self) -> torch.Generator:
        """This worker's training generator as it is before step 1 (from the job seed)."""
        return training_generator(self.cfg.job.seed, f"{self.cfg.role}/{self.worker}")

    @property
    def workers(self) -> int:
        """How many workers this party runs (``[train] workers``)."""
        return self.cfg.train.workers

    @property
    def is_root(self) -> bool:
        """Whether this is worker 0, the one that writes checkpoints, exports and summaries."""
        return self.worker == 0

    @property
    def binding(self) -> Binding:
        """What this party's checkpoints are bound to (computed once: it hashes the data)."""
        if self._binding is None:
            self._binding = training_binding(self.cfg, self.table)
        return self._binding

    @property
    def peer(self) -> PeerSection:
        """This worker pair's addresses (see :meth:`PeerSection.for_worker`)."""
        return self.cfg.peer.for_worker(self.worker)

    @property
    def trainable(self) -> nn.Module:
        """The module training steps run: the half itself, or its DDP wrapper with N workers.

        The wrapper averages the gradients of the party's own parameters across its workers
        through the group's sealed communication hook.
        """
        if self.group is None:
            return self.model
        if self._trainable is None:
            # No clear-text parameter broadcast: the group sends rank 0's state sealed and
            # registers the sealed gradient hook.
            self._trainable = self.group.wrap(self.model)
        return self._trainable

    def inputs(self, rows: np.ndarray, *, step: bool = False) -> torch.Tensor:
        """The feature rows as a tensor on this party's ``[train] device`` (no ids built)."""
        if isinstance(self.table, StreamTable):
            values = self.table.take(rows, planned=self._planned(rows, step))[1]
            return torch.from_numpy(values).to(self.device)
        return features(self.table, rows).to(self.device)

    def batch(self, rows: np.ndarray, *, step: bool = False) -> tuple[list[str], torch.Tensor]:
        """The ids and feature tensor of ``rows``; ``step``: a training step's (planned) rows."""
        if isinstance(self.table, StreamTable):
            ids, values = self.table.take(rows, planned=self._planned(rows, step))
            return ids, torch.from_numpy(values).to(self.device)
        ids = [self.table.ids[i] for i in rows]
        return ids, features(self.table, rows).to(self.device)

    def begin(self, step: int) -> None:
        """Training (re)starts after ``step``: a streamed table follows the schedule from there.

        With several workers, each follows only its own blocks of every window.
        """
        if isinstance(self.table, StreamTable) and isinstance(self.schedule, StreamSchedule):
            worker = self.worker if self.workers > 1 else None
            self.table.start(self.schedule.windows(step, worker))

    def my_rows(self, rows: np.ndarray) -> np.ndarray:
        """This worker's part of a step's rows (the leader assigns; the follower's pair follows).

        In memory, worker i takes the i-th of N consecutive parts; streamed, the rows in its own
        blocks (:meth:`StreamSchedule.worker_rows`), so it reads no other worker's blocks.
        """
        if self.workers == 1:
            return rows
        if isinstance(self.schedule, StreamSchedule):
            return self.schedule.worker_rows(rows, self.worker)
        return np.array_split(rows, self.workers)[self.worker]

    def _planned(self, rows: np.ndarray, step: bool) -> bool:
        """Whether a streamed read of ``rows`` goes through this worker's window plan."""
        if not step or self.workers == 1:
            return step
        assert isinstance(self.schedule, StreamSchedule)  # a StreamTable has a StreamSchedule
        return self.schedule.owns(rows, self.worker)

    def my_eval_batches(self) -> list[tuple[int, np.ndarray]]:
        """This worker's held-out batches with their global index (every N-th, from its own)."""
        batches = list(self.schedule.eval_batches())
        return [(i, b) for i, b in enumerate(batches) if i % self.workers == self.worker]

    @property
    def outputs(self) -> Path:
        """The folder this party writes to."""
        return self.cfg.job.workdir

    def hello(self, cut: tuple[TensorSpec, ...], checkpoints: tuple[CheckpointState, ...]) -> Hello:
        """This party's session hello."""
        return Hello(
            protocol_version=PROTOCOL_VERSION,
            job_id=self.cfg.job.id,
            role=self.cfg.role,
            cut_layer=cut,
            batch_size=self.cfg.train.batch_size,
            seed=self.cfg.job.seed,
            id_order_fingerprint=order_fingerprint(self.cfg.job.id, self.table),
            last_committed_step=max((c.step for c in checkpoints if c.peer_digest), default=0),
            nonce=secrets.token_bytes(32),
            num_rows=self.table.rows,
            schedule_digest=self.schedule.digest(),
            software_version=__version__,
            checkpoints=checkpoints,
            workers=self.workers,
            worker=self.worker,
            training_terms=self.binding.shared_terms(),
            privacy=self.cfg.privacy.to_wire(),
        )


def set_threads(threads: int) -> None:
    """Use ``threads`` intra-op threads (0: every core this process may use)."""
    count = threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(max(1, count))


def configure_threads(cfg: JobConfig) -> int:
    """Set this process's PyTorch intra-op threads from ``[train] threads``; return the count.

    Process configuration, for commands (``cvfl train``): ``threads = 0`` shares the cores this
    process may use among the party's ``[train] workers``. Library code leaves the thread count
    alone unless asked (``load_party(..., threads=True)``).
    """
    threads = cfg.train.threads or max(1, len(os.sched_getaffinity(0)) // cfg.train.workers)
    set_threads(threads)
    return threads


def make_optimizer(train: TrainSection, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    """SGD or Adam from the job's ``[train]`` section."""
    if train.optimizer == "sgd":
        return torch.optim.SGD(params, lr=train.lr)
    return torch.optim.Adam(params, lr=train.lr)


def load_party(
    cfg: JobConfig,
    worker: int = 0,
    *,
    group: SecureGroup | None = None,
    threads: bool = False,
) -> Party:
    """Read the table and build the model half and optimiser for ``cfg``'s role.

    Args:
        cfg: the party's job.
        worker: this worker's rank among the party's ``[train] workers``.
        group: the party's worker group (:func:`cvfl.workers.join_group`) when it runs several
            workers; None for one.
        threads: also set this process's PyTorch thread count from ``[train] threads``
            (:func:`configure_threads`). Off by default: loading a party changes no
            process-wide setting unless the caller asks.
    """
    if threads:
        configure_threads(cfg)
    artifacts = artifacts_for(cfg)
    check_own_input(cfg, artifacts)
    table = training_table(cfg, artifacts)
    if cfg.role == "leader":  # only the leader has labels: it resolves the class count
        cfg = replace(cfg, model=resolve_classes(cfg.model, table.labels))
    build = build_leader if cfg.role == "leader" else build_follower
    layout = table.prep.layout if table.prep is not None else None
    device = resolve_device(cfg.train.device, cfg.train.workers)
    log.info("the %s's half trains on %s ([train] device = %s)", cfg.role, device, cfg.train.device)
    width = table.width if isinstance(table, StreamTable) else table.features.shape[1]
    model = build(cfg.model, width, cfg.job.seed, layout).to(device)
    optimizer = make_optimizer(cfg.train, model.parameters())
    schedule = schedule_for(cfg, table)
    target = fit_target(cfg.model, table.labels, schedule.train_mask)
    if target is not None and table.labels is not None:  # trained on the scaled target
        if isinstance(table, StreamTable):
            table.labels = target.apply(table.labels)
        else:
            table = replace(table, labels=target.apply(table.labels))
    return Party(
        cfg,
        table,
        model,
        optimizer,
        schedule,
        artifacts,
        worker=worker,
        group=group,
        target=target,
        device=device,
    )


def check_own_input(cfg: JobConfig, artifacts: Artifacts) -> None:
    """With ``[psi]``, check the user's own ``[data] path`` too, if it is here.

    Training reads the aligned table, whose row numbers are not the user's; this check (before
    the peer is contacted) names the user's own file and rows for anything wrong in it. A
    problem found only in the aligned table afterwards names the aligned file.
    """
    if cfg.psi is not None and cfg.data.path.is_file():
        check_own_rows(cfg.data, cfg.role == "leader", artifacts.keys, cfg.model)


def artifacts_for(cfg: JobConfig) -> Artifacts:
    """Sealed outputs from ``[sealing]``; plaintext only with ``[job] plaintext_outputs = true``."""
    if not outputs_sealed(cfg):
        return Artifacts(None)
    assert cfg.sealing is not None  # outputs_sealed is true only with [sealing]
    if cfg.job.plaintext_outputs:
        log.warning(
            "[job] plaintext_outputs = true is ignored: [sealing] is configured, so outputs are "
            "written, and read back, only sealed"
        )
    return Artifacts(key_provider_from_config(cfg.sealing))


def checkpoint_store(party: Party) -> CheckpointStore:
    """This party's checkpoints (sealed like every artifact), bound to its job."""
    return CheckpointStore(
        party.outputs / "checkpoints", party.cfg.role, party.artifacts, binding=party.binding
    )


def resumable_checkpoints(party: Party) -> tuple[CheckpointState, ...]:
    """The checkpoints this party may resume and offers in its hello.

    Raises:
        ConfigError: its newest checkpoint belongs to another configuration of the job.
    """
    return resumable(checkpoint_store(party), party.binding, party.cfg)


def restore_to(party: Party, step: int, states: tuple[CheckpointState, ...]) -> dict[str, Any]:
    """Put the model and optimiser in their state after ``step`` (0: freshly initialised).

    Returns:
        The checkpoint's extra state (e.g. the leader's metric history).
    """
    party.begin(step)
    if step == 0:
        party.model.load_state_dict(party.initial_state)
        party.optimizer = make_optimizer(party.cfg.train, party.model.parameters())
        party.rng = party.fresh_rng()
        if states:
            log.info("no checkpoint both sides hold: starting from step 0")
        else:
            log.info("no checkpoint yet: starting from step 0")
        return {}
    state = next(s for s in states if s.step == step)
    store = checkpoint_store(party)
    data = store.load(step, state.digest)
    ckpt = checkpoint.decode(data, store.folder)
    recorded = ckpt.binding.get("optimizer", party.cfg.train.optimizer)
    if recorded != party.cfg.train.optimizer:  # resumed with changes on purpose
        log.warning("optimizer changed from %s: its state starts afresh", recorded)
        party.optimizer = make_optimizer(party.cfg.train, party.model.parameters())
        checkpoint.restore(ckpt, party.model, None, party.rng)
    else:
        checkpoint.restore(ckpt, party.model, party.optimizer, party.rng)
    for group in party.optimizer.param_groups:
        group["lr"] = party.cfg.train.lr  # the job's (a resume on purpose may change it)
    log.info("resumed from the checkpoint of step %s", step)
    return ckpt.extra


def write_checkpoint(party: Party, step: int, extra: dict[str, Any]) -> bytes:
    """Write this party's checkpoint of ``step``; return its plaintext digest."""
    data = checkpoint.encode(
        step, party.cfg.job.id, party.model, party.optimizer, extra, party.binding.fields, party.rng
    )
    digest = checkpoint_store(party).save(step, data)
    log.info("checkpoint of step %s written", step)
    return digest


def export(
    party: Party, result: TrainResult, cut: tuple[TensorSpec, ...], *, variant: str = ""
) -> None:
    """Export this party's half (sealed unless plaintext was asked for) into ``result``.

    The files are ``export/<role>.*``; a ``variant`` (the leader-only fallback model,
    :mod:`cvfl.train.fallback`) is written as ``export/<variant>.*`` and declared in the spec,
    so neither can be loaded in the other's place.
    """
    cfg = party.cfg
    spec = {
        "role": cfg.role,
        "job_id": cfg.job.id,
        "model": cfg.model.to_json(),
        "cut_layer": [s.describe() for s in cut],
        "feature_names": list(party.table.feature_names),
        **({"target": party.target.to_json()} if party.target is not None else {}),
        **({"preprocessing": party.table.prep.to_json()} if party.table.prep is not None else {}),
        "steps": result.exported_step,
        "cvfl_version": __version__,
        **({"variant": variant} if variant else {}),
    }
    party.model.to("cpu")  # exports are read on any machine
    result.export, result.fingerprint = export_half(
        party.outputs / "export", variant or cfg.role, party.model, spec, party.artifacts
    )
    log.info("exported the %s's %s: %s", cfg.role, variant or "half", result.export)


def features(table: PartyTable, rows: np.ndarray) -> torch.Tensor:
    """The feature rows as a tensor (int64 codes or float32 values)."""
    return torch.from_numpy(table.features[rows])
