"""The strict job-file loader: every wrong type, out-of-range value and unknown key is refused.

Sections covered: ``[job]``, ``[data]``, ``[train]``, ``[peer]``, ``[psi]``, ``[model]``,
``[privacy]`` and ``[sealing]``.

Each refusal is a ConfigError naming ``[section] key``, never another exception.
"""

from __future__ import annotations

import enum
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cvfl.errors import ConfigError
from cvfl.models.spec import ModelSpec
from cvfl.privacy.config import PrivacySection
from cvfl.psi import PsiConfig
from cvfl.sealing import SealingConfig
from cvfl.serve.config import PredictSection
from cvfl.train.config import (
    DataSection,
    JobConfig,
    JobSection,
    PeerSection,
    TrainSection,
    job_from_mapping,
)

SECTIONS: dict[str, type] = {
    "job": JobSection,
    "data": DataSection,
    "train": TrainSection,
    "peer": PeerSection,
    "psi": PsiConfig,
    "model": ModelSpec,
    "privacy": PrivacySection,
    "sealing": SealingConfig,
}
FIELDS = [(name, f.name) for name, cls in SECTIONS.items() for f in fields(cls)]
BOUNDED = [
    (name, f.name, dict(f.metadata))
    for name, cls in SECTIONS.items()
    for f in fields(cls)
    if "low" in f.metadata
]
SOURCE = Path("/jobs/job.toml")
_floats = st.floats(allow_nan=True, allow_infinity=True)
_text = st.text(max_size=8)


def _minimal(**sections: dict[str, Any]) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "job": {"id": "j", "role": "leader", "plaintext_outputs": True},
        "data": {"path": "t.csv"},
        "train": {},
        "peer": {},
        "psi": {"output": "aligned/leader.parquet.sealed"},
        "model": {},
        "privacy": {},
        "sealing": {"provider": "file", "key_file": "keys/party.key"},
    }
    for name, table in sections.items():
        raw[name] = {**raw[name], **table}
    return raw


def _load(raw: dict[str, Any]) -> JobConfig:
    return job_from_mapping(raw, SOURCE)


def _wrong_values(section: str, key: str) -> st.SearchStrategy[object]:
    """TOML values whose type cannot fit the field's annotation (independent of the loader)."""
    kind = typing.get_type_hints(SECTIONS[section])[key]
    options = [a for a in typing.get_args(kind) if a is not type(None)]
    base = options[0] if typing.get_origin(kind) in (typing.Union, type(int | None)) else kind
    if base is bool:
        return st.one_of(st.integers(), _floats, _text, st.lists(st.booleans(), max_size=2))
    if base is int:
        return st.one_of(st.booleans(), _floats, _text, st.lists(st.integers(), max_size=2))
    if base is float:
        return st.one_of(st.booleans(), _text, st.lists(_floats, max_size=2))
    if typing.get_origin(base) is tuple:
        return st.one_of(st.booleans(), st.integers(), _floats, _text.filter(bool))
    # str, Literal, Path, enumerations: never a boolean, a number or a list
    return st.one_of(st.booleans(), st.integers(), _floats, st.lists(_text, max_size=2))


@st.composite
def _field_and_wrong_value(draw: st.DrawFn) -> tuple[str, str, object]:
    section, key = draw(st.sampled_from(FIELDS))
    return section, key, draw(_wrong_values(section, key))


@given(_field_and_wrong_value())
def test_every_wrong_type_is_refused_naming_the_key(case: tuple[str, str, object]) -> None:
    section, key, value = case
    with pytest.raises(ConfigError) as err:
        _load(_minimal(**{section: {key: value}}))
    assert err.value.code in ("config.type", "config.value", "config.steps"), err.value
    assert err.value.message.startswith(f"[{section}] {key}: expected "), err.value


PREDICT_KEYS = [f.name for f in fields(PredictSection)]


