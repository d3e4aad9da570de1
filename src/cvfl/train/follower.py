"""The follower's loop: send cut-layer activations, apply the gradients the leader returns."""

from __future__ import annotations

import time

import torch

from cvfl.bridge.handshake import follower_handshake
from cvfl.bridge.link import Link, dial, expect
from cvfl.bridge.security import ChannelSecurity
from cvfl.bridge.serde import TensorSpec, dtype_name
from cvfl.data.ids import batch_mac, session_mac_key
from cvfl.errors import CvflError, PeerUnavailableError
from cvfl.logs import get_logger
from cvfl.train.party import NoProgress, Party, Progress, export, features, save_checkpoint
from cvfl.train.result import TrainResult
from cvfl.train.steps import EVAL, TRAIN, check_batch, forward_message, single_tensor
from cvfl.wire import bridge_pb2 as pb

log = get_logger(__name__)


def run_follower(
    party: Party, security: ChannelSecurity, progress: Progress | None = None
) -> TrainResult:
    """Dial the leader, train the job and export the follower's half."""
    link = dial(security, leader_address(party), party.cfg.peer.connect_timeout)
    try:
        return _follow(party, link, progress or NoProgress())
    except CvflError as exc:
        link.abort(exc)
        raise
    finally:
        link.shutdown()


def leader_address(party: Party) -> str:
    """``[peer] connect``, with the port read from ``port_file`` when one is configured.

    A leader that listens on port 0 writes its port to that file (same machine only).
    """
    peer = party.cfg.peer
    if peer.port_file is None:
        return peer.connect
    deadline = time.monotonic() + peer.connect_timeout
    while not peer.port_file.exists():
        if time.monotonic() > deadline:
            raise PeerUnavailableError(
                f"{peer.port_file}: the leader wrote no port within {peer.connect_timeout:.0f} s",
                code="peer.unreachable",
            )
        time.sleep(0.05)
    host = peer.connect.rsplit(":", 1)[0]
    return f"{host}:{peer.port_file.read_text().strip()}"


def cut_spec(party: Party) -> tuple[TensorSpec, ...]:
    """The cut layer this follower's model produces (probed on one row)."""
    with torch.no_grad():
        out = party.model(features(party.table, party.schedule.train_rows[:1]))
    return (TensorSpec(party.cfg.model.cut_name, dtype_name(out.dtype), tuple(out.shape[1:])),)


def _follow(party: Party, link: Link, progress: Progress) -> TrainResult:
    cfg = party.cfg
    cut = cut_spec(party)
    mine = party.hello(cut)
    theirs = follower_handshake(link, mine, cfg.peer.connect_timeout)
    key = session_mac_key(cfg.job.id, theirs.nonce, mine.nonce)
    width = cut[0].shape[0] if cut[0].shape else 1
    result = TrainResult(role="follower", steps=0, seconds=0.0)
    progress.start(party.schedule.total_steps, "follower")
    started = time.perf_counter()
    for step in party.schedule.steps():
        ids = [party.table.ids[i] for i in step.rows]
        act = party.model(features(party.table, step.rows))
        link.send(forward_message(step.number, TRAIN, key, ids, cfg.model.cut_name, act))
        envelope = link.recv(cfg.peer.step_timeout)
        expect(envelope, "backward")
        bwd = envelope.backward
        check_batch(
            "train", step.number, bwd.step, bwd.ids_mac, batch_mac(key, step.number, TRAIN, ids)
        )
        grad = single_tensor(bwd.tensors, len(step.rows), width)
        party.optimizer.zero_grad()
        act.backward(grad)
        party.optimizer.step()
        result.steps, result.examples = step.number, result.examples + len(step.rows)
        progress.step(step.number, None)
        save_checkpoint(party, step.number)
        if step.ends_epoch:
            send_eval(party, link, key)
    result.seconds = time.perf_counter() - started
    link.send(pb.Envelope(finish=pb.Finish(steps=result.steps)))
    expect(link.recv(cfg.peer.step_timeout), "finish")
    export(party, result, cut)
    return result


def send_eval(party: Party, link: Link, key: bytes) -> None:
    """Send the activations of the held-out rows for the leader to score."""
    party.model.eval()
    with torch.no_grad():
        for index, rows in enumerate(party.schedule.eval_batches()):
            ids = [party.table.ids[i] for i in rows]
            act = party.model(features(party.table, rows))
            link.send(forward_message(index, EVAL, key, ids, party.cfg.model.cut_name, act))
    party.model.train()
