"""A peer that disagrees on the session is refused on both sides, and nothing is exported."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from cvfl.errors import ProtocolError
from cvfl.models.spec import ModelSpec
from cvfl.train.config import JobConfig
from tests.conftest import make_tables
from tests.ratls.helpers import security, terms
from tests.train.helpers import run_pair

Build = Callable[..., tuple[JobConfig, JobConfig]]


def _assert_refused_both(lead: object, follow: object, *needles: str) -> None:
    for side in (lead, follow):
        assert isinstance(side, ProtocolError), side
        for needle in needles:
            assert needle in side.message, side.message


def _no_outputs(*cfgs: JobConfig) -> None:
    for cfg in cfgs:
        assert not (cfg.job.workdir / "export").exists()


def test_cut_width_mismatch(small_job: Build) -> None:
    lead_cfg, follow_cfg = small_job()
    follow_cfg = dataclasses.replace(
        follow_cfg, model=dataclasses.replace(follow_cfg.model, cut_width=6)
    )
    lead, follow = run_pair(lead_cfg, follow_cfg)
    _assert_refused_both(
        lead, follow, "cut_layer: expected act1_f float32 [8], seen act1_f float32 [6]"
    )
    _no_outputs(lead_cfg, follow_cfg)


def test_batch_size_mismatch(small_job: Build) -> None:
    lead_cfg, _ = small_job()
    _, follow_cfg = small_job(train__batch_size=16)
    lead, follow = run_pair(lead_cfg, follow_cfg)
    _assert_refused_both(lead, follow, "batch_size: expected 32, seen 16")
    _no_outputs(lead_cfg, follow_cfg)


def test_other_job_id(small_job: Build) -> None:
    lead_cfg, _ = small_job()
    _, follow_cfg = small_job(job__id="another-job")
    lead, follow = run_pair(lead_cfg, follow_cfg)
    _assert_refused_both(lead, follow, "job_id: expected test-job, seen another-job")


def test_follower_table_with_other_row_count(small_job: Build, tmp_path: Path) -> None:
    lead_cfg, follow_cfg = small_job()
    other = tmp_path / "other"
    other.mkdir()
    _, shorter = make_tables(other, rows=500)
    follow_cfg = dataclasses.replace(
        follow_cfg, data=dataclasses.replace(follow_cfg.data, path=shorter)
    )
    lead, follow = run_pair(lead_cfg, follow_cfg)
    _assert_refused_both(lead, follow, "num_rows: expected 600, seen 500", "id_order_fingerprint")
    _no_outputs(lead_cfg, follow_cfg)


def test_misaligned_batch_is_caught_not_trained(
    small_job: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cvfl.train.follower as follower_mod
    from cvfl.train.steps import forward_message as real

    def shifted(step: int, phase: int, key: bytes, ids: list[str], *rest: object):  # type: ignore[no-untyped-def]
        if step == 3:
            ids = ids[1:] + ids[:1]  # the follower's batch 3 holds the rows in another order
        return real(step, phase, key, ids, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(follower_mod, "forward_message", shifted)
    lead_cfg, follow_cfg = small_job(train__checkpoint_every=2)
    lead, follow = run_pair(lead_cfg, follow_cfg)
    _assert_refused_both(lead, follow, "misaligned batch at train step 3")
    _no_outputs(lead_cfg, follow_cfg)
    # The checkpoint of step 2 is whole; nothing of step 3 or later exists, and no temp files.
    ckpts = sorted(p.name for p in (lead_cfg.job.workdir / "checkpoints").iterdir())
    assert ckpts == [
        "leader-step-000000002.json.sealed",
        "leader-step-000000002.safetensors.sealed",
    ]


def test_model_spec_refuses_unknown_kind() -> None:
    from cvfl.errors import ConfigError

    with pytest.raises(ConfigError, match="kind"):
        ModelSpec(kind="transformer")


def test_terms_swapped_after_attestation_are_refused(small_job: Build) -> None:
    """The follower attests one set of terms, then declares others in its hello."""
    lead_cfg, follow_cfg = small_job()
    leader_sec, follower_sec = security(role="leader"), security(role="follower")
    follower_sec.terms = terms("follower", plaintext_outputs=True, sealing="none")
    lead, follow = run_pair(lead_cfg, follow_cfg, securities=(leader_sec, follower_sec))
    assert isinstance(lead, ProtocolError) and lead.code == "protocol.terms", lead
    assert "plaintext_outputs: expected False, seen True" in lead.message
    assert "sealing: expected file, seen none" in lead.message
    assert isinstance(follow, ProtocolError) and follow.code == "protocol.terms", follow
    _no_outputs(lead_cfg, follow_cfg)