@given(st.sampled_from(PREDICT_KEYS), st.data())
def test_every_wrong_predict_value_is_refused_naming_the_key(key: str, data: st.DataObject) -> None:
    kind = typing.get_type_hints(PredictSection)[key]
    options = [a for a in typing.get_args(kind) if a is not type(None)]
    base = options[0] if options else kind
    wrong: st.SearchStrategy[object]
    if base is bool:
        wrong = st.one_of(st.integers(), _floats, _text)
    elif base is int:
        wrong = st.one_of(st.booleans(), _floats, _text, st.integers(max_value=0))
    else:  # paths and strings
        wrong = st.one_of(st.booleans(), st.integers(), _floats, st.lists(_text, max_size=2))
    value = data.draw(wrong)
    table = {"input": "score.csv", key: value}
    with pytest.raises(ConfigError) as err:
        PredictSection.from_toml_table(table, Path("/jobs"))
    assert err.value.message.startswith(f"[predict] {key}: expected "), err.value


@st.composite
def _out_of_range(draw: st.DrawFn) -> tuple[str, str, float]:
    section, key, limits = draw(st.sampled_from(BOUNDED))
    kind = typing.get_type_hints(SECTIONS[section])[key]
    low, high = limits["low"], limits.get("high")
    choices = [low if limits["low_open"] else low - 1, low - draw(st.integers(1, 10**6))]
    if high is not None:
        choices += [high if limits["high_open"] else high + 1, high + draw(st.integers(1, 10**6))]
    value = draw(st.sampled_from(choices))
    return section, key, int(value) if kind is int else float(value)


@given(_out_of_range())
def test_every_out_of_range_value_is_refused_naming_the_key(case: tuple[str, str, float]) -> None:
    section, key, value = case
    with pytest.raises(ConfigError) as err:
        _load(_minimal(**{section: {key: value}}))
    assert err.value.code == "config.range"
    assert err.value.message.startswith(f"[{section}] {key}: expected "), err.value
    assert err.value.message.endswith(f"seen {value!r}")


@given(st.sampled_from(sorted(SECTIONS)), st.text(min_size=1, max_size=12), st.integers())
def test_every_unknown_key_is_refused(section: str, key: str, value: int) -> None:
    if key in {f.name for f in fields(SECTIONS[section])}:
        return
    with pytest.raises(ConfigError) as err:
        _load(_minimal(**{section: {key: value}}))
    assert err.value.code == "config.unknown_key"
    assert err.value.message.startswith(f"[{section}] {key}: unknown key; ")


@given(st.sampled_from(FIELDS), st.one_of(st.booleans(), st.integers(), _floats, _text))
def test_any_value_loads_or_is_a_config_error_naming_the_key(
    field: tuple[str, str], value: object
) -> None:
    section, key = field
    if (section, key) == ("sealing", "provider"):
        return  # another provider needs its own key: that refusal names the missing key
    try:
        _load(_minimal(**{section: {key: value}}))
    except ConfigError as exc:
        assert f"[{section}] {key}" in exc.message, exc.message


