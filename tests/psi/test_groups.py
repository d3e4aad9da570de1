"""The two PSI groups: hash-to-group, commutative blinding, validation of received points."""

from __future__ import annotations

import ctypes
import hashlib
import pickle
import struct

import pytest
import rbcl
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from cvfl.errors import AlignmentError, ConfigError
from cvfl.psi.ecdh import curve25519 as c
from cvfl.psi.ecdh.group import GROUPS, Blinder, domain_label, get_group
from cvfl.psi.ecdh.points import lib
from cvfl.psi.ecdh.x25519 import X25519


def _x25519() -> X25519:
    group = GROUPS["x25519"]
    assert isinstance(group, X25519)
    return group


X = _x25519()
NAMES = sorted(GROUPS)
# the u-coordinates of Curve25519's points of order 1, 2, 4 and 8 (RFC 7748 / cr.yp.to/ecdh.html)
SMALL_ORDER_U = [
    0,
    1,
    325606250916557431795983626356110631294008115727848805560023387167927233504,
    39382357235489614581723060781553021112529911719440698176882885853963445705823,
    c.P - 1,
]


def enc(u: int) -> bytes:
    return u.to_bytes(32, "little")


def good_u() -> bytes:
    """A point of the prime-order subgroup (an X25519 public key: a multiple of the base point)."""
    return X25519PrivateKey.generate().public_key().public_bytes_raw()


def legendre_ok(u: int) -> bool:
    """Reference: u is canonical and on the curve (one exponentiation per point)."""
    return u < c.P and c.curve_rhs(u) != 0 and c.is_square(c.curve_rhs(u))


@pytest.mark.parametrize("name", NAMES)
def test_blinding_commutes_and_secrets_are_fresh(name: str) -> None:
    group = get_group(name)
    a, b = Blinder(group), Blinder(group)
    label = domain_label("j", group)
    items = [b"tx", b"ty", b"t" + b"z" * 5000]
    xa, xb = a.hash_and_blind(label, items), b.hash_and_blind(label, items)
    assert xa != xb and len(xa) == 32 * len(items)
    assert b.blind_points(xa, batch=0, what="t") == a.blind_points(xb, batch=0, what="t")
    a.check_answers(b.blind_points(xa, batch=0, what="t"), batch=0, what="answer")


@pytest.mark.parametrize("name", NAMES)
def test_the_secret_never_leaves_the_blinder(name: str) -> None:
    blinder = Blinder(get_group(name))
    with pytest.raises(TypeError):
        pickle.dumps(blinder)
    assert repr(blinder) == f"Blinder({name}, <secret>)"


def test_x25519_blinding_is_rfc7748_x25519_on_u_coordinates() -> None:
    """Commutativity checked against an independent X25519 (OpenSSL through cryptography)."""
    ka, kb = X.new_secret(), X.new_secret()
    u = X.hash_to_group(domain_label("j", X), [b"tq"])[0]

    def openssl(k: bytes, point: bytes) -> bytes:
        key = X25519PrivateKey.from_private_bytes(k)
        return key.exchange(X25519PublicKey.from_public_bytes(point))

    ua = X.blind_points(ka, u, batch=0, what="t")
    assert ua == openssl(ka, u)
    assert X.blind_points(kb, ua, batch=0, what="t") == openssl(ka, openssl(kb, u))


@pytest.mark.parametrize("name", NAMES)
def test_hash_is_deterministic_and_domain_separated(name: str) -> None:
    group = get_group(name)
    items = [b"t1", b"t2", b"b1"]
    a = Blinder(group)
    label = domain_label("job", group)
    assert a.hash_and_blind(label, items) == a.hash_and_blind(label, items)
    again = a.hash_and_blind(label, items)
    for other in (domain_label("job2", group), domain_label("jo", group)):
        assert a.hash_and_blind(other, items)[:32] != again[:32]
    others = [g for g in GROUPS.values() if g is not group]
    assert all(domain_label("job", g) != label for g in others)
    assert label.startswith(group.domain) and label.endswith(struct.pack(">I", 3) + b"job")


def test_x25519_hash_to_group_is_the_montgomery_form_of_libsodium_ed25519_from_hash() -> None:
    label = domain_label("job-1", X)
    items = [b"tx", b"t" + bytes(range(256)), b"b\x00"]
    ours = X.hash_to_group(label, items)
    for item, u in zip(items, ours, strict=True):
        digest = hashlib.sha512(label + struct.pack(">I", len(item)) + item).digest()
        edwards = ctypes.create_string_buffer(32)
        montgomery = ctypes.create_string_buffer(32)
        lib.crypto_core_ed25519_from_hash(edwards, digest)
        # libsodium's own Edwards -> Montgomery conversion (it also checks the subgroup)
        assert lib.crypto_sign_ed25519_pk_to_curve25519(montgomery, edwards.raw) == 0
        assert u == montgomery.raw
    # pinned: the encoding of this version (a change would silently break cross-version runs)
    assert ours[0].hex() == "f56b000f40e618ea21d5d0e665118c0d63db6e00eac0f8fb22a3852bb4910b4d"


