"""``cvfl check --config FILE``: validate a job file and the data it names, without the peer.

Nothing is sent anywhere and PyTorch is not imported. Exit codes are those of every cvfl command
(``ConfigError`` 2, ``DataError`` 3, ``SealingError`` 6; see docs/data.md).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from cvfl.train.precheck import InputSummary

_SHOWN = 12  # column names listed per kind before "and N more"


def check(
    config: Annotated[Path, typer.Option("--config", "-c", help="The party's job file (TOML).")],
) -> None:
    """Check a job file and this party's own table (and, for the leader, its labels)."""
    from cvfl.sealing import key_provider_from_config
    from cvfl.train.config import outputs_sealed, read_job_toml
    from cvfl.train.precheck import check_own_table

    raw = read_job_toml(config)
    if "predict" in raw:
        from cvfl.serve.config import load_predict_job

        cfg, section = load_predict_job(config)
        scoring: Path | None = section.input
    else:
        from cvfl.train.config import load_job

        cfg, scoring = load_job(config), None
    sealed = outputs_sealed(cfg)
    keys = key_provider_from_config(cfg.sealing) if cfg.sealing is not None else None
    leader = cfg.role == "leader"
    typer.echo(f"job {cfg.job.id}: {cfg.role}, outputs {'sealed' if sealed else 'PLAINTEXT'}")
    summary = check_own_table(cfg.data, leader, keys, cfg.model)
    _show("training table", summary, cfg.data.columns is not None)
    if scoring is not None and scoring.is_file() and scoring != cfg.data.path:
        data = dataclasses.replace(cfg.data, path=scoring)
        found = check_own_table(data, False, keys, cfg.model)
        _show("scoring table", found, cfg.data.columns is not None)
    if cfg.psi is not None:
        typer.echo(f"alignment output: {cfg.psi.output}")
    typer.echo("ok")


def _names(names: tuple[str, ...]) -> str:
    if not names:
        return "-"
    more = f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    return ", ".join(names[:_SHOWN]) + more


def _show(what: str, summary: InputSummary, declared: bool) -> None:
    how = "[data.columns]" if declared else "as they are (no [data.columns])"
    typer.echo(f"{what}: {summary.path}: {summary.rows} rows; columns {how}")
    typer.echo(f"  numeric ({len(summary.numeric)}): {_names(summary.numeric)}")
    typer.echo(f"  categorical ({len(summary.categorical)}): {_names(summary.categorical)}")
    typer.echo(f"  ignored ({len(summary.ignored)}): {_names(summary.ignored)}")
    if summary.labels:
        typer.echo("  labels: checked")
    for warning in summary.warnings:
        typer.echo(f"  warning: {warning}")


def register(app: typer.Typer) -> None:
    """Attach ``cvfl check``."""
    app.command("check")(check)
