"""``cvfl align --config FILE``: one party's private alignment (ECDH-PSI or fast mode)."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Annotated, cast

import typer

from cvfl.attestation import AttestationConfig, check_live_channel
from cvfl.attestation.jobterms import job_terms
from cvfl.bridge.security import ChannelSecurity, PlaintextSecurity
from cvfl.configload import load_section
from cvfl.errors import ConfigError, mismatch
from cvfl.models.spec import ModelSpec
from cvfl.psi import AlignJob, PsiConfig, align
from cvfl.psi.runner import require_protection
from cvfl.ratls import security_from_config
from cvfl.sealing import KeyProvider, SealingConfig, key_provider_from_config
from cvfl.train.config import DataSection, load_job
from cvfl.train.precheck import InputSummary, check_own_table


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
    load_job(config)  # the whole job file, checked as train, predict and report check it
    doc = _load(config)
    base = config.parent
    job = AlignJob.from_toml(doc, base_dir=base, role=role)
    cfg = PsiConfig.from_toml_table(_table(doc, "psi"), base_dir=base)
    if insecure_fast_mode:
        cfg = replace(cfg, insecure_fast_mode=True)
    security = _security(doc, base, insecure_plaintext, job, cfg)
    keys = _keys(doc, base)
    require_protection(cfg, keys)
    check_data(doc, base, job.role, keys)  # the party's own table, before the peer
    report = align(job, cfg, security, keys=keys)
    typer.echo(
        f"{report.role}: {report.own_rows} rows, peer {report.peer_items}, "
        f"intersection {report.intersection}, {report.seconds_total:.1f} s; "
        f"wrote {report.output} ({'sealed' if report.sealed else 'PLAINTEXT'}) "
        f"and {cfg.report_path}"
    )


def check_data(
    doc: Mapping[str, object], base: Path, role: str, keys: KeyProvider | None
) -> InputSummary:
    """Check the party's own ``[data] path`` against ``[data]`` (and ``[model] vocab``).

    Raises:
        ConfigError: an invalid ``[data]`` or ``[model]`` section.
        DataError: naming the user's file, the column and the first bad row.
    """
    data = load_section(DataSection, "data", _table(doc, "data"), base)
    model = ModelSpec.from_toml_table(cast(Mapping[str, object], doc.get("model", {})))
    return check_own_table(data, role == "leader", keys, model)


def _load(path: Path) -> Mapping[str, object]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}", code="config.file") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}", code="config.toml") from exc


def _table(doc: Mapping[str, object], name: str) -> Mapping[str, object]:
    value = doc.get(name)
    if not isinstance(value, Mapping):
        raise ConfigError(mismatch(f"[{name}]", "a table", "nothing"), code="config.key")
    return cast(Mapping[str, object], value)


def _sealing(doc: Mapping[str, object], base: Path) -> SealingConfig | None:
    if "sealing" not in doc:
        return None
    return SealingConfig.from_toml_table(_table(doc, "sealing"), base_dir=base)


def _keys(doc: Mapping[str, object], base: Path) -> KeyProvider | None:
    sealing = _sealing(doc, base)
    return key_provider_from_config(sealing) if sealing is not None else None


def _plaintext_outputs(doc: Mapping[str, object]) -> bool:
    value = _table(doc, "job").get("plaintext_outputs", False)
    if not isinstance(value, bool):
        raise ConfigError(
            mismatch("[job] plaintext_outputs", "true or false", repr(value)), code="config.job"
        )
    return value


def _peer_security(doc: Mapping[str, object]) -> str:
    """``[peer] security``, checked as the training loader checks it (default ``ratls``)."""
    peer = doc.get("peer", {})
    value = peer.get("security", "ratls") if isinstance(peer, Mapping) else "ratls"
    if value not in ("ratls", "insecure") or not isinstance(value, str):
        raise ConfigError(
            mismatch("[peer] security", "one of 'ratls', 'insecure'", repr(value)[:80]),
            code="config.value",
        )
    return value


def _security(
    doc: Mapping[str, object], base: Path, insecure: bool, job: AlignJob, psi: PsiConfig
) -> ChannelSecurity:
    if insecure or _peer_security(doc) == "insecure":
        return PlaintextSecurity()
    if "attestation" in doc:
        attestation = AttestationConfig.from_toml_table(_table(doc, "attestation"), base_dir=base)
        check_live_channel(attestation)  # a live peer: collateral expiry must be checked
        terms = job_terms(
            job_id=job.job_id,
            role=job.role,
            command="align",
            sealing=_sealing(doc, base),
            plaintext_outputs=_plaintext_outputs(doc) and "sealing" not in doc,
            psi=psi,
            attestation=attestation,
        )
        return security_from_config(attestation, terms=terms)
    raise ConfigError(
        mismatch(
            "channel security",
            'an [attestation] table, [peer] security = "insecure" or --insecure-plaintext',
            "neither",
        ),
        code="psi.no_security",
    )
