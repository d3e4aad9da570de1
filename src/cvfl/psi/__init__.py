"""Private alignment: ECDH-PSI (X25519 by default, or ristretto255) on example ids, over gRPC.

Each party hashes its ids to the group, blinds them with a fresh secret scalar, swaps them with
the peer, blinds the peer's once more, and intersects the doubly-blinded values. Both parties
then write their rows of the intersection in ascending doubly-blinded order. The opt-in fast mode
(``psi.mode = "fast"``, attested enclaves only) swaps HMAC-SHA256 keyed hashes under a key agreed
inside the attested session instead. See docs/psi.md.
"""

from cvfl.psi.config import AlignJob, PsiConfig
from cvfl.psi.output import PURPOSE, read_aligned
from cvfl.psi.report import AlignReport
from cvfl.psi.runner import align, run_follower, run_leader

__all__ = [
    "PURPOSE",
    "AlignJob",
    "AlignReport",
    "PsiConfig",
    "align",
    "read_aligned",
    "run_follower",
    "run_leader",
]
