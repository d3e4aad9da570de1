from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cvfl.train.metrics import binary_metrics, roc_auc
from cvfl.train.schedule import Schedule


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(-5, 5)), min_size=2, max_size=40))
def test_auc_equals_pairwise_definition(pairs: list[tuple[int, int]]) -> None:
    labels = np.array([p[0] for p in pairs])
    scores = np.array([p[1] for p in pairs], dtype=float)
    pos, neg = scores[labels == 1], scores[labels == 0]
    if len(pos) == 0 or len(neg) == 0:
        assert np.isnan(roc_auc(labels, scores))
        return
    expected = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    assert abs(roc_auc(labels, scores) - expected) < 1e-12


def test_binary_metrics_perfect_and_log_loss() -> None:
    logits = np.array([[2.0, -2.0], [-2.0, 2.0]])
    m = binary_metrics(np.array([0, 1]), logits)
    assert m.auc == 1.0 and m.accuracy == 1.0
    assert abs(m.log_loss - np.log1p(np.exp(-4.0))) < 1e-12


@given(st.integers(10, 500), st.integers(1, 64), st.integers(0, 10**6))
def test_schedule_is_reproducible_and_disjoint(rows: int, batch: int, seed: int) -> None:
    a = Schedule(rows, 0.2, seed, batch, epochs=2)
    b = Schedule(rows, 0.2, seed, batch, epochs=2)
    assert a.digest() == b.digest()
    assert not set(a.train_rows) & set(a.holdout_rows)
    assert len(a.train_rows) + len(a.holdout_rows) == rows
    steps_a, steps_b = list(a.steps()), list(b.steps())
    assert [s.number for s in steps_a] == list(range(1, a.total_steps + 1))
    for x, y in zip(steps_a, steps_b, strict=True):
        assert np.array_equal(x.rows, y.rows)
    epoch0 = np.concatenate([s.rows for s in steps_a if s.epoch == 0])
    assert sorted(epoch0) == sorted(a.train_rows)
    assert Schedule(rows, 0.2, seed + 1, batch, epochs=2).digest() != a.digest()


def test_resume_skips_steps_exactly() -> None:
    s = Schedule(100, 0.2, 1, 8, epochs=3)
    tail = list(s.steps(start=7))
    assert tail[0].number == 8
    assert np.array_equal(tail[0].rows, next(x for x in s.steps() if x.number == 8).rows)
