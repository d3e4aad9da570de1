from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cvfl.data import batch_mac, id_order_fingerprint, macs_equal, session_mac_key

ids = st.lists(st.text(max_size=20), max_size=20)


@given(ids, ids)
def test_fingerprint_equal_iff_same_order(a: list[str], b: list[str]) -> None:
    assert (id_order_fingerprint("j", a) == id_order_fingerprint("j", b)) == (a == b)


def test_fingerprint_is_length_prefixed_and_job_bound() -> None:
    assert id_order_fingerprint("j", ["ab", "c"]) != id_order_fingerprint("j", ["a", "bc"])
    assert id_order_fingerprint("j", ["a"]) != id_order_fingerprint("k", ["a"])


def test_batch_mac_binds_key_step_phase_and_ids() -> None:
    key = session_mac_key("j", b"l" * 32, b"f" * 32)
    base = batch_mac(key, 3, 1, ["a", "b"])
    assert macs_equal(base, batch_mac(key, 3, 1, ["a", "b"]))
    assert not macs_equal(base, batch_mac(key, 4, 1, ["a", "b"]))
    assert not macs_equal(base, batch_mac(key, 3, 2, ["a", "b"]))
    assert not macs_equal(base, batch_mac(key, 3, 1, ["b", "a"]))
    other = session_mac_key("j", b"l" * 32, b"g" * 32)
    assert not macs_equal(base, batch_mac(other, 3, 1, ["a", "b"]))
