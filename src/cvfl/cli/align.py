"""``cvfl align --config FILE``: one party's private alignment (ECDH-PSI or fast mode)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from cvfl.bridge.security import ChannelSecurity, PlaintextSecurity
from cvfl.errors import ConfigError, mismatch
from cvfl.psi import AlignJob, align
from cvfl.sealing import key_provider_from_config
from cvfl.train.channel import security_for
from cvfl.train.config import JobConfig, job_from_mapping, read_job_toml


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

    The job file is read by the same strict loader as ``cvfl train``; ``--insecure-plaintext``
    is another way to say ``[peer] security = "insecure"``.
    """
    cfg = _load(config, role)
    if cfg.psi is None:
        raise ConfigError(mismatch(f"{config}: [psi]", "a table", "nothing"), code="config.key")
    psi = replace(cfg.psi, insecure_fast_mode=True) if insecure_fast_mode else cfg.psi
    address = cfg.peer.listen if cfg.role == "leader" else cfg.peer.connect
    job = AlignJob(
        job_id=cfg.job.id,
        role=cfg.role,
        data=cfg.data.path,
        id_column=cfg.data.id_column,
        # alignment is one stream: worker 0's address when the job names one per worker
        address=address.replace("{worker}", "0"),
        seed=cfg.job.seed,
    )
    security = _security(cfg, insecure_plaintext)
    keys = key_provider_from_config(cfg.sealing) if cfg.sealing is not None else None
    report = align(job, psi, security, keys=keys)
    typer.echo(
        f"{report.role}: {report.own_rows} rows, peer {report.peer_items}, "
        f"intersection {report.intersection}, {report.seconds_total:.1f} s; "
        f"wrote {report.output} ({'sealed' if report.sealed else 'PLAINTEXT'}) "
        f"and {psi.report_path}"
    )


def _load(path: Path, role: str | None) -> JobConfig:
    """The job, as ``cvfl train`` reads it; ``role`` (from ``--role``) replaces ``[job] role``."""
    raw = dict(read_job_toml(path))
    if role is not None and isinstance(raw.get("job"), Mapping):
        raw["job"] = {**raw["job"], "role": role}
    return job_from_mapping(raw, path)


def _security(cfg: JobConfig, insecure_flag: bool) -> ChannelSecurity:
    if insecure_flag or cfg.peer.security == "insecure":
        return PlaintextSecurity()
    if cfg.attestation is None:
        raise ConfigError(
            mismatch(
                "channel security",
                'an [attestation] table, [peer] security = "insecure" or --insecure-plaintext',
                "neither",
            ),
            code="psi.no_security",
        )
    return security_for(cfg, "align")
