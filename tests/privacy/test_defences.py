"""The defences: what each does to a gradient, and that it does it the same way every time."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cvfl.privacy.accountant import gaussian_epsilon
from cvfl.privacy.config import PrivacySection
from cvfl.privacy.defences import (
    clip_rows,
    keep_probability,
    marvell,
    marvell_split,
    max_norm,
    protect,
    randomized_response,
    step_generator,
)


def _rank_one(rows: int = 64, width: int = 8, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """Gradients like a linear top's: row i is s_i * v, s_i < 0 exactly for the positives."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(rows) < 0.3).astype(np.int64)
    p = rng.uniform(0.05, 0.95, rows)
    scale = torch.from_numpy(p - labels).float()
    v = torch.from_numpy(rng.normal(size=width)).float()
    return scale[:, None] * v[None, :] / rows, labels


@pytest.mark.parametrize("defence", ["max_norm", "gaussian", "marvell"])
def test_each_defence_is_deterministic_per_seed_step_and_worker(defence: str) -> None:
    grad, labels = _rank_one()
    section = PrivacySection(defence=defence, clip_norm=0.01)

    def sent(seed: int, step: int, worker: int) -> torch.Tensor:
        return protect(grad, labels, section, step_generator(seed, step, worker))

    first = sent(7, 3, 0)
    assert torch.equal(first, sent(7, 3, 0))  # a replayed step sends the same bytes
    assert not torch.equal(first, grad)
    for other in (sent(8, 3, 0), sent(7, 4, 0), sent(7, 3, 1)):
        assert not torch.equal(first, other)
    assert first.dtype == torch.float32 and first.shape == grad.shape


def test_none_sends_the_gradient_itself() -> None:
    grad, labels = _rank_one()
    assert protect(grad, labels, PrivacySection(), step_generator(1, 1, 0)) is grad


def test_max_norm_leaves_the_largest_row_and_evens_expected_norms() -> None:
    grad, _ = _rank_one(rows=16, width=512)
    out = max_norm(grad, step_generator(1, 1, 0))
    norms = grad.norm(dim=1)
    top = int(norms.argmax())
    assert torch.equal(out[top], grad[top])
    # With 512 coordinates the noise's norm concentrates: every row ends near the largest norm.
    assert torch.allclose(out.norm(dim=1), norms.max().expand(16), rtol=0.15)


def test_clipping_bounds_every_row_and_keeps_small_ones() -> None:
    grad = torch.tensor([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]])
    clipped = clip_rows(grad, 1.0)
    assert torch.allclose(clipped[0], torch.tensor([0.6, 0.8]))
    assert torch.equal(clipped[1:], grad[1:])


def test_marvell_moves_rows_only_along_the_class_mean_gap() -> None:
    grad, labels = _rank_one()
    out = marvell(grad, labels, 4.0, step_generator(1, 1, 0))
    gap = grad[labels == 1].mean(0) - grad[labels == 0].mean(0)
    moved = (out - grad).double()
    unit = (gap / gap.norm()).double()
    assert torch.allclose(moved, (moved @ unit)[:, None] * unit[None, :], atol=1e-7)
    assert float(moved.norm()) > 0


def test_marvell_with_one_class_still_adds_noise() -> None:
    grad, _ = _rank_one()
    out = marvell(grad, np.zeros(len(grad), dtype=np.int64), 4.0, step_generator(1, 1, 0))
    assert not torch.equal(out, grad)


@settings(max_examples=100, deadline=None)
@given(
    st.floats(1e-6, 1e3),
    st.floats(1e-6, 1e3),
    st.floats(0, 10),
    st.floats(0, 10),
    st.floats(0.01, 0.99),
)
def test_marvell_split_spends_exactly_the_budget(
    budget: float, gap: float, var1: float, var0: float, prior: float
) -> None:
    n1, n0 = marvell_split(budget, gap, (var1, var0), prior)
    assert n1 >= 0 and n0 >= 0
    assert math.isclose(prior * n1 + (1 - prior) * n0, budget, rel_tol=1e-9)


def test_randomized_response_flips_at_its_rate_and_repeats() -> None:
    labels = np.zeros(20_000, dtype=np.int64)
    noisy = randomized_response(labels, 1.0, seed=3)
    assert np.array_equal(noisy, randomized_response(labels, 1.0, seed=3))
    assert not np.array_equal(noisy, randomized_response(labels, 1.0, seed=4))
    flipped = float(noisy.mean())
    assert abs(flipped - (1 - keep_probability(1.0))) < 0.01  # 0.269 for ε = 1
    assert keep_probability(math.log(3)) == pytest.approx(0.75)


def test_gaussian_epsilon_shrinks_with_noise_and_grows_with_epochs() -> None:
    loose = gaussian_epsilon(2.0, 4, 1e-5)
    assert gaussian_epsilon(4.0, 4, 1e-5) < loose < gaussian_epsilon(2.0, 16, 1e-5)
    assert gaussian_epsilon(2.0, 0, 1e-5) == 0.0
    # One release of the Gaussian mechanism with noise multiplier 1 (z = 2, sensitivity 2C):
    # RDP gives about 4.7 at δ = 1e-5 (the classical sqrt(2 ln(1.25/δ)) is 4.84).
    one = gaussian_epsilon(2.0, 1, 1e-5)
    assert 4.0 < one < 5.0


def test_the_guard_flips_only_training_labels_and_keeps_the_truth() -> None:
    from cvfl.privacy.guard import LabelGuard

    labels = np.random.default_rng(0).integers(0, 2, 4000).astype(np.int64)
    train = np.arange(0, 4000, 2)
    guard = LabelGuard(PrivacySection(label_epsilon=1.0), 7, 0, labels.copy(), train)
    used = guard.training_labels().numpy()
    held = np.setdiff1d(np.arange(4000), train)
    assert np.array_equal(used[held], labels[held])
    assert np.array_equal(guard.true_labels, labels)
    flipped = float((used[train] != labels[train]).mean())
    assert abs(flipped - (1 - keep_probability(1.0))) < 0.03
    assert guard.summary(3)["epsilon"] == {"delta": 1e-5, "label": 1.0}
