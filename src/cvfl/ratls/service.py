"""The ``cvfl.v1.Attest`` gRPC servicer: translates messages and delegates to the gatekeeper."""

from __future__ import annotations

import grpc

from cvfl.errors import AttestationError
from cvfl.ratls.gate import Gatekeeper
from cvfl.ratls.serde import grant_to_proto, offer_from_proto
from cvfl.wire import attest_pb2, attest_pb2_grpc

ERROR_CODE_KEY = "cvfl-error-code"


def peer_pem(context: grpc.ServicerContext) -> bytes | None:
    """Return the caller's TLS certificate (PEM) from the auth context, or None."""
    certs = context.auth_context().get("x509_pem_cert")
    if isinstance(certs, bytes):
        return certs or None
    return bytes(certs[0]) if certs else None


def abort_refused(context: grpc.ServicerContext, error: AttestationError) -> None:
    """End the call with PERMISSION_DENIED, the refusal's message and its stable code."""
    context.set_trailing_metadata(((ERROR_CODE_KEY, error.code),))
    context.abort(grpc.StatusCode.PERMISSION_DENIED, error.message)


class AttestService(attest_pb2_grpc.AttestServicer):
    """Serves ``Attest`` (on the server-TLS port) and ``Confirm`` (over mutual TLS)."""

    def __init__(self, gate: Gatekeeper, mtls_port: int) -> None:
        self.gate = gate
        self.mtls_port = mtls_port

    def Attest(  # noqa: N802 (gRPC method name)
        self, request: attest_pb2.AttestRequest, context: grpc.ServicerContext
    ) -> attest_pb2.AttestResponse:
        """Verify the caller's certificate and pin it; refuse with PERMISSION_DENIED."""
        server_der = self.gate.identity.current().cert_der
        try:
            grant = self.gate.admit(offer_from_proto(request), server_der, self.mtls_port)
        except AttestationError as exc:
            abort_refused(context, exc)
            raise  # unreachable: abort raises
        return grant_to_proto(grant)

    def Confirm(  # noqa: N802 (gRPC method name)
        self, request: attest_pb2.ConfirmRequest, context: grpc.ServicerContext
    ) -> attest_pb2.ConfirmResponse:
        """Tell a mutual-TLS caller how the server sees it (refuse if it is not pinned)."""
        try:
            description = self.gate.authorize_pem(peer_pem(context))
        except AttestationError as exc:
            abort_refused(context, exc)
            raise
        return attest_pb2.ConfirmResponse(peer_description=description)

    def Report(  # noqa: N802 (gRPC method name)
        self, request: attest_pb2.RefusalReport, context: grpc.ServicerContext
    ) -> attest_pb2.RefusalAck:
        """Record that a client refused this server, and its reason."""
        self.gate.note_peer_refusal(str(request.code), str(request.message))
        return attest_pb2.RefusalAck()
