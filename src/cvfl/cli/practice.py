"""``cvfl data example``: a practice split of a scikit-learn dataset, ready to run."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

_out = Console()


def example(
    dataset: str = typer.Option("wine", "--dataset", help="wine, diabetes or digits."),
    out: Path = typer.Option(Path("practice"), "--out", help="Folder for tables and jobs."),
    fmt: str = typer.Option("csv", "--format", help="csv or parquet."),
    port: int = typer.Option(0, help="The leader's port in the job files (0: a free one)."),
    seed: int = typer.Option(0, help="Random seed (row order, gaps, ids)."),
) -> None:
    """Write two untidy tables to practise on, with both parties' job files and keys.

    The tables have string ids and categories, missing cells, raw magnitudes and rows only
    one party holds; the job files align them (PSI) and train an MLP split model of the
    dataset's task over the attested channel with the simulated TEE.
    """
    from cvfl.cli.parties import free_port
    from cvfl.data import write_arrow
    from cvfl.datasets.practice import PRACTICE, practice_job_toml, practice_split
    from cvfl.sealing import new_key_file

    if dataset not in PRACTICE:
        raise typer.BadParameter(f"expected one of {', '.join(PRACTICE)}", param_hint="--dataset")
    if fmt not in ("parquet", "csv"):
        raise typer.BadParameter("expected parquet or csv", param_hint="--format")
    split = practice_split(dataset, seed)
    port = port or free_port()
    for role, table in (("leader", split.leader), ("follower", split.follower)):
        name = f"data/{role}.{fmt}"
        write_arrow(table, out / name)
        key = out / "keys" / f"{role}.key"
        if not key.exists():
            new_key_file(key)
        (out / f"{role}.toml").write_text(practice_job_toml(split, role, name, port))
        _out.print(f"{role}: {out / name} ({table.num_rows} rows, {table.num_columns} columns)")
    classes = f", {split.num_classes} classes" if split.task == "multiclass" else ""
    _out.print(f"task: {split.task}{classes}; job files: {out}/leader.toml, {out}/follower.toml")
