"""Parsers and formats of the PSI package: canonical ids, config tables, frames, buckets.

The groups' point parsers are tested in test_groups.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvfl.errors import ConfigError, DataError
from cvfl.psi import AlignJob, PsiConfig, serde
from cvfl.psi.source import canonical_ids
from cvfl.psi.spill import BucketStore, keys_from_bytes, keys_to_bytes

P = Path("t.parquet")


def test_canonical_forms() -> None:
    assert canonical_ids(pa.array(["a", "é"]), path=P, name="id", start=0) == [b"ta", "té".encode()]
    assert canonical_ids(pa.array([7, -3]), path=P, name="id", start=0) == [b"t7", b"t-3"]
    assert canonical_ids(pa.array([b"\x00"]), path=P, name="id", start=0) == [b"b\x00"]
    with pytest.raises(DataError, match="expected string, integer or binary ids, seen double"):
        canonical_ids(pa.array([1.5]), path=P, name="id", start=0)
    with pytest.raises(DataError, match="row 12: missing id"):
        canonical_ids(pa.array(["a", None]), path=P, name="id", start=11)


@given(st.lists(st.one_of(st.text(), st.integers(-(2**63), 2**63 - 1)), unique_by=str))
def test_canonicalisation_is_injective_on_text_forms(values: list[object]) -> None:
    texts = [str(v) for v in values]
    canon = canonical_ids(pa.array(texts, type=pa.string()), path=P, name="id", start=0)
    assert len(set(canon)) == len(canon)
    ints = [v for v in values if isinstance(v, int)]
    as_int = canonical_ids(pa.array(ints, type=pa.int64()), path=P, name="id", start=0)
    as_text = canonical_ids(
        pa.array([str(v) for v in ints], type=pa.string()), path=P, name="id", start=0
    )
    assert as_int == as_text


VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(-1, 1e4), st.text(max_size=8)
)


@given(st.dictionaries(st.sampled_from([*PsiConfig.__dataclass_fields__, "bogus"]), VALUES))
def test_psi_table_parses_or_refuses_cleanly(table: dict[str, object]) -> None:
    try:
        cfg = PsiConfig.from_toml_table(table, base_dir=Path("/base"))
    except ConfigError as exc:
        assert exc.message.startswith("[psi] "), exc.message
        if exc.code == "config.unknown_key":
            assert exc.message.startswith("[psi] bogus: unknown key; ")
        elif exc.code == "config.missing":
            assert exc.message == "[psi] output: required, missing"
        else:
            assert "expected" in exc.message and "seen" in exc.message
        return
    assert cfg.output.is_absolute() and cfg.batch_size >= 1


def test_psi_table_defaults_and_refusals() -> None:
    cfg = PsiConfig.from_toml_table({"output": "out/a.parquet"}, base_dir=Path("/w"))
    assert cfg.output == Path("/w/out/a.parquet")
    assert cfg.report_path == Path("/w/out/a.parquet.report.json")
    assert cfg.duplicates == "error" and not cfg.plaintext_output
    with pytest.raises(ConfigError, match=r"\[psi\] batch_size: expected >= 1, seen 0"):
        PsiConfig.from_toml_table({"output": "a.csv", "batch_size": 0})
    with pytest.raises(ConfigError, match=r"\[psi\] mode"):
        PsiConfig.from_toml_table({"output": "a.csv", "mode": "turbo"})
    with pytest.raises(ConfigError, match=r"\[psi\] output: required, missing"):
        PsiConfig.from_toml_table({})
    assert cfg.group == "x25519"
    assert (
        PsiConfig.from_toml_table({"output": "a.csv", "group": "ristretto255"}).group
        == "ristretto255"
    )
    with pytest.raises(
        ConfigError, match=r"\[psi\] group: expected one of \['x25519', 'ristretto255'\]"
    ):
        PsiConfig.from_toml_table({"output": "a.csv", "group": "p256"})


def test_job_tables() -> None:
    doc = {
        "job": {"id": "j", "role": "follower", "seed": 3},
        "data": {"path": "f.csv", "id_column": "uid"},
        "peer": {"listen": "0.0.0.0:1", "connect": "10.0.0.1:7000"},
    }
    job = AlignJob.from_toml(doc, base_dir=Path("/d"))
    assert (job.role, job.address, job.data, job.id_column) == (
        "follower",
        "10.0.0.1:7000",
        Path("/d/f.csv"),
        "uid",
    )
    assert AlignJob.from_toml(doc, role="leader").address == "0.0.0.0:1"
    per_worker = {**doc, "peer": {"connect": "leader-{worker}.example.org:7000"}}
    assert AlignJob.from_toml(per_worker).address == "leader-0.example.org:7000"
    with pytest.raises(ConfigError, match=r"job\.role"):
        AlignJob.from_toml(doc, role="boss")
    with pytest.raises(ConfigError, match=r"peer\.connect"):
        AlignJob.from_toml({**doc, "peer": {}})


@given(
    st.text(),
    st.sampled_from(["leader", "follower"]),
    st.integers(0, 2**64 - 1),
    st.text(),
    st.integers(0, 2**32 - 1),
    st.text(),
)
def test_hello_round_trip(
    job: str, role: str, count: int, mode: str, batch: int, group: str
) -> None:
    hello = serde.PsiHello(job, role, count, mode, batch, group)
    frame = serde.hello_to_proto(hello)
    parsed = type(frame).FromString(frame.SerializeToString())
    assert serde.hello_from_proto(parsed.hello) == hello


@settings(max_examples=20, deadline=None)
@given(st.lists(st.binary(min_size=32, max_size=32), max_size=300), st.integers(1, 400))
def test_bucket_store_returns_everything_sorted(keys: list[bytes], threshold: int) -> None:
    with BucketStore("t", threshold=threshold, spill_dir=None) as store:
        for i in range(0, len(keys), 50):
            chunk = keys[i : i + 50]
            store.add(keys_from_bytes(b"".join(chunk)), np.arange(i, i + len(chunk)))
        seen = [
            (k, int(r))
            for ks, rs in store.sorted_buckets()
            for k, r in zip(_split(keys_to_bytes(ks)), rs, strict=True)
        ]
    assert seen == sorted((k, i) for i, k in enumerate(keys))


def _split(data: bytes) -> list[bytes]:
    return [data[i : i + 32] for i in range(0, len(data), 32)]
