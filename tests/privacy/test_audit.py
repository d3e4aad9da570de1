"""The attacks and the audit's bookkeeping, on gradients whose leak is known."""

from __future__ import annotations

import json

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cvfl.privacy.audit import LeakAudit, cosine_scores, sign_scores

V = np.random.default_rng(100).normal(size=8)  # the top layer's direction, fixed across steps


def _rank_one(rows: int, seed: int, positive_rate: float = 0.5) -> tuple[torch.Tensor, np.ndarray]:
    """A linear top's cut gradients: row i is (p_i - y_i) * v."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(rows) < positive_rate).astype(np.int64)
    labels[:2] = [0, 1]  # both classes in every batch
    p = rng.uniform(0.05, 0.95, rows)
    v = V + rng.normal(scale=0.05, size=8)  # drifting a little from step to step
    return torch.from_numpy((p - labels)[:, None] * v[None, :]).float(), labels


def test_rank_one_gradients_give_every_label_away() -> None:
    audit = LeakAudit()
    for step in range(10):
        grad, labels = _rank_one(32, step)
        audit.observe(step // 5, grad, labels)
    figures = audit.summary()
    assert figures["cosine"] == 1.0 and figures["sign"] == 1.0
    assert figures["steps"] == 10 and [e["epoch"] for e in figures["per_epoch"]] == [0, 1]


def test_noise_gives_nothing_away() -> None:
    rng = np.random.default_rng(1)
    audit = LeakAudit()
    for _ in range(300):
        labels = rng.integers(0, 2, 32)
        labels[:2] = [0, 1]
        audit.observe(0, torch.from_numpy(rng.normal(size=(32, 8))).float(), labels)
    figures = audit.summary()
    for attack in ("norm", "cosine", "sign"):
        assert 0.5 <= figures[attack] < 0.53, (attack, figures)


def test_the_norm_attack_finds_the_rarer_class_by_its_larger_gradients() -> None:
    audit = LeakAudit()
    rng = np.random.default_rng(2)
    for _ in range(20):
        labels = (rng.random(32) < 0.1).astype(np.int64)
        labels[0] = 1
        # A model that predicts the majority: |p - y| is small for negatives, large for positives.
        p = rng.uniform(0.0, 0.2, 32)
        grad = torch.from_numpy((p - labels)[:, None] * rng.normal(size=8)[None, :]).float()
        audit.observe(0, grad, labels)
    assert audit.summary()["norm"] == 1.0


def test_cosine_needs_a_known_positive_and_does_not_score_it() -> None:
    grad, _ = _rank_one(6, 0)
    assert cosine_scores(grad.numpy(), np.zeros(6, dtype=np.int64)) is None
    labels = np.array([0, 0, 1, 1, 0, 1])
    found = cosine_scores(grad.numpy(), labels)
    assert found is not None
    assert list(found[1]) == [0, 0, 1, 0, 1]


def test_the_sign_attack_keeps_its_orientation_across_steps() -> None:
    grad, _ = _rank_one(16, 0)
    _, first = sign_scores(grad.numpy().astype(np.float64), None)
    _, again = sign_scores(-grad.numpy().astype(np.float64), first)
    assert float(first @ again) > 0.99


def test_a_one_class_step_counts_for_nothing() -> None:
    audit = LeakAudit()
    audit.observe(0, torch.randn(8, 4), np.zeros(8, dtype=np.int64))
    assert audit.summary() | {"per_epoch": []} == {
        "norm": None,
        "cosine": None,
        "sign": None,
        "steps": 0,
        "per_epoch": [],
    }


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 12), st.integers(0, 12), st.integers(0, 1000))
def test_state_round_trips_through_json(before: int, after: int, seed: int) -> None:
    """An audit resumed from a checkpoint's JSON ends exactly as one that never stopped."""
    batches = [_rank_one(12, seed + i, 0.3) for i in range(before + after)]
    whole, resumed = LeakAudit(), LeakAudit()
    for i, (grad, labels) in enumerate(batches):
        whole.observe(i // 4, grad, labels)
        if i < before:
            resumed.observe(i // 4, grad, labels)
        elif i == before:
            resumed = LeakAudit.from_state(json.loads(json.dumps(resumed.state())))
            resumed.observe(i // 4, grad, labels)
        else:
            resumed.observe(i // 4, grad, labels)
    assert resumed.summary() == whole.summary()
    assert LeakAudit.from_state(None).summary()["steps"] == 0
