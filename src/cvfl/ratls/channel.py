"""``RatlsSecurity``: attest-then-pin mutual TLS, all of it through one port per worker.

Server (``bind``): two TLS endpoints on loopback — the attest endpoint (server TLS, no client
certificate, tiny messages, a few threads; it serves ``Attest`` and ``Report``) and the session
endpoint of the caller's gRPC server (mutual TLS whose trusted roots are exactly the pinned,
attested client certificates; gRPC's dynamic server credentials ask for them on every new
connection) — and a :class:`~cvfl.ratls.front.FrontDoor` on the configured address that splices
each connection to one of them by its TLS server name. Streams are accepted only from pinned
certificates (``authorize``).

Client (``connect``): fetch the server's certificate through the attest route, verify its
evidence, the policy and its attested job terms, pin it as the only root; offer our own
certificate with a proof of possession through ``Attest``; open mutual TLS through the session
route of the same address and ``Confirm`` that the server accepts us there.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, replace
from typing import TypeVar, cast

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from cvfl.attestation.config import AttestationConfig, default_verifier, make_provider
from cvfl.attestation.evidence import EvidenceProvider, QuoteVerifier
from cvfl.attestation.policy import AcceptedIdentity, Policy
from cvfl.attestation.terms import JobTerms
from cvfl.bridge.security import CHANNEL_OPTIONS, Binding, Connection, PeerInfo
from cvfl.errors import (
    AttestationError,
    ConfigError,
    CvflError,
    PeerUnavailableError,
    ProtocolError,
)
from cvfl.logs import get_logger
from cvfl.ratls import possession
from cvfl.ratls.attester import CertificateAttester
from cvfl.ratls.cert import (
    ATTEST_NAME,
    DEFAULT_VALIDITY,
    SESSION_NAME,
    AttestedCertificate,
    RatlsCredentials,
)
from cvfl.ratls.front import FrontDoor, FrontLimits
from cvfl.ratls.gate import Gatekeeper, Judge, LocalIdentity, PinStore, describe, peer_info
from cvfl.ratls.probe import fetch_certificate, split_target
from cvfl.ratls.serde import AttestOffer, grant_from_proto, offer_to_proto
from cvfl.ratls.service import ERROR_CODE_KEY, AttestService, peer_pem
from cvfl.wire import attest_pb2, attest_pb2_grpc

log = get_logger(__name__)
_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")

# The attest endpoint reads unauthenticated messages: its limit is what Attest needs (two
# certificates of a few KiB each), so anything larger is refused before it is buffered.
MAX_ATTEST_MESSAGE = 64 * 1024
ATTEST_SERVER_OPTIONS: list[tuple[str, int | str]] = [
    ("grpc.so_reuseport", 0),
    ("grpc.max_receive_message_length", MAX_ATTEST_MESSAGE),
    ("grpc.max_send_message_length", MAX_ATTEST_MESSAGE),
    ("grpc.max_concurrent_streams", 4),
    ("grpc.server_handshake_timeout_ms", 5_000),
    ("grpc.max_connection_age_ms", 20_000),
]
REPORT_TIMEOUT = 1.0


def _pinned_options(route: str) -> list[tuple[str, int | str]]:
    return [*CHANNEL_OPTIONS, ("grpc.ssl_target_name_override", route)]


class _Fetcher:
    """Hands gRPC a new certificate configuration when our identity or the pin set changed."""

    def __init__(self, identity: LocalIdentity, pins: PinStore | None) -> None:
        self.identity = identity
        self.pins = pins
        self.seen: tuple[int, int] = (-1, -1)

    def config(self) -> grpc.ServerCertificateConfiguration:
        creds = self.identity.current()
        pair = [(creds.key_pem, creds.cert_pem)]
        if self.pins is None:
            self.seen = (self.identity.generation, 0)
            return grpc.ssl_server_certificate_configuration(pair)
        version, roots = self.pins.roots()
        self.seen = (self.identity.generation, version)
        # With no pin yet, our own certificate stands in: only this process holds its key.
        return grpc.ssl_server_certificate_configuration(pair, roots or creds.cert_pem)

    def __call__(self) -> grpc.ServerCertificateConfiguration | None:
        self.identity.current()
        version = self.pins.roots()[0] if self.pins is not None else 0
        if (self.identity.generation, version) == self.seen:
            return None
        return self.config()

    def credentials(self, *, mutual: bool) -> grpc.ServerCredentials:
        # grpc accepts None from the fetcher ("no change"); its type stubs do not say so.
        fetch = cast("Callable[[], grpc.ServerCertificateConfiguration]", self)
        return grpc.dynamic_ssl_server_credentials(
            self.config(), fetch, require_client_authentication=mutual
        )


@dataclass
class _RatlsBinding:
    """The front door and the attest endpoint behind one configured address."""

    front: FrontDoor
    attest: grpc.Server

    @property
    def port(self) -> int:
        return self.front.port

    def close(self) -> None:
        self.front.close()
        self.attest.stop(grace=0.5).wait()


class RatlsSecurity:
    """Mutual remote attestation for a party's connections (a ``ChannelSecurity``).

    Args:
        provider: Makes this party's evidence.
        verifier: Checks the peer's quotes.
        policy: Which peers this party accepts (``same_as_self`` resolves to this enclave).
        terms: This party's job terms, bound into its evidence and checked against the peer's.
        same_party: For this party's own workers (see :meth:`for_own_party`) rather than the
            other party.
    """

    name = "ratls"  # "ratls-simulated-INSECURE" when simulated evidence is involved

    def __init__(
        self,
        provider: EvidenceProvider,
        verifier: QuoteVerifier,
        policy: Policy,
        *,
        terms: JobTerms,
        same_party: bool = False,
        valid_for: dt.timedelta = DEFAULT_VALIDITY,
        credentials: RatlsCredentials | None = None,
        limits: FrontLimits | None = None,
    ) -> None:
        self.identity = LocalIdentity(provider, valid_for, terms=terms, credentials=credentials)
        self.terms = terms
        self.verifier = verifier
        self.provider = provider
        self.configured_policy = policy
        self.limits = limits
        own = self.identity.current().identity
        self.policy = policy.for_self(own) if own is not None else policy
        if same_party:
            if own is None:
                raise AttestationError(
                    "own-party security needs this party's own measurement (none in the quote)",
                    code="ratls.no_identity",
                )
            only_self = (AcceptedIdentity(mr_enclave=own.mr_enclave),)
            self.policy = replace(self.policy, identities=only_self, allow_any_identity=False)
        other = "follower" if terms.role == "leader" else "leader"
        peer_role = terms.role if same_party else other
        self.judge = Judge(verifier, self.policy, terms, peer_role, same_party=same_party)
        self.pins = PinStore()
        self.gate = Gatekeeper(self.identity, self.judge, self.pins)
        self.insecure = provider.simulated or policy.allow_simulated
        if self.insecure:
            self.name = "ratls-simulated-INSECURE"
            log.warning(
                "INSECURE: RA-TLS with simulated evidence (provider %s, allow_simulated=%s); "
                "this is not a real enclave",
                provider.name,
                policy.allow_simulated,
            )

    @property
    def local_certificate(self) -> bytes:
        """This party's current RA-TLS certificate (DER)."""
        return self.identity.current().cert_der

    @property
    def attester(self) -> CertificateAttester:
        """The current certificate and its key, with this channel's verifier and policy."""
        creds = self.identity.current()
        provider = self.identity.provider
        return CertificateAttester(
            creds.cert_der, creds.private_key, self.verifier, self.policy, provider
        )

    def for_own_party(self) -> RatlsSecurity:
        """The security for this party's own workers.

        A worker is accepted only if it runs this very enclave (its mr_enclave equals ours,
        whatever the policy's identities say), under the same platform rules, with exactly this
        party's job terms and role. It still proves the party key at enrolment
        (:mod:`cvfl.workers.proof`), since the peer's enclave could attest the same terms.
        """
        return RatlsSecurity(
            self.provider,
            self.verifier,
            self.configured_policy,
            terms=self.terms,
            same_party=True,
            valid_for=self.identity.valid_for,
            limits=self.limits,
        )

    @property
    def refusals(self) -> list[AttestationError]:
        """The most recent refusals made on the server side (newest last)."""
        return list(self.gate.refusals)

    @property
    def peer_refusals(self) -> list[str]:
        """Reasons clients reported for refusing this server's evidence (unauthenticated)."""
        return list(self.gate.peer_refusals)

    def bind(self, server: grpc.Server, address: str) -> Binding:
        """Make ``server`` reachable, attested, through ``address`` alone.

        Returns:
            The binding; its ``port`` is the one clients pass to ``connect``. Close it after
            stopping ``server``.

        Raises:
            ConfigError: ``ratls.bind`` when an address could not be bound.
        """
        session_port = _add_port(server, "127.0.0.1:0", _Fetcher(self.identity, self.pins))
        service = AttestService(self.gate)
        attest_pb2_grpc.add_AttestServicer_to_server(service, server)  # Confirm, over mTLS
        attest = grpc.server(
            futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="cvfl-attest"),
            options=ATTEST_SERVER_OPTIONS,
            maximum_concurrent_rpcs=16,
        )
        attest_pb2_grpc.add_AttestServicer_to_server(service, attest)
        attest_port = _add_port(attest, "127.0.0.1:0", _Fetcher(self.identity, None))
        attest.start()
        try:
            front = FrontDoor(
                address, session_port=session_port, attest_port=attest_port, limits=self.limits
            )
        except ConfigError:
            attest.stop(grace=None)
            raise
        log.info("RA-TLS: attested channel on %s (port %s)", address, front.port)
        return _RatlsBinding(front, attest)

    def connect(self, target: str, timeout: float) -> Connection:
        """Attest the server at ``target``, get pinned, and return a mutual-TLS channel.

        Raises:
            AttestationError: either side refused the other (the message says which and why).
            PeerUnavailableError: the server could not be reached in time.
        """
        deadline = time.monotonic() + timeout
        host, port = split_target(target)
        server_der = fetch_certificate(host, port, timeout, server_name=ATTEST_NAME)
        try:
            attested = self.judge.judge(server_der)
        except AttestationError as exc:
            log.warning("refused server %s [%s]: %s", target, exc.code, exc.message)
            _report_refusal(target, server_der, exc, deadline)
            raise AttestationError(f"server {target}: {exc.message}", code=exc.code) from None
        log.info("server %s: %s", target, describe(attested.evidence))
        server_pem = x509.load_der_x509_certificate(server_der).public_bytes(
            serialization.Encoding.PEM
        )
        self._attest(target, server_pem, server_der, deadline)
        return Connection(self._session(target, server_pem, deadline), _peer(attested))

    def _attest(self, target: str, server_pem: bytes, server_der: bytes, deadline: float) -> None:
        creds = self.identity.current()
        offer = AttestOffer(
            certificate_der=creds.cert_der,
            possession_signature=possession.sign(creds.private_key, server_der, creds.cert_der),
        )
        reply = _attest_until(target, server_pem, offer_to_proto(offer), deadline)
        log.debug("pinned by %s (pin ttl %s s)", target, grant_from_proto(reply).pin_ttl_seconds)

    def _session(self, target: str, server_pem: bytes, deadline: float) -> grpc.Channel:
        creds = self.identity.current()
        channel = grpc.secure_channel(
            target,
            grpc.ssl_channel_credentials(server_pem, creds.key_pem, creds.cert_pem),
            _pinned_options(SESSION_NAME),
        )
        try:
            confirm = attest_pb2_grpc.AttestStub(channel).Confirm
            seen_as = _call(confirm, attest_pb2.ConfirmRequest(), deadline, target)
        except CvflError:
            channel.close()
            raise
        log.info("attested mutual TLS to %s; it sees us as %s", target, seen_as.peer_description)
        return channel

    def authorize(self, context: grpc.ServicerContext) -> PeerInfo:
        """Accept a stream only from a pinned, attested client certificate.

        Raises:
            AttestationError: no client certificate, or not a live pin.
        """
        return self.gate.authorize_pem(peer_pem(context))


