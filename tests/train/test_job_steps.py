"""``[job] steps``: what ``cvfl run`` runs, validated where the job file is loaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cvfl.errors import ConfigError
from cvfl.train.config import DEFAULT_STEPS, STEPS, job_from_mapping, parse_steps


def _job(**job: Any) -> dict[str, Any]:
    return {"job": {"id": "j", "role": "leader", **job}, "data": {"path": "t.parquet"}}


def test_default_is_align_then_train() -> None:
    cfg = job_from_mapping(_job(), Path("job.toml"))
    assert cfg.job.steps == DEFAULT_STEPS == ("align", "train")


@pytest.mark.parametrize(
    "steps",
    [["train"], ["align"], ["predict"], ["align", "train", "predict"], ["train", "predict"]],
)
def test_valid_steps_load_as_a_tuple(steps: list[str]) -> None:
    cfg = job_from_mapping(_job(steps=steps), Path("job.toml"))
    assert cfg.job.steps == tuple(steps)


@pytest.mark.parametrize(
    ("steps", "expected", "seen"),
    [
        ([], "a non-empty list of align, train, fallback, predict", "[]"),
        ("train", "a non-empty list", "'train'"),
        (["train", "evaluate"], "names from align, train, fallback, predict", "'evaluate'"),
        ([1], "names from align, train, fallback, predict", "1"),
        (["train", "train"], "each step at most once", "['train', 'train']"),
        (["train", "align"], "pipeline order ['align', 'train']", "['train', 'align']"),
        (["predict", "align"], "pipeline order ['align', 'predict']", "['predict', 'align']"),
        ({"align": True}, "a non-empty list", "{'align': True}"),
    ],
)
def test_invalid_steps_are_refused_naming_the_key(steps: Any, expected: str, seen: str) -> None:
    with pytest.raises(ConfigError) as err:
        job_from_mapping(_job(steps=steps), Path("job.toml"))
    assert err.value.code == "config.steps"
    message = err.value.message
    assert message.startswith("[job] steps: expected "), message
    assert expected in message and message.endswith(f"seen {seen}"), message


@given(st.lists(st.sampled_from([*STEPS, "evaluate", ""]), max_size=5))
def test_any_list_is_either_an_ordered_subset_or_refused(steps: list[str]) -> None:
    try:
        parsed = parse_steps(steps)
    except ConfigError as exc:
        assert exc.code == "config.steps" and "[job] steps" in exc.message
        ordered_unique = (
            bool(steps)
            and set(steps) <= set(STEPS)
            and len(set(steps)) == len(steps)
            and steps == sorted(steps, key=STEPS.index)
        )
        assert not ordered_unique, steps
    else:
        assert list(parsed) == steps
        assert parsed and list(parsed) == sorted(set(parsed), key=STEPS.index)
