"""Which model scores each id of a micro-batch, worked out for the whole batch at once.

The batch's ids are laid out flat, request after request; each gets its request, its position
in it, its row of the leader's table (or its inline features) and whether the follower holds
it. Only the ids the split model cannot score are looked at one by one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cvfl.online.batching import Pending
from cvfl.online.follower_port import FollowerAnswer
from cvfl.online.party import ServingParty
from cvfl.online.request import FOLLOWER_LACKS_ID, FOLLOWER_UNAVAILABLE, LEADER_LACKS_ID


@dataclass(frozen=True)
class BatchPlan:
    """A micro-batch's ids, flat, and which of them the split model scores.

    Attributes:
        party: The leader's half and table the batch is scored with.
        ids: Every id of every request, request after request.
        owner: Each id's request (its index in the batch).
        within: Each id's position in its request.
        table_rows: Each id's row of the leader's table; -1 when its features came inline or
            the leader has no row for it.
        inline: Whether each id's features came inline with its request.
        inline_rows: The inline feature rows of each request that brought some.
        mine: Whether the leader has features for each id (its table's or inline).
        split: The ids (positions in ``ids``) the split model scores.
        act_rows: Their rows in the follower's activations.
        unavailable: Whether the follower's answer is missing for the whole batch.
    """

    party: ServingParty
    ids: list[str]
    owner: np.ndarray
    within: np.ndarray
    table_rows: np.ndarray
    inline: np.ndarray
    inline_rows: dict[int, np.ndarray]
    mine: np.ndarray
    split: np.ndarray
    act_rows: np.ndarray
    unavailable: bool

    def features(self, picks: np.ndarray) -> np.ndarray:
        """The leader's feature rows of the ids at ``picks`` (all of which it has)."""
        if not self.inline[picks].any():
            rows: np.ndarray = self.party.table.features[self.table_rows[picks]]
            return rows
        return np.stack([self._row(int(j)) for j in picks])

    def _row(self, j: int) -> np.ndarray:
        if self.inline[j]:
            given: np.ndarray = self.inline_rows[int(self.owner[j])][int(self.within[j])]
            return given
        row: np.ndarray = self.party.table.features[self.table_rows[j]]
        return row

    def reason(self, j: int) -> str:
        """Why the split model does not score the id at ``j``."""
        if not self.mine[j]:
            return LEADER_LACKS_ID
        return FOLLOWER_UNAVAILABLE if self.unavailable else FOLLOWER_LACKS_ID


def plan_batch(
    party: ServingParty, batch: list[Pending], asked: list[str], answer: FollowerAnswer | None
) -> BatchPlan:
    """Lay out ``batch`` for scoring; ``asked`` are the distinct ids the follower was asked.

    Raises:
        DataError: inline features prepared by a half since reloaded no longer fit the
            current one (``data.*``, naming the column).
    """
    lengths = [len(p.request.ids) for p in batch]
    ids = [i for p in batch for i in p.request.ids]
    owner = np.repeat(np.arange(len(batch)), lengths)
    starts = np.cumsum([0, *lengths[:-1]])
    within = np.arange(len(ids)) - np.repeat(starts, lengths)
    inline_rows = {b: _inline(party, p) for b, p in enumerate(batch) if p.features is not None}
    inline = np.repeat([p.features is not None for p in batch], lengths)
    table_rows = np.fromiter((party.index.get(i, -1) for i in ids), np.int64, len(ids))
    table_rows[inline] = -1
    mine = inline | (table_rows >= 0)
    if answer is None:
        split = act_rows = np.zeros(0, dtype=np.int64)
    else:
        position = {example: k for k, example in enumerate(asked)}
        unique = np.fromiter((position[i] for i in ids), np.int64, len(ids))
        split = np.flatnonzero(answer.present[unique] & mine)
        act_rows = (np.cumsum(answer.present) - 1)[unique[split]]
    return BatchPlan(
        party,
        ids,
        owner,
        within,
        table_rows,
        inline,
        inline_rows,
        mine,
        split,
        act_rows,
        answer is None,
    )


def _inline(party: ServingParty, pending: Pending) -> np.ndarray:
    rows = pending.features
    assert rows is not None
    if pending.prepared_by is not party:  # prepared by a half since reloaded
        rows = party.inline_features(pending.request.ids, pending.request.features)
    return rows
