"""``cvfl fallback``: the leader's leader-only model, the fallback of ``cvfl serve``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

_out = Console()


def fallback(
    config: Annotated[Path, typer.Option("--config", "-c", help="The leader's job file.")],
) -> None:
    """Train the leader-only model on the leader's own table and export it for `cvfl serve`.

    With ``[serve] fallback = "leader_only"`` the online service scores with it the ids the
    split model cannot (the follower lacks the row, or is unreachable). It needs nothing from
    the follower; run it after ``cvfl train`` (or put "fallback" in ``[job] steps``).
    """
    from cvfl.api import fallback as train_fallback
    from cvfl.cli.progress import TerminalProgress
    from cvfl.train import configure_threads, load_job

    cfg = load_job(config)
    configure_threads(cfg)  # process configuration: the command's, not the library's
    result = train_fallback(cfg, progress=TerminalProgress("leader-only"))
    _out.print(f"leader-only model: {result.export} ({result.steps} steps)", highlight=False)
    if result.metrics:
        _out.print(f"held-out {result.metrics.primary_name}: {result.metrics.primary:.4f}")


def register(app: typer.Typer) -> None:
    """Attach ``cvfl fallback``."""
    app.command("fallback")(fallback)
