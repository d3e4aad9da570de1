"""The leader's loop: receive activations, run its half and the loss, return cut-layer gradients.

The leader also decides when both sides checkpoint, and survives a follower that restarts: the
two renegotiate from the newest checkpoint both hold and carry on.
"""

from __future__ import annotations

import hashlib
import math
import threading
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from cvfl.bridge.handshake import leader_handshake, leader_handshake_with
from cvfl.bridge.link import BridgeServer, Link, expect
from cvfl.bridge.reliable import AnySession, PeerRestarted, open_session
from cvfl.bridge.security import ChannelSecurity
from cvfl.bridge.serde import TensorSpec
from cvfl.data.ids import batch_mac, session_mac_key
from cvfl.errors import CvflError, ProtocolError, mismatch
from cvfl.logs import get_logger
from cvfl.privacy.guard import LabelGuard
from cvfl.train import early
from cvfl.train.cadence import CheckpointClock
from cvfl.train.metrics import Metrics, preload_backend
from cvfl.train.party import (
    NoProgress,
    Party,
    Progress,
    checkpoint_store,
    restore_to,
    resumable_checkpoints,
    write_checkpoint,
)
from cvfl.train.peers import NOTICE_WINDOW, accept_follower, reraise, tell_follower
from cvfl.train.pipeline import Window
from cvfl.train.recovery import resume_step
from cvfl.train.result import RunClock, TrainResult
from cvfl.train.rng import drawing_from
from cvfl.train.scaleout import fold_losses, gather_scores, restart_refusal, synchronise
from cvfl.train.schedule import Step
from cvfl.train.steps import (
    EVAL,
    TRAIN,
    backward_message,
    check_batch,
    single_tensor,
    wire_dtype,
)
from cvfl.train.stop import check_stop
from cvfl.train.tasks import (
    TargetScale,
    held_out_metrics,
    label_dtype,
    task_loss,
    validation_loss,
)
from cvfl.train.towers import OwnTower, start_own
from cvfl.train.tracking import NoTracker, Tracker, epoch_metrics, job_params, open_tracker
from cvfl.wire import bridge_pb2 as pb

log = get_logger(__name__)


