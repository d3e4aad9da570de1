"""Per-row caches: the same outputs as the half computes, bounded, whole tables at load."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cvfl.models.nets import LeaderHalf
from cvfl.online.cache import RowCache, bottom_outputs

ROWS = 30
TOL = 1e-6


def _half() -> LeaderHalf:
    torch.manual_seed(3)
    return LeaderHalf(nn.Identity(), 5, [8, 4], cut=3).eval()


def _features() -> np.ndarray:
    return np.random.default_rng(5).normal(size=(ROWS, 5)).astype(np.float32)


class Counting:
    """The half's bottom tower, counting the rows it is asked to compute."""

    def __init__(self, half: LeaderHalf) -> None:
        self.half = half
        self.rows = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.rows += len(x)
        return self.half.own(x)


def _direct(half: LeaderHalf, features: np.ndarray, rows: list[int]) -> np.ndarray:
    with torch.no_grad():
        out: np.ndarray = half.own(torch.from_numpy(features[rows])).numpy()
    return out


def test_a_small_table_is_computed_whole_at_load() -> None:
    half, features = _half(), _features()
    compute = Counting(half)
    cache = RowCache(compute, features, capacity=ROWS)
    assert cache.whole and len(cache) == ROWS and compute.rows == ROWS
    rows = [3, 0, 3, 29]
    got = cache.rows(np.asarray(rows))
    assert np.allclose(got, _direct(half, features, rows), atol=TOL)
    assert compute.rows == ROWS  # nothing computed again


@settings(max_examples=40, deadline=None)
@given(
    capacity=st.integers(1, ROWS - 1),
    queries=st.lists(st.lists(st.integers(0, ROWS - 1), min_size=1, max_size=12), max_size=8),
)
def test_a_large_table_keeps_the_recent_rows(capacity: int, queries: list[list[int]]) -> None:
    half, features = _half(), _features()
    compute = Counting(half)
    cache = RowCache(compute, features, capacity=capacity)
    assert not cache.whole and compute.rows == 0
    for rows in queries:
        got = cache.rows(np.asarray(rows, dtype=np.int64))
        assert np.allclose(got, _direct(half, features, rows), atol=TOL)
        assert len(cache) <= capacity
    if queries and len(set(queries[-1])) <= capacity:
        before = compute.rows
        cache.rows(np.asarray(queries[-1], dtype=np.int64))
        assert compute.rows == before  # the last rows asked are still held


@pytest.mark.parametrize(
    "table_rows", [[4, 7, -1, 4, -1, -1], [-1, -1], [4, 7, 1, 4, 2, 9]], ids=str
)
def test_inline_rows_are_computed_and_table_rows_cached(table_rows: list[int]) -> None:
    half, features = _half(), _features()
    cache = RowCache(half.own, features, capacity=ROWS)
    inline = np.random.default_rng(9).normal(size=(len(table_rows), 5)).astype(np.float32)
    rows = np.asarray(table_rows)
    given_rows = np.where((rows >= 0)[:, None], features[np.maximum(rows, 0)], inline)
    with torch.no_grad():
        want = half.own(torch.from_numpy(given_rows)).numpy()
        got = bottom_outputs(half, cache, rows, given_rows[rows < 0])
    assert np.allclose(got, want, atol=TOL)
