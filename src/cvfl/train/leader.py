"""The leader's loop: receive activations, run its half and the loss, return cut-layer gradients."""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from cvfl.bridge.handshake import leader_handshake
from cvfl.bridge.link import BridgeServer, Link, expect
from cvfl.bridge.security import ChannelSecurity
from cvfl.bridge.serde import TensorSpec
from cvfl.data.ids import batch_mac, session_mac_key
from cvfl.errors import CvflError
from cvfl.fsutil import atomic_write_bytes
from cvfl.logs import get_logger
from cvfl.train.metrics import Metrics, binary_metrics
from cvfl.train.party import NoProgress, Party, Progress, export, features, save_checkpoint
from cvfl.train.result import TrainResult
from cvfl.train.steps import EVAL, TRAIN, backward_message, check_batch, single_tensor
from cvfl.wire import bridge_pb2 as pb

log = get_logger(__name__)


def run_leader(
    party: Party, security: ChannelSecurity, progress: Progress | None = None
) -> TrainResult:
    """Listen for the follower, train the job, evaluate and export the leader's half."""
    peer = party.cfg.peer
    server = BridgeServer(security, peer.listen)
    try:
        if peer.port_file is not None:
            atomic_write_bytes(peer.port_file, f"{server.port}\n".encode(), mode=0o644)
        link = server.accept(peer.connect_timeout)
        log.info("follower connected: %s", link.peer)
        try:
            return _lead(party, link, progress or NoProgress())
        except CvflError as exc:
            link.abort(exc)
            raise
    finally:
        server.stop()
        if peer.port_file is not None:
            peer.port_file.unlink(missing_ok=True)


def cut_spec(party: Party) -> tuple[TensorSpec, ...]:
    """The cut layer the leader expects from the follower."""
    spec = party.cfg.model
    return (TensorSpec(spec.cut_name, "float32", (spec.cut_width,)),)


def _lead(party: Party, link: Link, progress: Progress) -> TrainResult:
    cfg = party.cfg
    mine = party.hello(cut_spec(party))
    theirs = leader_handshake(link, mine, cfg.peer.connect_timeout)
    key = session_mac_key(cfg.job.id, mine.nonce, theirs.nonce)
    labels = torch.from_numpy(party.table.labels if party.table.labels is not None else np.zeros(0))
    result = TrainResult(role="leader", steps=0, seconds=0.0)
    progress.start(party.schedule.total_steps, "leader")
    started = time.perf_counter()
    losses: list[float] = []
    for step in party.schedule.steps():
        loss = _train_step(party, link, key, step.number, step.rows, labels)
        losses.append(loss)
        result.steps, result.examples = step.number, result.examples + len(step.rows)
        progress.step(step.number, loss)
        save_checkpoint(party, step.number)
        if step.ends_epoch:
            result.metrics = evaluate_remote(party, link, key, labels)
            progress.evaluated(step.number, result.metrics)
            result.history.append(_epoch_record(step.epoch, step.number, losses, result.metrics))
            losses = []
    result.seconds = time.perf_counter() - started
    expect(link.recv(cfg.peer.step_timeout), "finish")
    link.send(pb.Envelope(finish=pb.Finish(steps=result.steps)))
    link.close()
    export(party, result, cut_spec(party))
    return result


def _train_step(
    party: Party, link: Link, key: bytes, number: int, rows: np.ndarray, labels: torch.Tensor
) -> float:
    envelope = link.recv(party.cfg.peer.step_timeout)
    expect(envelope, "forward")
    ids = [party.table.ids[i] for i in rows]
    fwd = envelope.forward
    check_batch("train", number, fwd.step, fwd.ids_mac, batch_mac(key, number, TRAIN, ids))
    act = single_tensor(fwd.tensors, len(rows), party.cfg.model.cut_width).requires_grad_(True)
    logits = party.model(features(party.table, rows), act)
    loss = F.cross_entropy(logits, labels[rows])
    party.optimizer.zero_grad()
    loss.backward()  # type: ignore[no-untyped-call]
    assert act.grad is not None
    link.send(backward_message(number, key, ids, f"{party.cfg.model.cut_name}.grad", act.grad))
    party.optimizer.step()
    return float(loss.detach())


def evaluate_remote(party: Party, link: Link, key: bytes, labels: torch.Tensor) -> Metrics:
    """Score the held-out rows with the follower's activations; return the metrics."""
    outputs: list[torch.Tensor] = []
    party.model.eval()
    with torch.no_grad():
        for index, rows in enumerate(party.schedule.eval_batches()):
            envelope = link.recv(party.cfg.peer.step_timeout)
            expect(envelope, "forward")
            fwd = envelope.forward
            ids = [party.table.ids[i] for i in rows]
            check_batch("eval", index, fwd.step, fwd.ids_mac, batch_mac(key, index, EVAL, ids))
            act = single_tensor(fwd.tensors, len(rows), party.cfg.model.cut_width)
            outputs.append(party.model(features(party.table, rows), act))
    party.model.train()
    holdout = party.schedule.holdout_rows
    return binary_metrics(labels[holdout].numpy(), torch.cat(outputs).numpy())


def _epoch_record(epoch: int, step: int, losses: list[float], metrics: Metrics) -> dict[str, float]:
    return {
        "epoch": epoch,
        "step": step,
        "train_loss": float(np.mean(losses)) if losses else float("nan"),
        "val_loss": metrics.log_loss,
        "val_auc": metrics.auc,
        "val_accuracy": metrics.accuracy,
    }
