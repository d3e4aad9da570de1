"""Two-party scoring in one process (two threads) over a real gRPC bridge on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from cvfl.bridge.security import PlaintextSecurity
from cvfl.errors import CvflError, ModelError, ProtocolError
from cvfl.models.nets import CombinedModel
from cvfl.serve import (
    SCORE_COLUMN,
    PredictResult,
    prepare_predict,
    read_scores,
)
from cvfl.serve.halves import default_export, load_scoring_half
from cvfl.train.config import JobConfig
from tests.conftest import keys_of
from tests.serve.helpers import export_untrained, predict_both, section

Jobs = Callable[..., tuple[JobConfig, JobConfig]]


@pytest.fixture
def jobs(small_job: Jobs, tmp_path: Path) -> tuple[JobConfig, JobConfig]:
    lead, follow = small_job(peer__port_file=str(tmp_path / "leader.port"))
    export_untrained(lead)
    export_untrained(follow)
    return lead, follow


def test_scores_equal_the_combined_model(jobs: tuple[JobConfig, JobConfig], tmp_path: Path) -> None:
    lead, follow = jobs
    leader_result, follower_result = predict_both(lead, follow, tmp_path)
    assert isinstance(leader_result, PredictResult), leader_result
    assert isinstance(follower_result, PredictResult), follower_result
    assert leader_result.batches == follower_result.batches == 6  # 600 rows, batches of 100
    assert leader_result.sealed and leader_result.output is not None
    assert leader_result.output.endswith("scores.parquet.sealed")
    assert not (tmp_path / "scores.parquet").exists()
    # The follower receives only the hello and the finish: a few hundred bytes, no scores.
    assert follower_result.bytes_received < 400
    assert follower_result.bytes_sent == leader_result.bytes_received > 600 * 8 * 4

    scores = read_scores(Path(leader_result.output), keys_of(lead))
    ls = load_scoring_half(default_export(lead), lead, keys_of(lead))
    fs = load_scoring_half(default_export(follow), follow, keys_of(follow))
    lt = prepare_predict(lead, section(lead, tmp_path), PlaintextSecurity()).table
    ft = prepare_predict(follow, section(follow, tmp_path), PlaintextSecurity()).table
    with torch.no_grad():
        logits = CombinedModel(fs.module, ls.module)(
            torch.from_numpy(lt.features), torch.from_numpy(ft.features)
        )
    expected = torch.softmax(logits, dim=1)[:, 1].numpy()
    assert scores.column("example_id").to_pylist() == list(lt.ids)
    np.testing.assert_allclose(scores.column(SCORE_COLUMN).to_numpy(), expected, atol=1e-5)


def test_plaintext_scores_only_by_name(jobs: tuple[JobConfig, JobConfig], tmp_path: Path) -> None:
    lead, follow = jobs
    changes = {"plaintext_scores": True, "output": tmp_path / "s.csv"}
    leader_result, _ = predict_both(lead, follow, tmp_path, leader=changes)
    assert isinstance(leader_result, PredictResult), leader_result
    assert not leader_result.sealed and leader_result.output == str(tmp_path / "s.csv")
    assert read_scores(tmp_path / "s.csv").num_rows == 600


def test_pinned_peer_fingerprint_refused_on_both_sides(
    jobs: tuple[JobConfig, JobConfig], tmp_path: Path
) -> None:
    lead, follow = jobs
    changes = {"peer_fingerprint": "ab" * 32}
    leader_result, follower_result = predict_both(lead, follow, tmp_path, follower=changes)
    for result in (leader_result, follower_result):
        assert isinstance(result, ProtocolError), result
        assert "model_fingerprint" in result.message and "abab" in result.message
    assert not (tmp_path / "scores.parquet.sealed").exists()


def test_other_rows_refused_on_both_sides(
    jobs: tuple[JobConfig, JobConfig], tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    lead, follow = jobs
    shuffled = tmp_path / "shuffled.parquet"
    table = pq.read_table(follow.data.path)
    pq.write_table(table.take(np.random.default_rng(0).permutation(table.num_rows)), shuffled)
    leader_result, follower_result = predict_both(
        lead, follow, tmp_path, follower={"input": shuffled}
    )
    for result in (leader_result, follower_result):
        assert isinstance(result, ProtocolError), result
        assert "id_order_fingerprint: expected" in result.message


def test_half_from_another_job_refused(small_job: Jobs, tmp_path: Path) -> None:
    lead, _ = small_job()
    export_untrained(lead)
    other, _ = small_job(job__id="another-job")
    with pytest.raises(ModelError) as info:
        prepare_predict(other, section(other, tmp_path), PlaintextSecurity())
    assert info.value.code == "model.foreign"
    assert "job_id: expected another-job, seen test-job" in info.value.message


def test_missing_export_is_a_model_error(small_job: Jobs, tmp_path: Path) -> None:
    lead, _ = small_job()
    with pytest.raises(CvflError) as info:
        prepare_predict(lead, section(lead, tmp_path), PlaintextSecurity())
    assert isinstance(info.value, ModelError) and "no such file" in info.value.message


def test_nonfinite_activation_refused_on_both_sides(
    jobs: tuple[JobConfig, JobConfig], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cvfl.serve.session as session_mod
    from cvfl.train.steps import forward_message as real

    def poisoned(step: int, phase: int, key: bytes, ids: list[str], name: str, act: Any) -> Any:
        if step == 2:
            act = act.clone()
            act[5, 0] = float("nan")
        return real(step, phase, key, ids, name, act)

    monkeypatch.setattr(session_mod, "forward_message", poisoned)
    lead, follow = jobs
    leader_result, follower_result = predict_both(lead, follow, tmp_path)
    for result in (leader_result, follower_result):
        assert isinstance(result, ProtocolError), result
        assert result.code == "protocol.nonfinite", result.message
    assert isinstance(leader_result, ProtocolError)
    assert "forward message of step 2 (predict)" in leader_result.message
    assert not (tmp_path / "scores.parquet.sealed").exists()
