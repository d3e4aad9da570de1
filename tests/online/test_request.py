"""The request checks: every malformed body is refused naming its field; good ones pass."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cvfl.errors import DataError
from cvfl.online.grpc_api import request_from_proto
from cvfl.online.metrics import Histogram
from cvfl.online.request import request_from_json
from cvfl.wire import scoring_pb2 as spb

ids = st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=8)
numbers = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**40), 2**40)
rows = st.dictionaries(st.text(min_size=1, max_size=8), numbers, max_size=4)
json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)


@given(ids, st.data())
def test_valid_requests_round_trip(given_ids: list[str], data: st.DataObject) -> None:
    features = data.draw(
        st.none() | st.lists(rows, min_size=len(given_ids), max_size=len(given_ids))
    )
    body = {"ids": given_ids} if features is None else {"ids": given_ids, "features": features}
    parsed = request_from_json(json.loads(json.dumps(body)), 8)
    assert list(parsed.ids) == given_ids
    assert [dict(r) for r in parsed.features] == (features or [])


@given(json_values)
def test_any_json_is_parsed_or_refused_by_field(body: object) -> None:
    try:
        parsed = request_from_json(body, 4)
    except DataError as exc:
        assert exc.code == "data.request"
        assert exc.message.startswith(("body: ", "ids: ", "ids[", "features: ", "features["))
    else:
        assert 1 <= len(parsed.ids) <= 4


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"ids": "abc"}, "ids"),
        ({"ids": []}, "ids"),
        ({"ids": ["a"] * 5}, "ids"),
        ({"ids": ["a", ""]}, "ids[1]"),
        ({"ids": ["a"], "features": [{}, {}]}, "features"),
        ({"ids": ["a"], "features": [{"x": True}]}, "features[0].x"),
        ({"ids": ["a"], "features": [{"x": math.inf}]}, "features[0].x"),
        ({"ids": ["a"], "extra": 1}, "body"),
        ([1], "body"),
    ],
)
def test_refusals_name_the_field(body: object, field: str) -> None:
    with pytest.raises(DataError) as caught:
        request_from_json(body, 4)
    assert caught.value.message.startswith(field + ":")


def test_grpc_request_checked_alike() -> None:
    msg = spb.ScoreRequest(ids=["a", "b"], features=[spb.FeatureRow(values={"x": 1.0})])
    with pytest.raises(DataError) as caught:
        request_from_proto(msg, 4)
    assert caught.value.message.startswith("features:")


def test_histogram_is_cumulative() -> None:
    hist = Histogram("h", "help", (1, 2))
    for value in (0.5, 1.5, 1.5, 9):
        hist.observe(value)
    lines = hist.lines()
    assert 'h_bucket{le="1"} 1' in lines and 'h_bucket{le="2"} 3' in lines
    assert 'h_bucket{le="+Inf"} 4' in lines and "h_count 4" in lines
