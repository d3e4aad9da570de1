"""SGX DCAP quote version 3: a strict parser for the header and the enclave report body.

Offsets follow docs/design.md, section 4 (all integers little-endian). The parser checks
structure only; the signature is checked by a verifier (:mod:`cvfl.attestation.dcap` for real
quotes, :mod:`cvfl.attestation.simulated` for the simulated TEE). Any malformed input ends in an
:class:`~cvfl.errors.AttestationError` with a stable code, never another exception.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from cvfl.errors import AttestationError, mismatch

HEADER_LEN = 48
REPORT_BODY_LEN = 384
SIGNED_LEN = HEADER_LEN + REPORT_BODY_LEN  # 432: what the attestation key signs
MIN_QUOTE_LEN = SIGNED_LEN + 4  # plus the signature-data length field
MAX_QUOTE_LEN = 8192  # Gramine's /dev/attestation/quote buffer

QUOTE_VERSION = 3
ATT_KEY_ECDSA_P256 = 2
TEE_TYPE_SGX = 0
INTEL_QE_VENDOR_ID = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")

FLAG_INIT = 0x01
FLAG_DEBUG = 0x02
FLAG_MODE64 = 0x04
FLAG_PROVISION_KEY = 0x10

_HEADER = struct.Struct("<HHIHH16s20s")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


def build_fields(mr_enclave: bytes, mr_signer: bytes, prod_id: int, svn: int) -> dict[str, str]:
    """The four fields that name an enclave build, printable (hex measurements), in this order.

    Shared by a quote's identity and a SIGSTRUCT (:mod:`cvfl.attestation.sigstruct`).
    """
    return {
        "mr_enclave": mr_enclave.hex(),
        "mr_signer": mr_signer.hex(),
        "isv_prod_id": str(prod_id),
        "isv_svn": str(svn),
    }


@dataclass(frozen=True)
class EnclaveIdentity:
    """What an SGX report says about the enclave that produced it."""

    mr_enclave: bytes
    mr_signer: bytes
    isv_prod_id: int
    isv_svn: int
    attributes_flags: int
    xfrm: int
    report_data: bytes

    @property
    def debug(self) -> bool:
        """Whether the enclave was launched in debug mode (its memory is readable by the host)."""
        return bool(self.attributes_flags & FLAG_DEBUG)

    def describe(self) -> dict[str, str]:
        """Return the identity as printable strings (hex for byte fields)."""
        return {
            **build_fields(self.mr_enclave, self.mr_signer, self.isv_prod_id, self.isv_svn),
            "attributes.flags": f"0x{self.attributes_flags:02x}",
            "attributes.xfrm": f"0x{self.xfrm:x}",
            "debug": str(self.debug).lower(),
            "report_data": self.report_data.hex(),
        }


@dataclass(frozen=True)
class Quote:
    """A parsed SGX DCAP v3 quote: header fields, the enclave identity and the raw bytes."""

    version: int
    attestation_key_type: int
    tee_type: int
    qe_svn: int
    pce_svn: int
    qe_vendor_id: bytes
    user_data: bytes
    cpu_svn: bytes
    misc_select: int
    identity: EnclaveIdentity
    signature_data: bytes
    raw: bytes

    @property
    def signed_part(self) -> bytes:
        """The header and report body: the bytes the attestation key signs."""
        return self.raw[:SIGNED_LEN]


def _refuse(message: str, *, code: str) -> AttestationError:
    return AttestationError(f"malformed quote: {message}", code=code)


def _check_length(data: bytes) -> None:
    if len(data) < MIN_QUOTE_LEN:
        raise _refuse(
            mismatch("length", f"at least {MIN_QUOTE_LEN}", len(data)),
            code="attestation.quote_truncated",
        )
    if len(data) > MAX_QUOTE_LEN:
        raise _refuse(
            mismatch("length", f"at most {MAX_QUOTE_LEN}", len(data)),
            code="attestation.quote_oversized",
        )


def _parse_identity(data: bytes) -> EnclaveIdentity:
    return EnclaveIdentity(
        mr_enclave=data[112:144],
        mr_signer=data[176:208],
        isv_prod_id=_U16.unpack_from(data, 304)[0],
        isv_svn=_U16.unpack_from(data, 306)[0],
        attributes_flags=_U64.unpack_from(data, 96)[0],
        xfrm=_U64.unpack_from(data, 104)[0],
        report_data=data[368:432],
    )


def parse_quote(data: bytes) -> Quote:
    """Parse an SGX DCAP v3 quote (structure only; the signature is not checked here).

    Raises:
        AttestationError: truncated, oversized, wrong version/key/TEE type, or a signature-data
            length that disagrees with the bytes present.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise _refuse(mismatch("type", "bytes", type(data).__name__), code="attestation.quote_type")
    data = bytes(data)
    _check_length(data)
    version, key_type, tee_type, qe_svn, pce_svn, vendor, user_data = _HEADER.unpack_from(data)
    if version != QUOTE_VERSION:
        raise _refuse(mismatch("version", QUOTE_VERSION, version), code="attestation.quote_version")
    if key_type != ATT_KEY_ECDSA_P256:
        raise _refuse(
            mismatch("attestation_key_type", ATT_KEY_ECDSA_P256, key_type),
            code="attestation.quote_key_type",
        )
    if tee_type != TEE_TYPE_SGX:
        raise _refuse(
            mismatch("tee_type", TEE_TYPE_SGX, tee_type), code="attestation.quote_tee_type"
        )
    sig_len = _U32.unpack_from(data, SIGNED_LEN)[0]
    present = len(data) - MIN_QUOTE_LEN
    if sig_len != present:
        raise _refuse(
            mismatch("signature_data_len", present, sig_len),
            code="attestation.quote_signature_length",
        )
    return Quote(
        version=version,
        attestation_key_type=key_type,
        tee_type=tee_type,
        qe_svn=qe_svn,
        pce_svn=pce_svn,
        qe_vendor_id=vendor,
        user_data=user_data,
        cpu_svn=data[48:64],
        misc_select=_U32.unpack_from(data, 64)[0],
        identity=_parse_identity(data),
        signature_data=data[MIN_QUOTE_LEN:],
        raw=data,
    )
