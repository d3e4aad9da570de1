"""Checkpoint bindings, their records and the hello's training terms: formats and comparisons."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvfl.bridge.fields import FieldsError, check_fields, decode_fields, encode_fields
from cvfl.bridge.handshake import terms_mismatches
from cvfl.bridge.serde import CheckpointState
from cvfl.data.tables import PartyTable
from cvfl.errors import ConfigError, ModelError
from cvfl.train import load_party
from cvfl.train.binding import Binding, training_binding
from cvfl.train.config import JobConfig, TrainSection
from cvfl.train.records import Record, encode_record, parse_record

Build = Callable[..., tuple[JobConfig, JobConfig]]
NAMES = st.text(st.characters(codec="ascii", categories=["L", "N", "P"]), min_size=1, max_size=64)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.characters(codec="ascii", categories=["L", "N", "P", "Zs"]), max_size=256),
)
VALUES = st.one_of(SCALARS, st.lists(st.integers(0, 1 << 20), max_size=64))
FIELDS = st.dictionaries(NAMES, VALUES, max_size=64)
HEX = st.binary(min_size=32, max_size=32)


@given(FIELDS)
def test_fields_round_trip(fields: dict[str, object]) -> None:
    assert decode_fields(encode_fields(fields)) == fields  # type: ignore[arg-type]


@given(st.binary(max_size=300))
def test_any_bytes_decode_or_raise_fields_error(data: bytes) -> None:
    try:
        fields = decode_fields(data)
    except FieldsError:
        return
    assert check_fields(fields) == fields


@pytest.mark.parametrize(
    "raw",
    [
        [],
        {"": 1},
        {"x" * 65: 1},
        {"a": {"nested": 1}},
        {"a": [[1]]},
        {"a": [None]},
        {"a": "\n"},
        {"a": "x" * 257},
        {"a": float("inf")},
        {f"k{i}": 1 for i in range(65)},
    ],
)
def test_unplain_fields_are_refused(raw: object) -> None:
    with pytest.raises(FieldsError):
        check_fields(raw)


def test_decode_refuses_nan_deep_nesting_and_size() -> None:
    for data in (b'{"a": NaN}', b"[" * 5000, b'{"a": "' + b"x" * 20000 + b'"}'):
        with pytest.raises(FieldsError):
            decode_fields(data)


RECORDS = st.builds(
    Record,
    st.builds(
        CheckpointState,
        st.integers(1, 1 << 40),
        HEX,
        st.one_of(st.just(b""), HEX),
    ),
    st.one_of(st.none(), FIELDS),
    st.one_of(st.just(""), HEX.map(bytes.hex)),
)


@given(RECORDS)
def test_record_round_trip(record: Record) -> None:
    assert parse_record(encode_record(record), Path("r.json")) == record


@settings(max_examples=200)
@given(st.binary(max_size=400))
def test_any_bytes_parse_or_raise_model_error(data: bytes) -> None:
    try:
        parse_record(data, Path("r.json"))
    except ModelError as exc:
        assert exc.code == "model.corrupt" and "r.json" in exc.message


@given(RECORDS, st.sampled_from(["format", "step", "digest", "peer", "binding_digest"]))
def test_a_bad_field_is_refused_naming_the_file(record: Record, name: str) -> None:
    raw = json.loads(encode_record(record))
    raw[name] = {"format": 9, "step": 0, "digest": "zz", "peer": "1", "binding_digest": "ab"}[name]
    with pytest.raises(ModelError, match=r"r\.json: checkpoint record"):
        parse_record(json.dumps(raw).encode(), Path("r.json"))


def test_a_binding_that_does_not_match_its_digest_is_refused() -> None:
    record = Record(CheckpointState(4, b"\1" * 32), {"lr": 0.001})
    raw = json.loads(encode_record(record))
    raw["binding"]["lr"] = 0.01  # edited in place: the digest still names the old binding
    with pytest.raises(ModelError, match="binding_digest does not match"):
        parse_record(json.dumps(raw).encode(), Path("r.json"))


def test_an_older_record_has_no_binding() -> None:
    old = {"step": 5, "digest": "01" * 32, "peer": ""}
    record = parse_record(json.dumps(old).encode(), Path("r.json"))
    assert record == Record(CheckpointState(5, b"\1" * 32)) and record.binding is None


def test_binding_covers_the_trajectory_and_the_data(small_job: Build) -> None:
    lead_cfg, _ = small_job()
    party = load_party(lead_cfg)
    binding = party.binding
    assert binding.shared["lr"] == 0.01 and binding.shared["epochs"] == 2
    assert binding.own["role"] == "leader" and binding.own["model.cut_width"] == 8
    train = dataclasses.replace(lead_cfg.train, lr=0.02)
    changed = training_binding(dataclasses.replace(lead_cfg, train=train), party.table)
    assert changed.digest() != binding.digest()
    assert changed.own == binding.own and changed.shared["lr"] == 0.02
    # Another row order, or other data, changes this party's own fields.
    assert isinstance(party.table, PartyTable)  # the in-memory reader
    table = dataclasses.replace(party.table, ids=party.table.ids[::-1])
    assert (
        training_binding(lead_cfg, table).own["order_fingerprint"]
        != binding.own["order_fingerprint"]
    )
    features = party.table.features.copy()
    features[0, 0] = (features[0, 0] + 1) % 101
    table = dataclasses.replace(party.table, features=features)
    assert training_binding(lead_cfg, table).own["data_digest"] != binding.own["data_digest"]


def test_hello_names_each_training_term_that_differs() -> None:
    mine = Binding({"lr": 0.001, "epochs": 2, "seed": 7}, {}).shared_terms()
    theirs = Binding({"lr": 0.01, "epochs": 2, "seed": 8}, {}).shared_terms()
    # seed is compared by the hello's own field, so it is not repeated here
    assert terms_mismatches(mine, theirs) == ["lr: expected 0.001, seen 0.01"]
    assert terms_mismatches(mine, mine) == []
    assert terms_mismatches(mine, b"") == [
        "training_terms: expected the peer's terms, seen none (an older cvfl?)"
    ]
    (bad,) = terms_mismatches(mine, b'{"lr": [[1]]}')
    assert bad.startswith("training_terms: expected named plain values, seen malformed")


@pytest.mark.parametrize(
    ("value", "ok"),
    [(60, True), (0, True), (0.5, True), (-1, False), ("60", False), (True, False)],
)
def test_checkpoint_every_s_is_validated(value: object, ok: bool) -> None:
    if ok:
        assert TrainSection(checkpoint_every_s=value).checkpoint_every_s == value  # type: ignore[arg-type]
        return
    with pytest.raises(ConfigError, match=r"\[train\] checkpoint_every_s: expected a number"):
        TrainSection(checkpoint_every_s=value)  # type: ignore[arg-type]


def test_checkpoint_intervals_default_and_refusals() -> None:
    assert TrainSection().checkpoint_every_s == 60.0
    with pytest.raises(ConfigError, match="checkpoint_every_s"):
        TrainSection(checkpoint_every_s=math.nan)
    for bad in (-1, 2.5, "4", False):
        with pytest.raises(ConfigError, match=r"\[train\] checkpoint_every: expected a whole"):
            TrainSection(checkpoint_every=bad)  # type: ignore[arg-type]
