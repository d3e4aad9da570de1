"""Who may run fast mode: both parties real, up-to-date SGX enclaves on an attested channel.

Fast mode hands the peer keyed hashes of every id together with the key (the peer derives it
too), so a peer that is not a genuine, current enclave running the audited code could test
guessed ids against them. The gate therefore requires, unless ``psi.insecure_fast_mode`` waives
it with a loud warning:

- locally: an RA-TLS channel and a real (not simulated) evidence provider;
- of the peer: a key share carrying an RA-TLS certificate that verifies under the channel's
  verifier and policy, with evidence that is real (not simulated), not a debug enclave, and whose
  TCB status is in ``psi.fast_tcb_statuses`` (default ``UpToDate`` only), and a signature by that
  certificate's key over both hellos and the share. The signature is never waived when present.
"""

from __future__ import annotations

import hashlib
import hmac

from cvfl.attestation.evidence import VerifiedEvidence
from cvfl.bridge.security import Attester, ChannelSecurity
from cvfl.errors import AlignmentError, AttestationError, mismatch
from cvfl.logs import get_logger
from cvfl.psi.config import PsiConfig
from cvfl.psi.fast.key import check_share_signature
from cvfl.psi.serde import KeyShare

log = get_logger(__name__)

INSECURE_HINT = (
    "fast mode needs real, up-to-date SGX evidence on both sides; use mode = 'ecdh', or for "
    "development only set psi.insecure_fast_mode = true (--insecure-fast-mode)"
)


def fast_evidence_problems(evidence: VerifiedEvidence, allowed: frozenset[str]) -> list[str]:
    """Return why ``evidence`` does not qualify the peer for fast mode (empty when it does)."""
    problems: list[str] = []
    if evidence.simulated:
        problems.append(mismatch("peer evidence simulated", "false (real SGX)", "true"))
    if evidence.identity.debug:
        problems.append(mismatch("peer enclave debug", "false (production enclave)", "true"))
    if evidence.tcb_status not in allowed:
        problems.append(
            mismatch("peer tcb_status", " or ".join(sorted(allowed)), evidence.tcb_status)
        )
    return problems


class FastGate:
    """Checks that fast mode may run; makes this party's share and checks the peer's."""

    def __init__(
        self, attested: Attester | None, *, allowed: frozenset[str], insecure: bool, channel: str
    ) -> None:
        self.attested = attested
        self.allowed = allowed
        self.insecure = insecure
        self.channel = channel
        self.peer: VerifiedEvidence | None = None

    def check_local(self) -> None:
        """Refuse (or, when insecure, warn) if this side cannot offer real SGX evidence.

        Raises:
            AlignmentError: ``psi.fast_refused`` naming what failed.
        """
        problems: list[str] = []
        if self.attested is None:
            problems.append(mismatch("fast mode channel", "attested RA-TLS", self.channel))
        elif self.attested.simulated:
            problems.append(
                mismatch(
                    "fast mode own evidence",
                    "real SGX (not simulated)",
                    f"simulated (provider {self.attested.provider})",
                )
            )
        self._judge(problems, "this side")

    def own_share(self, public_key: bytes, transcript: bytes) -> KeyShare:
        """Return this party's key share, signed when the channel is attested."""
        if self.attested is None:
            return KeyShare(public_key, b"", b"")
        signature = self.attested.sign(transcript)
        return KeyShare(public_key, self.attested.certificate, signature)

    def check_peer(
        self, share: KeyShare, transcript: bytes, *, channel_peer: bytes | None = None
    ) -> None:
        """Verify the peer's certificate, evidence and share signature for fast mode.

        ``channel_peer`` (the stream's mutual-TLS client certificate, known to the server side)
        must then be the certificate in the share; this is never waived.

        Raises:
            AlignmentError: ``psi.fast_refused`` (evidence, channel binding) or
                ``psi.bad_key_share`` (signature).
        """
        if not share.certificate:
            self._judge(
                [mismatch("peer key share certificate", "an attested RA-TLS certificate", "none")],
                "the peer",
            )
            return
        check_share_signature(share, transcript)
        _check_channel_binding(share.certificate, channel_peer)
        if self.attested is None:
            self._judge([mismatch("peer evidence", "verified", "not checked")], "the peer")
            return
        try:
            evidence = self.attested.verify_peer(share.certificate)
        except AttestationError as exc:
            raise AlignmentError(
                f"fast mode refused: the peer's certificate: {exc.message}",
                code="psi.fast_refused",
            ) from None
        self.peer = evidence
        self._judge(fast_evidence_problems(evidence, self.allowed), "the peer")

    def _judge(self, problems: list[str], who: str) -> None:
        if not problems:
            return
        if not self.insecure:
            raise AlignmentError(
                f"fast mode refused ({who}): {'; '.join(problems)}. {INSECURE_HINT}",
                code="psi.fast_refused",
            )
        log.warning(
            "INSECURE FAST MODE (psi.insecure_fast_mode = true), %s: %s. The keyed hashes of "
            "every id are exposed to whoever runs the peer",
            who,
            "; ".join(problems),
        )


def _check_channel_binding(certificate: bytes, channel_peer: bytes | None) -> None:
    if channel_peer is None:
        return
    seen, expected = (hashlib.sha256(c).hexdigest() for c in (certificate, channel_peer))
    if not hmac.compare_digest(seen, expected):
        raise AlignmentError(
            mismatch(
                "peer key share certificate",
                f"the stream's mutual-TLS client certificate sha256={expected[:16]}…",
                f"sha256={seen[:16]}…",
            ),
            code="psi.fast_refused",
        )


def gate_for(security: ChannelSecurity, cfg: PsiConfig) -> FastGate:
    """Build the fast-mode gate for ``security`` (an attested channel gives credentials)."""
    attested = security.attester
    return FastGate(
        attested,
        allowed=frozenset(cfg.fast_tcb_statuses),
        insecure=cfg.insecure_fast_mode,
        channel=security.name,
    )