def test_x25519_refuses_twist_points_naming_the_index() -> None:
    twist = enc(2)  # 2^3 + 486662 * 2^2 + 2 is not a square mod p
    assert not c.is_square(c.curve_rhs(2))
    points = b"".join([good_u(), good_u(), twist, good_u()])
    with pytest.raises(AlignmentError) as err:
        Blinder(X).blind_points(points, batch=5, what="blinded")
    assert err.value.code == "psi.bad_point"
    assert "batch 5 item 2" in err.value.message and "twist" in err.value.message


def test_twist_point_among_many_is_found() -> None:
    """A single twist point in a large batch is caught (and named) by the batched test."""
    twist = next(u for u in range(3, 100) if not legendre_ok(u))
    for where in (0, 777, 1999):
        points = [good_u() for _ in range(2000)]
        points[where] = enc(twist)
        with pytest.raises(AlignmentError, match=f"batch 1 item {where}:.*twist"):
            Blinder(X).blind_points(b"".join(points), batch=1, what="blinded")


@pytest.mark.parametrize("u", SMALL_ORDER_U)
def test_x25519_refuses_small_order_points(u: int) -> None:
    with pytest.raises(AlignmentError) as err:
        Blinder(X).blind_points(good_u() + enc(u), batch=3, what="blinded")
    assert "batch 3 item 1" in err.value.message
    assert "small order" in err.value.message or "twist" in err.value.message


@pytest.mark.parametrize(
    "bad",
    [enc(c.P), enc(c.P + 4), enc(2**255 - 1), enc(4 | 1 << 255), b"\xff" * 32],
    ids=["p", "p+4", "2^255-1", "top-bit", "all-ff"],
)
def test_x25519_refuses_non_canonical_u(bad: bytes) -> None:
    for check in (
        lambda pts: Blinder(X).blind_points(pts, batch=2, what="blinded"),
        lambda pts: X.check_answers(pts, batch=2, what="answer"),
    ):
        with pytest.raises(AlignmentError, match="batch 2 item 1: not a canonical"):
            check(good_u() + bad)


def test_answers_need_only_be_canonical_and_non_zero() -> None:
    X.check_answers(enc(2) + good_u(), batch=0, what="answer")  # compared, never multiplied
    with pytest.raises(AlignmentError, match="batch 0 item 1: zero"):
        X.check_answers(good_u() + bytes(32), batch=0, what="answer")
    with pytest.raises(AlignmentError, match="whole number"):
        X.check_answers(good_u() + b"\x01", batch=0, what="answer")


GOOD = [good_u() for _ in range(16)]
ENCODINGS = st.one_of(
    st.binary(min_size=32, max_size=32),
    st.sampled_from(GOOD),
    st.sampled_from([enc(u) for u in SMALL_ORDER_U]),
)


@settings(max_examples=80, deadline=None)
@given(st.lists(ENCODINGS, min_size=1, max_size=6))
def test_x25519_points_are_accepted_exactly_when_valid(raw: list[bytes]) -> None:
    """Any encodings: refusal iff some point is non-canonical, off-curve or of small order."""
    points = b"".join(raw)
    us = [int.from_bytes(e, "little") for e in raw]
    expected_bad = [i for i, u in enumerate(us) if not legendre_ok(u) or u in SMALL_ORDER_U]
    try:
        out = Blinder(X).blind_points(points, batch=4, what="blinded")
    except AlignmentError as exc:
        assert expected_bad and exc.code == "psi.bad_point"
        index = int(exc.message.split("batch 4 item ")[1].split(":")[0])
        assert index in expected_bad
    else:
        assert not expected_bad and len(out) == len(points)


@given(st.binary(min_size=32, max_size=32))
def test_ristretto_points_are_accepted_exactly_when_valid(data: bytes) -> None:
    group = GROUPS["ristretto255"]
    valid = data != bytes(32) and rbcl.crypto_core_ristretto255_is_valid_point(data)
    for check in (
        lambda: group.check_answers(data, batch=4, what="answer"),
        lambda: Blinder(group).blind_points(data, batch=4, what="blinded"),
    ):
        try:
            check()
        except AlignmentError as exc:
            assert not valid and "batch 4 item 0" in exc.message
        else:
            assert valid


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("data", [b"\xff" * 32 + b"\x01", b"\x01" * 31])
def test_payload_not_whole_points(name: str, data: bytes) -> None:
    with pytest.raises(AlignmentError, match="not a whole number of 32-byte points"):
        Blinder(get_group(name)).blind_points(data, batch=0, what="blinded")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, c.P - 1), max_size=40))
def test_batch_inverse(values: list[int]) -> None:
    assert c.batch_inverse(values) == [pow(v, -1, c.P) for v in values]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, c.P - 1), max_size=60))
def test_first_non_square_matches_one_by_one(values: list[int]) -> None:
    expected = next((i for i, v in enumerate(values) if v == 0 or not c.is_square(v)), None)
    assert c.first_non_square(values) == expected


def test_curve_equation_has_no_root_but_zero() -> None:
    """f(u) = u (u^2 + A u + 1) vanishes only at u = 0: A^2 - 4 is not a square mod p."""
    assert not c.is_square((c.A * c.A - 4) % c.P)


def test_unknown_group_is_a_config_error() -> None:
    with pytest.raises(
        ConfigError, match=r"psi.group: expected one of \['ristretto255', 'x25519'\]"
    ):
        get_group("p256")
