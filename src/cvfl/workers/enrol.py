"""Enrolment: rank 0 admits the party's other workers, and nobody else.

Rank 0 serves ``cvfl.v1.Workers`` bound through the party's own-party channel security
(:meth:`ChannelSecurity.for_own_party`; with RA-TLS the caller must run this very enclave with
exactly this party's attested job terms and role). Each other rank dials it, claims
``{job_id, role, rank, world_size}`` with a proof that it holds the party key
(:mod:`cvfl.workers.proof`) and receives the run's group key. A call without a valid proof is
refused and logged, and rank 0 carries on (a stranger cannot stop the group); a proven claim that
does not fit is refused with a ``mismatch(...)`` message the caller sees as its error and rank 0
raises too.
"""

from __future__ import annotations

import random
import secrets
import threading
import time
from concurrent import futures
from typing import TypedDict

import grpc

from cvfl.bridge.security import SERVER_OPTIONS, ChannelSecurity
from cvfl.errors import (
    AttestationError,
    ConfigError,
    PeerUnavailableError,
    ProtocolError,
    mismatch,
)
from cvfl.logs import get_logger
from cvfl.wire import workers_pb2, workers_pb2_grpc
from cvfl.workers.buckets import KEY_SIZE
from cvfl.workers.context import WorkerContext
from cvfl.workers.proof import check_proof, make_proof
from cvfl.workers.serde import (
    EnrolClaim,
    EnrolGrant,
    claim_from_proto,
    claim_to_proto,
    grant_from_proto,
    grant_to_proto,
)

log = get_logger(__name__)

ERROR_CODE_KEY = "cvfl-error-code"


class Enrolment(TypedDict):
    """What a worker enrols with (keywords of :func:`enrol_group` and ``join_group``)."""

    job_id: str
    role: str
    timeout: float  # seconds for the whole enrolment (and the gloo rendezvous)
    party_key: bytes | None  # derived from the job's [sealing] key; None: one worker only


class Registry:
    """Rank 0's record of who enrolled; refuses claims that do not fit rank 0's own."""

    def __init__(self, own: EnrolClaim, key: bytes) -> None:
        self.own = own
        self._key = key
        self.enrolled: dict[int, str] = {}
        self.failure: ProtocolError | None = None
        self._changed = threading.Condition()

    def admit(self, claim: EnrolClaim, peer: str) -> EnrolGrant:
        """Enrol ``claim`` from ``peer`` and hand out the key, or refuse it.

        Raises:
            ProtocolError: code ``workers.enrol_refused``; the message names the field that
                differs with rank 0's value (expected) and the caller's (seen).
        """
        with self._changed:
            problem = self._problem(claim)
            if problem is not None:
                error = ProtocolError(
                    f"worker enrolment refused (rank {claim.rank}, {peer}): {problem}",
                    code="workers.enrol_refused",
                )
                log.error("%s", error.message)
                if self.failure is None:
                    self.failure = error
                self._changed.notify_all()
                raise error
            self.enrolled[claim.rank] = peer
            log.info(
                "workers: rank %d enrolled (%s); %d of %d ranks in",
                claim.rank,
                peer,
                len(self.enrolled) + 1,
                self.own.world_size,
            )
            self._changed.notify_all()
            return EnrolGrant(self._key, peer)

    def _problem(self, claim: EnrolClaim) -> str | None:
        own = self.own
        if claim.job_id != own.job_id:
            return mismatch("job id", own.job_id, claim.job_id)
        if claim.role != own.role:
            return mismatch("role", own.role, claim.role)
        if claim.world_size != own.world_size:
            return mismatch("world size", own.world_size, claim.world_size)
        if not 1 <= claim.rank < own.world_size:
            return mismatch("rank", f"1..{own.world_size - 1}", claim.rank)
        if claim.rank in self.enrolled:
            return mismatch("rank", "a rank not enrolled yet", f"{claim.rank} (already enrolled)")
        return None

    def wait(self, timeout: float) -> dict[int, str]:
        """Block until every other rank enrolled; return rank -> peer description.

        Raises:
            ProtocolError: a claim was refused (rank 0 stops too).
            PeerUnavailableError: ranks were missing after ``timeout`` seconds (named).
        """
        expected = self.own.world_size - 1
        with self._changed:
            self._changed.wait_for(
                lambda: self.failure is not None or len(self.enrolled) == expected, timeout
            )
            if self.failure is not None:
                raise self.failure
            missing = [r for r in range(1, self.own.world_size) if r not in self.enrolled]
            if missing:
                raise PeerUnavailableError(
                    f"workers {missing} of {self.own.world_size} did not enrol within "
                    f"{timeout:g} s (enrolled: {sorted(self.enrolled)})",
                    code="workers.enrol_timeout",
                )
            return dict(self.enrolled)


