"""``[privacy]``: validation, the canonical form in the hello, and the peer's form read back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvfl.errors import ConfigError
from cvfl.privacy.config import MAX_WIRE_BYTES, PrivacySection, wire_mismatches
from cvfl.train.config import job_from_mapping


def _section(**table: Any) -> PrivacySection:
    return PrivacySection.from_toml_table(table)


def test_defaults_and_a_full_section() -> None:
    assert _section() == PrivacySection()
    assert not PrivacySection().active
    full = _section(
        defence="gaussian", clip_norm=0.5, noise_multiplier=2, delta=1e-6, label_epsilon=3
    )
    assert full.noise_multiplier == 2.0 and isinstance(full.noise_multiplier, float)
    assert full.active and full.label_epsilon == 3.0


@pytest.mark.parametrize(
    ("table", "needle", "code"),
    [
        ({"defence": "maxnorm"}, "[privacy] defence: expected none or max_norm", "config.privacy"),
        (
            {"audit": "false"},
            "[privacy] audit: expected true or false, seen 'false'",
            "config.type",
        ),
        (
            {"clip_norm": 0},
            "[privacy] clip_norm: expected a number above 0, seen 0.0",
            "config.privacy",
        ),
        (
            {"noise_multiplier": True},
            "[privacy] noise_multiplier: expected a number",
            "config.type",
        ),
        ({"noise_multiplier": "2"}, "seen '2'", "config.type"),
        ({"noise_multiplier": float("nan")}, "seen nan", "config.range"),
        ({"marvell_strength": float("inf")}, "[privacy] marvell_strength", "config.range"),
        (
            {"delta": 1.0},
            "[privacy] delta: expected a number in (0, 1), seen 1.0",
            "config.privacy",
        ),
        (
            {"label_epsilon": -1},
            "[privacy] label_epsilon: expected 0 (off) or a positive",
            "config.privacy",
        ),
        (
            {"epsilon": 1},
            "[privacy] epsilon: unknown key; did you mean label_epsilon?",
            "config.unknown_key",
        ),
    ],
)
def test_bad_values_are_refused_naming_the_key(
    table: dict[str, Any], needle: str, code: str
) -> None:
    with pytest.raises(ConfigError) as info:
        _section(**table)
    assert needle in info.value.message
    assert info.value.code == code


def test_the_job_file_reads_the_section(tmp_path: Path) -> None:
    raw = {
        "job": {"id": "j", "role": "follower"},
        "data": {"path": "x.parquet"},
        "privacy": {"defence": "max_norm"},
    }
    assert job_from_mapping(raw, tmp_path / "j.toml").privacy.defence == "max_norm"
    raw.pop("privacy")
    assert job_from_mapping(raw, tmp_path / "j.toml").privacy == PrivacySection()


def test_equal_sections_agree_and_each_difference_is_named() -> None:
    mine = _section(defence="gaussian").to_wire()
    assert wire_mismatches(mine, _section(defence="gaussian").to_wire()) == []
    theirs = _section(defence="max_norm", delta=1e-6).to_wire()
    assert wire_mismatches(mine, theirs) == [
        ("[privacy] defence", "gaussian", "max_norm"),
        ("[privacy] delta", 1e-5, 1e-6),
    ]


def test_a_peer_without_the_section_or_with_garbage_is_one_difference() -> None:
    mine = PrivacySection().to_wire()
    assert wire_mismatches(mine, "") == [("[privacy]", mine, "(none)")]
    assert wire_mismatches(mine, "[1, 2]") == [("[privacy]", mine, "unreadable (6 bytes)")]
    nested = json.dumps({"defence": {"a": 1}})
    assert wire_mismatches(mine, nested)[0][0] == "[privacy]"
    huge = json.dumps({"defence": "x" * MAX_WIRE_BYTES})
    seen = wire_mismatches(mine, huge)[0][2]
    assert isinstance(seen, str) and seen.startswith("unreadable")


def test_an_extra_or_missing_key_is_named() -> None:
    mine = PrivacySection().to_wire()
    data = json.loads(mine)
    data["future"] = 1
    del data["delta"]
    found = wire_mismatches(mine, json.dumps(data))
    assert ("[privacy] delta", 1e-5, "(absent)") in found
    assert ("[privacy] future", "(absent)", 1) in found


json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=80)


@settings(max_examples=200, deadline=None)
@given(
    st.text(max_size=300)
    | st.dictionaries(st.text(max_size=70), json_scalars | st.lists(json_scalars)).map(json.dumps)
)
def test_any_peer_text_gives_differences_never_an_exception(text: str) -> None:
    mine = PrivacySection().to_wire()
    found = wire_mismatches(mine, text)
    if text == mine:
        assert found == []
    else:
        assert found
    for name, _, seen in found:
        assert name.startswith("[privacy]")
        assert len(str(seen)) <= MAX_WIRE_BYTES
