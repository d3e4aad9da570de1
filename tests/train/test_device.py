"""[train] device: each party on its own device; CUDA where available agrees with CPU."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from cvfl.errors import ConfigError
from cvfl.models.export import load_half
from cvfl.train import TrainResult
from cvfl.train.config import JobConfig
from cvfl.train.device import resolve_device
from cvfl.train.party import load_party
from tests.conftest import keys_of
from tests.train.helpers import run_pair
from tests.train.test_cuts import elsewhere

Build = Callable[..., tuple[JobConfig, JobConfig]]
CUDA = torch.cuda.is_available()


def test_cpu_is_always_available_and_auto_follows_cuda() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if CUDA else "cpu")


@pytest.mark.skipif(CUDA, reason="CUDA is available here: the refusal needs a machine without it")
def test_cuda_where_it_is_missing_is_refused_naming_the_key(small_job: Build) -> None:
    cfg, _ = small_job(train__device="cuda")
    with pytest.raises(
        ConfigError, match=r"\[train\] device: expected a device this machine"
    ) as err:
        load_party(cfg)
    assert err.value.code == "config.train"


@pytest.mark.skipif(not CUDA, reason="CUDA is not available on this machine")
@pytest.mark.parametrize("staleness", [0, 2])
def test_a_few_steps_on_cuda_match_cpu(small_job: Build, tmp_path: Path, staleness: int) -> None:
    halves = {}
    for device in ("cpu", "cuda"):
        cfgs = tuple(
            elsewhere(c, tmp_path / device)
            for c in small_job(train__device=device, train__max_steps=6, train__staleness=staleness)
        )
        lead, follow = run_pair(*cfgs)
        assert isinstance(lead, TrainResult) and isinstance(follow, TrainResult), (lead, follow)
        assert lead.steps == 6
        halves[device] = [
            load_half(r.export, keys_of(c)).tensors  # type: ignore[arg-type]
            for r, c in zip((lead, follow), cfgs, strict=True)
        ]
    for cpu, cuda in zip(halves["cpu"], halves["cuda"], strict=True):
        assert cpu.keys() == cuda.keys()
        for name, value in cpu.items():
            torch.testing.assert_close(cuda[name], value, atol=1e-4, rtol=0)


def test_several_workers_compute_on_the_host() -> None:
    from cvfl.train.config import TrainSection

    with pytest.raises(ConfigError, match=r'\[train\] workers: expected 1 with device = "cuda"'):
        TrainSection(device="cuda", workers=2, batch_size=8)
    assert resolve_device("auto", workers=2) == torch.device("cpu")
