"""Early stopping: the leader tracks the best held-out epoch; both parties export its state.

With ``[train] early_stopping_metric`` set, the leader evaluates after every epoch (as always),
both parties checkpoint at every epoch end, and the leader then sends an ``EpochDecision``
before the next step's assignment: the step just evaluated, the best step so far and whether
training stops (``early_stopping_patience`` epochs without improvement, or the last epoch).
When the best step is the one just evaluated, each party writes its model state as its sealed
*best snapshot* (``checkpoints/<role>-best.safetensors``); at the end each exports the snapshot,
so both halves come from the same epoch.

Everything the decision needs is in the leader's metric history, which its checkpoints carry:
after a kill -9 the parties resume from the newest checkpoint both hold and, if that is an epoch
end, the leader sends that epoch's decision again, so the snapshot and the stop are the same as
in an uninterrupted run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cvfl.bridge.serde import TensorSpec
from cvfl.errors import ModelError, ProtocolError, mismatch
from cvfl.logs import get_logger
from cvfl.train import checkpoint
from cvfl.train.metrics import better
from cvfl.train.party import Party, export
from cvfl.train.result import TrainResult
from cvfl.wire import bridge_pb2 as pb

log = get_logger(__name__)


@dataclass(frozen=True)
class Decision:
    """The leader's verdict after evaluating ``step``."""

    step: int
    best_step: int
    stop: bool

    def message(self) -> pb.Envelope:
        """The decision as the envelope sent to the follower."""
        body = pb.EpochDecision(step=self.step, best_step=self.best_step, stop=self.stop)
        return pb.Envelope(epoch_decision=body)


def decide(metric: str, patience: int, history: list[dict[str, Any]], last: bool) -> Decision:
    """The decision after the newest epoch of ``history`` (``last``: no step follows it).

    The best epoch is the first with the best ``val_<metric>`` (lowest for a loss or an
    error, highest otherwise); training stops once ``patience`` epochs followed it without
    improvement, or after the last epoch.
    """
    key = f"val_{metric}"
    best = 0
    values = [float(record.get(key, math.nan)) for record in history]  # older records: NaN
    for index, value in enumerate(values):
        if better(metric, value, values[best]):
            best = index
    if math.isnan(values[best]):
        best = len(history) - 1  # nothing measurable yet: the newest state stands in
    waited = len(history) - 1 - best
    stop = last or waited >= patience
    step = int(history[-1]["step"])
    decision = Decision(step, int(history[best]["step"]), stop)
    if stop and not last:
        log.info(
            "early stopping after step %s: no better held-out %s for %s epochs (best: step %s)",
            step,
            metric,
            waited,
            decision.best_step,
        )
    return decision


def best_path(party: Party) -> Path:
    """Where this party keeps its best snapshot (before the sealing suffix)."""
    return party.outputs / "checkpoints" / f"{party.cfg.role}-best.safetensors"


def save_best(party: Party, step: int) -> None:
    """Write this party's current model state as its best snapshot of ``step`` (worker 0)."""
    if not party.is_root:
        return
    data = checkpoint.encode(
        step, party.cfg.job.id, party.model, party.optimizer, {}, party.binding.fields
    )
    party.artifacts.write(best_path(party), data, BEST_PURPOSE)
    log.info("held-out best so far: step %s (snapshot kept)", step)


BEST_PURPOSE = "cvfl/checkpoint/best"


def load_best(party: Party, step: int) -> None:
    """Put the best snapshot of ``step`` into this party's model (worker 0, before export).

    Raises:
        ModelError: the snapshot is missing, of another step or of another configuration
            (``model.best_snapshot``).
    """
    path = best_path(party)
    data = party.artifacts.read(path, BEST_PURPOSE)
    ckpt = checkpoint.decode(data, path)
    if ckpt.step != step:
        raise ModelError(
            f"{path}: " + mismatch("best snapshot step", step, ckpt.step),
            code="model.best_snapshot",
        )
    if ckpt.binding != party.binding.fields:
        raise ModelError(
            f"{path}: the best snapshot was written by another configuration of this job",
            code="model.best_snapshot",
        )
    checkpoint.restore(ckpt, party.model, None)
    log.info("exporting the held-out best state: step %s", step)


def export_chosen(party: Party, result: TrainResult, cut: tuple[TensorSpec, ...]) -> None:
    """Export the half as training chose it (worker 0): the best epoch's state, else the last."""
    if not party.is_root:
        return
    if result.best_step:
        load_best(party, result.best_step)
    export(party, result, cut)


def received(envelope: pb.Envelope, trained: int) -> Decision:
    """Check the leader's decision against the step the follower last trained.

    Raises:
        ProtocolError: a decision for another step, or a best step after it
            (``protocol.step``).
    """
    body = envelope.epoch_decision
    if body.step != trained:
        raise ProtocolError(
            mismatch("epoch decision step", trained, body.step), code="protocol.step"
        )
    if not 0 < body.best_step <= body.step:
        raise ProtocolError(
            mismatch("epoch decision best step", f"1..{body.step}", body.best_step),
            code="protocol.step",
        )
    return Decision(int(body.step), int(body.best_step), bool(body.stop))
