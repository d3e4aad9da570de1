"""The example in docs/custom-models.md builds halves that keep the custom-model contract."""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from cvfl.models import CombinedModel, ModelSpec, build_follower, build_leader
from cvfl.models.export import module_tensors, parameter_fingerprint

DOC = Path(__file__).resolve().parents[1] / "docs" / "custom-models.md"
MODULE = "cvfl_doc_custom_example"


@pytest.fixture(scope="module")
def spec() -> Iterator[ModelSpec]:
    (code,) = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    module = types.ModuleType(MODULE)
    exec(compile(code, str(DOC), "exec"), module.__dict__)
    sys.modules[MODULE] = module
    yield ModelSpec(
        kind="custom",
        cut_width=8,
        follower_factory=f"{MODULE}:follower",
        leader_factory=f"{MODULE}:leader",
    )
    del sys.modules[MODULE]


def test_the_follower_half_produces_the_float32_cut_layer(spec: ModelSpec) -> None:
    follower = build_follower(spec, 5, seed=1)
    act = follower(torch.randn(3, 5))
    assert act.dtype == torch.float32
    assert act.shape == (3, 8)


def test_the_leader_half_gives_two_logits_and_a_gradient_for_the_cut_layer(spec: ModelSpec) -> None:
    leader = build_leader(spec, 4, seed=1)
    act = torch.rand(6, 8, requires_grad=True)
    logits = leader(torch.randn(6, 4), act)
    assert logits.shape == (6, 2)
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 0, 1, 1, 0])).backward()  # type: ignore[no-untyped-call]
    assert act.grad is not None
    assert act.grad.abs().sum() > 0


def test_building_is_deterministic_from_the_seed_and_reloads_strictly(spec: ModelSpec) -> None:
    first, again = build_leader(spec, 4, seed=7), build_leader(spec, 4, seed=7)
    other = build_leader(spec, 4, seed=8)
    assert parameter_fingerprint(module_tensors(first)) == parameter_fingerprint(
        module_tensors(again)
    )
    assert parameter_fingerprint(module_tensors(first)) != parameter_fingerprint(
        module_tensors(other)
    )
    other.load_state_dict(module_tensors(first), strict=True)


def test_split_halves_equal_the_combined_model(spec: ModelSpec) -> None:
    follower, leader = build_follower(spec, 5, seed=2), build_leader(spec, 4, seed=2)
    x_leader, x_follower = torch.randn(4, 4), torch.randn(4, 5)
    split = leader(x_leader, follower(x_follower))
    combined = CombinedModel(follower, leader)(x_leader, x_follower)
    assert torch.equal(split, combined)
