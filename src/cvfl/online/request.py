"""Scoring requests and results, and the checks every request passes (gRPC and HTTP alike).

A refusal is a :class:`~cvfl.errors.DataError` with code ``data.request`` whose message starts
with the field that failed (``ids[2]``, ``features[0].x``), the expected and the seen value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cvfl.errors import DataError, mismatch

MAX_ID_LENGTH = 256
MAX_COLUMNS = 4096

# Why an id was not scored by the split model (the fallback's reason).
FOLLOWER_LACKS_ID = "follower_lacks_id"
FOLLOWER_UNAVAILABLE = "follower_unavailable"
LEADER_LACKS_ID = "leader_lacks_id"

# Which model scored an id.
SPLIT_MODEL = "split"
LEADER_ONLY_MODEL = "leader_only"


@dataclass(frozen=True)
class ScoreRequest:
    """Example ids and, optionally, one row of the leader's raw features per id."""

    ids: tuple[str, ...]
    features: tuple[Mapping[str, float], ...] = ()


@dataclass(frozen=True)
class ScoreResult:
    """One id's answer: the task's score columns and the model that gave them, or not scored.

    A split score has no reason. A score of the leader-only fallback model carries the reason
    the split model could not give it; so does an id not scored at all.
    """

    id: str
    scored: bool
    reason: str = ""
    values: Mapping[str, float] = field(default_factory=dict)
    model: str = ""  # SPLIT_MODEL or LEADER_ONLY_MODEL when scored

    def to_json(self) -> dict[str, Any]:
        """The JSON object of this result."""
        if not self.scored:
            return {"id": self.id, "scored": False, "reason": self.reason}
        why = {"reason": self.reason} if self.reason else {}
        return {"id": self.id, "scored": True, "model": self.model, **why, **self.values}


def refuse(what: str, expected: object, seen: object) -> DataError:
    """The ``data.request`` error naming the field ``what``."""
    return DataError(mismatch(what, expected, seen), code="data.request")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_ids(ids: object, max_ids: int) -> tuple[str, ...]:
    """Validate the ``ids`` field: 1 to ``max_ids`` non-empty strings of at most 256 characters."""
    if not isinstance(ids, list | tuple) or not 1 <= len(ids) <= max_ids:
        seen = f"{len(ids)} ids" if isinstance(ids, list | tuple) else type(ids).__name__
        raise refuse("ids", f"a list of 1 to {max_ids} example ids", seen)
    for k, value in enumerate(ids):
        if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_LENGTH:
            raise refuse(f"ids[{k}]", f"a string of 1 to {MAX_ID_LENGTH} characters", _short(value))
    return tuple(ids)


def check_row(k: int, row: object) -> dict[str, float]:
    """Validate ``features[k]``: column names to finite numbers."""
    if not isinstance(row, Mapping) or len(row) > MAX_COLUMNS:
        raise refuse(f"features[{k}]", "an object of column names to numbers", _short(row))
    out: dict[str, float] = {}
    for name, value in row.items():
        if not isinstance(name, str) or not name:
            raise refuse(f"features[{k}]", "column names as non-empty strings", _short(name))
        number_like = isinstance(value, int | float) and not isinstance(value, bool)
        if not number_like or not math.isfinite(value):
            raise refuse(f"features[{k}].{name[:64]}", "a finite number", _short(value))
        out[name] = value
    return out


def check_request(ids: object, features: object, max_ids: int) -> ScoreRequest:
    """Validate a request's two fields (``features`` may be None or empty).

    Raises:
        DataError: ``data.request``, naming the field.
    """
    checked = check_ids(ids, max_ids)
    if features is None or (isinstance(features, list | tuple) and not features):
        return ScoreRequest(checked)
    if not isinstance(features, list | tuple) or len(features) != len(checked):
        seen = f"{len(features)} rows" if isinstance(features, list | tuple) else _short(features)
        raise refuse("features", f"none, or one row per id ({len(checked)})", seen)
    return ScoreRequest(checked, tuple(check_row(k, row) for k, row in enumerate(features)))


def request_from_json(body: object, max_ids: int) -> ScoreRequest:
    """Validate a decoded JSON body ``{"ids": [...], "features": [{...}, ...]}``."""
    if not isinstance(body, dict):
        raise refuse("body", 'a JSON object with "ids"', type(body).__name__)
    unknown = sorted(set(body) - {"ids", "features"})
    if unknown:
        raise refuse("body", "only the fields ids and features", f"field {_short(unknown[0])}")
    return check_request(body.get("ids"), body.get("features"), max_ids)
