"""Shared fixtures: the real SGX test vectors in ../shared/testdata (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

TESTDATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "testdata"
SGX = TESTDATA / "sgx"
# Inside the collateral's validity window (README of the test vectors).
T_VALID = 1750334171
LEGACY_OID = "0.6.9.42.840.113741.1337.6"


def sgx_file(name: str) -> Path:
    path = SGX / name
    if not path.is_file():
        pytest.skip(f"test vector {path} is absent (../shared/testdata is not checked out here)")
    return path


@pytest.fixture(scope="session")
def real_quote() -> bytes:
    return sgx_file("dcap_quote_v3.bin").read_bytes()


@pytest.fixture(scope="session")
def collateral_path() -> Path:
    return sgx_file("dcap_quote_v3_collateral.json")


@pytest.fixture(scope="session")
def gramine_cert_pem() -> bytes:
    return sgx_file("gramine_v1_ratls_cert.pem").read_bytes()


@pytest.fixture(scope="session")
def gramine_quote(gramine_cert_pem: bytes) -> bytes:
    cert = x509.load_pem_x509_certificate(gramine_cert_pem)
    for ext in cert.extensions:
        if ext.oid.dotted_string == LEGACY_OID:
            value = ext.value.value
            assert isinstance(value, bytes)
            return value
    raise AssertionError("the Gramine certificate has no legacy quote extension")