def _peer(attested: AttestedCertificate) -> PeerInfo:
    return peer_info(attested)


def _report_refusal(
    target: str, server_der: bytes, error: AttestationError, deadline: float
) -> None:
    """Tell the refused server why (best effort, short timeout, errors ignored)."""
    try:
        pem = x509.load_der_x509_certificate(server_der).public_bytes(serialization.Encoding.PEM)
    except ValueError:
        return
    report = attest_pb2.RefusalReport(code=error.code, message=error.message)
    timeout = min(REPORT_TIMEOUT, max(0.05, deadline - time.monotonic()))
    credentials = grpc.ssl_channel_credentials(pem)
    with grpc.secure_channel(target, credentials, _pinned_options(ATTEST_NAME)) as ch:
        try:
            attest_pb2_grpc.AttestStub(ch).Report(report, timeout=timeout)
        except grpc.RpcError:
            log.debug("could not report the refusal to %s", target)


def _add_port(server: grpc.Server, address: str, fetcher: _Fetcher) -> int:
    creds = fetcher.credentials(mutual=fetcher.pins is not None)
    try:
        port = server.add_secure_port(address, creds)
    except RuntimeError as exc:
        raise ConfigError(f"cannot bind {address}: {exc}", code="ratls.bind") from None
    if port == 0:
        raise ConfigError(f"cannot bind {address}", code="ratls.bind")
    return port


