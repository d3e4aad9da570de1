"""One error hierarchy for cvfl, with stable codes and documented exit codes.

Every error carries a stable ``code`` (``"<concern>.<what>"``) that scripts can match on, and its
class carries the process exit code the CLI uses. Messages name what failed with the expected and
seen values, never raw features, labels, ids or keys.
"""

from __future__ import annotations

from typing import ClassVar


class CvflError(Exception):
    """Base of every error cvfl raises on purpose."""

    exit_code: ClassVar[int] = 1
    default_code: ClassVar[str] = "cvfl.error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code

    def __str__(self) -> str:
        return self.message


class ConfigError(CvflError):
    """A job file, policy or command-line option is invalid."""

    exit_code = 2
    default_code = "config.invalid"


class DataError(CvflError):
    """An input table is malformed (the message names file, column and row)."""

    exit_code = 3
    default_code = "data.invalid"


class ProtocolError(CvflError):
    """The peer disagrees on the session (hello mismatch, misaligned batch, bad message)."""

    exit_code = 4
    default_code = "protocol.mismatch"


class PeerStoppedError(ProtocolError):
    """The peer stopped and told this side why (its Abort): ``code`` is the peer's own code.

    ``reason`` is the peer's short reason, already cut and made printable.
    """

    def __init__(self, message: str, *, code: str | None = None, reason: str = "") -> None:
        super().__init__(message, code=code)
        self.reason = reason


class AttestationError(CvflError):
    """Evidence did not verify, or the policy refused the peer."""

    exit_code = 5
    default_code = "attestation.refused"


class SealingError(CvflError):
    """A sealed file failed to open (tampered, wrong key, wrong purpose) or could not be written."""

    exit_code = 6
    default_code = "sealing.failed"


class AlignmentError(CvflError):
    """Private set intersection failed (bad point, count mismatch, duplicate ids)."""

    exit_code = 7
    default_code = "psi.failed"


class PeerUnavailableError(CvflError):
    """The peer could not be reached, or went away and did not come back in time."""

    exit_code = 8
    default_code = "peer.unavailable"


class ModelError(CvflError):
    """A model factory, checkpoint or export does not fit the job."""

    exit_code = 9
    default_code = "model.invalid"


EXIT_CODES: dict[type[CvflError], int] = {
    cls: cls.exit_code
    for cls in (
        CvflError,
        ConfigError,
        DataError,
        ProtocolError,
        AttestationError,
        SealingError,
        AlignmentError,
        PeerUnavailableError,
        ModelError,
    )
}


_LOCAL_KINDS: tuple[tuple[type[CvflError], str], ...] = (
    (DataError, "a local data error"),
    (ConfigError, "a local configuration error"),
    (SealingError, "a local sealing error"),
    (ModelError, "a local model error"),
    (AttestationError, "an attestation refusal"),
    (PeerUnavailableError, "a connection failure"),
)
# Local refusals the peer can act on, said a little more precisely than by their kind.
_PEER_PHRASES: dict[str, str] = {
    "config.checkpoint_changed": "its newest checkpoint was written by another configuration "
    "of the job (it lists the changes and the ways on in its log)",
    "config.checkpoint_unknown": "its newest checkpoint records no configuration (written by an "
    "older cvfl; details in its log)",
}
MAX_PEER_REASON = 300


def printable(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, anything unprintable replaced (peer-supplied text)."""
    short = text if len(text) <= limit else text[:limit] + "…"
    return "".join(c if c.isprintable() else "?" for c in short)


def reason_for_peer(error: BaseException, *, visible: bool) -> str:
    """What the peer is told when ``error`` ends this party: never a local path, row or id.

    ``visible`` errors refuse something the peer itself sent (its hello, a message); their text
    names only the peer's and the agreed values and is told in full (cut to a few hundred
    characters). Any other error is named by its kind only.
    """
    if visible and isinstance(error, CvflError):
        return printable(error.message, MAX_PEER_REASON)
    if isinstance(error, CvflError) and error.code in _PEER_PHRASES:
        return _PEER_PHRASES[error.code]
    kind = next((k for cls, k in _LOCAL_KINDS if isinstance(error, cls)), "a local error")
    return f"{kind} (details in its log)"


def mismatch(what: str, expected: object, seen: object) -> str:
    """Format the standard refusal phrase naming a field with its expected and seen values."""
    return f"{what}: expected {expected}, seen {seen}"
