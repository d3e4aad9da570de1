"""Choose the bridge's channel security from a job file: attested RA-TLS unless asked otherwise."""

from __future__ import annotations

from cvfl.bridge.security import ChannelSecurity, PlaintextSecurity
from cvfl.errors import ConfigError
from cvfl.train.config import JobConfig


def security_for(cfg: JobConfig) -> ChannelSecurity:
    """RA-TLS from ``[attestation]`` (the default), or plaintext when ``security = "insecure"``."""
    if cfg.peer.security == "insecure":
        return PlaintextSecurity()
    if cfg.attestation is None:
        raise ConfigError(
            f"{cfg.source}: [peer] security = 'ratls' needs an [attestation] section "
            "(provider and policy); or set security = 'insecure' for a plaintext test run",
            code="config.attestation",
        )
    from cvfl.ratls import security_from_config

    return security_from_config(cfg.attestation)
