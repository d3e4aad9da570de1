"""Hostile certificates: whatever the bytes, the RA-TLS checks end in AttestationError only.

Real certificates (one made here with the simulated TEE, and Gramine v1's from the shared test
vectors) are mutated structurally (one DER node changed, every length re-encoded, so the change
reaches the parser of the field it lands in), at the byte level (flips, truncations, insertions,
also inside PEM), replaced by random DER, and re-signed after a change so the quote verifier and
the policy see the change too.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cvfl.attestation.evidence import VerifiedEvidence
from cvfl.attestation.simulated import SimulatedVerifier
from cvfl.errors import AttestationError
from cvfl.ratls import extract_evidence, load_certificate, make_certificate, verify_certificate
from cvfl.ratls.cert import SUBJECT, RatlsCredentials

from .der_tree import Node, encode, parse
from .helpers import CraftedProvider, policy

pytestmark = pytest.mark.filterwarnings("ignore::cryptography.utils.CryptographyDeprecationWarning")

GRAMINE = Path(__file__).resolve().parents[2] / ".." / "shared" / "testdata" / "sgx"
GRAMINE_CERT = GRAMINE / "gramine_v1_ratls_cert.pem"
CREDS: RatlsCredentials = make_certificate(CraftedProvider())
TAGS = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0C, 0x13, 0x17, 0x18, 0x30, 0x31]
TAGS += [0x80, 0x81, 0x82, 0x83, 0x85, 0x86, 0x87, 0xA0, 0xA1, 0xA3, 0xA4, 0xA5]
FUZZ = settings(
    deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


@pytest.fixture(scope="module")
def gramine_der() -> bytes:
    """Gramine v1's RA-TLS certificate (DER); the tests using it skip when it is absent."""
    if not GRAMINE_CERT.is_file():
        pytest.skip(f"test vector {GRAMINE_CERT} is absent (../shared/testdata is not checked out)")
    cert = x509.load_pem_x509_certificate(GRAMINE_CERT.read_bytes())
    return cert.public_bytes(serialization.Encoding.DER)


def only_attestation_errors(data: bytes) -> VerifiedEvidence | None:
    """Run every public check on ``data``; anything but AttestationError fails the test."""
    with contextlib.suppress(AttestationError):
        extract_evidence(load_certificate(data))
    try:
        return verify_certificate(data, SimulatedVerifier(), policy())
    except AttestationError:
        return None


# ----- structural mutations ---------------------------------------------------------------------
random_der: st.SearchStrategy[Node] = st.recursive(
    st.builds(Node, st.sampled_from(TAGS), st.binary(max_size=12)),
    lambda kids: st.builds(
        lambda tag, children: Node(tag | 0x20, children=children),
        st.sampled_from([0x10, 0x11, 0x80, 0x81, 0x83]),
        st.lists(kids, max_size=4),
    ),
    max_leaves=8,
)


def _mutate_node(data: st.DataObject, node: Node) -> None:
    """Change ``node`` in place in one of several ways."""
    op = data.draw(st.sampled_from(["tag", "byte", "cut", "replace", "der", "drop", "dup", "add"]))
    kids = node.children
    if op == "tag":
        node.tag = data.draw(st.sampled_from(TAGS))
    elif op in ("byte", "cut") and kids is None and node.value:
        at = data.draw(st.integers(0, len(node.value) - 1))
        if op == "cut":
            node.value = node.value[:at]
        else:
            special = st.sampled_from([0x00, 0x01, 0x02, 0x03, 0x7F, 0x80, 0xFF])
            new = data.draw(special | st.integers(0, 255))
            node.value = node.value[:at] + bytes([new]) + node.value[at + 1 :]
    elif op == "replace" or kids is None:
        node.children, node.prefix = None, b""
        node.value = data.draw(st.binary(max_size=24))
    elif op == "der":
        other = data.draw(random_der)
        node.tag, node.value, node.children, node.prefix = (
            other.tag,
            other.value,
            other.children,
            b"",
        )
    elif kids:
        at = data.draw(st.integers(0, len(kids) - 1))
        if op == "drop":
            del kids[at]
        elif op == "dup":
            kids.insert(at, copy.deepcopy(kids[at]))
        else:
            kids.insert(at, data.draw(random_der))


def _mutated(data: st.DataObject, der: bytes, changes: int = 2) -> bytes:
    tree = parse(der)
    assert tree is not None and encode(tree) == der
    for _ in range(data.draw(st.integers(1, changes))):
        nodes = [node for top in tree for node in top.walk()]
        _mutate_node(data, nodes[data.draw(st.integers(0, len(nodes) - 1))])
    return encode(tree)


