"""``cvfl align --config FILE``: one party's private alignment (ECDH-PSI or fast mode)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from cvfl.api.alignment import align
from cvfl.errors import ConfigError, mismatch
from cvfl.roles import ROLES
from cvfl.train.config import load_job


def register(app: typer.Typer) -> None:
    """Add the ``align`` command to ``app``."""
    app.command(name="align")(align_command)


def align_command(
    config: Annotated[Path, typer.Option("--config", help="The job TOML file.")],
    role: Annotated[
        str | None,
        typer.Option("--role", help="leader or follower (default: the role in the job table)."),
    ] = None,
    insecure_plaintext: Annotated[
        bool,
        typer.Option(
            "--insecure-plaintext",
            help='Plaintext gRPC, as [peer] security = "insecure" asks (development only).',
        ),
    ] = False,
    insecure_fast_mode: Annotated[
        bool,
        typer.Option(
            "--insecure-fast-mode",
            help="Allow psi.mode = fast without real, up-to-date SGX evidence on both sides "
            "(simulated or plaintext; development only).",
        ),
    ] = False,
) -> None:
    """Find the rows both parties hold and write this party's, in the agreed order.

    ``[peer] security`` is honoured as ``cvfl train`` honours it; ``--insecure-plaintext`` is
    another way to say ``security = "insecure"``.
    """
    cfg = load_job(config)  # the whole job file, checked as train, predict and report check it
    if role is not None:
        if role not in ROLES:
            raise ConfigError(
                mismatch("job.role", "'leader' or 'follower'", repr(role)), code="config.value"
            )
        cfg = replace(cfg, job=replace(cfg.job, role=role))
    if insecure_plaintext:
        cfg = replace(cfg, peer=replace(cfg.peer, security="insecure"))
    report = align(cfg, insecure_fast_mode=insecure_fast_mode)
    psi = cfg.psi
    assert psi is not None  # align refuses a job without [psi]
    typer.echo(
        f"{report.role}: {report.own_rows} rows, peer {report.peer_items}, "
        f"intersection {report.intersection}, {report.seconds_total:.1f} s; "
        f"wrote {report.output} ({'sealed' if report.sealed else 'PLAINTEXT'}) "
        f"and {psi.report_path}"
    )