class WorkersServicer(workers_pb2_grpc.WorkersServicer):
    """Translates ``Enrol`` calls; delegates to the registry after ``authorize`` and the proof."""

    def __init__(self, security: ChannelSecurity, registry: Registry, party_key: bytes) -> None:
        self._security = security
        self._registry = registry
        self._party_key = party_key

    def Enrol(  # noqa: N802 - gRPC's method name
        self, request: workers_pb2.EnrolRequest, context: grpc.ServicerContext
    ) -> workers_pb2.EnrolResponse:
        """Admit one worker, or refuse it (PERMISSION_DENIED / FAILED_PRECONDITION)."""
        try:
            peer = self._security.authorize(context)
        except AttestationError as exc:
            log.error("workers: refused an unauthorised enrolment: %s", exc.message)
            context.set_trailing_metadata(((ERROR_CODE_KEY, exc.code),))
            context.abort(grpc.StatusCode.PERMISSION_DENIED, exc.message)
        try:
            claim = claim_from_proto(request)
            own = self._security.local_certificate
            check_proof(self._party_key, claim, own, bytes(request.proof))
        except (ProtocolError, AttestationError) as exc:  # not one of ours: refuse, carry on
            log.warning("workers: refused an enrolment from %s: %s", peer.description, exc)
            context.set_trailing_metadata(((ERROR_CODE_KEY, exc.code),))
            context.abort(grpc.StatusCode.PERMISSION_DENIED, exc.message)
        try:
            grant = self._registry.admit(claim, peer.description)
        except ProtocolError as exc:
            context.set_trailing_metadata(((ERROR_CODE_KEY, exc.code),))
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, exc.message)
        return grant_to_proto(grant)


class EnrolServer:
    """Rank 0's enrolment service, bound through ``security`` on ``address``."""

    def __init__(
        self,
        security: ChannelSecurity,
        address: str,
        own: EnrolClaim,
        key: bytes,
        party_key: bytes,
    ) -> None:
        self.registry = Registry(own, key)
        self.security = security
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="cvfl-enrol"),
            options=SERVER_OPTIONS,
        )
        workers_pb2_grpc.add_WorkersServicer_to_server(
            WorkersServicer(security, self.registry, party_key), self._server
        )
        self._binding = security.bind(self._server, address)
        self.port = self._binding.port
        self._server.start()
        self._stopped = False
        log.info(
            "workers: enrolment for %d workers on %s (port %d, %s)",
            own.world_size - 1,
            address,
            self.port,
            security.name,
        )

    def wait(self, timeout: float) -> dict[int, str]:
        """Wait for every other rank (see :meth:`Registry.wait`)."""
        return self.registry.wait(timeout)

    def stop(self, grace: float = 2.0) -> None:
        """Stop serving, letting answers in flight finish (idempotent)."""
        if not self._stopped:
            self._stopped = True
            self._server.stop(grace).wait()
            self._binding.close()


