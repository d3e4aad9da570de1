"""A practitioner's tables: text categories, missing cells, raw magnitudes, a many-valued id."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from cvfl.data import write_arrow

LEADER_COLUMNS = {
    "color": "categorical",
    "user": {"kind": "categorical", "max_categories": 16},
    "ratio": {"kind": "numeric", "scaling": "robust"},
}
FOLLOWER_COLUMNS = {"note": "ignore", "default": "auto"}


def mixed_tables(
    folder: Path, rows: int = 400, seed: int = 5, fmt: str = "csv"
) -> tuple[Path, Path]:
    """Write the leader's and the follower's mixed tables; the label needs both."""
    rng = np.random.default_rng(seed)
    ids = [f"id-{i:05d}" for i in range(rows)]
    color = rng.choice(["red", "white", "rose"], rows)
    income = rng.normal(5e4, 2e4, rows)
    region = rng.choice(["north", "south", "east", "west"], rows)
    amount = rng.lognormal(8, 1, rows)
    signal = (color == "red") * 1.0 + (income > 5e4) + (region == "north") + (amount > 3e3)
    label = (signal + rng.normal(0, 0.5, rows) > 2).astype(np.int64)
    leader = pa.table(
        {
            "example_id": ids,
            "color": _holes(rng, color.tolist()),
            "income": _holes(rng, income.tolist()),
            "ratio": (rng.random(rows) * 0.01).tolist(),
            "user": [f"u{v}" for v in rng.integers(0, 200, rows)],
            "label": label.tolist(),
        }
    )
    follower = pa.table(
        {
            "example_id": ids,
            "region": _holes(rng, region.tolist()),
            "amount": _holes(rng, amount.tolist()),
            "visits": rng.integers(0, 50, rows).tolist(),
            "note": ["free text"] * rows,
        }
    )
    paths = folder / f"leader-mixed.{fmt}", folder / f"follower-mixed.{fmt}"
    write_arrow(leader, paths[0])
    write_arrow(follower, paths[1])
    return paths


def _holes(rng: np.random.Generator, values: list[Any]) -> list[Any]:
    """About one value in ten made missing."""
    return [None if rng.random() < 0.1 else v for v in values]


def mlp_overrides(role: str) -> dict[str, Any]:
    """``job_tables`` overrides for an mlp job over the mixed tables."""
    return {
        "model__kind": "mlp",
        "model__cut_width": 8,
        "model__leader_hidden": [16, 8],
        "model__follower_hidden": [16],
        "data__columns": LEADER_COLUMNS if role == "leader" else FOLLOWER_COLUMNS,
    }