def _call(
    method: grpc.UnaryUnaryMultiCallable[_Req, _Resp], request: _Req, deadline: float, where: str
) -> _Resp:
    remaining = max(0.05, deadline - time.monotonic())
    try:
        return method(request, timeout=remaining)
    except grpc.RpcError as exc:
        raise _rpc_error(exc, where) from None


def _attest_until(
    target: str, server_pem: bytes, request: attest_pb2.AttestRequest, deadline: float
) -> attest_pb2.AttestResponse:
    """Call ``Attest``, again on a fresh connection while the server is busy or dropped ours.

    The attest endpoint verifies a bounded number of strangers at once (RESOURCE_EXHAUSTED) and
    closes the oldest of its connections when a flood fills them (UNAVAILABLE); an attested peer
    arriving during a flood tries again until its deadline, each time on a new connection (a
    reused channel would wait out gRPC's reconnect backoff). Attest is idempotent: pinning a
    certificate twice changes nothing.
    """
    delay = 0.01
    credentials = grpc.ssl_channel_credentials(server_pem)
    while True:
        with grpc.secure_channel(target, credentials, _pinned_options(ATTEST_NAME)) as channel:
            remaining = max(0.05, deadline - time.monotonic())
            try:
                return attest_pb2_grpc.AttestStub(channel).Attest(request, timeout=remaining)
            except grpc.RpcError as exc:
                code = exc.code() if isinstance(exc, grpc.Call) else None
                again = code in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE)
                if not again or time.monotonic() + delay >= deadline:
                    raise _rpc_error(exc, target) from None
        time.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 2, 0.05)  # short: strangers retry in a tight loop too


