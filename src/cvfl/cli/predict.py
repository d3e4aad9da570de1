"""``cvfl predict``: one party of a two-party scoring run with the exported halves."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

_out = Console()


def predict(
    config: Annotated[Path, typer.Option("--config", "-c", help="The party's job file (TOML).")],
    input_table: Annotated[
        Path | None, typer.Option("--input", help="Scoring table (overrides \\[predict] input).")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", help="Leader: the scores file (overrides \\[predict] output)."),
    ] = None,
    plaintext_scores: Annotated[
        bool,
        typer.Option("--plaintext-scores", help="Leader: write the scores UNSEALED (by name)."),
    ] = False,
) -> None:
    """Score a table with both exported halves; the leader writes the scores (sealed)."""
    from cvfl.api.scoring import run_prediction

    job, result = run_prediction(
        config,
        input_table.resolve() if input_table else None,
        output.resolve() if output else None,
        True if plaintext_scores else None,
    )
    cfg = job.cfg
    table = Table(title=f"cvfl predict {cfg.role}: job {cfg.job.id}")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("rows", str(result.rows))
    table.add_row("batches", str(result.batches))
    table.add_row("rows/s", f"{result.rows_per_second:.0f}")
    table.add_row("bytes sent / received", f"{result.bytes_sent} / {result.bytes_received}")
    table.add_row("own half", result.model_fingerprint[:16] + "…")
    table.add_row("peer half", result.peer_fingerprint[:16] + "…")
    if result.output:
        table.add_row("scores", f"{result.output} ({'sealed' if result.sealed else 'PLAINTEXT'})")
    table.add_row("summary", str(job.report_path))
    _out.print(table)


def register(app: typer.Typer) -> None:
    """Attach ``cvfl predict``."""
    app.command("predict")(predict)
