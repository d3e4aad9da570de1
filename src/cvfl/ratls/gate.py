"""The server side of "attest, then pin": who gets pinned, and who may open a stream.

:class:`LocalIdentity` holds this party's own RA-TLS credentials (made fresh with the party's job
terms, renewed before they expire). :class:`PinStore` is the set of client certificates that passed
attestation; it feeds the trusted roots of the mutual-TLS endpoint. :class:`Judge` decides on a
peer's certificate (evidence, policy, job terms) for both ends of a connection;
:class:`Gatekeeper` admits a client (the judge plus a proof of possession) and checks, on every
stream, that the caller's certificate is a pinned one.

A refusal is logged here with every field, expected and seen value; the unattested caller is told
only the code and which fields failed (:func:`public_reason`), never this party's policy.
"""

from __future__ import annotations

import collections
import datetime as dt
import threading
import time
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from cvfl.attestation.evidence import EvidenceProvider, QuoteVerifier, VerifiedEvidence
from cvfl.attestation.policy import Policy
from cvfl.attestation.terms import JobTerms, TermsError, check_peer_terms, terms_differences
from cvfl.bridge.security import PeerInfo
from cvfl.errors import AttestationError, mismatch, printable
from cvfl.logs import get_logger
from cvfl.ratls import possession
from cvfl.ratls.cert import (
    DEFAULT_VALIDITY,
    AttestedCertificate,
    RatlsCredentials,
    fingerprint,
    load_certificate,
    make_certificate,
    verify_attested,
)
from cvfl.ratls.serde import PROTOCOL_VERSION, AttestGrant, AttestOffer

log = get_logger(__name__)

MAX_PINS = 256
MAX_REFUSALS = 64
MAX_REPORT_CHARS = 600
MAX_CODE_CHARS = 64
# What an unattested caller is told per refusal code: the failed check, not the local policy.
_PUBLIC = {
    "attestation.policy_identity": "your enclave identity is not in this party's policy",
    "attestation.policy_debug": "debug enclaves are not accepted",
    "attestation.policy_tcb_status": "your platform's TCB status is not accepted",
    "attestation.policy_advisory": "an advisory of your platform is refused",
    "attestation.policy_simulated": "simulated evidence is not accepted",
    "ratls.possession": "the proof of possession of your certificate key did not verify",
    "ratls.protocol_version": "another attest protocol version",
}


def public_reason(error: AttestationError) -> str:
    """What a refused, unattested caller may learn: the code and the failed fields only."""
    if isinstance(error, TermsError) and error.fields:
        detail = "job terms not accepted: " + ", ".join(error.fields)
    else:
        detail = _PUBLIC.get(error.code, "your certificate or evidence did not verify")
    return f"refused [{error.code}]: {detail} (this party's log names the expected values)"


def describe(evidence: VerifiedEvidence) -> str:
    """Describe a verified peer for status lines (never the whole quote)."""
    text = (
        f"attested peer mr_enclave={evidence.identity.mr_enclave.hex()[:16]}… "
        f"isv_svn={evidence.identity.isv_svn} tcb={evidence.tcb_status}"
    )
    return text + " SIMULATED — INSECURE" if evidence.simulated else text


class LocalIdentity:
    """This party's RA-TLS credentials, renewed when less than half their validity is left.

    Credentials passed in explicitly are used as they are and never renewed.
    """

    def __init__(
        self,
        provider: EvidenceProvider,
        valid_for: dt.timedelta = DEFAULT_VALIDITY,
        *,
        terms: JobTerms,
        credentials: RatlsCredentials | None = None,
    ) -> None:
        self.provider = provider
        self.valid_for = valid_for
        self.terms = terms
        self.renew = credentials is None
        self._lock = threading.Lock()
        self._creds = credentials or self._make()
        self.generation = 0

    def _make(self) -> RatlsCredentials:
        return make_certificate(self.provider, valid_for=self.valid_for, terms=self.terms)

    def current(self) -> RatlsCredentials:
        """Return valid credentials, making new ones if these are past half their life."""
        with self._lock:
            left = self._creds.not_after - dt.datetime.now(dt.UTC)
            if self.renew and left < self.valid_for / 2:
                self._creds = self._make()
                self.generation += 1
                log.info("renewed this party's RA-TLS certificate (generation %s)", self.generation)
            return self._creds


