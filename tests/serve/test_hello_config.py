"""Predict hello serde and refusals, cut-layer spec parsing, the [predict] section."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cvfl.bridge.serde import TensorSpec
from cvfl.errors import ConfigError, ModelError
from cvfl.serve import PredictHello, PredictSection, load_predict_job, predict_mismatches
from cvfl.serve.halves import parse_tensor_spec
from cvfl.serve.hello import hello_from_proto, hello_to_proto
from cvfl.wire import bridge_pb2 as pb

names = st.text(st.characters(exclude_characters=" ", exclude_categories=["Cs"]), min_size=1)
specs = st.builds(
    TensorSpec, names, st.sampled_from(["float32", "int64"]), st.tuples(st.integers(0, 4096))
)
hellos = st.builds(
    PredictHello,
    protocol_version=st.integers(0, 2**32 - 1),
    job_id=st.text(),
    role=st.sampled_from(["leader", "follower"]),
    export_format=st.text(),
    software_version=st.text(),
    model_fingerprint=st.text(),
    trained_steps=st.integers(0, 2**64 - 1),
    cut_layer=st.lists(specs, max_size=3).map(tuple),
    batch_size=st.integers(0, 2**32 - 1),
    num_rows=st.integers(0, 2**64 - 1),
    id_order_fingerprint=st.binary(max_size=32),
    nonce=st.binary(max_size=32),
    expected_peer_fingerprint=st.text(),
)


@given(hellos)
def test_hello_round_trip(hello: PredictHello) -> None:
    wire = hello_to_proto(hello).SerializeToString()
    assert hello_from_proto(pb.PredictHello.FromString(wire)) == hello


@given(specs)
def test_tensor_spec_parse_inverts_describe(spec: TensorSpec) -> None:
    assert parse_tensor_spec(spec.describe()) == spec


@given(st.text())
def test_tensor_spec_parse_refuses_garbage_with_model_error(text: str) -> None:
    try:
        spec = parse_tensor_spec(text)
    except ModelError as exc:
        assert exc.code == "model.spec"
    else:
        assert spec.describe() == text or " " in text


def _hello(role: str, **changes: object) -> PredictHello:
    base = PredictHello(
        protocol_version=1,
        job_id="job",
        role=role,
        export_format="cvfl-half/v1",
        software_version="0.1.0",
        model_fingerprint=f"{role}-fp",
        trained_steps=10,
        cut_layer=(TensorSpec("act1_f", "float32", (8,)),),
        batch_size=64,
        num_rows=100,
        id_order_fingerprint=b"\x01" * 32,
        nonce=b"n",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_matching_hellos_pass_and_every_field_is_named() -> None:
    assert predict_mismatches(_hello("leader"), _hello("follower")) == []
    changes = {
        "job_id": "other",
        "software_version": "9.9",
        "export_format": "v2",
        "trained_steps": 11,
        "num_rows": 99,
        "batch_size": 32,
        "protocol_version": 2,
    }
    for field, value in changes.items():
        problems = predict_mismatches(_hello("leader"), _hello("follower", **{field: value}))
        assert len(problems) == 1 and problems[0].startswith(f"{field}: expected ")
        assert str(value) in problems[0]
    same_role = predict_mismatches(_hello("leader"), _hello("leader"))
    assert same_role == ["role: expected follower, seen leader"]
    pinned = _hello("leader", expected_peer_fingerprint="x")
    assert predict_mismatches(pinned, _hello("follower")) == [
        "peer model_fingerprint: expected x, seen follower-fp"
    ]
    assert predict_mismatches(_hello("follower"), pinned)[0].startswith("own model_fingerprint")


def test_predict_section_from_job_file(tmp_path: Path) -> None:
    job = tmp_path / "job.toml"
    job.write_text(
        '[job]\nid = "j"\nrole = "leader"\n[data]\npath = "d.parquet"\n'
        '[predict]\ninput = "score.csv"\nbatch_size = 7\n'
    )
    cfg, section = load_predict_job(job)
    assert cfg.job.id == "j" and section.input == tmp_path / "score.csv"
    assert section.batch_size == 7 and not section.plaintext_scores
    _, other = load_predict_job(job, input=tmp_path / "x.csv", plaintext_scores=True)
    assert other.input == tmp_path / "x.csv" and other.plaintext_scores


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("batch_size = 7\n", "[predict] input"),
        ('input = "a.csv"\nbatch_size = "7"\n', "[predict] batch_size"),
        ('input = "a.csv"\nbatch_size = 0\n', "[predict] batch_size"),
        ('input = "a.csv"\nplaintext_scores = 1\n', "[predict] plaintext_scores"),
        ('input = "a.csv"\ncolour = "red"\n', "[predict] colour"),
        ('input = "a.csv"\noutput = "scores.txt"\n', "[predict] output"),
        ('input = "a.csv"\naligned = "aligned.csv.gz"\n', "[predict] aligned"),
        ('input = "a.tsv"\n', "[predict] input"),
    ],
)
def test_bad_predict_sections_name_the_field(tmp_path: Path, body: str, field: str) -> None:
    job = tmp_path / "job.toml"
    job.write_text(
        f'[job]\nid = "j"\nrole = "leader"\n[data]\npath = "d.parquet"\n[predict]\n{body}'
    )
    with pytest.raises(ConfigError) as info:
        load_predict_job(job)
    assert info.value.message.startswith(f"{field}: "), info.value
    assert any(w in info.value.message for w in ("expected", "missing", "unknown key")), info.value


def test_section_defaults() -> None:
    section = PredictSection(input=Path("a.csv"))
    assert section.align and section.output == Path("scores.parquet")
