"""Online two-party scoring (``cvfl serve``): a long-running leader and follower.

The leader takes scoring requests (gRPC ``cvfl.v1.Scoring`` and HTTP/JSON), gathers them in
micro-batches, asks the follower for the batch's cut-layer activations over the attested bridge
and answers with the scores; the follower sees only example ids. See docs/serving.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cvfl.bridge.security import ChannelSecurity
from cvfl.online.config import ServeSection, load_serve_job
from cvfl.train.config import JobConfig

if TYPE_CHECKING:
    from cvfl.online.service import FollowerService, LeaderService

__all__ = ["ServeSection", "load_serve_job", "start_from_file", "start_party"]


def start_party(
    cfg: JobConfig, section: ServeSection, security: ChannelSecurity
) -> LeaderService | FollowerService:
    """Load this party's half and table and start serving (returns once it is up).

    Process-wide PyTorch settings are left alone (``cvfl serve`` applies ``[serve] threads``).
    """
    from cvfl.online.party import load_serving_party
    from cvfl.online.service import FollowerService, LeaderService

    party = load_serving_party(cfg, section)
    if cfg.role == "leader":
        return LeaderService(party, security)
    return FollowerService(party, security)
