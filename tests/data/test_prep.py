"""Fitting and applying a party's preprocessing: JSON state, OOV bucket, imputation, no NaN."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvfl.data.columns import ColumnsSpec, parse_columns
from cvfl.data.prep import Preprocessing, bucket, fit
from cvfl.errors import ModelError

CATEGORIES = st.none() | st.sampled_from(["red", "white", "rose", "", "ÿ", "1"])
NUMBERS = (
    st.none()
    | st.floats(allow_nan=True, allow_infinity=False, width=64)
    | st.integers(-(10**12), 10**12)
)


@st.composite
def tables(draw: st.DrawFn) -> tuple[pa.Table, np.ndarray, ColumnsSpec]:
    rows = draw(st.integers(1, 30))
    number = [
        None if v is None else float(v)
        for v in draw(st.lists(NUMBERS, min_size=rows, max_size=rows))
    ]
    ints = draw(st.lists(st.none() | st.integers(0, 5), min_size=rows, max_size=rows))
    text = draw(st.lists(CATEGORIES, min_size=rows, max_size=rows))
    table = pa.table(
        {
            "x": pa.array(number, pa.float64()),
            "code": pa.array(ints, pa.int64()),
            "color": pa.array(text, pa.string()),
        }
    )
    train = np.array(sorted(draw(st.sets(st.integers(0, rows - 1), min_size=1))), dtype=np.int64)
    spec = parse_columns(
        {
            "scaling": draw(st.sampled_from(["standard", "robust", "quantile"])),
            "max_categories": draw(st.integers(1, 8)),
            "code": "categorical",
        }
    )
    return table, train, spec


KINDS = [("x", "numeric"), ("code", "categorical"), ("color", "categorical")]


@settings(max_examples=150, deadline=None)
@given(tables())
def test_state_round_trips_as_json_and_transforms_the_same(
    case: tuple[pa.Table, np.ndarray, ColumnsSpec],
) -> None:
    table, train, spec = case
    state = fit(table.take(pa.array(train)), KINDS, spec)
    text = json.dumps(state.to_json(), allow_nan=False)  # plain numbers and strings only
    again = Preprocessing.from_json(json.loads(text))
    assert again == state
    out = state.transform(table)
    assert out.dtype == np.float32 and out.shape == (table.num_rows, len(state.output_names))
    assert np.isfinite(out).all()  # no NaN (or infinity) ever leaves the transform
    np.testing.assert_array_equal(again.transform(table), out)
    layout = state.layout
    codes = out[:, layout.numeric_width :]
    assert (codes == np.round(codes)).all() and (codes >= 0).all()
    assert (codes < np.array(layout.cardinalities)).all()


@settings(max_examples=100, deadline=None)
@given(tables(), st.text(min_size=1, max_size=8))
def test_unseen_categories_and_missing_cells(
    case: tuple[pa.Table, np.ndarray, ColumnsSpec], unseen: str
) -> None:
    table, train, spec = case
    state = fit(table.take(pa.array(train)), KINDS, spec)
    color = state.categorical[1]
    seen = set(color.vocab)
    probe = pa.table(
        {
            "x": pa.array([None, math.nan], pa.float64()),
            "code": pa.array([None, 99], pa.int64()),
            "color": pa.array([None, unseen], pa.string()),
        }
    )
    out = state.transform(probe)
    names = state.output_names
    numeric = state.numeric[0]
    imputed = out[:, names.index("x")]
    assert imputed[0] == imputed[1]  # null and NaN are both missing, imputed alike
    if numeric.indicator:
        assert out[:, names.index("x.missing")].tolist() == [1.0, 1.0]
    assert out[0, names.index("color")] == 0  # a missing category: bucket 0
    assert out[0, names.index("code")] == 0
    if not color.buckets and unseen not in seen:
        assert out[1, names.index("color")] == 0  # unseen in training: the OOV bucket
    if color.buckets:
        assert out[1, names.index("color")] == 1 + bucket(unseen, color.buckets)


def test_standard_scaling_and_indicator_follow_the_training_rows_only() -> None:
    table = pa.table({"x": pa.array([1.0, None, 3.0, 1000.0]), "c": ["a", "b", "a", "z"]})
    state = fit(
        table.take(pa.array([0, 1, 2])), [("x", "numeric"), ("c", "categorical")], ColumnsSpec()
    )
    x = state.numeric[0]
    assert (x.center, x.scale, x.fill, x.indicator) == (2.0, 1.0, 2.0, True)
    assert state.categorical[0].vocab == ("a", "b")  # "z" is only in a held-out row
    out = state.transform(table)
    assert out[:, 0].tolist() == [-1.0, 0.0, 1.0, 998.0]
    assert out[:, 1].tolist() == [0.0, 1.0, 0.0, 0.0]
    assert out[:, 2].tolist() == [1.0, 2.0, 1.0, 0.0]


def test_many_categories_are_hashed_into_the_given_buckets() -> None:
    values = [f"user-{i}" for i in range(50)]
    table = pa.table({"u": values})
    spec = parse_columns({"u": {"kind": "categorical", "max_categories": 7}})
    state = fit(table, [("u", "categorical")], spec)
    assert state.categorical[0].buckets == 7 and state.categorical[0].vocab == ()
    codes = state.transform(table)[:, 0]
    assert codes.tolist() == [1 + bucket(v, 7) for v in values]
    assert state.layout.cardinalities == (8,)


def test_integer_and_text_categories_share_their_decimal_text() -> None:
    state = fit(pa.table({"c": pa.array([1, 2, 2])}), [("c", "categorical")], ColumnsSpec())
    as_text = state.transform(pa.table({"c": pa.array(["2", "1", "3"])}))
    assert as_text[:, 0].tolist() == [2.0, 1.0, 0.0]


@pytest.mark.parametrize(
    ("change", "shown"),
    [
        ({"format": "cvfl-prep/v0"}, "preprocessing format: expected cvfl-prep/v1"),
        ({"embed_dim": 0}, "preprocessing embed_dim: expected a whole number >= 1"),
        (
            {
                "numeric": [
                    {
                        "name": "x",
                        "scaling": "standard",
                        "center": 0,
                        "scale": 0,
                        "fill": 0,
                        "indicator": False,
                        "quantiles": [],
                    }
                ]
            },
            "scale: expected a positive",
        ),
        (
            {"categorical": [{"name": "c", "vocab": ["b", "a"], "buckets": 0}]},
            "vocab: expected sorted distinct strings",
        ),
        ({"categorical": [{"name": "c", "vocab": ["a"], "buckets": 3}]}, "not both"),
        (
            {
                "numeric": [
                    {
                        "name": "x",
                        "scaling": "standard",
                        "center": "NaN",
                        "scale": 1,
                        "fill": 0,
                        "indicator": False,
                        "quantiles": [],
                    }
                ]
            },
            "a finite number",
        ),
    ],
)
def test_a_bad_state_is_refused_naming_the_field(change: dict[str, object], shown: str) -> None:
    doc = {"format": "cvfl-prep/v1", "embed_dim": 4, "numeric": [], "categorical": []} | change
    with pytest.raises(ModelError) as info:
        Preprocessing.from_json(doc)
    assert info.value.code == "model.spec" and shown in info.value.message


@pytest.mark.parametrize("scaling", ["standard", "robust", "quantile"])
def test_values_at_the_edge_of_float64_give_a_finite_state(scaling: str) -> None:
    table = pa.table({"x": [1.7e308, 1.7e308, -1.7e308, None]})
    state = fit(table, [("x", "numeric")], parse_columns({"scaling": scaling}))
    json.dumps(state.to_json(), allow_nan=False)
    assert Preprocessing.from_json(state.to_json()) == state
    assert np.isfinite(state.transform(table)).all()


def test_a_malformed_vocabulary_is_refused_without_quoting_its_values() -> None:
    from cvfl.data.prep import Preprocessing
    from cvfl.errors import ModelError

    doc = {
        "format": "cvfl-prep/v1",
        "embed_dim": 4,
        "numeric": [],
        "categorical": [{"name": "city", "vocab": ["secret-town", 7], "buckets": 0}],
    }
    with pytest.raises(ModelError) as err:
        Preprocessing.from_json(doc)
    assert err.value.code == "model.spec" and "items of type int, str" in err.value.message
    assert "secret-town" not in err.value.message
