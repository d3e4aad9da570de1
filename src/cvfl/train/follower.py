"""The follower's loop: send cut-layer activations, apply the gradients the leader returns.

It checkpoints when the leader says so, redials after a cut, and survives a leader that restarts
by renegotiating from the newest checkpoint both sides hold.
"""

from __future__ import annotations

import hashlib
import threading

import numpy as np
import torch

from cvfl.bridge.handshake import follower_handshake
from cvfl.bridge.link import Link, expect
from cvfl.bridge.reliable import AnySession, Connect, PeerRestarted, open_session
from cvfl.bridge.security import ChannelSecurity
from cvfl.bridge.serde import TensorSpec, dtype_name
from cvfl.data.ids import batch_mac, session_mac_key
from cvfl.errors import CvflError, PeerUnavailableError, ProtocolError, mismatch
from cvfl.logs import get_logger
from cvfl.train import early
from cvfl.train.party import (
    NoProgress,
    Party,
    Progress,
    checkpoint_store,
    restore_to,
    resumable_checkpoints,
    write_checkpoint,
)
from cvfl.train.peers import NOTICE_WINDOW, dial_leader, reraise, tell_leader
from cvfl.train.pipeline import Ahead
from cvfl.train.recovery import resume_step
from cvfl.train.result import RunClock, TrainResult
from cvfl.train.rng import drawing_from
from cvfl.train.scaleout import restart_refusal, synchronise
from cvfl.train.schedule import Step
from cvfl.train.steps import (
    EVAL,
    TRAIN,
    assigned_rows,
    check_batch,
    forward_message,
    single_tensor,
    wire_dtype,
)
from cvfl.train.stop import check_stop
from cvfl.wire import bridge_pb2 as pb

log = get_logger(__name__)


