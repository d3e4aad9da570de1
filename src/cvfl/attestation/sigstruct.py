"""Intel SGX SIGSTRUCT (Gramine's ``.sig`` file): the enclave's measurement and its signer.

A SIGSTRUCT is 1808 bytes, little-endian throughout (Intel SDM vol. 3D, "SGX data structures";
the same layout as ``struct sgx_sigstruct`` in the Linux kernel's SGX headers and Gramine's
``Sigstruct`` class):

========  =====  ====================================================================
offset    size   field
========  =====  ====================================================================
0         16     HEADER, the constant 06000000 E1000000 00000100 00000000
16        4      VENDOR (0x8086 for Intel, else 0)
20        4      DATE (Intel: YYYYMMDD in BCD; Gramine: year u16, month u8, day u8)
24        16     HEADER2, the constant 01010000 60000000 60000000 01000000
40        4      SWDEFINED
44        84     reserved
128       384    MODULUS of the signer's RSA-3072 key
512       4      EXPONENT, always 3
516       384    SIGNATURE (RSA PKCS#1 v1.5, SHA-256) over bytes 0-128 and 900-1028
900       4      MISCSELECT
904       4      MISCMASK
908       20     reserved
928       16     ATTRIBUTES (flags u64, xfrm u64)
944       16     ATTRIBUTEMASK
960       32     ENCLAVEHASH, the enclave's MRENCLAVE
992       32     reserved
1024      2      ISVPRODID
1026      2      ISVSVN
1028      12     reserved
1040      384    Q1 = floor(signature^2 / modulus)
1424      384    Q2 = floor((signature^3 - Q1 * signature * modulus) / modulus)
========  =====  ====================================================================

The signer's identity, MRSIGNER, is the SHA-256 of the modulus as stored (little-endian).
"""

from __future__ import annotations

import datetime
import hashlib
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cvfl.attestation.quote import build_fields
from cvfl.errors import AttestationError, mismatch

SIGSTRUCT_SIZE = 1808
HEADER = bytes.fromhex("06000000e10000000000010000000000")
HEADER2 = bytes.fromhex("01010000600000006000000001000000")
KEY_BYTES = 384  # RSA-3072
EXPONENT = 3
DEBUG_FLAG = 0x2  # ATTRIBUTES.DEBUG

_VENDOR, _DATE, _HEADER2 = 16, 20, 24
_MODULUS, _EXPONENT, _SIGNATURE = 128, 512, 516
_MISC_SELECT, _MISC_MASK, _ATTRIBUTES, _ATTRIBUTE_MASK = 900, 904, 928, 944
_ENCLAVE_HASH, _ISV_PROD_ID, _ISV_SVN = 960, 1024, 1026
_Q1, _Q2 = 1040, 1424
SIGNED_REGIONS = ((0, 128), (900, 1028))  # what the signature covers, concatenated


@dataclass(frozen=True)
class Sigstruct:
    """What a SIGSTRUCT says about an enclave build, and whether its signature holds."""

    mr_enclave: bytes
    mr_signer: bytes
    isv_prod_id: int
    isv_svn: int
    misc_select: int
    misc_mask: int
    attributes_flags: int
    attributes_xfrm: int
    attributes_flags_mask: int
    attributes_xfrm_mask: int
    vendor: int
    date_raw: int
    date: datetime.date | None
    signature_valid: bool
    q_valid: bool

    @property
    def debug(self) -> bool:
        """Whether the enclave is built debuggable (its memory is readable by the host)."""
        return bool(self.attributes_flags & DEBUG_FLAG)

    def describe(self) -> dict[str, str]:
        """The fields as printable strings, in a fixed order (``cvfl attest measure``)."""
        return {
            **build_fields(self.mr_enclave, self.mr_signer, self.isv_prod_id, self.isv_svn),
            "misc_select": f"0x{self.misc_select:08x} (mask 0x{self.misc_mask:08x})",
            "attributes": (
                f"flags 0x{self.attributes_flags:016x} xfrm 0x{self.attributes_xfrm:016x} "
                f"(mask flags 0x{self.attributes_flags_mask:016x} "
                f"xfrm 0x{self.attributes_xfrm_mask:016x})"
            ),
            "debug": "true" if self.debug else "false",
            "date": self.date.isoformat() if self.date else f"unreadable (0x{self.date_raw:08x})",
            "vendor": f"0x{self.vendor:08x}",
            "signature": "valid" if self.signature_valid else "INVALID",
            "q1_q2": "consistent" if self.q_valid else "INCONSISTENT",
        }

    def as_json(self) -> dict[str, object]:
        """The fields as JSON values (``cvfl attest measure --json``)."""
        return {
            "mr_enclave": self.mr_enclave.hex(),
            "mr_signer": self.mr_signer.hex(),
            "isv_prod_id": self.isv_prod_id,
            "isv_svn": self.isv_svn,
            "misc_select": self.misc_select,
            "misc_mask": self.misc_mask,
            "attributes_flags": self.attributes_flags,
            "attributes_xfrm": self.attributes_xfrm,
            "attributes_flags_mask": self.attributes_flags_mask,
            "attributes_xfrm_mask": self.attributes_xfrm_mask,
            "debug": self.debug,
            "date": self.date.isoformat() if self.date else None,
            "date_raw": self.date_raw,
            "vendor": self.vendor,
            "signature_valid": self.signature_valid,
            "q1_q2_consistent": self.q_valid,
        }


