"""Choose the bridge's channel security from a job file: attested RA-TLS unless asked otherwise."""

from __future__ import annotations

from cvfl.bridge.security import ChannelSecurity, PlaintextSecurity
from cvfl.errors import ConfigError
from cvfl.train.config import JobConfig


def security_for(cfg: JobConfig) -> ChannelSecurity:
    """RA-TLS from ``[attestation]`` (the default), or plaintext when ``security = "insecure"``.

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
    return security_from_config(cfg.attestation)
