"""Two-party scoring with the exported halves (``cvfl predict``)."""

from cvfl.serve.config import PredictSection, load_predict_job
from cvfl.serve.halves import ScoringHalf, load_scoring_half
from cvfl.serve.hello import PredictHello, predict_mismatches
from cvfl.serve.prepare import PredictJob, prepare_predict
from cvfl.serve.scores import SCORE_COLUMN, SCORES_PURPOSE, read_scores
from cvfl.serve.session import PredictResult, run_predict_follower, run_predict_leader

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
