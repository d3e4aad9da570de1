"""``cvfl report``: held-out quality of the split model beside leader-only and centralized."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

_out = Console()


def report(
    config: Annotated[Path, typer.Option("--config", "-c", help="The leader's job file.")],
    follower_config: Annotated[
        Path | None,
        typer.Option(
            "--follower-config",
            help="The follower's job file, for the centralized model (demo/evaluation only: "
            "it needs both tables in one place).",
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder for the report (default <workdir>/report).")
    ] = None,
) -> None:
    """Compare the trained split model with leader-only and centralized models; plot losses."""
    from cvfl.report import build_report, render_text, write_report
    from cvfl.train import load_job

    result = build_report(config, follower_config)
    folder = out or load_job(config).job.workdir / "report"
    files = write_report(result, folder)
    _out.print(render_text(result), highlight=False, markup=False)
    _out.print(f"report: {files.text}\nplot:   {files.png}", highlight=False)


def register(app: typer.Typer) -> None:
    """Attach ``cvfl report``."""
    app.command("report")(report)
