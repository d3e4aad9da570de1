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
    from cvfl.api import report as make_report
    from cvfl.train import configure_threads, load_job

    configure_threads(load_job(config))  # the baselines train in this process
    result = make_report(config, follower_config, out=out)
    _out.print(result.text, highlight=False, markup=False)
    _out.print(f"report: {result.files.text}\nplot:   {result.files.png}", highlight=False)


def register(app: typer.Typer) -> None:
    """Attach ``cvfl report``."""
    app.command("report")(report)