def run_leader(
    party: Party,
    security: ChannelSecurity,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> TrainResult:
    """Listen for the follower, train the job, evaluate and export the leader's half.

    ``stop``: set it to end the loop between steps (:mod:`cvfl.train.stop`).
    """
    peer = party.peer
    shown = progress or NoProgress()
    server = BridgeServer(security, peer.listen, peer.port_file)
    tracker: Tracker = NoTracker()
    try:
        try:
            resumable_checkpoints(party)  # refuse a checkpoint of another job before waiting
            if party.is_root:  # a missing tracker backend is named before waiting, too
                tracker = open_tracker(party.cfg)
                tracker.log_params(job_params(party.cfg))
        except CvflError as exc:
            tell_follower(server, exc, min(peer.connect_timeout, NOTICE_WINDOW))
            raise
        transport = accept_follower(server, peer.connect_timeout)
        first: pb.Envelope | None = None
        while True:
            try:
                return _lead(party, server, transport, first, (shown, stop, tracker))
            except PeerRestarted as restart:
                if party.workers > 1:
                    raise restart_refusal("follower", party) from None
                log.warning("the follower restarted: agreeing again where both sides resume")
                transport, first = restart.transport, restart.hello
    finally:
        shown.finish()
        tracker.close()
        server.stop()


def cut_spec(party: Party) -> tuple[TensorSpec, ...]:
    """The cut layer the leader expects from the follower."""
    spec = party.cfg.model
    return (TensorSpec(spec.cut_name, "float32", (spec.cut_width,)),)


def _lead(
    party: Party,
    server: BridgeServer,
    transport: Link,
    first: pb.Envelope | None,
    shown: tuple[Progress, threading.Event | None, Tracker],
) -> TrainResult:
    cfg = party.cfg
    store = checkpoint_store(party)
    try:
        mine = party.hello(cut_spec(party), resumable_checkpoints(party))
        if first is None:
            theirs = leader_handshake(transport, mine, cfg.peer.connect_timeout)
        else:
            theirs = leader_handshake_with(transport, first, mine)
        start = resume_step(mine.checkpoints, theirs.checkpoints, "follower")
        extra = restore_to(party, start, mine.checkpoints)
        synchronise(party, start)
    except CvflError as exc:
        transport.abort(exc)
        reraise(exc, "follower", store, f"on port {server.port}")
    session = open_session(
        transport,
        lambda timeout: accept_follower(server, timeout),
        hashlib.sha256(mine.nonce + theirs.nonce).digest(),
        dialer=False,
        liveness=cfg.peer.liveness,
        reliable=cfg.peer.reliable,
    )
    key = session_mac_key(cfg.job.id, mine.nonce, theirs.nonce)
    try:
        result = _train(party, session, key, start, extra, shown)
        expect(session.recv(cfg.peer.step_timeout), "finish")
        session.send(pb.Envelope(finish=pb.Finish(steps=result.steps)))
    except CvflError as exc:
        session.abort(exc)
        reraise(exc, "follower", store, f"on port {server.port}")
    session.close(drain=2.0)
    early.export_chosen(party, result, cut_spec(party))
    return result


def _train(
    party: Party,
    session: AnySession,
    key: bytes,
    start: int,
    extra: dict[str, Any],
    shown: tuple[Progress, threading.Event | None, Tracker],
) -> TrainResult:
    progress, stop, tracker = shown
    guard = label_guard(party, extra.get("privacy"))
    labels, truth = guard.training_labels(), torch.from_numpy(guard.true_labels)
    result = TrainResult(role="leader", steps=start, seconds=0.0)
    result.history = list(extra.get("history", []))
    result.examples = int(extra.get("examples", 0))
    clock = CheckpointClock(party.cfg.train.checkpoint_every, party.cfg.train.checkpoint_every_s)
    progress.start(party.schedule.total_steps, "leader", done=start)
    preload_backend()  # the held-out metrics' import is not training time
    timer = RunClock()
    # Each worker's share of every step's loss; worker 0 holds the whole party's once folded.
    saved = [float(v) for v in extra.get("losses", [])]
    losses = saved if party.is_root else [0.0] * len(saved)
    window = Window(party, clock, start)
    _begin(party, session, (key, truth), result, window)
    stopping = party.cfg.train.early_stopping
    while (step := window.take()) is not None:
        check_stop(stop, "leader", result.steps)  # between steps: no checkpoint in flight
        save = window.save(step)
        root_saves = save and party.is_root
        losses.append(_train_step(party, session, key, (step, window), (labels, guard), root_saves))
        result.steps, result.examples = step.number, result.examples + len(step.rows)
        result.session_examples += len(step.rows)
        progress.step(step.number, losses[-1] * party.workers)
        if step.ends_epoch:
            result.metrics = evaluate_remote(party, session, key, truth)
            progress.evaluated(step.number, result.metrics)
            whole, _ = fold_losses(party, losses)
            result.history.append(
                _epoch_record(step.epoch, step.number, whole, result.metrics, party.target)
            )
            tracker.log_metrics(epoch_metrics(result.history[-1]), step.number)
            losses = []
        if save:
            clock.saved()
            whole, losses = fold_losses(party, losses)
            if party.is_root:
                state = {"history": result.history, "examples": result.examples, "losses": whole}
                state["privacy"] = guard.state()
                _checkpoint(party, session, step.number, state)
        if stopping and step.ends_epoch:
            if _epoch_decision(party, session, result, window.peek() is None):
                break
            window.fill(session)
    timer.stop(result)
    result.reconnects = session.reconnects
    sched = party.schedule
    result.privacy = guard.summary(math.ceil(sched.total_steps / max(sched.steps_per_epoch, 1)))
    return result


def _begin(
    party: Party,
    session: AnySession,
    scoring: tuple[bytes, torch.Tensor],
    result: TrainResult,
    window: Window,
) -> None:
    """Start (or resume) the loop: assign the first steps the window allows.

    A checkpoint that already ends the job is evaluated again. With early stopping, a resume
    at an evaluated epoch end sends that epoch's decision again (the follower may not have had
    it) and assigns nothing more if it stops there.
    """
    start = result.steps
    last = window.peek() is None
    if last and start >= party.schedule.total_steps:
        result.metrics = evaluate_again(party, session, *scoring, start)
    history = result.history
    resumed_at_epoch_end = bool(history) and history[-1]["step"] == start
    stopping = party.cfg.train.early_stopping and resumed_at_epoch_end
    if stopping and _epoch_decision(party, session, result, last):
        window.stopped()
        return
    window.fill(session)


def _epoch_decision(party: Party, session: AnySession, result: TrainResult, last: bool) -> bool:
    """Decide on the newest evaluated epoch, keep the best state and tell the follower.

    Returns:
        Whether training stops here.
    """
    train = party.cfg.train
    metric, patience = train.early_stopping_metric, train.early_stopping_patience
    decision = early.decide(metric, patience, result.history, last)
    if decision.best_step == decision.step:
        early.save_best(party, decision.step)
    session.send(decision.message())
    result.best_step = decision.best_step
    result.stopped_early = decision.stop and not last
    best = next(r for r in result.history if r["step"] == decision.best_step)
    values = {k.removeprefix("val_"): v for k, v in best.items() if k.startswith("val_")}
    rows = result.metrics.rows if result.metrics else 0
    result.metrics = replace(Metrics.from_json(party.cfg.model.task, values), rows=rows)
    return decision.stop


def label_guard(party: Party, state: dict[str, Any] | None) -> LabelGuard:
    """The ``[privacy]`` guard of this worker, resumed from a checkpoint's ``state``."""
    table, cfg = party.table, party.cfg
    dtype = label_dtype(cfg.model)
    truth = table.labels.astype(dtype) if table.labels is not None else np.zeros(0, dtype)
    return LabelGuard(
        cfg.privacy,
        cfg.job.seed,
        party.worker,
        truth,
        party.schedule.train_mask,
        state,
        audited=party.is_root and cfg.model.task == "binary",  # the audit scores 0/1 labels
    )


def _checkpoint(party: Party, session: AnySession, step: int, state: dict[str, Any]) -> None:
    """Write ours, wait for the follower's digest, commit, and send ours back."""
    digest = write_checkpoint(party, step, state)
    envelope = session.recv(party.cfg.peer.step_timeout)
    expect(envelope, "checkpoint_done")
    done = envelope.checkpoint_done
    if done.step != step:
        raise ProtocolError(mismatch("checkpoint step", step, done.step), code="protocol.step")
    checkpoint_store(party).commit(step, digest, bytes(done.digest))
    session.send(pb.Envelope(checkpoint_done=pb.CheckpointDone(step=step, digest=digest)))


def _train_step(
    party: Party,
    session: AnySession,
    key: bytes,
    steps: tuple[Step, Window],
    labels: tuple[torch.Tensor, LabelGuard],
    save: bool,
) -> float:
    """Train this worker's block of a step; return its share of the step's mean loss.

    The next steps' assignments (:class:`~cvfl.train.pipeline.Window`) go out with this step's
    gradient, before the optimiser step, so the follower's next forward pass overlaps the
    leader's update; the leader's own tower runs forward before the activations arrive and
    backward after the gradient left (:mod:`cvfl.train.towers`).
    """
    step, window = steps
    number, rows = step.number, party.my_rows(step.rows)
    ids, inputs = party.batch(rows, step=True)
    tower = start_own(party, inputs)  # runs while the follower computes its activations
    envelope = session.recv(party.cfg.peer.step_timeout)
    expect(envelope, "forward")
    fwd = envelope.forward
    check_batch("train", number, fwd.step, fwd.ids_mac, batch_mac(key, number, TRAIN, ids))
    wire = wire_dtype(party.cfg.train.wire_dtype)
    act = single_tensor(fwd, len(rows), party.cfg.model.cut_width, wire).to(party.device)
    act.requires_grad_(True)
    # Summed over the block and scaled so that DDP's average over the N workers is the mean
    # over the whole step: N workers train exactly what one worker would.
    targets, guard = labels
    scale = party.workers / len(step.rows)
    with drawing_from(party.rng):  # the step's draws: the party's, not the caller's
        logits = party.trainable(inputs, act) if tower is None else tower.logits(act)
        loss = task_loss(party.cfg.model, logits, targets[rows].to(party.device), "sum") * scale
        party.optimizer.zero_grad()
        act_grad = _backward(loss, act, tower)
    grad = guard.protect(number, step.epoch, rows, act_grad.cpu())  # [privacy]: defence, audit
    message = backward_message(number, key, ids, f"{party.cfg.model.cut_name}.grad", grad, wire)
    message.backward.checkpoint = save
    session.send(message)
    window.sent(step, session)
    if tower is not None:
        with drawing_from(party.rng):
            tower.finish()  # the own tower's backward, while the follower runs its own
    party.optimizer.step()
    return float(loss.detach()) / party.workers


def _backward(loss: torch.Tensor, act: torch.Tensor, tower: OwnTower | None) -> torch.Tensor:
    """The gradient on the follower's activations (the own tower's backward waits, if split)."""
    if tower is not None:
        return tower.top_backward(loss, act)
    loss.backward()  # type: ignore[no-untyped-call]
    assert act.grad is not None
    return act.grad


def evaluate_again(
    party: Party, session: AnySession, key: bytes, labels: torch.Tensor, step: int
) -> Metrics:
    """Score the held-out rows once more: the resumed checkpoint already ends the job."""
    log.info(
        "the checkpoint of step %s already ends the job's %s steps: evaluating it again",
        step,
        party.schedule.total_steps,
    )
    return evaluate_remote(party, session, key, labels)


def evaluate_remote(party: Party, session: AnySession, key: bytes, labels: torch.Tensor) -> Metrics:
    """Score the held-out rows with the follower's activations; return the metrics."""
    outputs: list[torch.Tensor] = []
    wire = wire_dtype(party.cfg.train.wire_dtype)
    party.model.eval()
    with torch.no_grad():
        for index, rows in party.my_eval_batches():
            envelope = session.recv(party.cfg.peer.step_timeout)
            expect(envelope, "forward")
            fwd = envelope.forward
            ids, inputs = party.batch(rows)
            check_batch("eval", index, fwd.step, fwd.ids_mac, batch_mac(key, index, EVAL, ids))
            act = single_tensor(fwd, len(rows), party.cfg.model.cut_width, wire)
            outputs.append(party.model(inputs, act.to(party.device)).cpu())
        if not outputs:  # fewer held-out batches than workers
            none = party.schedule.holdout_rows[:0]
            width = party.cfg.model.cut_width
            act = torch.zeros(0, width, device=party.device)
            outputs.append(party.model(party.inputs(none), act).cpu())
    party.model.train()
    holdout = party.schedule.holdout_rows
    scores = gather_scores(party, torch.cat(outputs))
    return held_out_metrics(party.cfg.model, party.target, labels[holdout].numpy(), scores.numpy())


def _epoch_record(
    epoch: int, step: int, losses: list[float], metrics: Metrics, target: TargetScale | None
) -> dict[str, float]:
    """One epoch of the history: its training loss and every held-out metric (``val_<name>``).

    ``val_loss`` is the held-out log-loss of a classifier and the held-out MSE of a regressor
    (in training units: of the scaled target when ``target`` scales it).
    """
    record: dict[str, float] = {
        "epoch": epoch,
        "step": step,
        "train_loss": float(np.mean(losses)) if losses else float("nan"),
        "val_loss": validation_loss(metrics, target),
    }
    return record | {f"val_{name}": value for name, value in metrics.as_dict().items()}
