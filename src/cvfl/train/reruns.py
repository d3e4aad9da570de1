"""Reruns: which checkpoints a job may resume, starting over, and resuming with changes on purpose.

A checkpoint is resumed only by the job that wrote it: its record's binding (see
:mod:`cvfl.train.binding`) must equal the job's. Otherwise the party refuses, naming each changed
field with its checkpoint and job values, and says how to go on: ``cvfl train --fresh`` moves
this party's previous run aside (never deletes it), ``cvfl train --resume-from STEP`` continues
that checkpoint under the new settings on purpose. Both parties take the same option.
"""

from __future__ import annotations

import time
from pathlib import Path

from cvfl.bridge.fields import differences, show
from cvfl.bridge.serde import CheckpointState
from cvfl.errors import ConfigError, mismatch
from cvfl.logs import get_logger
from cvfl.train.binding import Binding
from cvfl.train.config import JobConfig
from cvfl.train.records import Record
from cvfl.train.recovery import CheckpointStore

log = get_logger(__name__)

ASIDE = "previous-runs"
LABELS = {
    "order_fingerprint": "order_fingerprint (the aligned table's rows and order)",
    "data_digest": "data_digest (this party's training data)",
}


def resumable(
    store: CheckpointStore, binding: Binding, cfg: JobConfig
) -> tuple[CheckpointState, ...]:
    """The checkpoints this party may resume (and offers in its hello): those bound to this job.

    Raises:
        ConfigError: the newest checkpoint continues another configuration
            (``config.checkpoint_changed``) or one written by older code that recorded none
            (``config.checkpoint_unknown``); the message names each change and the way on.
    """
    records = store.records()
    if not records:
        return ()
    newest = records[-1]
    step = newest.state.step
    if newest.binding is None:
        raise ConfigError(
            f"{store.folder}: the newest checkpoint (step {step}) records no configuration "
            f"(written by an older cvfl), so it is not resumed. {_ways_on(cfg, step)}",
            code="config.checkpoint_unknown",
        )
    changes = describe_changes(newest, binding)
    if changes:
        raise ConfigError(
            f"{store.folder}: the newest checkpoint (step {step}) was written by another "
            f"configuration of this job: {'; '.join(changes)}. It is not resumed. "
            f"{_ways_on(cfg, step)}",
            code="config.checkpoint_changed",
        )
    digest = binding.digest()
    return tuple(r.state for r in records if r.binding_digest == digest)


def describe_changes(record: Record, binding: Binding) -> list[str]:
    """``lr: checkpoint 0.001, job 0.01`` for each field the job changed since ``record``."""
    if record.binding is None:
        return ["configuration: checkpoint unknown (written by an older cvfl), job this one"]
    return [
        f"{LABELS.get(name, name)}: checkpoint {show(before)}, job {show(now)}"
        for name, before, now in differences(record.binding, binding.fields)
    ]


def _ways_on(cfg: JobConfig, step: int) -> str:
    config = cfg.source
    return (
        f"To start over and keep the old run in {cfg.job.workdir / ASIDE}: "
        f"`cvfl train --config {config} --fresh`; to continue it on purpose with these changes: "
        f"`cvfl train --config {config} --resume-from {step}` (give the other party the same "
        "option)"
    )


def start_fresh(cfg: JobConfig) -> Path | None:
    """Move this party's previous run (checkpoints, export, result) aside; never delete it.

    Returns:
        The folder it went to (``<workdir>/previous-runs/<time>-<role>``), or None if there was
        nothing to move.
    """
    workdir, role = cfg.job.workdir, cfg.role
    found = [
        *sorted((workdir / "checkpoints").glob(f"{role}-step-*")),
        *sorted((workdir / "checkpoints").glob(f".{role}-step-*")),
        *sorted((workdir / "export").glob(f"{role}.*")),
        *[p for p in (workdir / f"{role}-result.json",) if p.exists()],
    ]
    if not found:
        log.info("--fresh: the %s has no previous run in %s", role, workdir)
        return None
    folder = _move_aside(found, workdir, role)
    log.warning("--fresh: moved the %s's previous run (%d files) to %s", role, len(found), folder)
    return folder


def resume_on_purpose(
    store: CheckpointStore, binding: Binding, step: int, total_steps: int, workdir: Path
) -> list[str]:
    """Continue the checkpoint of ``step`` under the job's settings (``--resume-from STEP``).

    Checkpoints newer than ``step`` are moved aside; the record of ``step`` is bound to the job.

    Returns:
        The changes accepted (empty when the checkpoint already belongs to this job).

    Raises:
        ConfigError: no checkpoint of ``step`` here, or ``step`` beyond the job's last step
            (``config.resume_from``).
    """
    records = store.records()
    chosen = next((r for r in records if r.state.step == step), None)
    if chosen is None:
        held = ", ".join(str(r.state.step) for r in records) or "none"
        raise ConfigError(
            mismatch("--resume-from", f"a step this party holds a checkpoint of ({held})", step),
            code="config.resume_from",
        )
    if step > total_steps:
        raise ConfigError(
            mismatch("--resume-from", f"at most the job's last step, {total_steps}", step)
            + "; a job shorter than its checkpoint starts over: use --fresh",
            code="config.resume_from",
        )
    newer = [path for r in records if r.state.step > step for path in store.files_of(r.state.step)]
    if newer:
        folder = _move_aside(newer, workdir, store.role)
        log.warning("--resume-from %s: moved %d newer files to %s", step, len(newer), folder)
    changes = describe_changes(chosen, binding)
    if changes:
        store.rebind(chosen, binding.fields)
        log.warning(
            "--resume-from %s: continuing that checkpoint on purpose with these changes: %s",
            step,
            "; ".join(changes),
        )
    return changes


def _move_aside(paths: list[Path], workdir: Path, role: str) -> Path:
    """Move ``paths`` (inside ``workdir``) to a new timestamped folder, keeping their layout."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = workdir / ASIDE / f"{stamp}-{role}"
    number = 1
    while folder.exists():
        number += 1
        folder = workdir / ASIDE / f"{stamp}-{role}-{number}"
    for path in paths:
        target = folder / path.relative_to(workdir)
        target.parent.mkdir(parents=True, exist_ok=True)
        path.rename(target)
    return folder
