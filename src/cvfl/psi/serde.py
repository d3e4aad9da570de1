"""Pure conversions between PSI messages and their protobuf frames."""

from __future__ import annotations

from dataclasses import dataclass

from cvfl.errors import (
    MAX_PEER_REASON,
    AlignmentError,
    CvflError,
    printable,
    reason_for_peer,
)
from cvfl.wire import psi_pb2

PROTOCOL_VERSION = 3  # 2: the hello names the ECDH group; 3: nonce and resume (ECDH)
NONCE_BYTES = 16
SESSION_BYTES = 32


@dataclass(frozen=True)
class Resume:
    """An interrupted ECDH session the sender continues: its id and what each side saved.

    ``own_answered`` (K) counts the sender's batches whose answers it saved, ``peer_answered``
    (J) the receiver's batches it answered and saved (both a prefix, from batch 0).
    """

    session: bytes
    own_answered: int
    peer_answered: int


@dataclass(frozen=True)
class PsiHello:
    """What a party announces before sending any point (``group`` is empty in fast mode)."""

    job_id: str
    role: str
    count: int
    mode: str
    batch_size: int
    group: str = ""
    version: int = PROTOCOL_VERSION
    terms: bytes = b""  # the sender's job terms (canonical JSON; empty on a plaintext channel)
    nonce: bytes = b""  # ECDH: 16 random bytes (the session id is made of both sides')
    resume: Resume | None = None  # ECDH: the session this side continues (None: fresh)


def hello_to_proto(hello: PsiHello) -> psi_pb2.PsiFrame:
    """Wrap a hello in a frame."""
    return psi_pb2.PsiFrame(
        hello=psi_pb2.PsiHello(
            version=hello.version,
            job_id=hello.job_id,
            role=hello.role,
            count=hello.count,
            mode=hello.mode,
            batch_size=hello.batch_size,
            group=hello.group,
            terms=hello.terms,
            nonce=hello.nonce,
            resume=_resume_to_proto(hello.resume),
        )
    )


def _resume_to_proto(resume: Resume | None) -> psi_pb2.PsiResume | None:
    if resume is None:
        return None
    return psi_pb2.PsiResume(
        session=resume.session,
        own_answered=resume.own_answered,
        peer_answered=resume.peer_answered,
    )


def hello_from_proto(msg: psi_pb2.PsiHello) -> PsiHello:
    """Read a hello frame's body."""
    return PsiHello(
        job_id=msg.job_id,
        role=msg.role,
        count=msg.count,
        mode=msg.mode,
        batch_size=msg.batch_size,
        group=msg.group,
        version=msg.version,
        terms=bytes(msg.terms),
        nonce=bytes(msg.nonce),
        resume=_resume_from_proto(msg),
    )


def _resume_from_proto(msg: psi_pb2.PsiHello) -> Resume | None:
    if not msg.HasField("resume"):
        return None
    r = msg.resume
    return Resume(bytes(r.session), r.own_answered, r.peer_answered)


def batch_to_proto(index: int, points: bytes) -> psi_pb2.PsiFrame:
    """A batch of the sender's singly-blinded points."""
    return psi_pb2.PsiFrame(batch=psi_pb2.PsiBatch(index=index, points=points))


def return_to_proto(index: int, points: bytes) -> psi_pb2.PsiFrame:
    """The doubly-blinded points for the peer's batch ``index``."""
    return psi_pb2.PsiFrame(ret=psi_pb2.PsiReturn(index=index, points=points))


def done_to_proto(sent: int, returned: int) -> psi_pb2.PsiFrame:
    """The sender's end marker with its totals."""
    return psi_pb2.PsiFrame(done=psi_pb2.PsiDone(sent=sent, returned=returned))


def abort_to_proto(error: CvflError) -> psi_pb2.PsiFrame:
    """Tell the peer why this side stops: the code and a short reason (see :func:`abort_reason`)."""
    return psi_pb2.PsiFrame(abort=psi_pb2.PsiAbort(code=error.code, message=abort_reason(error)))


def abort_reason(error: CvflError) -> str:
    """What the peer is told about ``error``: never an id, a local path or a row number.

    Refusals of what the peer sent (codes in :data:`PEER_VISIBLE`) are described in full, cut
    to :data:`~cvfl.errors.MAX_PEER_REASON` characters; any other error (a local data,
    configuration, sealing or internal failure, duplicate ids) only by its kind.
    """
    if error.code in _LOCAL_REASONS:
        return f"{_LOCAL_REASONS[error.code]} (details in its log)"
    visible = isinstance(error, AlignmentError) and error.code in PEER_VISIBLE
    return reason_for_peer(error, visible=visible)


def abort_from_proto(msg: psi_pb2.PsiAbort, peer_role: str = "peer") -> AlignmentError:
    """Turn the peer's abort into the local error (its code and reason shortened, printable).

    The code is ``psi.peer_abort``, except ``psi.resume_mismatch``, which both sides act on
    (they drop their saved state and start over once).
    """
    code, reason = printable(msg.code, 64), printable(msg.message, MAX_PEER_REASON)
    kept = code if code == "psi.resume_mismatch" else "psi.peer_abort"
    return AlignmentError(f"the {peer_role} stopped: [{code}] {reason}", code=kept)


# Refusals of the peer's own messages: their text names only what the peer sent.
PEER_VISIBLE = frozenset(
    {
        "psi.hello",
        "psi.terms",
        "psi.protocol",
        "psi.count",
        "psi.bad_point",
        "psi.bad_tag",
        "psi.bad_key_share",
        "psi.fast_refused",
        "psi.peer_too_large",
        "psi.peer_lost",
        "psi.timeout",
        "psi.resume_mismatch",
    }
)
_LOCAL_REASONS = {
    "psi.duplicates": "its table repeats ids",
    "psi.internal": "an internal failure",
}


@dataclass(frozen=True)
class KeyShare:
    """Fast mode: one party's X25519 public key, RA-TLS certificate (DER) and share signature.

    ``certificate`` and ``signature`` are empty on an unattested (plaintext) channel.
    """

    public_key: bytes
    certificate: bytes
    signature: bytes


def key_share_to_proto(share: KeyShare) -> psi_pb2.PsiFrame:
    """Wrap a key share in a frame."""
    return psi_pb2.PsiFrame(
        key=psi_pb2.PsiKeyShare(
            public_key=share.public_key, certificate=share.certificate, signature=share.signature
        )
    )


def key_share_from_proto(msg: psi_pb2.PsiKeyShare) -> KeyShare:
    """Read a key share frame's body."""
    return KeyShare(msg.public_key, msg.certificate, msg.signature)


def announce_to_proto(count: int) -> psi_pb2.PsiFrame:
    """Fast mode: how many keyed hashes the sender will send."""
    return psi_pb2.PsiFrame(announce=psi_pb2.PsiAnnounce(count=count))
