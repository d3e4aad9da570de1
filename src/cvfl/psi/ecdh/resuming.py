"""How an ECDH session starts or resumes (:class:`Plan`), and the saving of its progress.

Both hellos carry a nonce and, when the sender holds saved state, the session it continues
(:class:`cvfl.psi.serde.Resume`). A fresh session's id is SHA-256 of the leader's nonce and the
follower's. A session resumes only when both sides name the same id and the peer announces the
count and terms saved with it; otherwise both sides refuse with ``psi.resume_mismatch`` (the
runner drops the state and starts over once).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from cvfl.errors import AlignmentError, mismatch
from cvfl.logs import get_logger
from cvfl.psi import serde
from cvfl.psi.ecdh.saving import AnswerLog, StateFolder
from cvfl.psi.ecdh.state import Manifest, SessionState
from cvfl.psi.spill import BucketStore

log = get_logger(__name__)

CHECKPOINT_SECONDS = 20.0


@dataclass(frozen=True)
class Plan:
    """Where this session starts: batches below ``*_start`` are skipped or re-sent unsaved.

    Attributes:
        own_start: the first own batch sent (``min(K, peer's J)``).
        own_kept: own batches whose answers are saved (not stored again).
        peer_start: the first batch index expected from the peer.
        peer_kept: the peer's batches answered and saved (answered again, not stored again).
        peer_items_before: the peer's items in its batches before ``peer_start``.
    """

    own_start: int = 0
    own_kept: int = 0
    peer_start: int = 0
    peer_kept: int = 0
    peer_items_before: int = 0


def short(session: bytes | None) -> str:
    """A session id as shown in logs and refusals (its first 8 hex digits)."""
    return session.hex()[:8] if session else "none"


def refuse_resume(what: str, expected: object, seen: object) -> AlignmentError:
    """The refusal both sides act on by starting over once (``psi.resume_mismatch``)."""
    return AlignmentError(
        f"resume state did not match the peer's: {mismatch(what, expected, seen)}",
        code="psi.resume_mismatch",
    )


def refuse_stateless(peer: serde.PsiHello) -> None:
    """A side without saved state (plaintext output) cannot continue the peer's session."""
    if peer.resume is not None:
        raise refuse_resume("session", "none (no saved state here)", short(peer.resume.session))


class Saver:
    """Decides how the session starts and saves its progress in the state folder."""

    def __init__(
        self,
        folder: StateFolder,
        manifest: Manifest,
        *,
        every: int,
        stores: tuple[BucketStore, BucketStore],
    ) -> None:
        self._folder = folder
        self._manifest = manifest
        self._every = every
        self._own_d, self._peer_d = stores
        self.nonce = secrets.token_bytes(serde.NONCE_BYTES)
        self._log: AnswerLog | None = None
        self._last = (0, time.monotonic())

    @property
    def manifest(self) -> Manifest:
        """The manifest as last saved."""
        return self._manifest

    @property
    def resume(self) -> serde.Resume | None:
        """What this side's hello says it continues (None: no saved session)."""
        held = self._manifest.session
        if held is None:
            return None
        return serde.Resume(held.session, held.own_answered, held.peer_answered)

    def agree(self, me: serde.PsiHello, peer: serde.PsiHello) -> Plan:
        """Start a fresh session or resume the saved one, from both hellos.

        Raises:
            AlignmentError: ``psi.resume_mismatch`` (start over) or ``psi.hello`` (bad nonce).
        """
        if len(peer.nonce) != serde.NONCE_BYTES:
            raise AlignmentError(
                mismatch("peer hello nonce bytes", serde.NONCE_BYTES, len(peer.nonce)),
                code="psi.hello",
            )
        held, theirs = self._manifest.session, peer.resume
        if held is None and theirs is None:
            return self._fresh(me, peer)
        mine = held.session if held else None
        if held is None or theirs is None or not hmac.compare_digest(theirs.session, held.session):
            raise refuse_resume("session", short(mine), short(theirs.session if theirs else None))
        if peer.count != held.peer_count:
            raise refuse_resume("peer's announced count", held.peer_count, peer.count)
        if peer.terms != held.peer_terms:
            raise refuse_resume("peer's job terms", "those saved with the session", "others")
        return self._resumed(held, theirs)

    def _fresh(self, me: serde.PsiHello, peer: serde.PsiHello) -> Plan:
        nonces = (me.nonce, peer.nonce) if me.role == "leader" else (peer.nonce, me.nonce)
        session = hashlib.sha256(b"".join(nonces)).digest()
        self._folder.drop_exchange_files()
        held = SessionState(
            session, peer.count, peer.terms, 0, 0, self._own_d.commit(), self._peer_d.commit()
        )
        # saved before any of the peer's points is answered: a rerun cannot start afresh
        # with the same secret
        self._manifest = dataclasses.replace(self._manifest, session=held)
        self._folder.save(self._manifest)
        self._log = self._folder.answer_log(session, self._manifest.log_key, fresh=True)
        log.info("psi: new session %s (state saved in %s)", short(session), self._folder.folder)
        return Plan()

    def _resumed(self, held: SessionState, theirs: serde.Resume) -> Plan:
        self._log = self._folder.answer_log(held.session, self._manifest.log_key, fresh=False)
        if held.peer_answered > len(self._log.entries):
            raise AlignmentError(
                mismatch(
                    "psi state answered peer batches", len(self._log.entries), held.peer_answered
                ),
                code="psi.bad_state",
            )
        peer_start = min(theirs.own_answered, held.peer_answered)
        plan = Plan(
            own_start=min(held.own_answered, theirs.peer_answered),
            own_kept=held.own_answered,
            peer_start=peer_start,
            peer_kept=held.peer_answered,
            peer_items_before=self._log.items_before(peer_start),
        )
        log.info(
            "psi: resuming session %s: %d own batches answered (resending from %d), %d peer "
            "batches answered (%d items)",
            short(held.session),
            held.own_answered,
            plan.own_start,
            held.peer_answered,
            self._log.items_before(held.peer_answered),
        )
        self._last = (held.own_answered, time.monotonic())
        return plan

    def check_batch(self, index: int, points: bytes, items: int) -> None:
        """Before answering the peer's batch ``index``: log it, or check it is the same again.

        Raises:
            AlignmentError: ``psi.protocol``, the peer sent other points for an answered batch.
        """
        assert self._log is not None  # agree() ran in the hello
        digest = hashlib.sha256(points).digest()
        if index < len(self._log.entries):
            if not hmac.compare_digest(digest, self._log.entries[index][1]):
                raise AlignmentError(
                    mismatch(
                        f"peer batch {index} of the resumed session",
                        "the points answered before (same SHA-256)",
                        "other points",
                    ),
                    code="psi.protocol",
                )
            return
        self._log.append(items, digest)

    def due(self, answered: int) -> bool:
        """Whether a checkpoint is due after ``answered`` own batches' answers."""
        batches, since = self._last
        return answered - batches >= self._every or time.monotonic() - since >= CHECKPOINT_SECONDS

    def checkpoint(self, own_answered: int, peer_answered: int) -> None:
        """Save both stores and K, J (the caller holds the stores' lock)."""
        held = self._manifest.session
        assert held is not None and self._log is not None
        held = dataclasses.replace(
            held,
            own_answered=own_answered,
            peer_answered=peer_answered,
            own_d=self._own_d.commit(),
            peer_d=self._peer_d.commit(),
        )
        self._manifest = dataclasses.replace(self._manifest, session=held)
        self._folder.save(self._manifest)
        self._last = (own_answered, time.monotonic())
        log.info(
            "psi: exchange state saved (%d own batches, %d peer batches answered)",
            own_answered,
            peer_answered,
        )