def run_follower(
    party: Party,
    security: ChannelSecurity,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> TrainResult:
    """Dial the leader, train the job and export the follower's half.

    ``stop``: set it to end the loop between steps (:mod:`cvfl.train.stop`).
    """
    peer = party.peer

    def connect(timeout: float) -> Link:  # a redial shows where and how long is left
        return dial_leader(security, peer, timeout)

    shown = progress or NoProgress()
    try:
        try:
            resumable_checkpoints(party)  # refuse a checkpoint of another job before dialling
        except CvflError as exc:
            tell_leader(security, peer, exc, min(peer.connect_timeout, NOTICE_WINDOW))
            raise
        transport = dial_leader(security, peer, peer.connect_timeout)
        while True:
            try:
                return _follow(party, transport, connect, (shown, stop))
            except PeerRestarted as restart:
                if party.workers > 1:
                    raise restart_refusal("leader", party) from None
                log.warning("the leader restarted: agreeing again where both sides resume")
                transport = restart.transport
    finally:
        shown.finish()


def cut_spec(party: Party) -> tuple[TensorSpec, ...]:
    """The cut layer this follower's model produces (probed on one row, its draws thrown away)."""
    with torch.no_grad(), drawing_from(party.fresh_rng()):
        out = party.model(party.inputs(np.array([party.schedule.first_train_row()])))
    return (TensorSpec(party.cfg.model.cut_name, dtype_name(out.dtype), tuple(out.shape[1:])),)


class _Pending:
    """Checkpoints written but not yet committed (waiting for the leader's digest)."""

    def __init__(self, party: Party) -> None:
        self.party = party
        self.digests: dict[int, bytes] = {}

    def receive(self, session: AnySession, timeout: float) -> pb.Envelope:
        """The next message, committing checkpoints as the leader's digests arrive."""
        while True:
            envelope = session.recv(timeout)
            if envelope.WhichOneof("body") != "checkpoint_done":
                return envelope
            done = envelope.checkpoint_done
            mine = self.digests.pop(done.step, None)
            if mine is not None:
                checkpoint_store(self.party).commit(done.step, mine, bytes(done.digest))


def _follow(
    party: Party,
    transport: Link,
    connect: Connect,
    shown: tuple[Progress, threading.Event | None],
) -> TrainResult:
    cfg = party.cfg
    cut = cut_spec(party)
    store = checkpoint_store(party)
    try:
        mine = party.hello(cut, resumable_checkpoints(party))
        theirs = follower_handshake(transport, mine, cfg.peer.connect_timeout)
        start = resume_step(mine.checkpoints, theirs.checkpoints, "leader")
        restore_to(party, start, mine.checkpoints)
        synchronise(party, start)
    except CvflError as exc:
        transport.abort(exc)
        reraise(exc, "leader", store, transport.peer)
    session = open_session(
        transport,
        connect,
        hashlib.sha256(theirs.nonce + mine.nonce).digest(),
        dialer=True,
        liveness=cfg.peer.liveness,
        reliable=cfg.peer.reliable,
    )
    key = session_mac_key(cfg.job.id, theirs.nonce, mine.nonce)
    # One record of uncommitted checkpoints: the leader's digest for the last one may arrive
    # only while we wait for its Finish.
    pending = _Pending(party)
    try:
        result = _train(party, session, pending, key, (start, cut), shown)
        session.send(pb.Envelope(finish=pb.Finish(steps=result.steps)))
        _await_finish(party, session, pending)
    except CvflError as exc:
        session.abort(exc)
        reraise(exc, "leader", store, session.transport.peer)
    session.close(drain=0.5)
    early.export_chosen(party, result, cut)
    return result


def _train(
    party: Party,
    session: AnySession,
    pending: _Pending,
    key: bytes,
    begin: tuple[int, tuple[TensorSpec, ...]],
    shown: tuple[Progress, threading.Event | None],
) -> TrainResult:
    cfg = party.cfg
    (start, cut), (progress, stop) = begin, shown
    width = cut[0].shape[0] if cut[0].shape else 1
    result = TrainResult(role="follower", steps=start, seconds=0.0)
    progress.start(party.schedule.total_steps, "follower", done=start)
    timer = RunClock()
    train_mask = party.schedule.train_mask
    if start >= party.schedule.total_steps:  # the checkpoint already ends the job
        send_eval(party, session, key)
    stopping, stopped = cfg.train.early_stopping, False
    steps, ahead = party.schedule.steps(start), Ahead(party)
    wire = wire_dtype(cfg.train.wire_dtype)
    while result.steps < party.schedule.total_steps:
        if not pending.digests and not ahead:  # no checkpoint or gradient in flight
            check_stop(stop, "follower", result.steps)
        envelope = pending.receive(session, cfg.peer.step_timeout)
        kind = envelope.WhichOneof("body")
        if stopping and kind == "epoch_decision" and not ahead:
            if _decided(party, envelope, result):
                stopped = True
                break
        elif kind == "assign":
            step = next(steps, None)
            _forward(party, session, (key, wire), ahead, envelope.assign, step, train_mask)
        else:
            expect(envelope, "backward")
            step = _backward(party, session, (key, wire, width), ahead, envelope.backward, pending)
            _count(result, step)
            progress.step(result.steps, None)
    if stopping and not stopped:  # the last epoch's decision
        envelope = pending.receive(session, cfg.peer.step_timeout)
        expect(envelope, "epoch_decision")
        _decided(party, envelope, result)
    timer.stop(result)
    result.reconnects = session.reconnects
    return result


def _forward(
    party: Party,
    session: AnySession,
    keys: tuple[bytes, torch.dtype],
    ahead: Ahead,
    assign: pb.Assign,
    step: Step | None,
    train_mask: np.ndarray,
) -> None:
    """Forward the rows the leader assigned for ``step``, the next step of the schedule."""
    key, wire = keys
    if step is None:
        raise ProtocolError(
            mismatch("assigned step", f"at most {party.schedule.total_steps}", assign.step),
            code="protocol.step",
        )
    rows = assigned_rows(assign, step.number, len(step.rows), train_mask)
    ids, inputs = party.batch(rows, step=True)
    act = ahead.forward(step, rows, ids, inputs)
    name = party.cfg.model.cut_name
    session.send(forward_message(step.number, TRAIN, key, ids, name, act, wire))


def _backward(
    party: Party,
    session: AnySession,
    keys: tuple[bytes, torch.dtype, int],
    ahead: Ahead,
    bwd: pb.Backward,
    pending: _Pending,
) -> Step:
    """Apply the gradient that arrived to the oldest forwarded step; evaluate and checkpoint.

    Returns:
        The step whose gradient was applied.
    """
    key, wire, width = keys
    oldest = ahead.oldest(bwd.step)
    expected = batch_mac(key, oldest.step.number, TRAIN, oldest.ids)
    check_batch("train", oldest.step.number, bwd.step, bwd.ids_mac, expected)
    grad = single_tensor(bwd, len(oldest.rows), width, wire).to(party.device)
    step = ahead.apply(grad).step
    if (step.ends_epoch or bwd.checkpoint) and ahead:  # the leader drains the pipeline first
        what = f"steps forwarded ahead at the epoch end or checkpoint of step {step.number}"
        raise ProtocolError(mismatch(what, 0, len(ahead)), code="protocol.staleness")
    if step.ends_epoch:
        send_eval(party, session, key)
    if bwd.checkpoint:
        digest = write_checkpoint(party, step.number, {})
        pending.digests[step.number] = digest
        done = pb.CheckpointDone(step=step.number, digest=digest)
        session.send(pb.Envelope(checkpoint_done=done))
    return step


def _count(result: TrainResult, step: Step) -> None:
    """Count ``step`` as trained."""
    result.steps, result.examples = step.number, result.examples + len(step.rows)
    result.session_examples += len(step.rows)


def _decided(party: Party, envelope: pb.Envelope, result: TrainResult) -> bool:
    """Act on the leader's epoch decision: keep the best state; return whether to stop."""
    decision = early.received(envelope, result.steps)
    if decision.best_step == decision.step:
        early.save_best(party, decision.step)
    result.best_step = decision.best_step
    result.stopped_early = decision.stop and decision.step < party.schedule.total_steps
    return decision.stop


def _await_finish(party: Party, session: AnySession, pending: _Pending) -> None:
    """Wait for the leader's Finish; if it is gone after every step was answered, carry on."""
    try:
        expect(pending.receive(session, party.cfg.peer.step_timeout), "finish")
    except PeerUnavailableError as exc:
        log.warning("the leader left before confirming the end (%s); every step was answered", exc)


def send_eval(party: Party, session: AnySession, key: bytes) -> None:
    """Send the activations of the held-out rows for the leader to score."""
    party.model.eval()
    name, wire = party.cfg.model.cut_name, wire_dtype(party.cfg.train.wire_dtype)
    with torch.no_grad():
        for index, rows in party.my_eval_batches():
            ids, inputs = party.batch(rows)
            act = party.model(inputs)
            session.send(forward_message(index, EVAL, key, ids, name, act, wire))
    party.model.train()
