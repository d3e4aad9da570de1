"""The leader's top layers in NumPy: the same outputs as the module, or no copy at all."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cvfl.models.nets import LeaderHalf
from cvfl.online.top import NumpyTop


@settings(max_examples=30, deadline=None)
@given(
    hidden=st.lists(st.integers(1, 9), max_size=3),
    outputs=st.integers(1, 4),
    rows=st.integers(1, 7),
    seed=st.integers(0, 2**16),
)
def test_the_numpy_top_computes_what_the_module_does(
    hidden: list[int], outputs: int, rows: int, seed: int
) -> None:
    torch.manual_seed(seed)
    half = LeaderHalf(nn.Identity(), 5, [6], cut=3, top_hidden=tuple(hidden), outputs=outputs)
    top = NumpyTop.of(half.top)
    assert top is not None
    generator = np.random.default_rng(seed)
    own = generator.normal(size=(rows, 6)).astype(np.float32)
    act = generator.normal(size=(rows, 3)).astype(np.float32)
    with torch.no_grad():
        want = half.joined(torch.from_numpy(own), torch.from_numpy(act)).double().numpy()
    got = top(own, act)
    assert got.dtype == np.float64 and got.shape == (rows, outputs)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_a_top_with_other_layers_is_not_copied() -> None:
    assert NumpyTop.of(nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2))) is None
    assert NumpyTop.of(nn.Sequential()) is None
    assert NumpyTop.of(nn.Linear(4, 2, bias=False)) is not None
