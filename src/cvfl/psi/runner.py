"""One party's whole alignment: checks common to both modes, then ECDH-PSI or fast mode."""

from __future__ import annotations

from typing import Unpack

from cvfl.bridge.security import ChannelSecurity
from cvfl.data.tables import table_format
from cvfl.errors import ConfigError, mismatch
from cvfl.psi.config import AlignJob, AlignOptions, PsiConfig
from cvfl.psi.ecdh.run import align_ecdh
from cvfl.psi.fast.run import align_fast
from cvfl.psi.report import AlignReport
from cvfl.sealing import KeyProvider


def require_protection(cfg: PsiConfig, keys: KeyProvider | None) -> None:
    """Refuse an aligned table that would be neither sealed nor asked for in plaintext.

    Raises:
        ConfigError: ``psi.unsealed_output``.
    """
    if keys is None and not cfg.plaintext_output:
        raise ConfigError(
            mismatch(
                "psi output protection", "a [sealing] key or psi.plaintext_output = true", "neither"
            ),
            code="psi.unsealed_output",
        )


def align(
    job: AlignJob, cfg: PsiConfig, security: ChannelSecurity, **options: Unpack[AlignOptions]
) -> AlignReport:
    """Align this party's table with the peer's and write its rows of the intersection.

    The leader serves on ``job.address`` (``on_bound`` receives the bound port); the follower
    connects to it. The output is sealed under ``keys`` with purpose ``aligned-table``; without
    keys, ``cfg.plaintext_output`` must be set. ``options``: :class:`AlignOptions`.

    Raises:
        ConfigError: no key provider and plaintext output not asked for.
        DataError: the input table cannot be read.
        AlignmentError: duplicate ids, a misbehaving or vanished peer, a timeout.
        PeerUnavailableError: the peer never showed up.
    """
    require_protection(cfg, options["keys"])
    table_format(job.data)
    run_mode = align_fast if cfg.mode == "fast" else align_ecdh
    return run_mode(job, cfg, security, **options)


def run_leader(
    job: AlignJob, cfg: PsiConfig, security: ChannelSecurity, **options: Unpack[AlignOptions]
) -> AlignReport:
    """Run :func:`align` as the leader (checks the role)."""
    _role(job, "leader")
    return align(job, cfg, security, **options)


def run_follower(
    job: AlignJob, cfg: PsiConfig, security: ChannelSecurity, *, keys: KeyProvider | None
) -> AlignReport:
    """Run :func:`align` as the follower (checks the role)."""
    _role(job, "follower")
    return align(job, cfg, security, keys=keys)


def _role(job: AlignJob, role: str) -> None:
    if job.role != role:
        raise ConfigError(mismatch("job.role", role, job.role), code="config.value")
