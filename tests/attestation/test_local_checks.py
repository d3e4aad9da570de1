"""A quote is checked locally before any collateral is fetched; the PCCS fetch is bounded.

Forged quotes (a self-made PCK leaf or CA, a flipped signature byte, another attestation key)
go to a DcapVerifier whose collateral comes from a real HTTP server on 127.0.0.1: each is
refused, naming what failed, and the server receives no request at all.
"""

from __future__ import annotations

import datetime as dt
import json
import struct
import threading
import time
from dataclasses import replace
from pathlib import Path

import dcap_qvl
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from cvfl.attestation import DcapVerifier, FileCollateral, PccsCollateral
from cvfl.attestation.localcheck import (
    INTEL_SGX_ROOT_CA_KEY,
    SignatureData,
    check_quote_locally,
    parse_signature_data,
)
from cvfl.attestation.pccs import _quote_platform
from cvfl.attestation.quote import MIN_QUOTE_LEN, SIGNED_LEN, parse_quote
from cvfl.errors import AttestationError

from .conftest import T_VALID
from .pccs_server import serve_pccs

FIXED_LEN = 64 + 64 + 384 + 64 + 2


def _split(quote: bytes) -> SignatureData:
    return parse_signature_data(quote[MIN_QUOTE_LEN:])


def _build(quote: bytes, sig: SignatureData) -> bytes:
    """The quote's header and body with ``sig`` as its signature data (lengths recomputed)."""
    body = (
        sig.isv_signature
        + sig.attestation_key
        + sig.qe_report
        + sig.qe_report_signature
        + struct.pack("<H", len(sig.qe_auth_data))
        + sig.qe_auth_data
        + struct.pack("<HI", sig.cert_type, len(sig.cert_data))
        + sig.cert_data
    )
    return quote[:SIGNED_LEN] + struct.pack("<I", len(body)) + body


