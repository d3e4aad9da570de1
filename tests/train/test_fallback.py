"""The leader-only fallback model: trained by the leader alone, exported as its own variant."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from cvfl import api
from cvfl.errors import ConfigError, ModelError
from cvfl.serve.halves import default_export, load_scoring_half
from cvfl.train.config import JobConfig
from cvfl.train.fallback import VARIANT, fallback_export
from cvfl.train.local import train_leader_only
from cvfl.train.party import load_party
from tests.conftest import keys_of
from tests.serve.helpers import export_untrained


def test_fallback_is_the_report_leader_only_model_and_its_own_variant(
    small_job: Callable[..., tuple[JobConfig, JobConfig]],
) -> None:
    lead, _ = small_job()
    result = api.fallback(lead)
    twin = train_leader_only(load_party(lead))  # what cvfl report calls "leader only"
    assert result.metrics is not None and twin.metrics is not None
    assert result.steps == twin.steps > 0
    for key, value in twin.metrics.as_dict().items():
        assert result.metrics.as_dict()[key] == pytest.approx(value, abs=1e-6), key
    assert result.export == fallback_export(lead) and result.export.is_file()
    assert (lead.job.workdir / "leader-only-result.json").is_file()

    half = load_scoring_half(fallback_export(lead), lead, keys_of(lead), variant=VARIANT)
    assert half.fingerprint == result.fingerprint and half.steps == result.steps
    with pytest.raises(ModelError) as caught:  # never taken for the split half
        load_scoring_half(fallback_export(lead), lead, keys_of(lead))
    assert caught.value.code == "model.foreign"
    assert "variant: expected split, seen leader-only" in caught.value.message


def test_the_split_half_is_not_taken_for_the_fallback(
    small_job: Callable[..., tuple[JobConfig, JobConfig]],
) -> None:
    lead, _ = small_job()
    export_untrained(lead)
    with pytest.raises(ModelError) as caught:
        load_scoring_half(default_export(lead), lead, keys_of(lead), variant=VARIANT)
    assert "variant: expected leader-only, seen split" in caught.value.message


def test_only_the_leader_trains_a_fallback(
    small_job: Callable[..., tuple[JobConfig, JobConfig]],
) -> None:
    _, follow = small_job()
    with pytest.raises(ConfigError) as caught:
        api.fallback(follow)
    assert caught.value.code == "config.fallback"
    assert "expected leader (it has the labels), seen follower" in caught.value.message
    assert not fallback_export(follow).exists()
