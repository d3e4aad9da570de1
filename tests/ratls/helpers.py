"""Test helpers: quotes with chosen identity fields, a real server, and an application service.

Crafted quotes use the simulated TEE's published layout and its published signing seed (see
cvfl.attestation.simulated), so the real SimulatedVerifier checks them like any other.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import struct
import threading
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, replace

import grpc
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from cvfl.attestation.evidence import VerifiedEvidence
from cvfl.attestation.policy import AcceptedIdentity, Policy
from cvfl.attestation.quote import SIGNED_LEN
from cvfl.attestation.simulated import (
    SIM_ATTRIBUTES_FLAGS,
    SIM_KEY_SEED,
    SIM_MR_SIGNER,
    SimulatedProvider,
    SimulatedVerifier,
)
from cvfl.attestation.terms import JobTerms
from cvfl.bridge.security import SERVER_OPTIONS
from cvfl.errors import AttestationError
from cvfl.ratls import RatlsSecurity

P256_ORDER = int("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16)
SIM_KEY = ec.derive_private_key(
    int.from_bytes(hashlib.sha256(SIM_KEY_SEED).digest(), "big") % (P256_ORDER - 1) + 1,
    ec.SECP256R1(),
)
MR_ENCLAVE = hashlib.sha256(b"test enclave v1").digest()
OTHER_MEASUREMENT = hashlib.sha256(b"someone else").digest()
FLAG_DEBUG = 0x02

_BASE: list[SimulatedProvider] = []


def base_provider() -> SimulatedProvider:
    """One real SimulatedProvider per test session (measuring the package takes a moment)."""
    if not _BASE:
        _BASE.append(SimulatedProvider())
    return _BASE[0]


@dataclass(frozen=True)
class CraftedProvider:
    """Simulated-format quotes with chosen identity fields, signed with the simulation key."""

    mr_enclave: bytes = MR_ENCLAVE
    mr_signer: bytes = SIM_MR_SIGNER
    isv_prod_id: int = 0
    isv_svn: int = 0
    flags: int = SIM_ATTRIBUTES_FLAGS
    bind_to: bytes | None = None  # report_data to use instead of the one asked for
    name: str = "crafted-simulated"
    simulated: bool = True

    def quote(self, report_data: bytes) -> bytes:
        raw = bytearray(base_provider().quote(self.bind_to or report_data))
        struct.pack_into("<Q", raw, 96, self.flags)
        raw[112:144] = self.mr_enclave
        raw[176:208] = self.mr_signer
        struct.pack_into("<HH", raw, 304, self.isv_prod_id, self.isv_svn)
        r, s = decode_dss_signature(
            SIM_KEY.sign(bytes(raw[:SIGNED_LEN]), ec.ECDSA(hashes.SHA256()))
        )
        raw[SIGNED_LEN + 4 : SIGNED_LEN + 68] = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return bytes(raw)

    def variant(self, **changes: object) -> CraftedProvider:
        return replace(self, **changes)  # type: ignore[arg-type]


class PlatformVerifier:
    """Verifies simulated quotes for real, then reports them as a DCAP verifier would for a
    platform at ``tcb_status`` (a real platform in that state is not available to tests)."""

    def __init__(self, tcb_status: str) -> None:
        self.inner = SimulatedVerifier()
        self.tcb_status = tcb_status

    def verify(self, quote: bytes, *, at: int | None = None) -> VerifiedEvidence:
        checked = self.inner.verify(quote, at=at)
        return VerifiedEvidence(checked.identity, self.tcb_status, (), simulated=False)


def policy(**changes: object) -> Policy:
    """A policy accepting MR_ENCLAVE (isv_prod_id 0, isv_svn >= 0) and simulated evidence."""
    base = Policy(
        identities=(AcceptedIdentity(mr_enclave=MR_ENCLAVE, isv_prod_id=0, min_isv_svn=0),),
        allow_simulated=True,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


POLICY_DIGEST = hashlib.sha256(b"test policy").hexdigest()


def terms(role: str = "leader", **changes: object) -> JobTerms:
    """Job terms of a party of the test job (sealed outputs, ECDH PSI, training)."""
    base = JobTerms(
        job_id="test-job",
        role=role,
        command="train",
        sealing="file",
        plaintext_outputs=False,
        psi_mode="ecdh",
        policy_digest=POLICY_DIGEST,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def security(
    provider: CraftedProvider | None = None,
    pol: Policy | None = None,
    verifier: object | None = None,
    role: str = "leader",
    job_terms: JobTerms | None = None,
    **kwargs: object,
) -> RatlsSecurity:
    """A party's RA-TLS security (a leader unless ``role`` says otherwise)."""
    return RatlsSecurity(
        provider or CraftedProvider(),
        verifier or SimulatedVerifier(),  # type: ignore[arg-type]
        pol or policy(),
        terms=job_terms or terms(role),
        **kwargs,  # type: ignore[arg-type]
    )


APP_METHOD = "/cvfl.test.App/Echo"


class App:
    """An application service that authorizes each call first, as the bridge does."""

    def __init__(self, sec: RatlsSecurity) -> None:
        self.sec = sec
        self.messages = 0
        self.peers: list[str] = []
        self.lock = threading.Lock()

    def echo(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        try:
            peer = self.sec.authorize(context)
        except AttestationError as exc:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, exc.message)
        with self.lock:
            self.messages += 1
            self.peers.append(peer.description)
        return request

    def handler(self) -> grpc.GenericRpcHandler[bytes, bytes]:
        return grpc.method_handlers_generic_handler(
            "cvfl.test.App", {"Echo": grpc.unary_unary_rpc_method_handler(self.echo)}
        )


@dataclass
class Running:
    sec: RatlsSecurity
    app: App
    port: int

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


@contextmanager
def serve(sec: RatlsSecurity) -> Iterator[Running]:
    """A real gRPC server on 127.0.0.1 port 0 protected by ``sec``, with the test App."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=SERVER_OPTIONS)
    app = App(sec)
    server.add_generic_rpc_handlers((app.handler(),))
    binding = sec.bind(server, "127.0.0.1:0")
    server.start()
    try:
        yield Running(sec, app, binding.port)
    finally:
        server.stop(0).wait()
        binding.close()


def echo(channel: grpc.Channel, payload: bytes = b"hello", timeout: float = 5.0) -> bytes:
    result: bytes = channel.unary_unary(
        APP_METHOD, request_serializer=None, response_deserializer=None
    )(payload, timeout=timeout)
    return result


def past(hours: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours)