def _raw_signature(key: ec.EllipticCurvePrivateKey, message: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(message, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _cert(
    subject: x509.Name,
    issuer: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    signer: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    copy_from: x509.Certificate | None = None,
) -> x509.Certificate:
    now = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    for ext in copy_from.extensions if copy_from is not None else ():
        if not isinstance(ext.value, x509.BasicConstraints):
            builder = builder.add_extension(ext.value, ext.critical)  # the SGX extension (FMSPC)
    return builder.sign(signer, hashes.SHA256())


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _chain(quote: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(_split(quote).cert_data.rstrip(b"\0"))


def _forged_leaf(quote: bytes) -> bytes:
    """A self-made PCK leaf (same names and SGX extension) that signs the QE report itself."""
    leaf, ca, root = _chain(quote)
    key = ec.generate_private_key(ec.SECP256R1())
    fake = _cert(leaf.subject, leaf.issuer, key, key, ca=False, copy_from=leaf)
    sig = _split(quote)
    sig = replace(
        sig,
        cert_data=_pem(fake, ca, root) + b"\0",
        qe_report_signature=_raw_signature(key, sig.qe_report),
    )
    return _build(quote, sig)


def _forged_ca(quote: bytes) -> bytes:
    """A self-made PCK CA (the real CA's names) issuing a self-made leaf."""
    leaf, ca, root = _chain(quote)
    ca_key, leaf_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    fake_ca = _cert(ca.subject, ca.issuer, ca_key, ca_key, ca=True)
    fake_leaf = _cert(leaf.subject, ca.subject, leaf_key, ca_key, ca=False, copy_from=leaf)
    sig = _split(quote)
    sig = replace(
        sig,
        cert_data=_pem(fake_leaf, fake_ca, root),
        qe_report_signature=_raw_signature(leaf_key, sig.qe_report),
    )
    return _build(quote, sig)


def _flip(quote: bytes, offset: int) -> bytes:
    out = bytearray(quote)
    out[offset] ^= 0x01
    return bytes(out)


ISV_SIG = MIN_QUOTE_LEN
ATT_KEY = MIN_QUOTE_LEN + 64
QE_SIG = MIN_QUOTE_LEN + 64 + 64 + 384
FORGERIES = {
    "self-made PCK leaf": (_forged_leaf, "the PCK leaf is not signed by the PCK CA"),
    "self-made PCK CA": (
        _forged_ca,
        "the PCK CA certificate is not signed by the Intel SGX Root CA",
    ),
    "flipped quote signature byte": (
        lambda q: _flip(q, ISV_SIG + 5),
        "quote signature: does not verify",
    ),
    "flipped QE report signature byte": (
        lambda q: _flip(q, QE_SIG + 40),
        "QE report signature (PCK key): does not verify",
    ),
    "another attestation key": (
        lambda q: _flip(q, ATT_KEY + 63),
        "QE report data: expected SHA-256 of the attestation key",
    ),
}


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_forged_quote_makes_no_pccs_request(
    collateral_path: Path, real_quote: bytes, forgery: str
) -> None:
    forge, reason = FORGERIES[forgery]
    forged = forge(real_quote)
    assert parse_quote(forged).identity == parse_quote(real_quote).identity
    # The PCCS client could read what to fetch from the forged quote: only the checks stop it.
    assert _quote_platform(forged) == _quote_platform(real_quote)
    with serve_pccs(collateral_path) as (url, seen):
        source = PccsCollateral(url)
        with pytest.raises(AttestationError) as info:
            DcapVerifier(source).verify(forged, at=T_VALID)
        assert info.value.code == "attestation.dcap_failed"
        assert "before any collateral fetch" in info.value.message
        assert reason in info.value.message
        with pytest.raises(AttestationError) as direct:
            source.collateral_for(forged)  # the source checks too, before its own fetch
        assert reason in direct.value.message
        time.sleep(0.1)
        assert seen == []


def test_real_quote_passes_the_local_checks_and_verifies_from_file(
    collateral_path: Path, real_quote: bytes
) -> None:
    check_quote_locally(parse_quote(real_quote))
    evidence = DcapVerifier(FileCollateral(collateral_path)).verify(real_quote, at=T_VALID)
    assert evidence.tcb_status == "ConfigurationAndSWHardeningNeeded"


def test_pinned_root_key_is_intels(collateral_path: Path, real_quote: bytes) -> None:
    """The pin is the root of Intel's collateral chains, and dcap-qvl's own root agrees.

    dcap-qvl verifies the quote with its built-in root; the same PCK CA signature verifies
    under the pinned key (check_quote_locally), so both anchors hold the same key.
    """
    doc = json.loads(collateral_path.read_text())
    for field in ("pck_crl_issuer_chain", "tcb_info_issuer_chain", "qe_identity_issuer_chain"):
        root = x509.load_pem_x509_certificates(doc[field].encode())[-1]
        assert root.subject == root.issuer
        assert "Intel SGX Root CA" in root.subject.rfc4514_string()
        point = root.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        assert point == INTEL_SGX_ROOT_CA_KEY
    collateral = dcap_qvl.QuoteCollateralV3.from_json(collateral_path.read_text())
    assert dcap_qvl.verify(real_quote, collateral, T_VALID).status
    check_quote_locally(parse_quote(real_quote))
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    other_point = other.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    with pytest.raises(AttestationError, match="not signed by the Intel SGX Root CA"):
        check_quote_locally(parse_quote(real_quote), other_point)


def test_other_certification_data_type_refused(real_quote: bytes) -> None:
    quote = _build(real_quote, replace(_split(real_quote), cert_type=3))
    with pytest.raises(AttestationError) as info:
        check_quote_locally(parse_quote(quote))
    assert info.value.code == "attestation.quote_signature_data"
    assert "certification data type: expected 5 (PCK chain), seen 3" in info.value.message


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=FIXED_LEN + 64), st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF))
def test_signature_data_parser_only_attestation_errors(
    blob: bytes, auth_len: int, cert_len: int
) -> None:
    raw = bytearray(blob.ljust(FIXED_LEN, b"\0"))
    struct.pack_into("<H", raw, FIXED_LEN - 2, auth_len % 64)
    for data in (bytes(blob), bytes(raw), bytes(raw) + struct.pack("<HI", 5, cert_len)):
        try:
            sig = parse_signature_data(data)
        except AttestationError as exc:
            assert exc.code == "attestation.quote_signature_data"
            continue
        rebuilt = _build(bytes(SIGNED_LEN), sig)[MIN_QUOTE_LEN:]
        assert rebuilt == data  # what parses, round-trips exactly


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_mutated_signature_data_only_attestation_errors(
    real_quote: bytes, data: st.DataObject
) -> None:
    raw = bytearray(real_quote)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(MIN_QUOTE_LEN, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    try:
        check_quote_locally(parse_quote(bytes(raw)))
    except AttestationError:
        return
    pem_start = real_quote.index(b"-----BEGIN")
    changed = [i for i, (a, b) in enumerate(zip(raw, real_quote, strict=True)) if a != b]
    assert all(i >= pem_start for i in changed)  # only PEM armour or the unused root copy


def test_concurrent_verifications_share_one_fetch(collateral_path: Path, real_quote: bytes) -> None:
    with serve_pccs(collateral_path, delays={"tcb": 0.5}) as (url, seen):
        verifier = DcapVerifier(PccsCollateral(url))
        results: list[object] = []

        def run() -> None:
            try:
                results.append(verifier.verify(real_quote, at=T_VALID).tcb_status)
            except AttestationError as exc:
                results.append(exc)

        threads = [threading.Thread(target=run) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert results == ["ConfigurationAndSWHardeningNeeded"] * 4
        assert len(seen) == 4  # one fetch: four requests, not sixteen
        verifier.verify(real_quote, at=T_VALID)
        assert len(seen) == 4  # then cached


def test_stalled_pccs_is_bounded_by_the_budget(collateral_path: Path, real_quote: bytes) -> None:
    with serve_pccs(collateral_path, delays={"tcb": 3.0}) as (url, seen):
        source = PccsCollateral(url, timeout=10.0, budget_seconds=0.5)
        start = time.monotonic()
        with pytest.raises(AttestationError) as info:
            DcapVerifier(source).verify(real_quote, at=T_VALID)
        assert time.monotonic() - start < 2.0
        assert info.value.code == "attestation.pccs"
        assert "time budget of 0.5 s" in info.value.message
        assert len(seen) == 2  # the CRL, then the stalled TCB request


def test_failed_fetch_is_not_cached(collateral_path: Path, real_quote: bytes) -> None:
    with serve_pccs(collateral_path, broken="rootcacrl") as (url, seen):
        source = PccsCollateral(url)
        for _ in range(2):
            with pytest.raises(AttestationError):
                source.collateral_for(real_quote)
        assert len(seen) == 8
