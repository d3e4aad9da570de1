"""[privacy] in real split training over a loopback bridge: audit, defences, resume, refusal."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from cvfl.errors import ProtocolError
from cvfl.models.export import load_half, parameter_fingerprint
from cvfl.report.leakage import leak_figures, leak_rows
from cvfl.report.quality import read_split_result
from cvfl.train import TrainResult
from cvfl.train.config import JobConfig
from tests.conftest import keys_of
from tests.train.helpers import run_pair
from tests.train.test_cuts import elsewhere

Build = Callable[..., tuple[JobConfig, JobConfig]]


def _trained(lead_cfg: JobConfig, follow_cfg: JobConfig) -> tuple[TrainResult, list[str]]:
    """The leader's result and both exported halves' fingerprints."""
    lead, follow = run_pair(lead_cfg, follow_cfg)
    assert isinstance(lead, TrainResult), lead
    assert isinstance(follow, TrainResult), follow
    assert lead.export is not None and follow.export is not None
    prints = [
        parameter_fingerprint(load_half(lead.export, keys_of(lead_cfg)).tensors),
        parameter_fingerprint(load_half(follow.export, keys_of(follow_cfg)).tensors),
    ]
    assert follow.privacy is None and "privacy" not in json.dumps(follow.history)
    return lead, prints


def test_each_attack_recovers_the_labels_of_an_undefended_run(rare_job: Build) -> None:
    lead_cfg, follow_cfg = rare_job(train__epochs=4)
    lead, _ = _trained(lead_cfg, follow_cfg)
    assert lead.privacy is not None
    audit = lead.privacy["audit"]
    assert audit["steps"] > 50
    for attack in ("norm", "cosine", "sign"):
        assert audit[attack] >= 0.95, (attack, audit)
    # What the report reads back from the leader's result file says the same.
    lead.write(lead_cfg.job.workdir)
    figures = leak_figures(read_split_result(lead_cfg))
    assert figures is not None and figures.leak == {a: audit[a] for a in figures.leak}
    text = "\n".join(leak_rows(figures, 0.7))
    assert "defence none; split model auc 0.7000" in text and "no label left it" in text


def test_the_audit_changes_nothing_the_follower_receives(small_job: Build, tmp_path: Path) -> None:
    """Audit on or off, both halves end bit-identical: the audit reads, it never sends."""
    audited, with_audit = _trained(*small_job())
    silent, without = _trained(
        *(elsewhere(c, tmp_path / "off") for c in small_job(privacy__audit=False))
    )
    assert with_audit == without
    assert audited.privacy is not None and audited.privacy["audit"]["cosine"] == 1.0
    assert silent.privacy is not None and silent.privacy["audit"] is None


@pytest.mark.parametrize(
    "settings",
    [
        {"privacy__defence": "max_norm"},
        {"privacy__defence": "gaussian", "privacy__clip_norm": 0.02},
        {"privacy__defence": "marvell"},
        {"privacy__label_epsilon": 1.0},
    ],
    ids=["max_norm", "gaussian", "marvell", "label_epsilon"],
)
def test_a_defence_changes_the_model_the_same_way_every_time(
    small_job: Build, tmp_path: Path, settings: dict[str, object]
) -> None:
    _, plain = _trained(*small_job())
    first, defended = _trained(*(elsewhere(c, tmp_path / "a") for c in small_job(**settings)))
    again, repeated = _trained(*(elsewhere(c, tmp_path / "b") for c in small_job(**settings)))
    assert defended == repeated  # same seed, same noise: the same two halves
    assert defended[1] != plain[1]  # the follower trained on other gradients
    assert first.privacy == again.privacy


def test_a_defended_job_resumed_from_a_checkpoint_ends_exactly_the_same(
    small_job: Build, tmp_path: Path
) -> None:
    settings = {
        "privacy__defence": "gaussian",
        "privacy__clip_norm": 0.02,
        "train__checkpoint_every": 15,
    }
    whole, expected = _trained(*small_job(**settings))
    lead_cfg, follow_cfg = (elsewhere(c, tmp_path / "resumed") for c in small_job(**settings))
    _trained(lead_cfg, follow_cfg)
    # Forget the last checkpoint on both sides, as if both had stopped just before step 30.
    for cfg in (lead_cfg, follow_cfg):
        for path in (cfg.job.workdir / "checkpoints").glob("*-step-000000030.*"):
            path.unlink()
    resumed, prints = _trained(lead_cfg, follow_cfg)
    assert prints == expected
    assert resumed.privacy == whole.privacy  # the audit resumed from the checkpoint's state
    assert whole.privacy is not None and whole.privacy["epsilon"]["gaussian"] > 0


def test_parties_that_disagree_on_privacy_are_refused_naming_the_field(
    small_job: Build,
) -> None:
    lead_cfg, _ = small_job(privacy__defence="max_norm")
    _, follow_cfg = small_job(privacy__delta=1e-6)
    lead, follow = run_pair(lead_cfg, follow_cfg)
    assert isinstance(lead, ProtocolError) and isinstance(follow, ProtocolError)
    assert "[privacy] defence: expected max_norm, seen none" in lead.message
    assert "[privacy] delta: expected 1e-05, seen 1e-06" in lead.message
    assert "[privacy] defence" in follow.message  # the leader's refusal, told to the follower
    assert lead.code == follow.code == "protocol.hello"
    for cfg in (lead_cfg, follow_cfg):
        assert not (cfg.job.workdir / "export").exists()
