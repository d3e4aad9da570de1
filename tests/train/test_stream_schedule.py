"""The streamed reader's schedule: split, two-level shuffle, batches and resume."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvfl.errors import ConfigError
from cvfl.train.stream_schedule import StreamSchedule, held_out, holdout_key


def _ids(n: int) -> list[str]:
    return [f"id-{i:06d}" for i in range(n)]


def _schedule(n: int, **kw: int) -> StreamSchedule:
    key = holdout_key("job-1", kw.get("seed", 7))
    settings = {
        "num_rows": n,
        "holdout_fraction": 0.25,
        "seed": 7,
        "batch_size": 5,
        "epochs": 2,
        "max_steps": 0,
        "eval_batch_size": 6,
        "block_rows": 8,
        "shuffle_blocks": 2,
    } | kw
    return StreamSchedule(**settings, holdout=held_out(key, _ids(n), 0.25))  # type: ignore[arg-type]


sizes = st.fixed_dictionaries(
    {
        "n": st.integers(20, 300),
        "batch_size": st.integers(1, 40),
        "block_rows": st.integers(1, 50),
        "shuffle_blocks": st.integers(1, 6),
        "epochs": st.integers(1, 3),
    }
)


def _make(p: dict[str, int]) -> StreamSchedule:
    n = p["n"]
    return _schedule(n, **{k: v for k, v in p.items() if k != "n"})


@settings(max_examples=60, deadline=None)
@given(p=sizes)
def test_every_training_row_once_per_epoch_and_held_out_disjoint(p: dict[str, int]) -> None:
    s = _make(p)
    held = set(s.holdout_rows.tolist())
    steps = list(s.steps())
    assert len(steps) == s.total_steps == s.steps_per_epoch * p["epochs"]
    assert [st.number for st in steps] == list(range(1, s.total_steps + 1))
    for epoch in range(p["epochs"]):
        mine = [st for st in steps if st.epoch == epoch]
        rows = np.concatenate([st.rows for st in mine])
        assert sorted(rows.tolist()) == np.flatnonzero(s.train_mask).tolist()
        assert not held & set(rows.tolist())
        assert all(len(st.rows) == p["batch_size"] for st in mine[:-1])
        assert [st.ends_epoch for st in mine] == [False] * (len(mine) - 1) + [True]
    evals = np.concatenate(list(s.eval_batches()))
    assert evals.tolist() == sorted(held)


@settings(max_examples=60, deadline=None)
@given(p=sizes, max_steps=st.integers(0, 80), data=st.data())
def test_resume_from_any_step_gives_the_remaining_steps(
    p: dict[str, int], max_steps: int, data: st.DataObject
) -> None:
    s = _make(p | {"max_steps": max_steps})
    whole = list(s.steps())
    assert len(whole) == s.total_steps
    start = data.draw(st.integers(0, s.total_steps))
    rest = list(s.steps(start))
    assert [x.number for x in rest] == [x.number for x in whole[start:]]
    for a, b in zip(rest, whole[start:], strict=True):
        assert a.epoch == b.epoch and a.ends_epoch == b.ends_epoch
        assert np.array_equal(a.rows, b.rows)
    # the reader's plan from `start` holds every row the remaining steps read, in order
    plan = [set(w.tolist()) for w in s.windows(start)]
    cursor = 0
    for step in rest:
        found = []
        for block in set((step.rows // s.block_rows).tolist()):
            found.append(next(i for i in range(cursor, len(plan)) if block in plan[i]))
        cursor = min(found)  # StopIteration if the plan fell short or went back


def test_both_parties_derive_the_same_schedule() -> None:
    a, b = _schedule(500), _schedule(500)
    assert a.digest() == b.digest()
    for x, y in zip(a.steps(), b.steps(), strict=True):
        assert np.array_equal(x.rows, y.rows)
    assert _schedule(500, seed=8).digest() != a.digest()
    assert _schedule(500, shuffle_blocks=3).digest() != a.digest()
    assert _schedule(500, block_rows=9).digest() != a.digest()


def test_the_split_follows_the_ids_not_their_positions() -> None:
    key = holdout_key("job-1", 7)
    ids = _ids(2000)
    mask = held_out(key, ids, 0.25)
    assert 0.2 < mask.mean() < 0.3
    assert np.array_equal(held_out(key, ids[::-1], 0.25), mask[::-1])
    assert not np.array_equal(held_out(holdout_key("job-2", 7), ids, 0.25), mask)


def test_a_split_with_no_held_out_row_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        StreamSchedule(3, 0.001, 1, 2, 1, 0, 4, 2, 1, holdout=np.zeros(3, dtype=bool))
    assert "holdout_fraction" in str(caught.value)