def _raw_mutation(data: st.DataObject, der: bytes) -> bytes:
    """Flip, overwrite, truncate, insert or delete bytes; sometimes wrap the result in PEM."""
    out = bytearray(der)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "set", "cut", "insert", "delete"]))
        at = data.draw(st.integers(0, max(0, len(out) - 1)))
        if op == "flip" and out:
            out[at] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "set" and out:
            out[at] = data.draw(st.integers(0, 255))
        elif op == "cut":
            del out[at:]
        elif op == "insert":
            out[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        else:
            del out[at : at + data.draw(st.integers(1, 8))]
    if data.draw(st.integers(0, 7)) == 0:
        return _pem(bytes(out))
    return bytes(out)


def _pem(der: bytes) -> bytes:
    import base64

    body = base64.encodebytes(der).replace(b"\n", b"")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return b"-----BEGIN CERTIFICATE-----\n" + b"\n".join(lines) + b"\n-----END CERTIFICATE-----\n"


@settings(FUZZ, max_examples=1500)
@given(data=st.data())
def test_structural_mutations_of_a_made_certificate(data: st.DataObject) -> None:
    only_attestation_errors(_mutated(data, CREDS.cert_der))


@settings(FUZZ, max_examples=1000)
@given(data=st.data())
def test_structural_mutations_of_gramines_certificate(
    gramine_der: bytes, data: st.DataObject
) -> None:
    only_attestation_errors(_mutated(data, gramine_der))


@settings(FUZZ, max_examples=1000)
@given(data=st.data())
def test_byte_mutations_of_a_made_certificate(data: st.DataObject) -> None:
    only_attestation_errors(_raw_mutation(data, CREDS.cert_der))


@settings(FUZZ, max_examples=500)
@given(data=st.data())
def test_byte_mutations_of_gramines_certificate(gramine_der: bytes, data: st.DataObject) -> None:
    only_attestation_errors(_raw_mutation(data, gramine_der))


@settings(FUZZ, max_examples=500)
@given(tree=st.lists(random_der, min_size=1, max_size=3), pem=st.booleans())
def test_random_der(tree: list[Node], pem: bool) -> None:
    der = encode(tree)
    with pytest.raises(AttestationError):
        load_certificate(_pem(der) if pem else der)
    assert only_attestation_errors(der) is None


def _resigned(data: st.DataObject) -> bytes:
    """Change the made certificate's signed part, then sign it again with its own key."""
    cert = parse(CREDS.cert_der)
    assert cert is not None and cert[0].children is not None
    tbs = cert[0].children[0]
    nodes = tbs.walk()
    _mutate_node(data, nodes[data.draw(st.integers(1, len(nodes) - 1))])
    signature = CREDS.private_key.sign(encode([tbs]), ec.ECDSA(hashes.SHA256()))
    cert[0].children[2] = Node(0x03, b"\x00" + signature)
    return encode(cert)


@settings(FUZZ, max_examples=600)
@given(data=st.data())
def test_resigned_mutations_reach_the_verifier_and_change_nothing_it_vouches_for(
    data: st.DataObject,
) -> None:
    verified = only_attestation_errors(_resigned(data))
    if verified is not None:  # what was changed is not what the evidence vouches for
        original = verify_certificate(CREDS.cert_der, SimulatedVerifier(), policy())
        # report_data differs when a changed TCG extension OID leaves the legacy quote in use
        assert replace(verified.identity, report_data=b"") == replace(
            original.identity, report_data=b""
        )


# ----- the escapes this fuzzing found, pinned -------------------------------------------------
KEY = ec.generate_private_key(ec.SECP256R1())


def _with_extension(oid: str, value: bytes) -> bytes:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(SUBJECT)
        .issuer_name(SUBJECT)
        .public_key(KEY.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value), critical=False
        )
    )
    return builder.sign(KEY, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def _with_version(version: int) -> bytes:
    der = bytearray(CREDS.cert_der)
    at = der.index(bytes.fromhex("a003020102"))  # [0] EXPLICIT INTEGER 2 (v3)
    der[at + 4] = version
    return bytes(der)


@pytest.mark.parametrize("version", [3, 97])
def test_unknown_x509_version_is_a_parse_refusal(version: int) -> None:
    with pytest.raises(AttestationError) as info:
        load_certificate(_with_version(version))
    assert info.value.code == "ratls.parse"
    assert "not a valid X509 version" in info.value.message


@pytest.mark.parametrize(
    ("oid", "value", "why"),
    [
        ("2.5.29.17", bytes.fromhex("3004a3023000"), "UnsupportedGeneralNameType"),  # SAN x400
        ("2.5.29.17", bytes.fromhex("3004a5023000"), "UnsupportedGeneralNameType"),  # SAN EDI
        ("2.5.29.18", bytes.fromhex("3002a300"), "UnsupportedGeneralNameType"),  # IAN x400
        ("2.5.29.35", bytes.fromhex("3006a104a3023000"), "UnsupportedGeneralNameType"),  # AKI
        ("2.5.29.30", bytes.fromhex("3006a0043002a300"), "UnsupportedGeneralNameType"),  # NC
        ("1.3.6.1.5.5.7.1.24", bytes.fromhex("300502032d30f5"), "KeyError"),  # TLS feature
        ("1.3.6.1.5.5.7.1.24", bytes.fromhex("3000"), "TypeError"),  # empty TLS feature
    ],
    ids=["san-x400", "san-edi", "ian-x400", "aki-x400", "name-constraints", "tls-7", "tls-none"],
)
def test_extensions_cryptography_cannot_represent_are_refused(
    oid: str, value: bytes, why: str
) -> None:
    der = _with_extension(oid, value)
    cert = load_certificate(der)
    with pytest.raises(AttestationError) as info:
        extract_evidence(cert)
    assert info.value.code == "ratls.extensions"
    assert why in info.value.message
    with pytest.raises(AttestationError):
        verify_certificate(der, SimulatedVerifier(), policy())
