"""Scoring tables that differ in rows and order are aligned by PSI before scoring."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

from cvfl.cli.parties import free_port
from cvfl.models.nets import CombinedModel
from cvfl.serve import (
    SCORE_COLUMN,
    PredictResult,
    read_scores,
)
from cvfl.train.config import JobConfig
from tests.conftest import keys_of
from tests.serve.helpers import export_untrained, predict_both

Jobs = Callable[..., tuple[JobConfig, JobConfig]]


def test_psi_aligns_the_scoring_tables(small_job: Jobs, tmp_path: Path) -> None:
    for cfg in small_job():  # trained (here: initialised) on aligned tables, then exported
        export_untrained(cfg)
    port = free_port()
    lead, follow = small_job(
        peer__listen=f"127.0.0.1:{port}",
        peer__connect=f"127.0.0.1:{port}",
        psi__output=str(tmp_path / "aligned-train.parquet"),
    )
    # The follower holds 450 of the 600 rows, shuffled; the leader all 600 in order.
    rng = np.random.default_rng(5)
    subset = tmp_path / "follower-score.parquet"
    full = pq.read_table(follow.data.path)
    pq.write_table(full.take(rng.permutation(600)[:450]), subset)

    result, follower = predict_both(
        lead,
        follow,
        tmp_path,
        timeout=60,
        leader={"input": lead.data.path},
        follower={"input": subset},
    )
    assert isinstance(result, PredictResult), result
    assert isinstance(follower, PredictResult), follower
    assert result.rows == 450
    assert (lead.job.workdir / "predict" / "aligned-leader.parquet.sealed").is_file()

    scores = read_scores(Path(str(result.output)), keys_of(lead))
    ids = scores.column("example_id").to_pylist()
    assert sorted(ids) == sorted(subset_ids := pq.read_table(subset).column(0).to_pylist())
    assert len(set(subset_ids)) == 450
    # Each id's score is the combined model's on that id's features from both tables.
    from cvfl.serve.halves import default_export, load_scoring_half

    halves = [
        load_scoring_half(default_export(cfg), cfg, keys_of(cfg)).module for cfg in (follow, lead)
    ]
    lead_table, follow_table = pq.read_table(lead.data.path), full
    pos = {v: i for i, v in enumerate(lead_table.column(0).to_pylist())}
    rows = np.array([pos[i] for i in ids])

    def feats(table: object) -> torch.Tensor:
        cols = [c for c in table.column_names[1:] if c != "label"]  # type: ignore[attr-defined]
        return torch.from_numpy(
            np.column_stack([table.column(c).to_numpy() for c in cols])[rows]  # type: ignore[attr-defined]
        )

    with torch.no_grad():
        logits = CombinedModel(halves[0], halves[1])(feats(lead_table), feats(follow_table))
    expected = torch.softmax(logits, dim=1)[:, 1].numpy()
    np.testing.assert_allclose(scores.column(SCORE_COLUMN).to_numpy(), expected, atol=1e-5)
