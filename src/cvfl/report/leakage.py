"""The report's label-leakage block, read (and checked) from the leader's result.

The figures are the leader's own audit (:mod:`cvfl.privacy.audit`), computed while training
from the gradients it sent; the report only reads them back from ``leader-result.json``, checks
every value and prints them beside the split model's AUC.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from cvfl.errors import DataError, mismatch
from cvfl.privacy.audit import ATTACKS

HEADLINE = "label leakage: AUC with which each attack recovers the training labels from the "
EXPLAIN = "gradients the follower received (0.5: nothing leaks, 1.0: every label)"


@dataclass(frozen=True)
class LeakFigures:
    """The audit and privacy accounting of one split run.

    Attributes:
        defence: The ``[privacy] defence`` the run used.
        leak: Leak AUC per attack (None: no step could measure it, or the audit was off).
        steps: Steps the audit scored.
        delta: The job's δ.
        gaussian_epsilon: ε of the ``gaussian`` defence at ``delta`` (None: not used).
        label_epsilon: ε of randomized response on the labels (None: not used).
    """

    defence: str
    leak: dict[str, float | None]
    steps: int
    delta: float
    gaussian_epsilon: float | None = None
    label_epsilon: float | None = None

    @property
    def worst(self) -> float | None:
        """The larger of the norm and cosine attacks' leak AUC (the issue's headline figure)."""
        values = [v for a in ("norm", "cosine") if (v := self.leak.get(a)) is not None]
        return max(values) if values else None


def _number(where: str, value: object, optional: bool = True) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise DataError(
        mismatch(f"leader-result.json {where}", "a finite number", repr(value)[:40]),
        code="data.unreadable",
    )


def leak_figures(result: dict[str, Any]) -> LeakFigures | None:
    """The leakage figures of a leader result (None when it has no ``privacy`` record).

    Raises:
        DataError: a value of the record is missing or not what the leader writes.
    """
    record = result.get("privacy")
    if record is None:
        return None
    try:
        settings, epsilon = dict(record["settings"]), dict(record["epsilon"])
        audit = record["audit"]
        defence = settings["defence"]
    except (KeyError, TypeError, ValueError):
        raise DataError(
            "leader-result.json privacy: expected settings, audit and epsilon",
            code="data.unreadable",
        ) from None
    if not isinstance(defence, str) or len(defence) > 32:
        raise DataError(
            mismatch("leader-result.json privacy.settings.defence", "a defence name", "other"),
            code="data.unreadable",
        )
    audit = dict(audit) if isinstance(audit, dict) else {}
    steps = _number("privacy.audit.steps", audit.get("steps", 0), optional=False)
    return LeakFigures(
        defence=defence,
        leak={a: _number(f"privacy.audit.{a}", audit.get(a)) for a in ATTACKS},
        steps=int(steps or 0),
        delta=_number("privacy.epsilon.delta", epsilon.get("delta"), optional=False) or 0.0,
        gaussian_epsilon=_number("privacy.epsilon.gaussian", epsilon.get("gaussian")),
        label_epsilon=_number("privacy.epsilon.label", epsilon.get("label")),
    )


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def leak_rows(figures: LeakFigures, model_auc: float) -> list[str]:
    """The text block: defence, model AUC, each attack's leak AUC, and ε where one applies."""
    lines = [HEADLINE + EXPLAIN]
    lines.append(f"  defence {figures.defence}; split model auc {model_auc:.4f}")
    lines += [f"  {attack:<8} leak auc {_fmt(figures.leak[attack])}" for attack in ATTACKS]
    lines.append(
        f"  (scored by the leader over the {figures.steps} steps' gradients it sent; "
        "no label left it)"
    )
    if figures.gaussian_epsilon is not None:
        lines.append(
            f"  gaussian: ε {figures.gaussian_epsilon:.4g} at δ {figures.delta:g} "
            "(each row's own gradient; see docs/privacy.md)"
        )
    if figures.label_epsilon is not None:
        lines.append(f"  labels: randomized response, ε {figures.label_epsilon:g} (δ 0)")
    return lines


def leak_json(figures: LeakFigures) -> dict[str, Any]:
    """The JSON form of the block (report.json's ``privacy``)."""
    return {
        "defence": figures.defence,
        "leak_auc": dict(figures.leak),
        "steps": figures.steps,
        "delta": figures.delta,
        "gaussian_epsilon": figures.gaussian_epsilon,
        "label_epsilon": figures.label_epsilon,
    }
