"""Two-party scoring over the bridge: the follower streams activations, the leader scores.

The follower sends one PHASE_PREDICT Forward per batch (with the keyed hash of the batch's ids,
as in training) and then a Finish; the leader answers only with its hello and a Finish, so the
follower learns nothing of the scores.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np
import torch

from cvfl.bridge.link import BridgeServer, ClientLink, Link, dial, expect
from cvfl.bridge.security import ChannelSecurity
from cvfl.data.ids import batch_mac, session_mac_key
from cvfl.errors import CvflError, PeerUnavailableError, ProtocolError, mismatch
from cvfl.fsutil import atomic_write_bytes
from cvfl.logs import get_logger
from cvfl.serve.hello import PredictHello, follower_predict_handshake, leader_predict_handshake
from cvfl.serve.prepare import PredictJob
from cvfl.serve.scores import scores_store, scores_table, write_scores
from cvfl.train.steps import check_batch, forward_message, single_tensor
from cvfl.wire import bridge_pb2 as pb

log = get_logger(__name__)
PREDICT = pb.PHASE_PREDICT


@dataclass
class PredictResult:
    """What one party's scoring run did (counts and sizes only; never data)."""

    role: str
    rows: int
    batches: int
    seconds: float
    bytes_sent: int
    bytes_received: int
    model_fingerprint: str
    peer_fingerprint: str
    output: str | None = None
    sealed: bool = False

    @property
    def rows_per_second(self) -> float:
        """Scoring throughput."""
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def write(self, job: PredictJob) -> None:
        """Write the JSON summary atomically."""
        data = asdict(self) | {"rows_per_second": round(self.rows_per_second, 1)}
        atomic_write_bytes(job.report_path, json.dumps(data, indent=2).encode() + b"\n")


def batches(rows: int, size: int) -> Iterator[np.ndarray]:
    """Consecutive row ranges of at most ``size`` rows."""
    for start in range(0, rows, size):
        yield np.arange(start, min(start + size, rows))


def _features(job: PredictJob, rows: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(job.table.features[rows])


def _result(job: PredictJob, link: Link, count: int, started: float, peer: str) -> PredictResult:
    return PredictResult(
        role=job.cfg.role,
        rows=job.table.rows,
        batches=count,
        seconds=time.perf_counter() - started,
        bytes_sent=link.bytes_sent,
        bytes_received=link.bytes_received,
        model_fingerprint=job.half.fingerprint,
        peer_fingerprint=peer,
    )


def run_predict_leader(job: PredictJob, security: ChannelSecurity) -> PredictResult:
    """Listen for the follower, score every row, write the scores (sealed unless asked)."""
    store = scores_store(job.keys, job.section.plaintext_scores)
    peer = job.cfg.peer.for_worker(0)
    server = BridgeServer(security, peer.listen, peer.port_file)
    try:
        link = server.accept(peer.connect_timeout)
        try:
            logits, result = _score(job, link)
            task = job.half.model.task
            table = scores_table(
                job.cfg.data.id_column, job.table.ids, logits, task, job.half.target
            )
            result.output = str(write_scores(store, job.section.output, table))
            result.sealed = store.sealed
            link.send(pb.Envelope(finish=pb.Finish(steps=result.batches)))
            link.close()
            if not link.wait_closed(peer.step_timeout):  # else stopping cuts the Finish off
                log.warning("the follower did not end its stream within %.0f s", peer.step_timeout)
        except CvflError as exc:
            link.abort(exc)
            raise
    finally:
        server.stop()
    result.write(job)
    return result


def _score(job: PredictJob, link: Link) -> tuple[torch.Tensor, PredictResult]:
    peer = job.cfg.peer.for_worker(0)
    mine = job.hello()
    theirs = leader_predict_handshake(link, mine, peer.connect_timeout)
    key = session_mac_key(job.cfg.job.id, mine.nonce, theirs.nonce)
    width = job.half.cut_layer[0].shape[0] if job.half.cut_layer[0].shape else 1
    started = time.perf_counter()
    outputs: list[torch.Tensor] = []
    with torch.no_grad():
        for index, rows in enumerate(batches(job.table.rows, job.section.batch_size)):
            fwd = _forward(link, peer.step_timeout)
            ids = [job.table.ids[i] for i in rows]
            check_batch(
                "predict", index, fwd.step, fwd.ids_mac, batch_mac(key, index, PREDICT, ids)
            )
            act = single_tensor(fwd, len(rows), width)
            outputs.append(job.half.module(_features(job, rows), act))
    envelope = link.recv(peer.step_timeout)
    expect(envelope, "finish")
    if envelope.finish.steps != len(outputs):
        raise ProtocolError(
            mismatch("predict batches", len(outputs), envelope.finish.steps),
            code="protocol.finish",
        )
    logits = torch.cat(outputs)
    return logits, _result(job, link, len(outputs), started, theirs.model_fingerprint)


def _forward(link: Link, timeout: float) -> pb.Forward:
    envelope = link.recv(timeout)
    expect(envelope, "forward")
    if envelope.forward.phase != PREDICT:
        raise ProtocolError(
            mismatch("forward phase", "PHASE_PREDICT", pb.Phase.Name(envelope.forward.phase)),
            code="protocol.phase",
        )
    return envelope.forward


def run_predict_follower(job: PredictJob, security: ChannelSecurity) -> PredictResult:
    """Dial the leader and stream this party's cut-layer activations for every row."""
    link, theirs = _greet(job, security)
    try:
        result = _feed(job, link, theirs)
    except CvflError as exc:
        link.abort(exc)
        raise
    finally:
        link.shutdown()
    result.write(job)
    return result


def _greet(
    job: PredictJob, security: ChannelSecurity
) -> tuple[ClientLink, tuple[PredictHello, bytes]]:
    """Dial and exchange hellos; redial while the port still serves the alignment step.

    Right after PSI the leader's alignment server may still hold the port for a moment; a
    stream it does not implement is retried until ``connect_timeout``.
    """
    peer = job.cfg.peer.for_worker(0)
    deadline = time.monotonic() + peer.connect_timeout
    while True:
        link = dial(security, peer.leader_address, max(1.0, deadline - time.monotonic()))
        mine = job.hello()
        try:
            theirs = follower_predict_handshake(link, mine, peer.connect_timeout)
            return link, (theirs, mine.nonce)
        except PeerUnavailableError as exc:
            link.shutdown()
            if "UNIMPLEMENTED" not in exc.message or time.monotonic() > deadline:
                raise
            log.debug("the leader's port does not serve the bridge yet; redialling")
            time.sleep(0.2)
        except CvflError as exc:
            link.abort(exc)
            link.shutdown()
            raise


def _feed(job: PredictJob, link: Link, greeted: tuple[PredictHello, bytes]) -> PredictResult:
    peer = job.cfg.peer.for_worker(0)
    theirs, nonce = greeted
    key = session_mac_key(job.cfg.job.id, theirs.nonce, nonce)
    name = job.half.cut_layer[0].name
    started = time.perf_counter()
    count = 0
    with torch.no_grad():
        for index, rows in enumerate(batches(job.table.rows, job.section.batch_size)):
            ids = [job.table.ids[i] for i in rows]
            act = job.half.module(_features(job, rows))
            link.send(forward_message(index, PREDICT, key, ids, name, act))
            count += 1
    link.send(pb.Envelope(finish=pb.Finish(steps=count)))
    envelope = link.recv(peer.step_timeout)
    expect(envelope, "finish")
    return _result(job, link, count, started, theirs.model_fingerprint)
