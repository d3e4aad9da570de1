"""The ``cvfl.v1.Attest`` gRPC servicer: translates messages and delegates to the gatekeeper."""

from __future__ import annotations

import threading

import grpc

from cvfl.errors import AttestationError
from cvfl.ratls.gate import Gatekeeper, public_reason
from cvfl.ratls.serde import grant_to_proto, offer_from_proto
from cvfl.wire import attest_pb2, attest_pb2_grpc

ERROR_CODE_KEY = "cvfl-error-code"
# Unauthenticated calls verified at once; more are answered RESOURCE_EXHAUSTED straight away.
MAX_CONCURRENT_ATTESTS = 4


def peer_pem(context: grpc.ServicerContext) -> bytes | None:
    """Return the caller's TLS certificate (PEM) from the auth context, or None."""
    certs = context.auth_context().get("x509_pem_cert")
    if isinstance(certs, bytes):
        return certs or None
    return bytes(certs[0]) if certs else None


def abort_refused(context: grpc.ServicerContext, error: AttestationError, message: str) -> None:
    """End the call with PERMISSION_DENIED, ``message`` and the refusal's stable code."""
    context.set_trailing_metadata(((ERROR_CODE_KEY, error.code),))
    context.abort(grpc.StatusCode.PERMISSION_DENIED, message)


class AttestService(attest_pb2_grpc.AttestServicer):
    """Serves ``Attest`` and ``Report`` (attest route) and ``Confirm`` (mutual-TLS route)."""

    def __init__(self, gate: Gatekeeper) -> None:
        self.gate = gate
        self._slots = threading.BoundedSemaphore(MAX_CONCURRENT_ATTESTS)

    def Attest(  # noqa: N802 (gRPC method name)
        self, request: attest_pb2.AttestRequest, context: grpc.ServicerContext
    ) -> attest_pb2.AttestResponse:
        """Verify the caller's certificate and pin it; refuse with PERMISSION_DENIED."""
        if not self._slots.acquire(blocking=False):
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "too many attestations at once")
        try:
            server_der = self.gate.identity.current().cert_der
            grant = self.gate.admit(offer_from_proto(request), server_der)
        except AttestationError as exc:
            # The caller is not attested: it learns the code and the failed fields only.
            abort_refused(context, exc, public_reason(exc))
            raise  # unreachable: abort raises
        finally:
            self._slots.release()
        return grant_to_proto(grant)

    def Confirm(  # noqa: N802 (gRPC method name)
        self, request: attest_pb2.ConfirmRequest, context: grpc.ServicerContext
    ) -> attest_pb2.ConfirmResponse:
        """Tell a mutual-TLS caller how the server sees it (refuse if it is not pinned)."""
        try:
            peer = self.gate.authorize_pem(peer_pem(context))
        except AttestationError as exc:
            abort_refused(context, exc, exc.message)
            raise
        return attest_pb2.ConfirmResponse(peer_description=peer.description)

    def Report(  # noqa: N802 (gRPC method name)
        self, request: attest_pb2.RefusalReport, context: grpc.ServicerContext
    ) -> attest_pb2.RefusalAck:
        """Record that a client refused this server, and its reason (truncated first)."""
        self.gate.note_peer_refusal(request.code, request.message)
        return attest_pb2.RefusalAck()
