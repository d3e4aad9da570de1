"""``serve``: this party's side of online scoring (``cvfl serve``), started in this process."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cvfl.api.jobs import JobLike, as_job

if TYPE_CHECKING:
    from cvfl.online.service import FollowerService, LeaderService


def serve(
    job: JobLike, *, settings: Mapping[str, Any] | None = None
) -> LeaderService | FollowerService:
    """Start serving (returns once this party is up); call ``drain()`` on the result to stop.

    Args:
        job: A loaded job or the path of its job file (whose ``[serve]`` section is read).
        settings: ``[serve]`` keys for a loaded job.

    Returns:
        The leader's service (``grpc_port``, ``http_port``, ``submit``, ``metrics``) or the
        follower's (``running``, ``error``).
    """
    from cvfl.online import ServeSection, load_serve_job, start_party
    from cvfl.train.channel import security_for

    if isinstance(job, str | os.PathLike):
        cfg, section = load_serve_job(Path(job))
    else:
        cfg = as_job(job)
        section = ServeSection.from_toml_table(dict(settings or {}), cfg.source.parent)
    return start_party(cfg, section, security_for(cfg, "serve"))