def parse_sigstruct(data: bytes) -> Sigstruct:
    """Parse a SIGSTRUCT and check its RSA-3072 signature.

    A bad signature does not raise: the result says ``signature_valid=False`` so the caller can
    show what the file claims before refusing it.

    Raises:
        AttestationError: wrong size, header, exponent or modulus length (field, expected, seen).
    """
    _check_structure(data)
    modulus = data[_MODULUS : _MODULUS + KEY_BYTES]
    flags, xfrm, flags_mask, xfrm_mask = struct.unpack_from("<4Q", data, _ATTRIBUTES)
    date_raw = _u32(data, _DATE)
    return Sigstruct(
        mr_enclave=bytes(data[_ENCLAVE_HASH : _ENCLAVE_HASH + 32]),
        mr_signer=hashlib.sha256(modulus).digest(),
        isv_prod_id=struct.unpack_from("<H", data, _ISV_PROD_ID)[0],
        isv_svn=struct.unpack_from("<H", data, _ISV_SVN)[0],
        misc_select=_u32(data, _MISC_SELECT),
        misc_mask=_u32(data, _MISC_MASK),
        attributes_flags=flags,
        attributes_xfrm=xfrm,
        attributes_flags_mask=flags_mask,
        attributes_xfrm_mask=xfrm_mask,
        vendor=_u32(data, _VENDOR),
        date_raw=date_raw,
        date=_date(date_raw),
        signature_valid=_signature_valid(data),
        q_valid=_q_valid(data),
    )


def signed_bytes(data: bytes) -> bytes:
    """The bytes the SIGSTRUCT's signature covers: header (0-128) then body (900-1028)."""
    return b"".join(data[start:end] for start, end in SIGNED_REGIONS)


def _check_structure(data: bytes) -> None:
    if len(data) != SIGSTRUCT_SIZE:
        raise AttestationError(
            mismatch("sigstruct size", f"{SIGSTRUCT_SIZE} bytes", f"{len(data)} bytes"),
            code="attestation.sigstruct_size",
        )
    for name, offset, expected in (("header", 0, HEADER), ("header2", _HEADER2, HEADER2)):
        seen = data[offset : offset + len(expected)]
        if seen != expected:
            raise AttestationError(
                mismatch(f"sigstruct {name}", expected.hex(), seen.hex()),
                code="attestation.sigstruct_header",
            )
    exponent = _u32(data, _EXPONENT)
    if exponent != EXPONENT:
        raise AttestationError(
            mismatch("sigstruct exponent", EXPONENT, exponent),
            code="attestation.sigstruct_exponent",
        )
    bits = int.from_bytes(data[_MODULUS : _MODULUS + KEY_BYTES], "little").bit_length()
    if bits != KEY_BYTES * 8:
        raise AttestationError(
            mismatch("sigstruct modulus", f"{KEY_BYTES * 8} bits", f"{bits} bits"),
            code="attestation.sigstruct_modulus",
        )


def _u32(data: bytes, offset: int) -> int:
    value: int = struct.unpack_from("<I", data, offset)[0]
    return value


def _integers(data: bytes) -> tuple[int, int]:
    modulus = int.from_bytes(data[_MODULUS : _MODULUS + KEY_BYTES], "little")
    signature = int.from_bytes(data[_SIGNATURE : _SIGNATURE + KEY_BYTES], "little")
    return modulus, signature


def _signature_valid(data: bytes) -> bool:
    modulus, signature = _integers(data)
    if signature >= modulus or modulus % 2 == 0:
        return False
    try:
        key = rsa.RSAPublicNumbers(EXPONENT, modulus).public_key()
        key.verify(
            signature.to_bytes(KEY_BYTES, "big"),
            signed_bytes(data),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
    except (InvalidSignature, ValueError):
        return False
    return True


def _q_valid(data: bytes) -> bool:
    """Q1 and Q2, which EINIT uses to check the signature quickly, agree with it."""
    modulus, signature = _integers(data)
    q1 = int.from_bytes(data[_Q1 : _Q1 + KEY_BYTES], "little")
    q2 = int.from_bytes(data[_Q2 : _Q2 + KEY_BYTES], "little")
    square = signature * signature
    return q1 == square // modulus and q2 == (square % modulus) * signature // modulus


def _date(raw: int) -> datetime.date | None:
    """Gramine's binary date (year u16, month, day), else Intel's BCD YYYYMMDD, else None."""
    binary = (raw & 0xFFFF, (raw >> 16) & 0xFF, raw >> 24)
    digits = f"{raw:08x}"
    bcd = (int(digits[:4]), int(digits[4:6]), int(digits[6:])) if digits.isdigit() else None
    for year, month, day in (binary, bcd) if bcd else (binary,):
        try:
            return datetime.date(year, month, day)
        except ValueError:
            continue
    return None
