"""The leader-only fallback model: the leader's half trained on its own, for ``cvfl serve``.

When the follower cannot score an id (it does not hold the row, or it is unreachable), the
online service can still answer with a model that needs only the leader's features:
``[serve] fallback = "leader_only"``. That model is the leader's half trained with zeros in
place of the follower's activations, on the leader's own training table (the aligned table
with ``[psi]``), with the job's own schedule, optimiser, seed and early stopping: the same
model ``cvfl report`` calls "leader only". It needs nothing from the follower, so the leader
trains it alone (``cvfl fallback --config leader.toml``, or ``"fallback"`` in ``[job] steps``).

It is exported beside the split half as ``export/leader-only.safetensors`` (sealed as the job
says), its spec declaring ``variant = "leader-only"``: the split half's loader refuses it and
the fallback loader refuses the split half.
"""

from __future__ import annotations

from pathlib import Path

from cvfl.errors import ConfigError, mismatch
from cvfl.logs import get_logger
from cvfl.sealing.artifacts import SUFFIX
from cvfl.train.config import JobConfig, outputs_sealed
from cvfl.train.party import Progress, export, load_party
from cvfl.train.result import TrainResult

log = get_logger(__name__)

VARIANT = "leader-only"


def fallback_export(cfg: JobConfig) -> Path:
    """``<workdir>/export/leader-only.safetensors``, ``.sealed`` when the job seals outputs."""
    base = cfg.job.workdir / "export" / f"{VARIANT}.safetensors"
    return base.with_name(base.name + SUFFIX) if outputs_sealed(cfg) else base


def train_fallback(cfg: JobConfig, progress: Progress | None = None) -> TrainResult:
    """Train the leader-only model of ``cfg``'s job and export it; return its result.

    Raises:
        ConfigError: ``cfg`` is not the leader's job (``config.fallback``).
        DataError: the training table is missing or invalid.
    """
    from cvfl.train.leader import cut_spec
    from cvfl.train.local import train_leader_only

    if cfg.role != "leader":
        raise ConfigError(
            mismatch("cvfl fallback: [job] role", "leader (it has the labels)", cfg.role),
            code="config.fallback",
        )
    party = load_party(cfg)  # process settings (threads) are the caller's: the CLI sets them
    log.info("fallback: training the leader-only model (%d steps)", party.schedule.total_steps)
    result = train_leader_only(party, progress)
    result.role = "leader-only"
    export(party, result, cut_spec(party), variant=VARIANT)
    result.write(cfg.job.workdir)
    return result
