"""The predict hello: both sides declare their halves and scoring table; any mismatch stops both."""

from __future__ import annotations

from dataclasses import dataclass, replace

from cvfl.bridge.handshake import declared_mismatches, refuse_hello
from cvfl.bridge.link import Link, expect
from cvfl.bridge.serde import TensorSpec, spec_from_proto, spec_to_proto
from cvfl.errors import mismatch
from cvfl.logs import get_logger
from cvfl.wire import bridge_pb2 as pb

log = get_logger(__name__)

PREDICT_PROTOCOL_VERSION = 1


@dataclass(frozen=True)
class PredictHello:
    """What each side declares before scoring: its half, its rows, the session nonce."""

    protocol_version: int
    job_id: str
    role: str
    export_format: str
    software_version: str
    model_fingerprint: str
    trained_steps: int
    cut_layer: tuple[TensorSpec, ...]
    batch_size: int
    num_rows: int
    id_order_fingerprint: bytes
    nonce: bytes
    expected_peer_fingerprint: str = ""
    terms: bytes = b""


def hello_to_proto(hello: PredictHello) -> pb.PredictHello:
    """Encode a predict hello."""
    return pb.PredictHello(
        protocol_version=hello.protocol_version,
        job_id=hello.job_id,
        role=hello.role,
        export_format=hello.export_format,
        software_version=hello.software_version,
        model_fingerprint=hello.model_fingerprint,
        trained_steps=hello.trained_steps,
        cut_layer=[spec_to_proto(s) for s in hello.cut_layer],
        batch_size=hello.batch_size,
        num_rows=hello.num_rows,
        id_order_fingerprint=hello.id_order_fingerprint,
        nonce=hello.nonce,
        expected_peer_fingerprint=hello.expected_peer_fingerprint,
        terms=hello.terms,
    )


def hello_from_proto(msg: pb.PredictHello) -> PredictHello:
    """Decode a predict hello."""
    return PredictHello(
        protocol_version=msg.protocol_version,
        job_id=msg.job_id,
        role=msg.role,
        export_format=msg.export_format,
        software_version=msg.software_version,
        model_fingerprint=msg.model_fingerprint,
        trained_steps=msg.trained_steps,
        cut_layer=tuple(spec_from_proto(s) for s in msg.cut_layer),
        batch_size=msg.batch_size,
        num_rows=msg.num_rows,
        id_order_fingerprint=bytes(msg.id_order_fingerprint),
        nonce=bytes(msg.nonce),
        expected_peer_fingerprint=msg.expected_peer_fingerprint,
        terms=bytes(msg.terms),
    )


def predict_mismatches(mine: PredictHello, theirs: PredictHello) -> list[str]:
    """Every field on which the peer's predict hello disagrees with ours, as refusal phrases."""
    problems = declared_mismatches(
        mine,
        theirs,
        [
            ("export_format", mine.export_format, theirs.export_format),
            ("software_version", mine.software_version, theirs.software_version),
            ("trained_steps", mine.trained_steps, theirs.trained_steps),
        ],
        [],
    )
    pinned = mine.expected_peer_fingerprint
    if pinned and pinned != theirs.model_fingerprint:
        problems.append(mismatch("peer model_fingerprint", pinned, theirs.model_fingerprint))
    pinned = theirs.expected_peer_fingerprint
    if pinned and pinned != mine.model_fingerprint:
        problems.append(
            mismatch("own model_fingerprint (pinned by the peer)", pinned, mine.model_fingerprint)
        )
    return problems


def _check(link: Link, mine: PredictHello, theirs: PredictHello) -> None:
    refuse_hello(link, theirs.terms, predict_mismatches(mine, theirs), "predict hello")


def _receive(link: Link, timeout: float) -> PredictHello:
    envelope = link.recv(timeout)
    expect(envelope, "predict_hello")
    return hello_from_proto(envelope.predict_hello)


def _send(link: Link, mine: PredictHello) -> None:
    declared = replace(mine, terms=link.own_terms)
    link.send(pb.Envelope(predict_hello=hello_to_proto(declared)))


def leader_predict_handshake(link: Link, mine: PredictHello, timeout: float) -> PredictHello:
    """Receive the follower's hello, check it, answer with ours (or an Abort naming the fields)."""
    theirs = _receive(link, timeout)
    _check(link, mine, theirs)
    _send(link, mine)
    return theirs


def follower_predict_handshake(link: Link, mine: PredictHello, timeout: float) -> PredictHello:
    """Send our hello, then check the leader's answer (an Abort raises with its reasons)."""
    _send(link, mine)
    theirs = _receive(link, timeout)
    _check(link, mine, theirs)
    return theirs
