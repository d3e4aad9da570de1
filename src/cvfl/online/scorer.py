"""The leader's handling of one micro-batch: ask the follower once, score what both hold.

Scores are computed by :func:`cvfl.serve.scores.score_columns`, the columns ``cvfl predict``
writes, so an id scores the same online as in a batch run.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import numpy as np
import torch

from cvfl.logs import get_logger
from cvfl.models.nets import LeaderHalf
from cvfl.online.batching import Pending
from cvfl.online.cache import bottom_outputs
from cvfl.online.follower_port import FollowerAnswer, FollowerPort, Ticket
from cvfl.online.metrics import Metrics
from cvfl.online.party import ServingParty
from cvfl.online.plan import BatchPlan, plan_batch
from cvfl.online.request import LEADER_ONLY_MODEL, SPLIT_MODEL, ScoreResult
from cvfl.serve.halves import ScoringHalf
from cvfl.serve.scores import score_columns

log = get_logger(__name__)


class LeaderScorer:
    """Scores micro-batches with the leader's half and the follower's activations."""

    def __init__(self, port: FollowerPort, metrics: Metrics, timeout: float) -> None:
        self._port = port
        self._metrics = metrics
        self._timeout = timeout

    def __call__(self, batch: list[Pending]) -> Callable[[], None]:
        """Send ``batch``'s ids to the follower; return what completes the batch.

        The completion (run by the batcher's second thread, in order) waits for the answer,
        scores and sets every request's future, so the next batch's lookup overlaps this
        batch's scoring.
        """
        ids = list(dict.fromkeys(i for p in batch for i in p.request.ids))
        started = time.perf_counter()
        deadline = min(p.arrived for p in batch) + self._timeout
        ticket = self._port.ask(ids, deadline)
        party = ticket.party if ticket is not None else self._port.party
        return lambda: self._complete(party, batch, ids, ticket, started)

    def _complete(
        self,
        party: ServingParty,
        batch: list[Pending],
        ids: list[str],
        ticket: Ticket | None,
        started: float,
    ) -> None:
        answer = self._port.answer(ticket) if ticket is not None else None
        rtt = time.perf_counter() - started if answer is not None else None
        self._metrics.batch_sent(len(ids), rtt)
        plan = plan_batch(party, batch, ids, answer)
        results: list[list[ScoreResult | None]] = [[None] * len(p.request.ids) for p in batch]
        if answer is not None and plan.split.size:
            _fill(plan, plan.split, _split_logits(plan, answer), party.half, SPLIT_MODEL, results)
        lonely = self._not_split(plan, results)
        if lonely.size:
            _fill(
                plan,
                lonely,
                _alone_logits(plan, lonely),
                party.fallback,
                LEADER_ONLY_MODEL,
                results,
            )
        for pending, answered in zip(batch, results, strict=True):
            pending.future.set_result([r for r in answered if r is not None])

    def _not_split(self, plan: BatchPlan, results: list[list[ScoreResult | None]]) -> np.ndarray:
        """Answer the ids the split model does not score; those the fallback model scores."""
        others = np.ones(len(plan.ids), dtype=bool)
        others[plan.split] = False
        lonely: list[int] = []
        reasons: Counter[str] = Counter()
        for j in np.flatnonzero(others).tolist():
            reason = plan.reason(j)
            reasons[reason] += 1
            if plan.mine[j] and plan.party.fallback is not None:
                lonely.append(j)  # filled in by the leader-only model
            else:
                results[plan.owner[j]][plan.within[j]] = ScoreResult(plan.ids[j], False, reason)
        for reason, count in reasons.items():
            self._metrics.fallback(reason, count)
        return np.asarray(lonely, dtype=np.int64)


def _split_logits(plan: BatchPlan, answer: FollowerAnswer) -> np.ndarray | torch.Tensor:
    """The split model's outputs for the ids ``plan.split``."""
    party, split = plan.party, plan.split
    act = answer.activations.numpy()[plan.act_rows]
    module = party.half.module
    if party.cache is None or not isinstance(module, LeaderHalf):
        with torch.no_grad():
            out: torch.Tensor = module(
                torch.from_numpy(plan.features(split)), torch.from_numpy(act)
            )
        return out
    table_rows = plan.table_rows[split]
    inline = table_rows < 0
    inline_features = plan.features(split[inline]) if inline.any() else None
    own = bottom_outputs(module, party.cache, table_rows, inline_features)
    if party.top is not None:
        return party.top(own, act)
    with torch.no_grad():
        return module.joined(torch.from_numpy(own), torch.from_numpy(act))


def _alone_logits(plan: BatchPlan, lonely: np.ndarray) -> torch.Tensor:
    """The leader-only model's outputs for the ids at ``lonely``."""
    half = plan.party.fallback
    assert half is not None
    features = torch.from_numpy(plan.features(lonely))
    zeros = torch.zeros(features.shape[0], plan.party.cfg.model.cut_width)
    with torch.no_grad():
        out: torch.Tensor = half.module(features, zeros)
    return out


def _fill(
    plan: BatchPlan,
    picks: np.ndarray,
    logits: np.ndarray | torch.Tensor,
    half: ScoringHalf | None,
    model: str,
    results: list[list[ScoreResult | None]],
) -> None:
    """Set the results of the ids at ``picks`` from ``half``'s ``logits`` (one row each).

    A split score carries no reason; a leader-only one carries why the split model could not.
    """
    assert half is not None
    columns = score_columns(logits, half.model.task, half.target)
    names, values = tuple(columns), [column.tolist() for column in columns.values()]
    split = model == SPLIT_MODEL
    for n, j in enumerate(picks.tolist()):
        row = {name: column[n] for name, column in zip(names, values, strict=True)}
        reason = "" if split else plan.reason(j)
        results[plan.owner[j]][plan.within[j]] = ScoreResult(plan.ids[j], True, reason, row, model)
