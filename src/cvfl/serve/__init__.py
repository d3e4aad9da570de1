"""Two-party scoring with the exported halves (``cvfl predict``).

The names below are imported on first use, so that reading ``[predict]``
(:mod:`cvfl.serve.config`) does not import PyTorch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cvfl.lazy import lazy_names

if TYPE_CHECKING:
    from cvfl.serve.config import PredictSection, load_predict_job
    from cvfl.serve.halves import ScoringHalf, load_scoring_half
    from cvfl.serve.hello import PredictHello, predict_mismatches
    from cvfl.serve.prepare import PredictJob, prepare_predict
    from cvfl.serve.scores import SCORE_COLUMN, SCORES_PURPOSE, read_scores
    from cvfl.serve.session import PredictResult, run_predict_follower, run_predict_leader

_WHERE = {
    "PredictSection": "config",
    "load_predict_job": "config",
    "ScoringHalf": "halves",
    "load_scoring_half": "halves",
    "PredictHello": "hello",
    "predict_mismatches": "hello",
    "PredictJob": "prepare",
    "prepare_predict": "prepare",
    "SCORE_COLUMN": "scores",
    "SCORES_PURPOSE": "scores",
    "read_scores": "scores",
    "PredictResult": "session",
    "run_predict_follower": "session",
    "run_predict_leader": "session",
}

__all__ = [
    "SCORES_PURPOSE",
    "SCORE_COLUMN",
    "PredictHello",
    "PredictJob",
    "PredictResult",
    "PredictSection",
    "ScoringHalf",
    "load_predict_job",
    "load_scoring_half",
    "predict_mismatches",
    "prepare_predict",
    "read_scores",
    "run_predict_follower",
    "run_predict_leader",
]


__getattr__ = lazy_names(__name__, _WHERE)
