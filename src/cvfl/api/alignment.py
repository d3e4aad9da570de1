"""``align``: this party's private alignment (ECDH-PSI or fast mode) from its job."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from cvfl.api.jobs import JobLike, as_job
from cvfl.errors import ConfigError, mismatch

if TYPE_CHECKING:
    from cvfl.bridge.security import ChannelSecurity
    from cvfl.psi.report import AlignReport
    from cvfl.train import JobConfig


def align(job: JobLike, *, insecure_fast_mode: bool = False) -> AlignReport:
    """Find the rows both parties hold and write this party's, in the agreed order.

    Args:
        job: A loaded job (with a ``[psi]`` section) or the path of its job file.
        insecure_fast_mode: Allow ``[psi] mode = "fast"`` without real, up-to-date SGX
            evidence on both sides (development only).

    Raises:
        ConfigError: no ``[psi]`` (``config.key``) or no channel security
            (``psi.no_security``); DataError: this party's own table, named by file and row.
    """
    from cvfl.psi import AlignJob
    from cvfl.psi import align as run_align
    from cvfl.psi.runner import require_protection
    from cvfl.sealing import key_provider_from_config

    cfg = as_job(job)
    if cfg.psi is None:
        raise ConfigError(mismatch("[psi]", "a table", "nothing"), code="config.key")
    if insecure_fast_mode:
        cfg = replace(cfg, psi=replace(cfg.psi, insecure_fast_mode=True))
    assert cfg.psi is not None
    address = cfg.peer.listen if cfg.role == "leader" else cfg.peer.connect
    what = AlignJob(cfg.job.id, cfg.role, cfg.data.path, cfg.data.id_column, address, cfg.job.seed)
    security = _security(cfg)
    keys = key_provider_from_config(cfg.sealing) if cfg.sealing is not None else None
    require_protection(cfg.psi, keys)
    from cvfl.train.precheck import check_own_rows

    check_own_rows(cfg.data, cfg.role == "leader", keys, cfg.model)  # before the peer
    return run_align(what, cfg.psi, security, keys=keys)


def _security(cfg: JobConfig) -> ChannelSecurity:
    from cvfl.bridge.security import PlaintextSecurity

    if cfg.peer.security == "insecure":
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
    from cvfl.attestation import check_live_channel
    from cvfl.ratls import security_from_config
    from cvfl.train.channel import terms_for

    check_live_channel(cfg.attestation)  # a live peer: collateral expiry must be checked
    return security_from_config(cfg.attestation, terms=terms_for(cfg, "align"))
