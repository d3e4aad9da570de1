"""A micro-batch planned all at once gives each id what planning it alone would."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cvfl.online.batching import Pending
from cvfl.online.follower_port import FollowerAnswer
from cvfl.online.party import ServingParty, load_serving_party
from cvfl.online.plan import plan_batch
from cvfl.online.request import (
    FOLLOWER_LACKS_ID,
    FOLLOWER_UNAVAILABLE,
    LEADER_LACKS_ID,
    ScoreRequest,
)
from cvfl.train.config import JobConfig
from tests.online.helpers import serve_section
from tests.serve.helpers import export_untrained

UNKNOWN = ("nobody", "ghost")
requests = st.lists(
    st.tuples(
        st.lists(st.sampled_from(range(8)), min_size=1, max_size=4),  # ids, by number
        st.booleans(),  # features inline?
    ),
    min_size=1,
    max_size=5,
)


@pytest.fixture
def party(small_job: Callable[..., tuple[JobConfig, JobConfig]]) -> ServingParty:
    lead, _ = small_job()
    export_untrained(lead)
    return load_serving_party(lead, serve_section(lead))


def _batch(party: ServingParty, drawn: list[tuple[list[int], bool]]) -> list[Pending]:
    names = [*party.table.ids[:6], *UNKNOWN]
    batch = []
    for numbers, inline in drawn:
        ids = tuple(names[n] for n in numbers)
        rows = party.table.features[[n % 6 + 10 for n in numbers]] if inline else None
        batch.append(Pending(ScoreRequest(ids), rows, party))
    return batch


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(drawn=requests, held=st.lists(st.booleans(), min_size=8, max_size=8), answered=st.booleans())
def test_each_id_is_planned_as_alone(
    party: ServingParty, drawn: list[tuple[list[int], bool]], held: list[bool], answered: bool
) -> None:
    batch = _batch(party, drawn)
    asked = list(dict.fromkeys(i for p in batch for i in p.request.ids))
    present = np.asarray(held[: len(asked)], dtype=bool)
    answer = FollowerAnswer(present, torch.zeros(int(present.sum()), 4)) if answered else None
    plan = plan_batch(party, batch, asked, answer)
    split, act_rows, features = [], [], []
    flat = [(b, k) for b, p in enumerate(batch) for k in range(len(p.request.ids))]
    for j, (b, k) in enumerate(flat):
        pending, example = batch[b], batch[b].request.ids[k]
        assert plan.ids[j] == example and (plan.owner[j], plan.within[j]) == (b, k)
        inline = pending.features is not None
        mine = inline or example in party.index
        row = pending.features[k] if pending.features is not None else None
        if row is None and mine:
            row = party.table.features[party.index[example]]
        at = asked.index(example)
        if answer is not None and mine and present[at]:
            assert row is not None  # mine: inline or held by the party
            split.append(j)
            act_rows.append(int(present[:at].sum()))
            features.append(row)
            continue
        unavailable = FOLLOWER_UNAVAILABLE if answer is None else FOLLOWER_LACKS_ID
        assert plan.reason(j) == (unavailable if mine else LEADER_LACKS_ID)
        if mine:
            assert row is not None
            assert np.array_equal(plan.features(np.asarray([j])), [row])
    assert plan.split.tolist() == split
    assert plan.act_rows.tolist() == act_rows
    if split:
        assert np.array_equal(plan.features(plan.split), np.stack(features))