def enrol(
    security: ChannelSecurity, target: str, claim: EnrolClaim, timeout: float, party_key: bytes
) -> EnrolGrant:
    """Enrol with rank 0 at ``target``, retrying with jittered backoff until ``timeout``.

    Raises:
        ProtocolError: rank 0 refused the claim (the message names the field).
        AttestationError: rank 0 or this worker refused the other's evidence.
        PeerUnavailableError: rank 0 could not be reached in time.
    """
    deadline = time.monotonic() + timeout
    delay, last = 0.05, "not tried"
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            return _enrol_once(security, target, claim, remaining, party_key)
        except PeerUnavailableError as exc:
            last = exc.message
        log.debug("workers: rank 0 at %s not reachable yet (%s); retrying", target, last)
        time.sleep(min(delay * (0.5 + random.random()), max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 1.0)
    raise PeerUnavailableError(
        f"could not enrol with rank 0 at {target} within {timeout:g} s ({last})",
        code="workers.enrol_unreachable",
    )


def _enrol_once(
    security: ChannelSecurity, target: str, claim: EnrolClaim, remaining: float, party_key: bytes
) -> EnrolGrant:
    connection = security.connect(target, timeout=min(remaining, 10.0))
    channel = connection.channel
    proof = make_proof(party_key, claim, connection.peer.certificate)
    try:
        stub = workers_pb2_grpc.WorkersStub(channel)
        reply = stub.Enrol(claim_to_proto(claim, proof), timeout=max(0.05, min(remaining, 10.0)))
    except grpc.RpcError as exc:
        raise _rpc_error(exc, target) from None
    finally:
        channel.close()
    grant = grant_from_proto(reply)
    if len(grant.group_key) != KEY_SIZE:
        raise ProtocolError(
            mismatch("group key size", f"{KEY_SIZE} bytes", f"{len(grant.group_key)} bytes"),
            code="workers.enrol_key",
        )
    log.info("workers: rank %d enrolled with rank 0 at %s", claim.rank, target)
    return grant


def _rpc_error(exc: grpc.RpcError, target: str) -> Exception:
    call = exc if isinstance(exc, grpc.Call) else None
    code = call.code() if call is not None else None
    details = call.details() if call is not None else str(exc)
    meta: dict[str, object] = dict(call.trailing_metadata() or ()) if call is not None else {}
    err_code = str(meta.get(ERROR_CODE_KEY, ""))
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        return ProtocolError(
            f"rank 0 at {target} refused: {details}", code=err_code or "workers.enrol_refused"
        )
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return AttestationError(
            f"rank 0 at {target} refused us: {details}", code=err_code or "attestation.refused"
        )
    return PeerUnavailableError(f"rank 0 at {target}: {code} {details}", code="workers.enrol")


def enrol_group(
    ctx: WorkerContext,
    security: ChannelSecurity,
    *,
    job_id: str,
    role: str,
    timeout: float,
    party_key: bytes | None,
) -> bytes:
    """Run this rank's side of enrolment and return the group key (never logged).

    Rank 0 draws a fresh key, serves enrolment on ``ctx.enrol_bind_address`` until every other
    rank enrolled, then stops the server. Other ranks dial ``ctx.enrol_target``. With one worker
    there is nothing to enrol and no networking.

    Raises:
        ConfigError: ``workers.no_party_key`` with several workers and no party key (the job
            has no ``[sealing]`` key to derive it from).
    """
    own = EnrolClaim(job_id=job_id, role=role, rank=ctx.rank, world_size=ctx.world_size)
    if ctx.world_size == 1:
        return secrets.token_bytes(KEY_SIZE)
    if party_key is None:
        raise ConfigError(
            mismatch(
                "party key for worker enrolment",
                "one derived from the job's [sealing] key (workers prove they belong to this "
                "party with it)",
                "none: the job has no [sealing] table",
            ),
            code="workers.no_party_key",
        )
    security = security.for_own_party()
    if not ctx.is_root:
        return enrol(security, ctx.enrol_target, own, timeout, party_key).group_key
    key = secrets.token_bytes(KEY_SIZE)
    server = EnrolServer(security, ctx.enrol_bind_address, own, key, party_key)
    try:
        enrolled = server.wait(timeout)
    finally:
        server.stop()
    log.info("workers: all %d ranks enrolled: %s", ctx.world_size, enrolled)
    return key