def _rpc_error(exc: grpc.RpcError, where: str) -> CvflError:
    code = exc.code() if isinstance(exc, grpc.Call) else None
    details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
    if code == grpc.StatusCode.PERMISSION_DENIED:
        meta = dict(exc.trailing_metadata() or ()) if isinstance(exc, grpc.Call) else {}
        err_code = str(meta.get(ERROR_CODE_KEY, "ratls.refused_by_peer"))
        return AttestationError(f"{where} refused us: {details}", code=err_code)
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return ProtocolError(
            f"{where} does not serve cvfl.v1.Attest (is it running the RA-TLS channel?)",
            code="ratls.no_attest_service",
        )
    if code == grpc.StatusCode.UNAVAILABLE:
        return AttestationError(
            f"{where}: the pinned TLS handshake failed or the peer went away ({details})",
            code="ratls.handshake",
        )
    return PeerUnavailableError(f"{where}: {code} {details}", code="ratls.unreachable")


def security_from_config(
    cfg: AttestationConfig, *, terms: JobTerms, valid_for: dt.timedelta = DEFAULT_VALIDITY
) -> RatlsSecurity:
    """Build the RA-TLS channel security from the job's ``[attestation]`` settings."""
    return RatlsSecurity(
        make_provider(cfg), default_verifier(cfg), cfg.policy, terms=terms, valid_for=valid_for
    )
