"""The server side of "attest, then pin": who gets pinned, and who may open a stream.

:class:`LocalIdentity` holds this party's own RA-TLS credentials (made fresh, renewed before they
expire). :class:`PinStore` is the set of client certificates that passed attestation; it feeds the
trusted roots of the mutual-TLS port. :class:`Gatekeeper` admits a client (evidence, policy, proof
of possession) and checks, on every stream, that the caller's certificate is a pinned one.
"""

from __future__ import annotations

import collections
import datetime as dt
import threading
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from cvfl.attestation.evidence import EvidenceProvider, QuoteVerifier, VerifiedEvidence
from cvfl.attestation.policy import Policy
from cvfl.errors import AttestationError, mismatch
from cvfl.logs import get_logger
from cvfl.ratls import possession
from cvfl.ratls.cert import (
    DEFAULT_VALIDITY,
    RatlsCredentials,
    fingerprint,
    load_certificate,
    make_certificate,
    verify_certificate,
)
from cvfl.ratls.serde import PROTOCOL_VERSION, AttestGrant, AttestOffer

log = get_logger(__name__)

MAX_PINS = 256
MAX_REFUSALS = 64
MAX_REPORT_CHARS = 600


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
        credentials: RatlsCredentials | None = None,
    ) -> None:
        self.provider = provider
        self.valid_for = valid_for
        self.renew = credentials is None
        self._lock = threading.Lock()
        self._creds = credentials or make_certificate(provider, valid_for=valid_for)
        self.generation = 0

    def current(self) -> RatlsCredentials:
        """Return valid credentials, making new ones if these are past half their life."""
        with self._lock:
            left = self._creds.not_after - dt.datetime.now(dt.UTC)
            if self.renew and left < self.valid_for / 2:
                self._creds = make_certificate(self.provider, valid_for=self.valid_for)
                self.generation += 1
                log.info("renewed this party's RA-TLS certificate (generation %s)", self.generation)
            return self._creds


@dataclass(frozen=True)
class Pin:
    """A client certificate that passed attestation."""

    fingerprint: str
    cert_pem: bytes
    not_after: dt.datetime
    description: str


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


class Gatekeeper:
    """Admits attested clients into the pin set and vouches for callers of each stream."""

    def __init__(
        self, identity: LocalIdentity, verifier: QuoteVerifier, policy: Policy, pins: PinStore
    ) -> None:
        self.identity = identity
        self.verifier = verifier
        self.policy = policy
        self.pins = pins
        self.refusals: collections.deque[AttestationError] = collections.deque(maxlen=MAX_REFUSALS)
        self.peer_refusals: collections.deque[str] = collections.deque(maxlen=MAX_REFUSALS)

    def refuse(self, error: AttestationError) -> AttestationError:
        """Record and log a refusal on this (server) side; return it for raising."""
        self.refusals.append(error)
        log.warning("refused a client [%s]: %s", error.code, error.message)
        return error

    def note_peer_refusal(self, code: str, message: str) -> None:
        """Record a client's (unauthenticated) report that it refused this server's evidence."""
        text = "".join(ch if ch.isprintable() else "?" for ch in f"[{code}] {message}")
        text = text[:MAX_REPORT_CHARS]
        self.peer_refusals.append(text)
        log.warning("a client refused this server's evidence: %s", text)

    def admit(self, offer: AttestOffer, server_cert_der: bytes, mtls_port: int) -> AttestGrant:
        """Verify a client's offer and pin its certificate.

        Raises:
            AttestationError: protocol version, evidence, policy or proof of possession failed.
        """
        try:
            if offer.protocol_version != PROTOCOL_VERSION:
                raise AttestationError(
                    mismatch("attest protocol_version", PROTOCOL_VERSION, offer.protocol_version),
                    code="ratls.protocol_version",
                )
            evidence = verify_certificate(offer.certificate_der, self.verifier, self.policy)
            possession.check(offer.possession_signature, server_cert_der, offer.certificate_der)
        except AttestationError as exc:
            raise self.refuse(exc) from None
        cert = load_certificate(offer.certificate_der)
        pin = Pin(
            fingerprint=fingerprint(offer.certificate_der),
            cert_pem=cert.public_bytes(serialization.Encoding.PEM),
            not_after=cert.not_valid_after_utc,
            description=describe(evidence),
        )
        self.pins.add(pin)
        log.info("pinned client certificate sha256=%s… (%s)", pin.fingerprint[:16], pin.description)
        ttl = max(0, int((pin.not_after - dt.datetime.now(dt.UTC)).total_seconds()))
        return AttestGrant(
            mtls_port=mtls_port, peer_description=pin.description, pin_ttl_seconds=ttl
        )

    def authorize_pem(self, pem: bytes | None) -> str:
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
        return pin.description
