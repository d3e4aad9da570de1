"""The session hello: both sides declare the session and refuse any mismatch, on both sides."""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

from cvfl.attestation.terms import declared_terms_problems, declared_terms_refusal
from cvfl.bridge.fields import FieldsError, decode_fields, differences, show
from cvfl.bridge.link import Link, expect
from cvfl.bridge.serde import Hello, TensorSpec, hello_from_proto, hello_to_proto
from cvfl.errors import ProtocolError, mismatch
from cvfl.logs import get_logger
from cvfl.privacy.config import wire_mismatches
from cvfl.roles import ROLES
from cvfl.wire import bridge_pb2 as pb

log = get_logger(__name__)

PROTOCOL_VERSION = 1
# Training terms the hello compares through its own fields (named there with both values).
COMPARED_APART = frozenset({"job_id", "seed", "batch_size", "workers", "rows"})


def _short(value: bytes) -> str:
    return value.hex()[:16] + "…" if value else "(none)"


class Declared(Protocol):
    """What every hello declares (training's and scoring's)."""

    @property
    def role(self) -> str: ...  # noqa: D102
    @property
    def protocol_version(self) -> int: ...  # noqa: D102
    @property
    def job_id(self) -> str: ...  # noqa: D102
    @property
    def batch_size(self) -> int: ...  # noqa: D102
    @property
    def num_rows(self) -> int: ...  # noqa: D102
    @property
    def cut_layer(self) -> tuple[TensorSpec, ...]: ...  # noqa: D102
    @property
    def id_order_fingerprint(self) -> bytes: ...  # noqa: D102


def declared_mismatches(
    mine: Declared,
    theirs: Declared,
    values: list[tuple[str, object, object]],
    digests: list[tuple[str, bytes, bytes]],
) -> list[str]:
    """Refusal phrases for the common fields plus the given values and digests that differ."""
    problems: list[str] = []
    if theirs.role == mine.role or theirs.role not in ROLES:
        other = "follower" if mine.role == "leader" else "leader"
        problems.append(mismatch("role", other, theirs.role))
    pairs: list[tuple[str, object, object]] = [
        ("protocol_version", mine.protocol_version, theirs.protocol_version),
        ("job_id", mine.job_id, theirs.job_id),
        ("batch_size", mine.batch_size, theirs.batch_size),
        ("num_rows", mine.num_rows, theirs.num_rows),
        *values,
    ]
    problems += [mismatch(name, a, b) for name, a, b in pairs if a != b]
    if mine.cut_layer != theirs.cut_layer:
        problems.append(
            mismatch(
                "cut_layer",
                "; ".join(s.describe() for s in mine.cut_layer),
                "; ".join(s.describe() for s in theirs.cut_layer),
            )
        )
    fingerprints = ("id_order_fingerprint", mine.id_order_fingerprint, theirs.id_order_fingerprint)
    for name, a, b in (fingerprints, *digests):
        if a != b:
            problems.append(mismatch(name, _short(a), _short(b)))
    return problems


def hello_mismatches(mine: Hello, theirs: Hello) -> list[str]:
    """Every field on which the peer's training hello disagrees with ours."""
    return declared_mismatches(
        mine,
        theirs,
        [
            ("seed", mine.seed, theirs.seed),
            ("workers", mine.workers, theirs.workers),
            ("worker", mine.worker, theirs.worker),
            *wire_mismatches(mine.privacy, theirs.privacy),
        ],
        [("schedule_digest", mine.schedule_digest, theirs.schedule_digest)],
    ) + terms_mismatches(mine.training_terms, theirs.training_terms)


def terms_mismatches(mine: bytes, theirs: bytes) -> list[str]:
    """The training terms (named values) on which the peer disagrees, each with both values.

    Fields the hello compares on its own (job id, seed, batch size, workers, rows) are not
    repeated.
    """
    if mine == theirs:
        return []
    if not theirs:
        return [mismatch("training_terms", "the peer's terms", "none (an older cvfl?)")]
    try:
        seen = decode_fields(theirs)
    except FieldsError as exc:
        return [mismatch("training_terms", "named plain values", f"malformed ({exc})")]
    expected = decode_fields(mine)
    return [
        mismatch(name, show(a), show(b))
        for name, a, b in differences(expected, seen)
        if name not in COMPARED_APART
    ]


def terms_refusal(link: Link, declared: bytes) -> ProtocolError | None:
    """Refuse a hello whose job terms are not exactly the ones the peer's evidence binds.

    On a channel that attests nothing (plaintext) there is nothing to compare with.
    """
    problems = declared_terms_problems(link.attested.terms, declared)
    if not problems:
        return None
    return ProtocolError(declared_terms_refusal(problems), code="protocol.terms")


def refuse_hello(link: Link, declared_terms: bytes, problems: list[str], what: str) -> None:
    """Refuse (and tell the peer) when the declared terms, then the hello fields, disagree.

    Raises:
        ProtocolError: ``protocol.terms`` or ``protocol.hello`` (``what`` names the hello).
    """
    refusal = terms_refusal(link, declared_terms)
    if refusal is None and problems:
        refusal = ProtocolError(f"{what} mismatch: " + "; ".join(problems), code="protocol.hello")
    if refusal is not None:
        link.abort(refusal)
        raise refusal


def _check(link: Link, mine: Hello, theirs: Hello) -> None:
    refuse_hello(link, theirs.terms, hello_mismatches(mine, theirs), "session hello")


def _send(link: Link, mine: Hello) -> None:
    link.send(pb.Envelope(hello=hello_to_proto(replace(mine, terms=link.own_terms))))


def leader_handshake(link: Link, mine: Hello, timeout: float) -> Hello:
    """Receive the follower's hello, check it, answer with ours (or an Abort naming the fields).

    A follower that still holds a session with a previous leader process opens with a Resume;
    it is told the session is unknown and then sends its hello.
    """
    envelope = link.recv(timeout)
    while envelope.WhichOneof("body") in ("resume", "heartbeat"):
        if envelope.WhichOneof("body") == "resume":
            link.put(pb.Envelope(resume=pb.Resume()))
        envelope = link.recv(timeout)
    expect(envelope, "hello")
    return leader_handshake_with(link, envelope, mine)


def follower_handshake(link: Link, mine: Hello, timeout: float) -> Hello:
    """Send our hello, then check the leader's answer (an Abort raises with its reasons)."""
    _send(link, mine)
    envelope = link.recv(timeout)
    while envelope.WhichOneof("body") in ("resume", "heartbeat"):
        envelope = link.recv(timeout)
    expect(envelope, "hello")
    theirs = hello_from_proto(envelope.hello)
    _check(link, mine, theirs)
    _log_versions(mine, theirs)
    return theirs


def leader_handshake_with(link: Link, first: pb.Envelope, mine: Hello) -> Hello:
    """Like :func:`leader_handshake`, when the follower's hello has already been read."""
    theirs = hello_from_proto(first.hello)
    _check(link, mine, theirs)
    _send(link, mine)
    _log_versions(mine, theirs)
    return theirs


def _log_versions(mine: Hello, theirs: Hello) -> None:
    if mine.software_version != theirs.software_version:
        log.warning(
            "peer runs cvfl %s, this side %s (same protocol %s)",
            theirs.software_version,
            mine.software_version,
            mine.protocol_version,
        )
