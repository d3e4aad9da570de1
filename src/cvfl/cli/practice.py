"""``cvfl data example``: a practice split of a scikit-learn dataset as two parties' tables."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

_out = Console()


def example(
    dataset: str = typer.Option("wine", "--dataset", help="wine, diabetes or digits."),
    out: Path = typer.Option(Path("data"), "--out", help="Folder for leader/follower tables."),
    fmt: str = typer.Option("csv", "--format", help="csv or parquet."),
    seed: int = typer.Option(0, help="Random seed (row order, gaps, ids)."),
) -> None:
    """Write two untidy tables (string ids and categories, gaps, raw magnitudes) to practise on."""
    from cvfl.data import write_arrow
    from cvfl.datasets.practice import PRACTICE, practice_split

    if dataset not in PRACTICE:
        raise typer.BadParameter(f"expected one of {', '.join(PRACTICE)}", param_hint="--dataset")
    if fmt not in ("parquet", "csv"):
        raise typer.BadParameter("expected parquet or csv", param_hint="--format")
    split = practice_split(dataset, seed)
    for role, table in (("leader", split.leader), ("follower", split.follower)):
        path = out / f"{role}.{fmt}"
        write_arrow(table, path)
        _out.print(f"{role}: {path} ({table.num_rows} rows, {table.num_columns} columns)")
    _out.print(
        f"task: {split.task}" + (f", {split.num_classes} classes" if split.num_classes > 2 else "")
    )
