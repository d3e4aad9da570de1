"""A NaN or Inf crossing the bridge stops both parties (``protocol.nonfinite``), untrained.

Both parties run their real loops over a real loopback bridge; the sender is made to send a bad
value by wrapping its message builder.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import torch

from cvfl.errors import PeerStoppedError, ProtocolError
from cvfl.train import steps
from cvfl.train.config import JobConfig
from cvfl.wire import bridge_pb2 as pb
from tests.train.helpers import run_pair

Build = Callable[..., tuple[JobConfig, JobConfig]]


def _poisoned(real: Callable[..., pb.Envelope], when: Callable[..., bool], value: float) -> Any:
    def build(*args: Any) -> pb.Envelope:
        at = next(i for i, arg in enumerate(args) if isinstance(arg, torch.Tensor))
        tensor: torch.Tensor = args[at]
        if when(*args):
            tensor = tensor.detach().clone()
            tensor[0, -1] = value
        return real(*args[:at], tensor, *args[at + 1 :])

    return build


def _stopped_both(lead: object, follow: object, receiver: object, *needles: str) -> None:
    for side in (lead, follow):
        assert isinstance(side, ProtocolError), repr(side)
        assert side.code == "protocol.nonfinite", side.message
    assert isinstance(receiver, ProtocolError)
    for needle in needles:
        assert needle in receiver.message, receiver.message
    sender = follow if receiver is lead else lead
    assert isinstance(sender, PeerStoppedError)
    peer = "follower" if receiver is follow else "leader"
    assert sender.message.startswith(f"the {peer} stopped: [protocol.nonfinite] "), sender.message
    assert sender.message.endswith("restart both"), sender.message


def _no_exports(*cfgs: JobConfig) -> None:
    for cfg in cfgs:
        assert not (cfg.job.workdir / "export").exists()


@pytest.mark.parametrize(
    ("value", "seen"), [(math.nan, "seen 1 NaN and 0 Inf"), (math.inf, "seen 0 NaN and 1 Inf")]
)
def test_leader_refuses_a_nonfinite_activation(
    small_job: Build, monkeypatch: pytest.MonkeyPatch, value: float, seen: str
) -> None:
    import cvfl.train.follower as follower_mod

    def at_step_3(step: int, phase: int, *_: object) -> bool:
        return step == 3 and phase == pb.PHASE_TRAIN

    poisoned = _poisoned(steps.forward_message, at_step_3, value)
    monkeypatch.setattr(follower_mod, "forward_message", poisoned)
    lead_cfg, follow_cfg = small_job()
    lead, follow = run_pair(lead_cfg, follow_cfg)
    _stopped_both(lead, follow, lead, "forward message of step 3 (train)", "'act1_f'", seen)
    _no_exports(lead_cfg, follow_cfg)


def test_leader_refuses_a_nonfinite_eval_activation(
    small_job: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cvfl.train.follower as follower_mod

    def in_eval(step: int, phase: int, *_: object) -> bool:
        return phase == pb.PHASE_EVAL and step == 1

    poisoned = _poisoned(steps.forward_message, in_eval, -math.inf)
    monkeypatch.setattr(follower_mod, "forward_message", poisoned)
    lead_cfg, follow_cfg = small_job()
    lead, follow = run_pair(lead_cfg, follow_cfg)
    _stopped_both(lead, follow, lead, "forward message of step 1 (eval)", "seen 0 NaN and 1 Inf")


def test_follower_refuses_a_nonfinite_gradient(
    small_job: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cvfl.train.leader as leader_mod

    def at_step_2(step: int, *_: object) -> bool:
        return step == 2

    poisoned = _poisoned(steps.backward_message, at_step_2, math.nan)
    monkeypatch.setattr(leader_mod, "backward_message", poisoned)
    lead_cfg, follow_cfg = small_job(train__checkpoint_every=1)
    lead, follow = run_pair(lead_cfg, follow_cfg)
    _stopped_both(lead, follow, follow, "backward message of step 2", "'act1_f.grad'", "1 NaN")
    _no_exports(lead_cfg, follow_cfg)
    # The follower never applied step 2: its newest checkpoint is step 1's.
    ckpts = sorted(p.name for p in (follow_cfg.job.workdir / "checkpoints").iterdir())
    assert all("step-000000002" not in name for name in ckpts), ckpts
