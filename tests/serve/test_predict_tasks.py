"""``cvfl predict`` writes the score columns of the job's task, equal to the combined model's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cvfl.models.nets import CombinedModel
from cvfl.serve import PredictResult, read_scores
from cvfl.serve.halves import default_export, load_scoring_half
from cvfl.train.config import JobConfig
from tests.conftest import keys_of
from tests.serve.helpers import export_untrained, predict_both
from tests.train.task_tables import task_job


def _combined(lead: JobConfig, follow: JobConfig) -> np.ndarray:
    from cvfl.data.tables import read_party_table
    from cvfl.serve.prepare import scoring_schema

    ls = load_scoring_half(default_export(lead), lead, keys_of(lead))
    fs = load_scoring_half(default_export(follow), follow, keys_of(follow))
    lt = read_party_table(lead.data.path, scoring_schema(lead, ls))
    ft = read_party_table(follow.data.path, scoring_schema(follow, fs))
    with torch.no_grad():
        out = CombinedModel(fs.module, ls.module)(
            torch.from_numpy(lt.features), torch.from_numpy(ft.features)
        )
    scores: np.ndarray = out.double().numpy()
    return scores


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_predict_columns_per_task(tmp_path: Path, task: str) -> None:
    port = str(tmp_path / "leader.port")
    lead, follow = task_job(tmp_path, task, peer__port_file=port)
    export_untrained(lead)
    export_untrained(follow)
    leader_result, follower_result = predict_both(lead, follow, tmp_path)
    assert isinstance(leader_result, PredictResult), leader_result
    assert isinstance(follower_result, PredictResult), follower_result
    assert leader_result.output is not None
    scores = read_scores(Path(leader_result.output), keys_of(lead))
    outputs = _combined(lead, follow)
    assert scores.num_rows == 300
    if task == "multiclass":
        assert scores.column_names == ["example_id", "p_0", "p_1", "p_2", "predicted"]
        probs = torch.softmax(torch.from_numpy(outputs), dim=1).numpy()
        seen = np.stack([scores.column(f"p_{k}").to_numpy() for k in range(3)], axis=1)
        np.testing.assert_allclose(seen, probs, atol=1e-5)
        assert scores.column("predicted").to_pylist() == probs.argmax(axis=1).tolist()
    else:
        assert scores.column_names == ["example_id", "prediction"]
        # The half predicts the standardised target; the scores are in the target's own units.
        target = load_scoring_half(default_export(lead), lead, keys_of(lead)).target
        assert target is not None and target.scale > 0
        expected = outputs[:, 0] * target.scale + target.center
        np.testing.assert_allclose(scores.column("prediction").to_numpy(), expected, atol=1e-5)


def test_leader_export_records_task_and_classes(tmp_path: Path) -> None:
    lead, _ = task_job(tmp_path, "multiclass")
    export_untrained(lead)
    half = load_scoring_half(default_export(lead), lead, keys_of(lead))
    assert half.model.task == "multiclass" and half.model.num_classes == 3
    # The rebuilt leader half has one output per class.
    assert half.model.output_width == 3
    probe = half.module(torch.zeros(2, 8, dtype=torch.int64), torch.zeros(2, 8))
    assert probe.shape == (2, 3)
