"""Choose a command's channel security from a job file: attested RA-TLS unless asked otherwise."""

from __future__ import annotations

from cvfl.attestation.jobterms import job_terms
from cvfl.attestation.terms import JobTerms
from cvfl.bridge.security import ChannelSecurity, PlaintextSecurity
from cvfl.errors import ConfigError
from cvfl.train.config import JobConfig


def terms_for(cfg: JobConfig, command: str, *, plaintext_extra: bool = False) -> JobTerms:
    """This party's terms for ``command`` from a loaded job file (needs ``[attestation]``).

    ``plaintext_extra``: the command writes something in plaintext by name (e.g. scores).
    """
    assert cfg.attestation is not None
    return job_terms(
        job_id=cfg.job.id,
        role=cfg.role,
        command=command,
        sealing=cfg.sealing,
        plaintext_outputs=plaintext_extra or (cfg.sealing is None and cfg.job.plaintext_outputs),
        psi=cfg.psi,
        attestation=cfg.attestation,
    )


def security_for(cfg: JobConfig, command: str, *, plaintext_extra: bool = False) -> ChannelSecurity:
    """RA-TLS from ``[attestation]`` (the default), or plaintext when ``security = "insecure"``.

    Args:
        cfg: The job.
        command: What this process runs (``"train"``, ``"predict"``, ...): part of its terms.
        plaintext_extra: The command writes something in plaintext by name (e.g. scores).

    Raises:
        ConfigError: no ``[attestation]`` for RA-TLS, or a fixed ``verify_at`` without
            ``allow_fixed_time = true`` (train and predict talk to a live peer).
    """
    if cfg.peer.security == "insecure":
        return PlaintextSecurity()
    if cfg.attestation is None:
        raise ConfigError(
            f"{cfg.source}: [peer] security = 'ratls' needs an [attestation] section "
            "(provider and policy); or set security = 'insecure' for a plaintext test run",
            code="config.attestation",
        )
    from cvfl.attestation import check_live_channel
    from cvfl.ratls import security_from_config

    check_live_channel(cfg.attestation)  # a live peer: collateral expiry must be checked
    terms = terms_for(cfg, command, plaintext_extra=plaintext_extra)
    return security_from_config(cfg.attestation, terms=terms)