@dataclass(frozen=True)
class Pin:
    """A client certificate that passed attestation."""

    fingerprint: str
    cert_pem: bytes
    not_after: dt.datetime
    peer: PeerInfo

    @property
    def description(self) -> str:
        """How this party saw the client."""
        return self.peer.description


class PinStore:
    """Thread-safe, bounded set of pinned client certificates; expired pins drop out."""

    def __init__(self, max_pins: int = MAX_PINS) -> None:
        self._pins: collections.OrderedDict[str, Pin] = collections.OrderedDict()
        self._lock = threading.Lock()
        self.max_pins = max_pins
        self.version = 0

    def add(self, pin: Pin) -> None:
        """Pin a certificate (the oldest pin goes when the store is full)."""
        with self._lock:
            self._pins[pin.fingerprint] = pin
            self._pins.move_to_end(pin.fingerprint)
            while len(self._pins) > self.max_pins:
                self._pins.popitem(last=False)
            self.version += 1

    def get(self, fp: str) -> Pin | None:
        """Return the live pin with this fingerprint, or None."""
        with self._lock:
            self._prune()
            return self._pins.get(fp)

    def roots(self) -> tuple[int, bytes]:
        """Return the store's version and the concatenated PEM of every live pin."""
        with self._lock:
            self._prune()
            return self.version, b"".join(p.cert_pem for p in self._pins.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._pins)

    def _prune(self) -> None:
        now = dt.datetime.now(dt.UTC)
        expired = [fp for fp, pin in self._pins.items() if pin.not_after < now]
        for fp in expired:
            del self._pins[fp]
        if expired:
            self.version += 1


class LogBudget:
    """A token bucket for log lines: ``burst`` at once, then ``per_second``."""

    def __init__(self, burst: int = 10, per_second: float = 1.0) -> None:
        self.burst = burst
        self.per_second = per_second
        self._tokens = float(burst)
        self._at = time.monotonic()
        self._suppressed = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Whether a line may be logged now (counts it as suppressed when not)."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.per_second)
            self._at = now
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            self._suppressed += 1
            return False

    def reset_suppressed(self) -> int:
        """How many lines were suppressed since the last call."""
        with self._lock:
            count, self._suppressed = self._suppressed, 0
            return count


class Judge:
    """Decides on a peer's certificate: evidence, policy, then the attested job terms.

    For the other party, the terms must fit this job and the policy's requirements on the peer;
    for this party's own workers (``same_party``) they must equal this party's terms exactly.
    """

    def __init__(
        self,
        verifier: QuoteVerifier,
        policy: Policy,
        own_terms: JobTerms,
        peer_role: str,
        *,
        same_party: bool = False,
    ) -> None:
        self.verifier = verifier
        self.policy = policy
        self.own_terms = own_terms
        self.peer_role = peer_role
        self.same_party = same_party

    def judge(self, cert: bytes) -> AttestedCertificate:
        """Verify ``cert`` and check its terms.

        Raises:
            AttestationError: naming what failed with the expected and seen values.
        """
        attested = verify_attested(cert, self.verifier, self.policy)
        if self.same_party:
            _check_same_terms(self.own_terms, attested.terms)
        else:
            check_peer_terms(
                self.own_terms, attested.terms, self.policy.peer, peer_role=self.peer_role
            )
        return attested


def _check_same_terms(own: JobTerms, seen: JobTerms | None) -> None:
    if seen is None:
        raise TermsError(mismatch("terms", "this party's own job terms", "none"), ("terms",))
    problems = terms_differences(own, seen)
    if problems:
        fields = tuple(p.split(":", 1)[0] for p in problems)
        raise TermsError("not this party's own terms: " + "; ".join(problems), fields)


