"""``cvfl data synth``, ``cvfl train`` and ``cvfl model fingerprint``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from cvfl.cli import practice
from cvfl.cli.reruns import FreshOpt, Rerun, ResumeFromOpt, say_kept, sigterm_stops
from cvfl.cli.seal import GramineKeyOpt, GramineRootOpt, KeyEnvOpt, KeyFileOpt, keys_from_options
from cvfl.data import SynthSpec
from cvfl.errors import ConfigError, mismatch
from cvfl.logs import get_logger
from cvfl.sealing.keys import DEFAULT_GRAMINE_ROOT

if TYPE_CHECKING:
    from cvfl.train import JobConfig, TrainResult
    from cvfl.workers import WorkerContext

log = get_logger(__name__)
_out = Console()

data_app = typer.Typer(help="Make and inspect party tables.", no_args_is_help=True)
data_app.command("example")(practice.example)
model_app = typer.Typer(help="Inspect exported model halves.", no_args_is_help=True)


@data_app.command("synth")
def synth(
    out: Path = typer.Option(Path("data"), "--out", help="Folder for leader/follower tables."),
    rows: int = typer.Option(20_000, min=1, help="Rows in the shared population."),
    slots: int = typer.Option(512, help="Categorical slots per party (Fedlearner: 512)."),
    vocab: int = typer.Option(101, help="Values per slot."),
    overlap: float = typer.Option(1.0, help="Fraction of rows both parties hold."),
    shuffle: bool = typer.Option(False, help="Shuffle each party's rows independently."),
    fmt: str = typer.Option("parquet", "--format", help="parquet or csv."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Write two parties' synthetic tables whose label needs both parties' features.

    Written chunk by chunk (any number of rows in bounded memory; Parquet row groups of 8192
    rows); see docs/data.md for how they relate to the Python API's ``synthesize``.
    """
    from cvfl.data.synth_stream import write_synth

    if fmt not in ("parquet", "csv"):
        raise typer.BadParameter("expected parquet or csv", param_hint="--format")
    spec = SynthSpec(
        rows=rows, slots=slots, vocab=vocab, overlap=overlap, shuffle=shuffle, seed=seed
    )
    for role, (path, count, columns) in write_synth(spec, out, fmt).items():
        _out.print(f"{role}: {path} ({count} rows, {columns} columns)")


def train(
    ctx: typer.Context,
    config: Path = typer.Option(..., "--config", "-c", help="The party's job file (TOML)."),
    fresh: FreshOpt = False,
    resume_from: ResumeFromOpt = None,
) -> None:
    """Run one party of a split-training job from its job file.

    With ``[train] workers = N`` it starts N worker processes on this machine; under torchrun or
    Kubernetes (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT set) it runs as that one worker.
    A rerun resumes the newest checkpoint both parties hold, if it belongs to this job's
    configuration; otherwise it refuses and names the changes (see ``--fresh``,
    ``--resume-from``).
    """
    from cvfl.train import load_job
    from cvfl.workers import context_from_env

    cfg = load_job(config)
    worker = context_from_env()
    rerun = Rerun(fresh, resume_from)
    rerun.check(worker)
    if worker is None and cfg.train.workers > 1:
        from cvfl.workers.launch import launch_local

        rerun.prepare(cfg)  # once, before the workers read the checkpoints
        verbose = ctx.parent is not None and bool(ctx.parent.params.get("verbose"))
        with sigterm_stops():  # the launcher installs its own handler: it stops its workers
            launch_local(config, cfg.train.workers, options=["--verbose"] if verbose else [])
        return
    if worker is not None and worker.world_size != cfg.train.workers:
        raise ConfigError(
            mismatch("WORLD_SIZE (workers of this party)", cfg.train.workers, worker.world_size),
            code="config.workers",
        )
    with sigterm_stops():
        _train_worker(cfg, worker, rerun)


def _train_worker(cfg: JobConfig, worker: WorkerContext | None, rerun: Rerun) -> None:
    from cvfl.api.training import prepare_party, run_party
    from cvfl.cli.progress import TerminalProgress
    from cvfl.train import NoProgress, configure_threads
    from cvfl.train.channel import security_for

    configure_threads(cfg)  # process configuration: the command's, not the library's
    security = security_for(cfg, "train")
    rank = worker.rank if worker is not None else 0
    party = prepare_party(cfg, security, rerun, worker)
    status = "[insecure]" if "insecure" in security.name else ""
    progress = TerminalProgress(cfg.role, status=status) if rank == 0 else NoProgress()
    try:
        result = run_party(party, security, progress)
    except KeyboardInterrupt as exc:
        if rank == 0:
            say_kept(party, exc)
        raise
    if rank == 0:
        _summarise(cfg, result)


def _summarise(cfg: JobConfig, result: TrainResult) -> None:
    summary = result.write(cfg.job.workdir)
    table = Table(title=f"cvfl {cfg.role}: job {cfg.job.id}")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("steps", str(result.steps))
    if cfg.train.workers > 1:
        table.add_row("workers", str(cfg.train.workers))
    table.add_row("examples/s", f"{result.examples_per_second:.0f}")
    table.add_row("export", str(result.export))
    table.add_row("fingerprint", result.fingerprint[:16] + "…")
    if result.best_step:
        stopped = "stopped early" if result.stopped_early else "ran every epoch"
        table.add_row("early stopping", f"exported step {result.best_step} ({stopped})")
    if result.metrics:
        for key, value in result.metrics.as_dict().items():
            table.add_row(f"held-out {key}", f"{value:.4f}")
    table.add_row("summary", str(summary))
    _out.print(table)
    if result.metrics:
        _out.print(f"{result.metrics.primary_name}: {result.metrics.primary:.4f}")


@model_app.command("fingerprint")
def fingerprint(
    path: Path = typer.Argument(..., help="An exported half (.safetensors or .sealed)."),
    key_file: KeyFileOpt = None,
    key_env: KeyEnvOpt = None,
    gramine_key: GramineKeyOpt = None,
    gramine_root: GramineRootOpt = DEFAULT_GRAMINE_ROOT,
) -> None:
    """Print the SHA-256 of an exported half's parameters in canonical order.

    The value is the same whether the export is sealed or not; a sealed one needs its key.
    """
    from cvfl.models.export import load_half, parameter_fingerprint
    from cvfl.sealing import is_sealed

    keys = None
    if is_sealed(path) or key_file or key_env or gramine_key:
        keys = keys_from_options(key_file, key_env, gramine_key, gramine_root)
    half = load_half(path, keys)
    _out.print(parameter_fingerprint(half.tensors), highlight=False)


def register(app: typer.Typer) -> None:
    """Attach data, train and model commands."""
    app.add_typer(data_app, name="data")
    app.add_typer(model_app, name="model")
    app.command("train")(train)
