"""``cvfl run --config FILE``: the job's ``[job] steps`` in order (the enclave's one command).

The Gramine manifest fixes the enclave's command line to ``cvfl run --config
/etc/cvfl/job.toml`` for every party and every job, so one measured image serves them all: the
job file, an unmeasured input, says what to run. Each step is exactly ``cvfl align``,
``cvfl train`` or ``cvfl predict`` with ``--config FILE`` and no other option; the first step
that fails ends the run with its own error (and so its exit code).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from cvfl.errors import ConfigError, mismatch
from cvfl.logs import get_logger

log = get_logger(__name__)


def run(
    ctx: typer.Context,
    config: Annotated[Path, typer.Option("--config", "-c", help="The party's job file (TOML).")],
) -> None:
    """Run the job file's ``[job] steps`` (default align, then train), stopping at a failure."""
    from cvfl.train import load_job
    from cvfl.workers import context_from_env

    cfg = load_job(config)
    steps = cfg.job.steps
    if "fallback" in steps and cfg.role != "leader":  # refused before any step runs
        raise ConfigError(
            mismatch('[job] steps with "fallback"', "a leader's job", cfg.role + "'s job"),
            code="config.steps",
        )
    worker = context_from_env()
    if worker is not None and worker.world_size > 1 and "align" in steps:
        # Every worker of the party runs this command; alignment must run once per party.
        raise ConfigError(
            mismatch(
                "[job] steps with RANK/WORLD_SIZE set (one worker of several)",
                'no align step (align once, with a job whose steps = ["align"])',
                repr(list(steps)),
            ),
            code="config.steps",
        )
    commands = _commands(ctx, config)
    for index, step in enumerate(steps, start=1):
        log.info("step %d of %d: cvfl %s --config %s", index, len(steps), step, config)
        commands[step]()
    log.info("all %d steps finished: %s", len(steps), ", ".join(steps))


def _commands(ctx: typer.Context, config: Path) -> dict[str, Callable[[], None]]:
    """Each step as the command function ``cvfl STEP --config FILE`` calls, defaults elsewhere."""
    from cvfl.cli.align import align_command
    from cvfl.cli.fallback import fallback
    from cvfl.cli.predict import predict
    from cvfl.cli.train import train

    return {
        "align": lambda: align_command(config=config),
        "train": lambda: train(ctx, config=config),
        "fallback": lambda: fallback(config=config),
        "predict": lambda: predict(config=config),
    }


def register(app: typer.Typer) -> None:
    """Attach ``cvfl run``."""
    app.command("run")(run)