def peer_info(attested: AttestedCertificate) -> PeerInfo:
    """The :class:`PeerInfo` streams see for an attested certificate."""
    return PeerInfo(describe(attested.evidence), attested.terms, attested.cert_der)


class Gatekeeper:
    """Admits attested clients into the pin set and vouches for callers of each stream."""

    def __init__(self, identity: LocalIdentity, judge: Judge, pins: PinStore) -> None:
        self.identity = identity
        self.judge = judge
        self.pins = pins
        self.refusals: collections.deque[AttestationError] = collections.deque(maxlen=MAX_REFUSALS)
        self.peer_refusals: collections.deque[str] = collections.deque(maxlen=MAX_REFUSALS)
        self._log_budget = LogBudget()

    def refuse(self, error: AttestationError) -> AttestationError:
        """Record and log a refusal on this (server) side; return it for raising.

        Logging is rate-limited (a flood of strangers must not flood the log); the next line
        logged says how many were not.
        """
        self.refusals.append(error)
        if self._log_budget.take():
            suppressed = self._log_budget.reset_suppressed()
            more = f" ({suppressed} more refusals not logged)" if suppressed else ""
            log.warning("refused a client [%s]: %s%s", error.code, error.message, more)
        return error

    def note_peer_refusal(self, code: str, message: str) -> None:
        """Record a client's (unauthenticated) report that it refused this server's evidence."""
        text = f"[{printable(code, MAX_CODE_CHARS)}] {printable(message, MAX_REPORT_CHARS)}"
        self.peer_refusals.append(text)
        if self._log_budget.take():
            log.warning("a client refused this server's evidence: %s", text)

    def admit(self, offer: AttestOffer, server_cert_der: bytes) -> AttestGrant:
        """Verify a client's offer and pin its certificate.

        Raises:
            AttestationError: protocol version, evidence, policy, terms or proof of possession.
        """
        try:
            if offer.protocol_version != PROTOCOL_VERSION:
                raise AttestationError(
                    mismatch("attest protocol_version", PROTOCOL_VERSION, offer.protocol_version),
                    code="ratls.protocol_version",
                )
            attested = self.judge.judge(offer.certificate_der)
            possession.check(offer.possession_signature, server_cert_der, offer.certificate_der)
        except AttestationError as exc:
            raise self.refuse(exc) from None
        cert = load_certificate(offer.certificate_der)
        pin = Pin(
            fingerprint=fingerprint(offer.certificate_der),
            cert_pem=cert.public_bytes(serialization.Encoding.PEM),
            not_after=cert.not_valid_after_utc,
            peer=peer_info(attested),
        )
        self.pins.add(pin)
        log.info("pinned client certificate sha256=%s… (%s)", pin.fingerprint[:16], pin.description)
        ttl = max(0, int((pin.not_after - dt.datetime.now(dt.UTC)).total_seconds()))
        return AttestGrant(peer_description=pin.description, pin_ttl_seconds=ttl)

    def authorize_pem(self, pem: bytes | None) -> PeerInfo:
        """Check the caller's certificate (from the TLS auth context) against the pins.

        Raises:
            AttestationError: no client certificate, or one that is not a live pin.
        """
        if not pem:
            raise self.refuse(
                AttestationError(
                    mismatch(
                        "client certificate",
                        "a pinned, attested RA-TLS certificate over mutual TLS",
                        "none",
                    ),
                    code="ratls.no_client_certificate",
                )
            )
        try:
            der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
        except ValueError:
            der = b""
        fp = fingerprint(der)
        pin = self.pins.get(fp)
        if pin is None:
            raise self.refuse(
                AttestationError(
                    mismatch(
                        "client certificate",
                        f"one of {len(self.pins)} pinned, attested certificates",
                        f"unpinned or expired sha256={fp[:16]}…",
                    ),
                    code="ratls.not_pinned",
                )
            )
        return pin.peer