@pytest.mark.parametrize(
    ("section", "key", "value", "code", "message"),
    [
        ("train", "batch_size", 3.5, "config.type", "expected a whole number, seen 3.5"),
        ("train", "batch_size", "32", "config.type", "expected a whole number, seen '32'"),
        ("job", "seed", "abc", "config.type", "expected a whole number, seen 'abc'"),
        ("peer", "heartbeat_timeout", "5", "config.type", "expected a number, seen '5'"),
        ("train", "lr", "0.1", "config.type", "expected a number, seen '0.1'"),
        ("job", "plaintext_outputs", "false", "config.type", "expected true or false"),
        ("train", "checkpoint_every", -3, "config.range", "expected >= 0, seen -3"),
        ("peer", "give_up_after", 0, "config.range", "expected > 0, seen 0.0"),
        ("peer", "connect_timeout", -1.5, "config.range", "expected > 0, seen -1.5"),
        ("peer", "step_timeout", float("inf"), "config.range", "a finite number"),
        ("train", "optimizer", "adagrad", "config.value", "one of 'sgd', 'adam'"),
        ("peer", "security", "tls", "config.value", "one of 'ratls', 'insecure'"),
        ("job", "role", "boss", "config.value", "one of 'leader', 'follower'"),
        ("data", "kind", "text", "config.value", "one of 'categorical', 'numeric'"),
        ("data", "holdout_fraction", 1, "config.range", "expected > 0 and < 1, seen 1.0"),
        ("model", "leader_hidden", "12", "config.type", "a list of whole numbers, seen '12'"),
        ("model", "slots", 0, "config.range", "expected >= 1, seen 0"),
        ("privacy", "audit", "false", "config.type", "expected true or false"),
        ("sealing", "gramine_key", "mrsomething", "config.value", "'mrenclave', 'mrsigner'"),
        ("sealing", "chunk_size", "4096", "config.type", "expected a whole number"),
    ],
)
def test_the_issues_examples(section: str, key: str, value: Any, code: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        _load(_minimal(**{section: {key: value}}))
    assert err.value.code == code
    assert err.value.message.startswith(f"[{section}] {key}: "), err.value
    assert message in err.value.message, err.value


def test_an_unknown_key_gets_the_nearest_name() -> None:
    with pytest.raises(ConfigError) as err:
        _load(_minimal(train={"batchsize": 32}))
    assert err.value.message == "[train] batchsize: unknown key; did you mean batch_size?"


def test_an_unknown_attestation_key_gets_the_nearest_name() -> None:
    raw = _minimal()
    raw["attestation"] = {"provder": "simulated"}
    with pytest.raises(ConfigError) as err:
        _load(raw)
    assert err.value.code == "config.unknown_key"
    assert err.value.message == "[attestation] provder: unknown key; did you mean provider?"


def test_an_unknown_section_gets_the_nearest_name() -> None:
    raw = _minimal()
    raw["trian"] = {}
    with pytest.raises(ConfigError, match=r"\[trian\]: unknown section; did you mean \[train\]"):
        _load(raw)


def test_a_missing_required_key_is_named_not_a_python_error() -> None:
    raw = _minimal()
    raw["data"] = {"id_column": "uid"}
    with pytest.raises(ConfigError) as err:
        _load(raw)
    assert err.value.code == "config.missing"
    assert err.value.message == "[data] path: required, missing"


def test_good_values_are_converted() -> None:
    cfg = _load(
        _minimal(
            train={"lr": 1, "batch_size": 8},
            peer={"port_file": "run/leader.port", "give_up_after": 30},
            job={"steps": ["align", "train"]},
            data={"kind": "numeric", "path": "/abs/t.parquet"},
        )
    )
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)
    assert cfg.peer.port_file == Path("/jobs/run/leader.port")
    assert cfg.data.path == Path("/abs/t.parquet")
    assert isinstance(cfg.data.kind, enum.Enum) and cfg.data.kind.value == "numeric"
    assert cfg.job.steps == ("align", "train")


@pytest.mark.parametrize("name", ["aligned/l.txt", "aligned/l.sealed", "aligned/l.parquet.gz"])
def test_an_aligned_table_name_without_a_known_format_is_refused(name: str) -> None:
    with pytest.raises(ConfigError) as err:
        _load(_minimal(psi={"output": name}))
    assert err.value.code == "config.format"
    assert err.value.message.startswith("[psi] output: expected a file name ending .parquet")


def test_a_section_that_is_not_a_table_is_refused() -> None:
    raw = _minimal()
    raw["train"] = 3
    with pytest.raises(ConfigError, match=r"\[train\]: expected a table, seen int"):
        _load(raw)


def test_a_path_whose_tilde_names_no_user_is_refused_by_name(tmp_path: Path) -> None:
    from cvfl.train.config import job_from_mapping

    raw = {"job": {"id": "j", "role": "leader"}, "data": {"path": "~no-such-user-cvfl/t.csv"}}
    with pytest.raises(ConfigError, match=r"\[data\] path: expected a path whose ~") as err:
        job_from_mapping(raw, tmp_path / "job.toml")
    assert err.value.code == "config.value"
