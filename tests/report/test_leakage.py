"""The report's label-leakage block: read back from the leader's result, checked, rendered."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvfl.errors import DataError
from cvfl.report.leakage import leak_figures, leak_json, leak_rows

RECORD: dict[str, Any] = {
    "settings": {"defence": "gaussian", "delta": 1e-5},
    "audit": {"norm": 0.51, "cosine": 0.55, "sign": 0.6, "steps": 40, "per_epoch": []},
    "epsilon": {"delta": 1e-5, "gaussian": 3.25, "label": 2.0},
}


def test_a_full_record_reads_and_renders() -> None:
    figures = leak_figures({"privacy": RECORD})
    assert figures is not None
    assert figures.leak == {"norm": 0.51, "cosine": 0.55, "sign": 0.6}
    assert figures.worst == 0.55
    text = "\n".join(leak_rows(figures, 0.91))
    for needle in (
        "defence gaussian; split model auc 0.9100",
        "norm     leak auc 0.5100",
        "gaussian: ε 3.25 at δ 1e-05",
        "randomized response, ε 2",
        "over the 40 steps",
    ):
        assert needle in text, text
    assert leak_json(figures)["leak_auc"]["sign"] == 0.6


def test_no_record_and_an_audit_that_was_off() -> None:
    assert leak_figures({}) is None
    figures = leak_figures({"privacy": RECORD | {"audit": None}})
    assert figures is not None and figures.worst is None
    assert "norm     leak auc n/a" in "\n".join(leak_rows(figures, 0.5))


@pytest.mark.parametrize(
    "record",
    [
        {"settings": {}},
        RECORD | {"audit": {"norm": "0.5"}},
        RECORD | {"audit": {"norm": float("nan")}},
        RECORD | {"epsilon": {"delta": True}},
        RECORD | {"settings": {"defence": 3}},
        [],
    ],
)
def test_a_record_the_leader_never_writes_is_refused(record: object) -> None:
    with pytest.raises(DataError) as info:
        leak_figures({"privacy": record})
    assert info.value.code == "data.unreadable"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "settings": st.dictionaries(st.sampled_from(["defence", "x"]), json_values),
            "audit": json_values,
            "epsilon": st.dictionaries(
                st.sampled_from(["delta", "gaussian", "label"]), json_values
            ),
        },
    )
    | json_values
)
def test_any_record_reads_or_is_refused_cleanly(record: object) -> None:
    try:
        figures = leak_figures({"privacy": record})
    except DataError:
        return
    if figures is not None:
        assert all(v is None or math.isfinite(v) for v in figures.leak.values())
        leak_rows(figures, 0.5)
