"""The simulated TEE: software-signed quotes in the SGX DCAP v3 layout. NOT a real enclave.

Layout (documented in docs/attestation.md): a normal v3 header (version 3, key type 2, TEE type
0) whose QE vendor id is :data:`SIM_QE_VENDOR_ID` (ASCII ``CVFL-SIMULATED!!``, never Intel's) and
whose user data starts with ``cvfl-sim``; a normal 384-byte report body; then 128 bytes of
signature data: an ECDSA P-256/SHA-256 signature (r || s, 32 bytes each, big-endian) over the
first 432 bytes, followed by the simulation public key (x || y). The key is derived from a
published seed, so anyone can forge these quotes: that is the point of the ``allow_simulated``
policy switch, which is off by default.

``mr_enclave`` is a SHA-256 over the installed cvfl package's files and any extra code paths
(sorted relative paths and contents), so changing the code changes the measurement. ``mr_signer``
is the fixed :data:`SIM_MR_SIGNER`.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

import cvfl
from cvfl.attestation.evidence import SIMULATED_TCB_STATUS, VerifiedEvidence, check_report_data
from cvfl.attestation.quote import (
    ATT_KEY_ECDSA_P256,
    FLAG_INIT,
    FLAG_MODE64,
    QUOTE_VERSION,
    SIGNED_LEN,
    TEE_TYPE_SGX,
    Quote,
    parse_quote,
)
from cvfl.errors import AttestationError, ConfigError, mismatch
from cvfl.logs import get_logger

log = get_logger(__name__)

SIM_QE_VENDOR_ID = b"CVFL-SIMULATED!!"
SIM_USER_DATA = b"cvfl-sim".ljust(20, b"\0")
SIM_MR_SIGNER = hashlib.sha256(b"cvfl simulated enclave signer v1").digest()
SIM_KEY_SEED = b"cvfl simulated TEE attestation key v1 (public, insecure)"
SIM_ATTRIBUTES_FLAGS = FLAG_INIT | FLAG_MODE64
SIM_XFRM = 0x03
SIG_DATA_LEN = 128

_P256_ORDER = int("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16)


def _simulation_key() -> ec.EllipticCurvePrivateKey:
    scalar = int.from_bytes(hashlib.sha256(SIM_KEY_SEED).digest(), "big") % (_P256_ORDER - 1) + 1
    return ec.derive_private_key(scalar, ec.SECP256R1())


_KEY = _simulation_key()
_PUBLIC = _KEY.public_key()
SIM_PUBLIC_KEY = _PUBLIC.public_numbers().x.to_bytes(32, "big") + (
    _PUBLIC.public_numbers().y.to_bytes(32, "big")
)


def _walk(root: Path) -> Iterator[tuple[str, Path]]:
    if root.is_file():
        yield root.name, root
        return
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            yield path.relative_to(root).as_posix(), path


def measure_code(code_paths: Sequence[Path] = ()) -> bytes:
    """Return the simulated mr_enclave: SHA-256 over cvfl's files and the extra code paths.

    Each file contributes its label (``cvfl/<relative path>`` or ``extra<i>/<name>/<relative
    path>``) and its contents, both length-prefixed, in sorted order.

    Raises:
        ConfigError: an extra code path does not exist or cannot be read.
    """
    digest = hashlib.sha256(b"cvfl simulated mr_enclave v1\0")
    roots: list[tuple[str, Path]] = [("cvfl", Path(cvfl.__file__).resolve().parent)]
    for index, extra in enumerate(code_paths):
        path = Path(extra)
        if not path.exists():
            raise ConfigError(
                mismatch("code path", "an existing file or folder", str(path)),
                code="config.code_path",
            )
        roots.append((f"extra{index}/{path.name}", path))
    for prefix, root in roots:
        for rel, path in _walk(root):
            label = f"{prefix}/{rel}".encode()
            try:
                content = path.read_bytes()
            except OSError as exc:
                raise ConfigError(
                    f"cannot read code file {path}: {exc}", code="config.code_path"
                ) from exc
            digest.update(struct.pack("<Q", len(label)) + label)
            digest.update(struct.pack("<Q", len(content)) + content)
    return digest.digest()


def _body(mr_enclave: bytes, isv_prod_id: int, isv_svn: int, report_data: bytes) -> bytes:
    body = bytearray(384)
    struct.pack_into("<QQ", body, 48, SIM_ATTRIBUTES_FLAGS, SIM_XFRM)
    body[64:96] = mr_enclave
    body[128:160] = SIM_MR_SIGNER
    struct.pack_into("<HH", body, 256, isv_prod_id, isv_svn)
    body[320:384] = report_data
    return bytes(body)


class SimulatedProvider:
    """Evidence made in software. Development and CI only; every creation logs a WARNING."""

    name = "simulated"
    simulated = True

    def __init__(
        self, code_paths: Sequence[Path] = (), *, isv_prod_id: int = 0, isv_svn: int = 0
    ) -> None:
        self.mr_enclave = measure_code(code_paths)
        self.mr_signer = SIM_MR_SIGNER
        self.isv_prod_id = isv_prod_id
        self.isv_svn = isv_svn
        log.warning(
            "INSECURE: simulated TEE, not a real enclave; its quotes are software-signed with a "
            "public key and prove nothing (mr_enclave %s)",
            self.mr_enclave.hex(),
        )

    def quote(self, report_data: bytes) -> bytes:
        """Return a simulated quote binding ``report_data`` (exactly 64 bytes)."""
        data = check_report_data(report_data)
        header = struct.pack(
            "<HHIHH16s20s",
            QUOTE_VERSION,
            ATT_KEY_ECDSA_P256,
            TEE_TYPE_SGX,
            0,
            0,
            SIM_QE_VENDOR_ID,
            SIM_USER_DATA,
        )
        signed = header + _body(self.mr_enclave, self.isv_prod_id, self.isv_svn, data)
        r, s = decode_dss_signature(_KEY.sign(signed, ec.ECDSA(hashes.SHA256())))
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return signed + struct.pack("<I", SIG_DATA_LEN) + sig + SIM_PUBLIC_KEY


def is_simulated_quote(quote: Quote) -> bool:
    """Whether a parsed quote carries the simulation marker (QE vendor id)."""
    return quote.qe_vendor_id == SIM_QE_VENDOR_ID


class SimulatedVerifier:
    """Checks simulated quotes for real: marker, structure, key and ECDSA signature."""

    def verify(self, quote: bytes, *, at: int | None = None) -> VerifiedEvidence:
        """Verify a simulated quote (``at`` is ignored: simulated evidence has no collateral).

        Raises:
            AttestationError: not a simulated quote, malformed, or a bad signature.
        """
        parsed = parse_quote(quote)
        if not is_simulated_quote(parsed):
            raise AttestationError(
                mismatch("qe_vendor_id", SIM_QE_VENDOR_ID.hex(), parsed.qe_vendor_id.hex()),
                code="attestation.sim_marker",
            )
        _check_fixed_fields(parsed)
        _check_signature(parsed)
        return VerifiedEvidence(
            identity=parsed.identity,
            tcb_status=SIMULATED_TCB_STATUS,
            advisory_ids=(),
            simulated=True,
        )


def _check_fixed_fields(parsed: Quote) -> None:
    sig = parsed.signature_data
    if len(sig) != SIG_DATA_LEN:
        raise AttestationError(
            mismatch("simulated signature_data length", SIG_DATA_LEN, len(sig)),
            code="attestation.sim_signature",
        )
    if parsed.user_data != SIM_USER_DATA:
        raise AttestationError(
            mismatch("simulated user_data", SIM_USER_DATA.hex(), parsed.user_data.hex()),
            code="attestation.sim_marker",
        )
    if sig[64:] != SIM_PUBLIC_KEY:
        raise AttestationError(
            mismatch("simulated attestation key", SIM_PUBLIC_KEY.hex()[:16], sig[64:].hex()[:16]),
            code="attestation.sim_signature",
        )


def _check_signature(parsed: Quote) -> None:
    sig = parsed.signature_data
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big")
    try:
        _PUBLIC.verify(
            encode_dss_signature(r, s), parsed.raw[:SIGNED_LEN], ec.ECDSA(hashes.SHA256())
        )
    except (InvalidSignature, ValueError):
        raise AttestationError(
            "simulated quote signature: expected valid over header and report body, seen invalid",
            code="attestation.sim_signature",
        ) from None
