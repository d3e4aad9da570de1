"""[train] staleness: pipelined split training, deterministic and exactly resumable."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cvfl.configload import load_section
from cvfl.errors import ConfigError, CvflError, PeerStoppedError, ProtocolError
from cvfl.models.export import load_half
from cvfl.train import NoProgress, TrainResult
from cvfl.train.binding import training_binding
from cvfl.train.cadence import CheckpointClock
from cvfl.train.config import MAX_STALENESS, JobConfig, TrainSection
from cvfl.train.party import checkpoint_store, load_party
from cvfl.train.pipeline import Ahead, Window
from cvfl.train.stop import STOPPED
from cvfl.wire import bridge_pb2 as pb
from tests.conftest import keys_of
from tests.train.helpers import run_pair
from tests.train.test_cuts import elsewhere

Build = Callable[..., tuple[JobConfig, JobConfig]]
PIPELINED = {"train__staleness": 3, "train__checkpoint_every": 5, "train__checkpoint_every_s": 0}


def _exports(
    lead: object, follow: object, cfgs: tuple[JobConfig, JobConfig]
) -> list[dict[str, torch.Tensor]]:
    halves = []
    for result, cfg in zip((lead, follow), cfgs, strict=True):
        assert isinstance(result, TrainResult), result
        assert result.export is not None
        halves.append(load_half(result.export, keys_of(cfg)).tensors)
    return halves


def _same(a: list[dict[str, torch.Tensor]], b: list[dict[str, torch.Tensor]]) -> bool:
    return all(
        x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
        for x, y in zip(a, b, strict=True)
    )


def test_a_pipelined_run_is_deterministic_and_differs_from_the_exact_one(
    small_job: Build, tmp_path: Path
) -> None:
    first = small_job(**PIPELINED)
    second = tuple(elsewhere(c, tmp_path / "again") for c in small_job(**PIPELINED))
    exact = tuple(elsewhere(c, tmp_path / "exact") for c in small_job(train__checkpoint_every=5))
    runs = [_exports(*run_pair(*cfgs), cfgs) for cfgs in (first, second, exact)]  # type: ignore[arg-type]
    assert _same(runs[0], runs[1])
    assert not _same(runs[0], runs[2])  # the gradients did arrive late


class _StopAt(NoProgress):
    """Sets ``event`` once the leader has trained step ``step``."""

    def __init__(self, step: int, event: threading.Event) -> None:
        self.at, self.event = step, event

    def step(self, number: int, loss: float | None) -> None:
        if number >= self.at:
            self.event.set()


def test_a_stopped_and_resumed_pipelined_run_ends_where_an_uninterrupted_one_does(
    small_job: Build, tmp_path: Path
) -> None:
    whole = tuple(elsewhere(c, tmp_path / "whole") for c in small_job(**PIPELINED))
    expected = _exports(*run_pair(*whole), whole)  # type: ignore[arg-type]

    cfgs = small_job(**PIPELINED)
    stop = threading.Event()
    lead, follow = run_pair(*cfgs, leader_progress=_StopAt(13, stop), leader_stop=stop)
    assert isinstance(lead, CvflError) and lead.code == STOPPED
    assert isinstance(follow, PeerStoppedError)
    for cfg in cfgs:  # a checkpoint past the pipeline's start, committed on both sides
        store = checkpoint_store(load_party(cfg))
        assert max(s.step for s in store.inventory() if s.peer_digest) == 10
    lead, follow = run_pair(*cfgs)
    assert isinstance(lead, TrainResult) and lead.steps == 30, lead
    assert lead.session_examples < lead.examples  # it did resume, not start over
    assert _same(_exports(lead, follow, cfgs), expected)


def test_parties_that_disagree_on_staleness_are_refused(small_job: Build) -> None:
    lead_cfg, _ = small_job(train__staleness=2)
    _, follow_cfg = small_job()
    lead, follow = run_pair(lead_cfg, follow_cfg)
    assert isinstance(lead, ProtocolError) and isinstance(follow, ProtocolError)
    assert lead.code == "protocol.hello"
    assert "staleness: expected 2, seen (none)" in lead.message, lead.message


def test_staleness_is_bound_into_checkpoints_only_when_pipelined(small_job: Build) -> None:
    exact, _ = small_job()
    piped, _ = small_job(train__staleness=4)
    table = load_party(exact).table
    assert "staleness" not in training_binding(exact, table).shared
    assert training_binding(piped, table).shared["staleness"] == 4


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=-5, max_value=MAX_STALENESS + 5))
def test_staleness_is_a_bounded_whole_number(value: int) -> None:
    if 0 <= value <= MAX_STALENESS:
        assert load_section(TrainSection, "train", {"staleness": value}, None).staleness == value
        return
    with pytest.raises(ConfigError, match=r"\[train\] staleness") as err:
        load_section(TrainSection, "train", {"staleness": value}, None)
    assert err.value.code == "config.range"


@settings(max_examples=30, deadline=None)
@given(st.one_of(st.text(max_size=5), st.floats(allow_nan=True), st.booleans(), st.none()))
def test_a_staleness_that_is_not_a_whole_number_is_refused(value: object) -> None:
    with pytest.raises(ConfigError, match=r"\[train\] staleness"):
        load_section(TrainSection, "train", {"staleness": value}, None)
    with pytest.raises(ConfigError, match=r"\[train\] staleness"):
        TrainSection(staleness=value)  # type: ignore[arg-type]


def test_staleness_with_several_workers_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"\[train\] workers: expected 1 with staleness > 0"):
        TrainSection(staleness=1, workers=2, batch_size=8)


@settings(max_examples=30, deadline=None)
@given(st.text(max_size=6))
def test_device_is_auto_cpu_or_cuda(value: str) -> None:
    if value in ("auto", "cpu", "cuda"):
        assert load_section(TrainSection, "train", {"device": value}, None).device == value
        return
    with pytest.raises(ConfigError, match=r"\[train\] device"):
        load_section(TrainSection, "train", {"device": value}, None)


class _Sent:
    """Records the steps a window assigns (what a session would carry to the follower)."""

    def __init__(self) -> None:
        self.steps: list[int] = []

    def send(self, envelope: pb.Envelope) -> None:
        self.steps.append(envelope.assign.step)


def test_the_window_assigns_k_ahead_and_never_past_a_checkpoint_or_an_epoch_end(
    small_job: Build,
) -> None:
    cfg, _ = small_job(train__staleness=3, train__checkpoint_every=5, train__checkpoint_every_s=0)
    party = load_party(cfg)
    assert party.schedule.steps_per_epoch == 15
    window = Window(party, CheckpointClock(5, 0.0), 0)
    sent = _Sent()
    window.fill(sent)  # type: ignore[arg-type]
    assert sent.steps == [1, 2, 3, 4]
    seen = {}
    while (step := window.take()) is not None:
        save = window.save(step)
        before = len(sent.steps)
        window.sent(step, sent)  # type: ignore[arg-type]
        seen[step.number] = (save, sent.steps[before:])
    assert seen[1] == (False, [5])
    assert seen[2] == (False, [])  # 5 checkpoints: 6 waits for its gradient
    assert seen[5] == (True, [6, 7, 8, 9])
    assert seen[14] == (False, [])
    assert seen[15] == (True, [16, 17, 18, 19])  # an epoch end (and a checkpoint) drains too
    assert sent.steps == list(range(1, 31))


def test_the_follower_refuses_more_steps_ahead_than_agreed(small_job: Build) -> None:
    _, cfg = small_job(train__staleness=1)
    party = load_party(cfg)
    ahead = Ahead(party)
    steps = list(party.schedule.steps())
    for step in steps[:2]:
        ahead.forward(step, step.rows, [], party.inputs(step.rows))
    with pytest.raises(
        ProtocolError, match=r"at most 2 \(\[train\] staleness = 1\), seen 3"
    ) as err:
        ahead.forward(steps[2], steps[2].rows, [], party.inputs(steps[2].rows))
    assert err.value.code == "protocol.staleness"
    with pytest.raises(ProtocolError, match="backward step: expected 1, seen 2") as err:
        ahead.oldest(2)
    assert err.value.code == "protocol.step"
    before = {k: v.clone() for k, v in party.model.state_dict().items()}
    ahead.apply(torch.ones(len(steps[0].rows), party.cfg.model.cut_width))
    assert len(ahead) == 1
    assert any(not torch.equal(before[k], v) for k, v in party.model.state_dict().items())


def test_a_checkpoint_due_by_time_waits_for_a_boundary_when_pipelined(small_job: Build) -> None:
    cfg, _ = small_job(train__staleness=2)
    party = load_party(cfg)
    window = Window(party, CheckpointClock(0, 1e-9), 0)  # a checkpoint is always due by time
    sent = _Sent()
    window.fill(sent)  # type: ignore[arg-type]
    saved = []
    while (step := window.take()) is not None:
        if window.save(step):
            saved.append(step.number)
        window.sent(step, sent)  # type: ignore[arg-type]
    assert saved == [15, 30]  # the epoch ends: the trajectory does not depend on the clock
    assert sent.steps == list(range(1, 31))


def test_a_rerun_with_another_staleness_does_not_resume_the_checkpoint(small_job: Build) -> None:
    lead, follow = run_pair(*small_job(**PIPELINED))
    assert isinstance(lead, TrainResult) and isinstance(follow, TrainResult), (lead, follow)
    lead, follow = run_pair(*small_job(train__checkpoint_every=5))
    for side in (lead, follow):
        assert isinstance(side, ConfigError), side
        assert side.code == "config.checkpoint_changed"
        assert "staleness: checkpoint 3, job (none)" in side.message, side.message


def test_early_stopping_sees_drained_epochs_when_pipelined(small_job: Build) -> None:
    cfgs = small_job(
        train__staleness=2,
        train__epochs=4,
        train__early_stopping_metric="log_loss",
        train__early_stopping_patience=1,
    )
    lead, follow = run_pair(*cfgs)
    assert isinstance(lead, TrainResult) and isinstance(follow, TrainResult), (lead, follow)
    assert lead.best_step == follow.best_step > 0
    assert lead.best_step % 15 == 0  # an epoch end
    assert lead.steps == follow.steps and lead.stopped_early == follow.stopped_early
    assert [r["step"] for r in lead.history] == list(range(15, lead.steps + 1, 15))
