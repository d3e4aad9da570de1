"""What the training loops do differently with N workers per party.

Worker i of a party trains block i of every step's rows (the leader assigns them); the party's
workers average their gradients through DDP and the group's sealed hook, agree on where they
resume, and gather held-out scores and losses so every worker computes the same metrics. With one
worker every function here is the identity.
"""

from __future__ import annotations

import struct

import torch

from cvfl.errors import PeerUnavailableError, ProtocolError, mismatch
from cvfl.models.export import parameter_fingerprint
from cvfl.train.party import Party


def synchronise(party: Party, start: int) -> None:
    """Refuse unless every worker resumes from ``start`` with the same parameters.

    Raises:
        ProtocolError: a worker disagrees (``workers.disagree``), naming it with both values.
    """
    if party.group is None:
        return
    party.group.agree(struct.pack(">Q", start), what="resume step")
    fingerprint = parameter_fingerprint(party.model.state_dict())
    party.group.agree(fingerprint.encode(), what="parameter fingerprint")


def fold_losses(party: Party, losses: list[float]) -> tuple[list[float], list[float]]:
    """Sum each step's loss contributions over the workers.

    Returns:
        The per-step losses of the whole party, and the list this worker keeps (the whole
        party's on worker 0, zeros elsewhere, so that a later fold counts each step once).
    """
    if party.group is None:
        return losses, losses
    mine = torch.tensor(losses, dtype=torch.float64)
    total = torch.stack(party.group.all_gather(mine, what="training losses")).sum(dim=0)
    folded = [float(v) for v in total]
    return folded, folded if party.is_root else [0.0] * len(folded)


def gather_scores(party: Party, mine: torch.Tensor) -> torch.Tensor:
    """Every worker's held-out outputs in held-out order (eval batch i is on worker i % N)."""
    if party.group is None:
        return mine
    parts = party.group.all_gather(mine, what="held-out scores")
    return interleave(parts, [len(rows) for rows in party.schedule.eval_batches()])


def interleave(parts: list[torch.Tensor], sizes: list[int]) -> torch.Tensor:
    """Undo the round-robin split of batches: batch i (``sizes[i]`` rows) is on part i % N.

    Raises:
        ProtocolError: a part holds more or fewer rows than its batches (``workers.disagree``).
    """
    pieces: list[torch.Tensor] = []
    offsets = [0] * len(parts)
    for index, size in enumerate(sizes):
        worker = index % len(parts)
        pieces.append(parts[worker][offsets[worker] : offsets[worker] + size])
        offsets[worker] += size
    for worker, part in enumerate(parts):
        if len(part) != offsets[worker]:
            raise ProtocolError(
                mismatch(f"held-out rows from worker {worker}", offsets[worker], len(part)),
                code="workers.disagree",
            )
    return torch.cat(pieces)


def restart_refusal(peer_role: str, party: Party) -> PeerUnavailableError:
    """Why a party with several workers stops when its peer's worker restarts mid-session."""
    return PeerUnavailableError(
        f"the {peer_role}'s worker {party.worker} restarted; with workers = {party.workers} the "
        "workers of a party stop and restart together: restart this party with the same job file "
        "(it resumes from the last checkpoint both parties committed)",
        code="peer.restarted",
    )
