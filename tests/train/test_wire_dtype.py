"""[train] wire_dtype: cut-layer tensors in half precision, agreed by both parties."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from cvfl.errors import ConfigError, ProtocolError
from cvfl.train import TrainResult
from cvfl.train.config import JobConfig
from cvfl.train.steps import TRAIN, backward_message, forward_message, single_tensor
from tests.train.helpers import run_pair
from tests.train.test_cuts import elsewhere

Build = Callable[..., tuple[JobConfig, JobConfig]]


@pytest.mark.parametrize("wire", [torch.float16, torch.bfloat16])
def test_half_precision_on_the_wire_halves_the_bytes(wire: torch.dtype) -> None:
    act = torch.randn(32, 64) * 3
    full = forward_message(1, TRAIN, b"k" * 32, ["a"] * 32, "act1_f", act)
    half = forward_message(1, TRAIN, b"k" * 32, ["a"] * 32, "act1_f", act, wire)
    assert len(half.forward.tensors[0].data) * 2 == len(full.forward.tensors[0].data)
    decoded = single_tensor(half.forward, 32, 64, wire)
    assert decoded.dtype == torch.float32
    torch.testing.assert_close(decoded, act.to(wire).float())
    grad = backward_message(1, b"k" * 32, ["a"] * 32, "g", act, wire).backward
    torch.testing.assert_close(single_tensor(grad, 32, 64, wire), act.to(wire).float())


def test_a_tensor_in_another_dtype_than_agreed_is_refused() -> None:
    message = forward_message(3, TRAIN, b"k" * 32, ["a"] * 4, "act1_f", torch.ones(4, 8))
    with pytest.raises(ProtocolError, match=r"expected bfloat16 \[4, 8\], seen float32") as err:
        single_tensor(message.forward, 4, 8, torch.bfloat16)
    assert err.value.code == "protocol.shape"


def test_half_precision_overflow_is_refused_not_trained() -> None:
    huge = torch.full((2, 4), 1e6)  # beyond float16's range: inf on the wire
    message = forward_message(1, TRAIN, b"k" * 32, ["a"] * 2, "act1_f", huge, torch.float16)
    with pytest.raises(ProtocolError) as err:
        single_tensor(message.forward, 2, 4, torch.float16)
    assert err.value.code == "protocol.nonfinite"


def test_bfloat16_traffic_trains_close_to_float32(small_job: Build, tmp_path: Path) -> None:
    exact, _ = run_pair(*small_job(train__epochs=2))
    compact, follow = run_pair(
        *(
            elsewhere(c, tmp_path / "bf16")
            for c in small_job(train__epochs=2, train__wire_dtype="bfloat16")
        )
    )
    assert isinstance(exact, TrainResult) and isinstance(compact, TrainResult), compact
    assert isinstance(follow, TrainResult)
    assert exact.metrics is not None and compact.metrics is not None
    assert abs(exact.metrics.auc - compact.metrics.auc) < 0.02
    assert exact.metrics.auc != compact.metrics.auc or exact.history != compact.history


def test_parties_that_disagree_on_the_wire_dtype_are_refused(small_job: Build) -> None:
    lead_cfg, _ = small_job(train__wire_dtype="float16")
    _, follow_cfg = small_job()
    lead, follow = run_pair(lead_cfg, follow_cfg)
    assert isinstance(lead, ProtocolError) and isinstance(follow, ProtocolError)
    assert "wire_dtype" in lead.message and lead.code == "protocol.hello"


def test_an_unknown_wire_dtype_is_refused_at_load(small_job: Build) -> None:
    with pytest.raises(ConfigError, match="wire_dtype") as err:
        small_job(train__wire_dtype="int8")
    assert err.value.code == "config.value"
