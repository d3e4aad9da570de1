"""``RatlsSecurity``: attest-then-pin mutual TLS for the bridge (DESIGN.md §3).

Server (``bind``): the configured address serves TLS with this party's RA-TLS certificate and no
client authentication; it carries the ``cvfl.v1.Attest`` service. A second port on the same host
(ephemeral unless ``mtls_port`` is set) requires a client certificate whose trusted roots are
exactly the pinned, attested client certificates (gRPC's dynamic server credentials ask for them
on every new connection). Bridge streams are accepted only from pinned certificates
(``authorize``), so a stream opened on the public port gets nowhere.

Client (``connect``): fetch the server's certificate, verify its evidence and the policy, pin it
as the only root; offer our own certificate with a proof of possession through ``Attest``; open
mutual TLS to the port the server names and ``Confirm`` that the server accepts us there.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import TypeVar, cast

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from cvfl.attestation.config import AttestationConfig, default_verifier, make_provider
from cvfl.attestation.evidence import EvidenceProvider, QuoteVerifier
from cvfl.attestation.policy import Policy
from cvfl.bridge.security import CHANNEL_OPTIONS
from cvfl.errors import (
    AttestationError,
    ConfigError,
    CvflError,
    PeerUnavailableError,
    ProtocolError,
)
from cvfl.logs import get_logger
from cvfl.ratls import possession
from cvfl.ratls.cert import DEFAULT_VALIDITY, TARGET_NAME, RatlsCredentials, verify_certificate
from cvfl.ratls.gate import Gatekeeper, LocalIdentity, PinStore, describe
from cvfl.ratls.probe import fetch_certificate, split_target
from cvfl.ratls.serde import AttestOffer, grant_from_proto, offer_to_proto
from cvfl.ratls.service import ERROR_CODE_KEY, AttestService, peer_pem
from cvfl.wire import attest_pb2, attest_pb2_grpc

log = get_logger(__name__)
_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")

PINNED_OPTIONS: list[tuple[str, int | str]] = [
    *CHANNEL_OPTIONS,
    ("grpc.ssl_target_name_override", TARGET_NAME),
]


REPORT_TIMEOUT = 1.0


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


def _as_fetcher(fetcher: _Fetcher) -> Callable[[], grpc.ServerCertificateConfiguration]:
    # grpc accepts None from the fetcher ("no change"); its type stubs do not say so.
    return cast("Callable[[], grpc.ServerCertificateConfiguration]", fetcher)


class RatlsSecurity:
    """Mutual remote attestation for bridge connections (a ``ChannelSecurity``)."""

    name = "ratls"  # "ratls-simulated-INSECURE" when simulated evidence is involved

    def __init__(
        self,
        provider: EvidenceProvider,
        verifier: QuoteVerifier,
        policy: Policy,
        *,
        valid_for: dt.timedelta = DEFAULT_VALIDITY,
        mtls_port: int = 0,
        credentials: RatlsCredentials | None = None,
    ) -> None:
        self.identity = LocalIdentity(provider, valid_for, credentials=credentials)
        self.verifier = verifier
        self.policy = policy
        self.mtls_port = mtls_port
        self.pins = PinStore()
        self.bound: list[tuple[int, int]] = []  # (attest port, mutual-TLS port) per bind
        self.gate = Gatekeeper(self.identity, verifier, policy, self.pins)
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
    def refusals(self) -> list[AttestationError]:
        """The most recent refusals made on the server side (newest last)."""
        return list(self.gate.refusals)

    @property
    def peer_refusals(self) -> list[str]:
        """Reasons clients reported for refusing this server's evidence (unauthenticated)."""
        return list(self.gate.peer_refusals)

    def bind(self, server: grpc.Server, address: str) -> int:
        """Serve ``Attest`` on ``address`` (server TLS) and add the mutual-TLS port.

        Returns:
            The bound port of ``address`` (the one clients pass to ``connect``).

        Raises:
            ConfigError: an address could not be bound.
        """
        host, _ = split_target(address)
        mtls_fetcher, public_fetcher = (
            _Fetcher(self.identity, self.pins),
            _Fetcher(self.identity, None),
        )
        mtls_creds = grpc.dynamic_ssl_server_credentials(
            mtls_fetcher.config(), _as_fetcher(mtls_fetcher), require_client_authentication=True
        )
        public_creds = grpc.dynamic_ssl_server_credentials(
            public_fetcher.config(),
            _as_fetcher(public_fetcher),
            require_client_authentication=False,
        )
        mtls = _add_port(server, f"{host}:{self.mtls_port}", mtls_creds)
        public = _add_port(server, address, public_creds)
        attest_pb2_grpc.add_AttestServicer_to_server(AttestService(self.gate, mtls), server)
        self.bound.append((public, mtls))
        log.info("RA-TLS: attest port %s, mutual-TLS port %s on %s", public, mtls, host)
        return public

    def connect(self, target: str, timeout: float) -> grpc.Channel:
        """Attest the server at ``target``, get pinned, and return a mutual-TLS channel.

        Raises:
            AttestationError: either side refused the other (the message says which and why).
            PeerUnavailableError: the server could not be reached in time.
        """
        deadline = time.monotonic() + timeout
        host, port = split_target(target)
        server_der = fetch_certificate(host, port, timeout)
        try:
            evidence = verify_certificate(server_der, self.verifier, self.policy)
        except AttestationError as exc:
            log.warning("refused server %s [%s]: %s", target, exc.code, exc.message)
            _report_refusal(target, server_der, exc, deadline)
            raise AttestationError(f"server {target}: {exc.message}", code=exc.code) from None
        server_pem = x509.load_der_x509_certificate(server_der).public_bytes(
            serialization.Encoding.PEM
        )
        log.info("server %s: %s", target, describe(evidence))
        creds = self.identity.current()
        offer = AttestOffer(
            certificate_der=creds.cert_der,
            possession_signature=possession.sign(creds.private_key, server_der, creds.cert_der),
        )
        with grpc.secure_channel(
            target, grpc.ssl_channel_credentials(server_pem), PINNED_OPTIONS
        ) as attest_channel:
            stub = attest_pb2_grpc.AttestStub(attest_channel)
            reply = _call(stub.Attest, offer_to_proto(offer), deadline, target)
        grant = grant_from_proto(reply)
        mtls_target = f"{host}:{grant.mtls_port}"
        channel = grpc.secure_channel(
            mtls_target,
            grpc.ssl_channel_credentials(server_pem, creds.key_pem, creds.cert_pem),
            PINNED_OPTIONS,
        )
        try:
            confirm = attest_pb2_grpc.AttestStub(channel).Confirm
            seen_as = _call(confirm, attest_pb2.ConfirmRequest(), deadline, mtls_target)
        except CvflError:
            channel.close()
            raise
        log.info(
            "attested mutual TLS to %s; the server sees us as %s",
            mtls_target,
            seen_as.peer_description,
        )
        return channel

    def authorize(self, context: grpc.ServicerContext) -> str:
        """Accept a stream only from a pinned, attested client certificate.

        Raises:
            AttestationError: no client certificate, or not a live pin.
        """
        return self.gate.authorize_pem(peer_pem(context))


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
    with grpc.secure_channel(target, grpc.ssl_channel_credentials(pem), PINNED_OPTIONS) as ch:
        try:
            attest_pb2_grpc.AttestStub(ch).Report(report, timeout=timeout)
        except grpc.RpcError:
            log.debug("could not report the refusal to %s", target)


def _add_port(server: grpc.Server, address: str, creds: grpc.ServerCredentials) -> int:
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
    cfg: AttestationConfig, *, valid_for: dt.timedelta = DEFAULT_VALIDITY, mtls_port: int = 0
) -> RatlsSecurity:
    """Build the RA-TLS channel security from the job's ``[attestation]`` settings."""
    return RatlsSecurity(
        make_provider(cfg),
        default_verifier(cfg),
        cfg.policy,
        valid_for=valid_for,
        mtls_port=mtls_port,
    )
