"""``[data.columns]``: parsed strictly, round-tripped, and refused with the nearest name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cvfl.data.columns import (
    DEFAULTS,
    KINDS,
    OPTIONS,
    SCALINGS,
    ColumnRule,
    ColumnsSpec,
    parse_columns,
)
from cvfl.errors import ConfigError
from cvfl.train.config import job_from_mapping

NAMES = st.text(min_size=1, max_size=12).filter(lambda n: n not in OPTIONS)


@st.composite
def rules(draw: st.DrawFn) -> ColumnRule:
    kind = draw(st.sampled_from(KINDS))
    scaling = draw(st.none() | st.sampled_from(SCALINGS)) if kind == "numeric" else None
    top = draw(st.none() | st.integers(1, 10**6)) if kind == "categorical" else None
    return ColumnRule(kind, scaling, top)


@st.composite
def specs(draw: st.DrawFn) -> ColumnsSpec:
    columns = draw(st.dictionaries(NAMES, rules(), max_size=6))
    return ColumnsSpec(
        tuple(columns.items()),
        draw(st.sampled_from(DEFAULTS)),
        draw(st.sampled_from(SCALINGS)),
        draw(st.integers(1, 10**6)),
        draw(st.integers(1, 64)),
    )


@given(specs())
def test_round_trip(spec: ColumnsSpec) -> None:
    again = parse_columns(spec.to_toml())
    assert again == spec
    for name, rule in spec.columns:
        assert again.rule(name) == rule


@given(st.dictionaries(NAMES, st.text(max_size=12), max_size=4))
def test_any_kind_text_parses_or_is_refused_naming_the_column(table: dict[str, str]) -> None:
    try:
        spec = parse_columns(table)
    except ConfigError as exc:
        assert exc.code == "config.value"
        bad = next(name for name, kind in table.items() if kind not in KINDS)
        assert exc.message.startswith(f"[data.columns] {bad}: expected one of")
        return
    assert all(spec.rule(name) == ColumnRule(kind) for name, kind in table.items())  # type: ignore[arg-type]


@given(st.one_of(st.integers(), st.floats(), st.booleans(), st.lists(st.integers(), max_size=2)))
def test_a_value_of_the_wrong_type_is_a_type_error(value: object) -> None:
    with pytest.raises(ConfigError) as info:
        parse_columns({"color": value})
    assert info.value.code == "config.type"
    assert info.value.message.startswith("[data.columns] color: expected")


@pytest.mark.parametrize(
    ("table", "code", "shown"),
    [
        ({"color": "categorcal"}, "config.value", "did you mean 'categorical'?"),
        ({"default": "numric"}, "config.value", "[data.columns] default: expected one of"),
        ({"scaling": "zscore"}, "config.value", "[data.columns] scaling: expected one of"),
        ({"max_categories": 0}, "config.range", "[data.columns] max_categories: expected 1 to"),
        ({"max_categories": True}, "config.type", "expected a whole number, seen True"),
        ({"embed_dim": "4"}, "config.type", "[data.columns] embed_dim: expected a whole number"),
        (
            {"x": {"kind": "numeric", "scale": "robust"}},
            "config.unknown_key",
            "did you mean scaling?",
        ),
        ({"x": {"scaling": "robust"}}, "config.missing", "[data.columns] x kind: required"),
        ({"x": {"kind": "categorical", "scaling": "robust"}}, "config.value", "only on numeric"),
        ({"x": {"kind": "numeric", "max_categories": 9}}, "config.value", "only on categorical"),
    ],
)
def test_refusals_name_the_key(table: dict[str, Any], code: str, shown: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_columns(table)
    assert info.value.code == code
    assert shown in info.value.message


def _job(tmp_path: Path, **data: Any) -> dict[str, Any]:
    return {
        "job": {"id": "j", "role": "leader", "plaintext_outputs": True},
        "data": {"path": "t.csv", **data},
        "model": {"kind": "mlp"},
    }


def test_the_job_loader_reads_data_columns(tmp_path: Path) -> None:
    cfg = job_from_mapping(_job(tmp_path, columns={"color": "categorical"}), tmp_path / "j.toml")
    assert cfg.data.columns is not None
    assert cfg.data.columns.rule("color") == ColumnRule("categorical")
    assert cfg.data.columns.default == "auto"
    plain = job_from_mapping(_job(tmp_path), tmp_path / "j.toml")
    assert plain.data.columns is None  # jobs without [data.columns] are read as before


def test_data_columns_refuse_the_wide_and_deep_model(tmp_path: Path) -> None:
    raw = _job(tmp_path, columns={"color": "categorical"})
    raw["model"] = {"kind": "widedeep"}
    with pytest.raises(ConfigError) as info:
        job_from_mapping(raw, tmp_path / "j.toml")
    assert info.value.code == "config.model" and '"mlp"' in info.value.message
