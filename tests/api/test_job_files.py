"""Jobs built in Python saved as job files: TOML that reads back equal, used by the CLI."""

from __future__ import annotations

import math
import threading
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cvfl import api
from cvfl.api.tomlout import dumps
from cvfl.cli.app import main
from cvfl.cli.parties import free_port
from cvfl.errors import ConfigError
from cvfl.serve import read_scores

from .jobs import ROWS, mapping, tables

SCALARS = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=12),
)
KEYS = st.text(max_size=8)


def _tables(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.dictionaries(KEYS, children, max_size=4)


VALUES = st.recursive(
    st.one_of(SCALARS, st.lists(SCALARS, max_size=4)),
    lambda inner: st.one_of(_tables(inner), st.lists(_tables(inner), min_size=1, max_size=3)),
    max_leaves=12,
)


@given(st.dictionaries(KEYS, VALUES, max_size=5))
def test_toml_reads_back_equal(doc: dict[str, Any]) -> None:
    assert tomllib.loads(dumps(doc)) == doc


@given(st.text(max_size=20))
def test_any_string_reads_back(text: str) -> None:
    assert tomllib.loads(dumps({"k": text, text: 1})) == {"k": text, text: 1}


@pytest.mark.parametrize("bad", [b"bytes", object(), {1: "x"}, "\ud800"])
def test_values_toml_cannot_hold_are_refused(bad: Any) -> None:
    with pytest.raises(ConfigError) as info:
        dumps({"section": {"key": bad}})
    assert info.value.code == "config.value"


def test_infinities_are_written_as_toml_spells_them() -> None:
    assert tomllib.loads(dumps({"a": math.inf, "b": -math.inf})) == {"a": math.inf, "b": -math.inf}


def test_saved_jobs_train_from_python_and_score_with_the_cli(tmp_path: Path) -> None:
    port = free_port()
    paths = []
    for role, table in zip(("leader", "follower"), tables(), strict=True):
        raw = mapping(role, table, f"saved-{role}", port)
        raw["predict"] = {"input": str(tmp_path / f"saved-{role}" / "tables" / f"{role}.parquet")}
        if role == "leader":
            raw["predict"] |= {"output": "scores.parquet", "plaintext_scores": True}
        path = tmp_path / f"{role}.toml"
        cfg = api.save_job(raw, path)
        assert cfg.source == path and cfg.model.leader_factory == "tests.api.models:leader_net"
        paths.append(path)
    assert 'follower_factory = "tests.api.models:FollowerNet"' in paths[0].read_text()
    result = api.run_local(*paths)
    assert result.leader.steps == 20

    errors: list[BaseException] = []

    def run(path: Path) -> None:
        try:
            main(["predict", "--config", str(path)])
        except SystemExit as exc:
            if exc.code:
                errors.append(exc)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(p,)) for p in paths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert read_scores(tmp_path / "scores.parquet").num_rows == ROWS
