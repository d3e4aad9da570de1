"""The leader's handling of one micro-batch: ask the follower once, score what both hold.

Scores are computed by :func:`cvfl.serve.scores.score_columns`, the columns ``cvfl predict``
writes, so an id scores the same online as in a batch run.
"""

from __future__ import annotations

import time
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
from cvfl.online.request import (
    FOLLOWER_LACKS_ID,
    FOLLOWER_UNAVAILABLE,
    LEADER_LACKS_ID,
    LEADER_ONLY_MODEL,
    SPLIT_MODEL,
    ScoreResult,
)
from cvfl.serve.halves import ScoringHalf
from cvfl.serve.scores import score_columns

log = get_logger(__name__)


class _Plan:
    """Which ids of a batch are scorable, with their leader features and activation rows.

    ``lonely`` holds the ids the split model cannot score but the leader-only fallback model
    can (their leader features are at hand), with their features and the reason.
    """

    def __init__(self, party: ServingParty) -> None:
        self.party = party
        self.features: list[np.ndarray] = []
        self.table_rows: list[np.ndarray] = []  # each row's table position; -1: inline
        self.act_rows: list[np.ndarray] = []
        self.slots: list[tuple[int, int]] = []  # (request in batch, position in request)
        self.lonely_features: list[np.ndarray] = []
        self.lonely: list[tuple[int, int, str]] = []  # (request, position, reason)


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
        position = {example: k for k, example in enumerate(ids)}
        plan = _Plan(party)
        results: list[list[ScoreResult | None]] = []
        for b, pending in enumerate(batch):
            results.append(self._plan(b, pending, position, answer, plan))
        if plan.slots and answer is not None:
            self._score(batch, plan, answer, results)
        if plan.lonely:
            self._score_alone(batch, plan, results)
        for pending, answered in zip(batch, results, strict=True):
            done = [r for r in answered if r is not None]
            pending.future.set_result(done)

    def _plan(
        self,
        b: int,
        pending: Pending,
        position: dict[str, int],
        answer: FollowerAnswer | None,
        plan: _Plan,
    ) -> list[ScoreResult | None]:
        request = pending.request
        unique = np.asarray([position[i] for i in request.ids], dtype=np.int64)
        held = answer.present[unique] if answer is not None else np.zeros(len(unique), bool)
        party = plan.party
        full = np.full(len(unique), -1, dtype=np.int64)  # table positions; -1: inline
        if pending.features is not None:
            mine = np.ones(len(unique), dtype=bool)
            rows = pending.features
            if pending.prepared_by is not party:  # prepared by a half since reloaded
                rows = party.inline_features(request.ids, request.features)
        else:
            mine, found = party.rows_of(request.ids)
            full[mine] = found
            rows = party.table.features[np.where(mine, full, 0)]
        ok = held & mine
        if ok.any() and answer is not None:
            act_index = np.cumsum(answer.present) - 1
            plan.features.append(rows[ok])
            plan.table_rows.append(full[ok])
            plan.act_rows.append(act_index[unique[ok]])
            plan.slots += [(b, int(k)) for k in np.flatnonzero(ok)]
        out: list[ScoreResult | None] = []
        for k, example in enumerate(request.ids):
            if ok[k]:
                out.append(None)  # filled in by _score
                continue
            reason = (
                LEADER_LACKS_ID
                if not mine[k]
                else FOLLOWER_UNAVAILABLE
                if answer is None
                else FOLLOWER_LACKS_ID
            )
            self._metrics.fallback(reason, 1)
            if mine[k] and party.fallback is not None:
                plan.lonely_features.append(rows[k : k + 1])
                plan.lonely.append((b, k, reason))
                out.append(None)  # filled in by _score_alone
                continue
            out.append(ScoreResult(example, False, reason))
        return out

    def _score(
        self,
        batch: list[Pending],
        plan: _Plan,
        answer: FollowerAnswer,
        results: list[list[ScoreResult | None]],
    ) -> None:
        features = np.concatenate(plan.features)
        act = answer.activations.numpy()[np.concatenate(plan.act_rows)]
        party = plan.party
        half, module = party.half, party.half.module
        logits: np.ndarray | torch.Tensor
        if party.cache is not None and isinstance(module, LeaderHalf):
            own = bottom_outputs(module, party.cache, features, np.concatenate(plan.table_rows))
            if party.top is not None:
                logits = party.top(own, act)
            else:
                with torch.no_grad():
                    logits = module.joined(torch.from_numpy(own), torch.from_numpy(act))
        else:
            with torch.no_grad():
                logits = module(torch.from_numpy(features), torch.from_numpy(act))
        slots = [(b, k, "") for b, k in plan.slots]  # a split score carries no reason
        _fill(batch, half, logits, slots, SPLIT_MODEL, results)

    def _score_alone(
        self, batch: list[Pending], plan: _Plan, results: list[list[ScoreResult | None]]
    ) -> None:
        """Score the ids the split model could not with the leader-only fallback model."""
        half = plan.party.fallback
        assert half is not None
        features = torch.from_numpy(np.concatenate(plan.lonely_features))
        zeros = torch.zeros(features.shape[0], plan.party.cfg.model.cut_width)
        with torch.no_grad():
            logits = half.module(features, zeros)
        _fill(batch, half, logits, plan.lonely, LEADER_ONLY_MODEL, results)


def _fill(
    batch: list[Pending],
    half: ScoringHalf,
    logits: np.ndarray | torch.Tensor,
    slots: list[tuple[int, int, str]],
    model: str,
    results: list[list[ScoreResult | None]],
) -> None:
    """Set each slot's (request, position, reason) result from ``half``'s ``logits``."""
    columns = score_columns(logits, half.model.task, half.target)
    names, values = tuple(columns), [column.tolist() for column in columns.values()]
    for n, (b, k, reason) in enumerate(slots):
        row = {name: column[n] for name, column in zip(names, values, strict=True)}
        results[b][k] = ScoreResult(batch[b].request.ids[k], True, reason, row, model)
