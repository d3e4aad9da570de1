from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from cvfl.errors import ConfigError, ModelError, SealingError
from cvfl.models import ModelSpec, build_follower, build_leader
from cvfl.models.export import export_half, load_half, parameter_fingerprint
from cvfl.models.nets import FollowerHalf, SlotEmbedding, lookup
from cvfl.sealing import Artifacts, new_key_file


def test_widedeep_matches_fedlearner_shapes() -> None:
    spec = ModelSpec()  # 512 slots, 101 x 16 embeddings, cut 64, leader 256 -> 64
    follower = build_follower(spec, 512, seed=1)
    leader = build_leader(spec, 512, seed=1)
    assert isinstance(follower, FollowerHalf) and isinstance(follower.encoder, SlotEmbedding)
    assert follower.encoder.table.weight.shape == (512 * 101, 16)
    linears_f = [m for m in follower.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears_f] == [(8192, 64)]
    linears_l = [m for m in leader.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears_l] == [
        (8192, 256),
        (256, 64),
        (128, 2),
    ]
    codes = torch.randint(0, 101, (3, 512))
    act = follower(codes)
    assert act.shape == (3, 64) and bool((act >= 0).all())  # ReLU cut layer
    assert leader(codes, act).shape == (3, 2)


def test_same_seed_same_init_other_seed_differs() -> None:
    spec = ModelSpec(slots=4, embed_dim=2, cut_width=3, leader_hidden=(5,))
    a = build_leader(spec, 4, seed=1).state_dict()
    b = build_leader(spec, 4, seed=1).state_dict()
    c = build_leader(spec, 4, seed=2).state_dict()
    assert parameter_fingerprint(a) == parameter_fingerprint(b) != parameter_fingerprint(c)


def test_mlp_halves() -> None:
    spec = ModelSpec(kind="mlp", cut_width=4, follower_hidden=(8,), leader_hidden=(6,))
    follower, leader = build_follower(spec, 20, seed=0), build_leader(spec, 10, seed=0)
    act = follower(torch.randn(5, 20))
    assert leader(torch.randn(5, 10), act).shape == (5, 2)


def custom_follower(spec: ModelSpec, num_features: int) -> nn.Module:
    return nn.Sequential(nn.Linear(num_features, spec.cut_width), nn.Tanh())


def test_custom_factory_by_import_path() -> None:
    spec = ModelSpec(
        kind="custom",
        cut_width=3,
        follower_factory="tests.models.test_models:custom_follower",
        leader_factory="tests.models.test_models:custom_follower",
    )
    assert build_follower(spec, 7, seed=0)(torch.randn(2, 7)).shape == (2, 3)
    bad = ModelSpec(kind="custom", follower_factory="nope.module:fn", leader_factory="x:y")
    with pytest.raises(ConfigError, match=r"cannot import nope\.module"):
        build_follower(bad, 7, seed=0)


def test_plaintext_export_round_trip_and_tamper_detection(tmp_path: Path) -> None:
    spec = ModelSpec(slots=4, embed_dim=2, cut_width=3)
    model = build_follower(spec, 4, seed=0)
    store = Artifacts(None)
    path, fingerprint = export_half(tmp_path, "follower", model, {"role": "follower"}, store)
    assert path.name == "follower.safetensors"
    half = load_half(path)
    assert half.spec["fingerprint"] == fingerprint == parameter_fingerprint(model.state_dict())
    # Change one parameter byte in the weights: the fingerprint no longer matches.
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"follower.safetensors: parameter fingerprint"):
        load_half(path)
    path.write_bytes(b"garbage")
    with pytest.raises(ModelError, match="not a valid safetensors"):
        load_half(path)
    spec_path = path.with_suffix(".json")
    assert json.loads(spec_path.read_text())["format"] == "cvfl-half/v1"


def test_sealed_export_same_fingerprint_and_refuses_tampering(tmp_path: Path) -> None:
    model = build_follower(ModelSpec(slots=4, embed_dim=2, cut_width=3), 4, seed=0)
    keys = new_key_file(tmp_path / "k.key")
    sealed, fp_sealed = export_half(tmp_path / "s", "follower", model, {}, Artifacts(keys))
    plain, fp_plain = export_half(tmp_path / "p", "follower", model, {}, Artifacts(None))
    assert sealed.name == "follower.safetensors.sealed" and fp_sealed == fp_plain
    assert b"cvfl-half" not in sealed.read_bytes()  # the weights are not readable at rest
    assert load_half(sealed, keys).spec["fingerprint"] == load_half(plain).spec["fingerprint"]
    with pytest.raises(SealingError, match="sealed"):
        load_half(sealed)  # no key
    data = bytearray(sealed.read_bytes())
    data[len(data) // 2] ^= 0x01
    sealed.write_bytes(bytes(data))
    with pytest.raises(SealingError, match=r"follower\.safetensors\.sealed"):
        load_half(sealed, keys)
    other = new_key_file(tmp_path / "other.key")
    sealed2, _ = export_half(tmp_path / "s2", "follower", model, {}, Artifacts(keys))
    with pytest.raises(SealingError):
        load_half(sealed2, other)


@pytest.mark.parametrize("build", [build_follower, build_leader])
def test_building_a_half_leaves_the_callers_random_state(build: Callable[..., nn.Module]) -> None:
    spec = ModelSpec(slots=4, embed_dim=2, cut_width=3, leader_hidden=(5,))
    torch.manual_seed(12345)
    torch.rand(3)  # a state of the caller's own, not a freshly seeded one
    before = torch.random.get_rng_state()
    first = build(spec, 4, seed=1)
    assert torch.equal(torch.random.get_rng_state(), before)
    torch.rand(7)  # another caller state: the half does not depend on it
    again = build(spec, 4, seed=1)
    assert parameter_fingerprint(first.state_dict()) == parameter_fingerprint(again.state_dict())


def test_building_a_half_leaves_the_caller_state_after_a_refusal() -> None:
    spec = ModelSpec(kind="mlp", cut_width=4, leader_hidden=())
    before = torch.random.get_rng_state()
    with pytest.raises(ConfigError, match="leader_hidden"):
        build_leader(spec, 4, seed=1)
    assert torch.equal(torch.random.get_rng_state(), before)


@pytest.mark.parametrize("batch", [1, 7, 64])
def test_lookup_backward_equals_the_embeddings_own(batch: int) -> None:
    """The scatter-add backward gives PyTorch's dense embedding gradient (repeats included)."""
    torch.manual_seed(batch)
    table = nn.Embedding(30, 4)
    index = torch.randint(0, 30, (batch, 9))  # 9 lookups per row into 30 rows: many repeats
    upstream = torch.randn(batch, 9, 4)
    expected = torch.autograd.grad(table(index), table.weight, upstream)[0]
    seen = torch.autograd.grad(lookup(table, index), table.weight, upstream)[0]
    torch.testing.assert_close(seen, expected, atol=1e-6, rtol=0)
    assert torch.equal(lookup(table, index), table(index))
