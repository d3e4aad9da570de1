"""``cvfl demo``: the whole job on built-in data, both parties as separate processes.

It writes the two job files it uses (``DIR/leader.toml``, ``DIR/follower.toml``) so a person can
run the same halves by hand with ``cvfl train --config``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from cvfl.cli.parties import free_port, run_parties
from cvfl.data import SynthSpec, synthesize, write_arrow
from cvfl.datasets.jobfile import peer_table
from cvfl.datasets.jobs import trust_sections
from cvfl.errors import ConfigError, mismatch
from cvfl.logs import get_logger
from cvfl.roles import ROLES

log = get_logger(__name__)
_out = Console()


@dataclass(frozen=True)
class DemoSize:
    """How big the demo job is."""

    rows: int
    slots: int
    epochs: int
    workers: int = 1


FULL = DemoSize(rows=20_000, slots=512, epochs=1)
QUICK = DemoSize(rows=4_000, slots=32, epochs=2)


def job_toml(role: str, size: DemoSize, mr_enclave: str, port: int, *, align: bool) -> str:
    """The job file of one demo party (simulated TEE; the policy opts in to it by name)."""
    psi = (
        f"""
[psi]
# Private alignment (ECDH-PSI); training then reads this sealed, aligned table.
output = "aligned/{role}.parquet.sealed"
"""
        if align
        else ""
    )
    by_hand = f"cvfl align --config {role}.toml, then " if align else ""
    steps = '["align", "train"]' if align else '["train"]'
    return f"""# cvfl demo job: {role}. Run by hand with: cvfl run --config {role}.toml (the steps
# below), or one step at a time: {by_hand}cvfl train --config {role}.toml
[job]
id = "cvfl-demo"
role = "{role}"
seed = 2024
workdir = "{role}"
steps = {steps}

[data]
path = "data/{role}.parquet"
kind = "categorical"

[model]
kind = "widedeep"
slots = {size.slots}
vocab = 101
embed_dim = 16
cut_width = 64
leader_hidden = [256, 64]

[train]
optimizer = "adam"
lr = 0.001
batch_size = 32
epochs = {size.epochs}
eval_batch_size = 2048
workers = {size.workers}
# Crash safety: a checkpoint both parties commit at least once a minute (0 = off); rerun the
# same command after a crash or Ctrl-C and both resume from it.
checkpoint_every_s = 60

{peer_table(role, port)}{psi}{trust_sections(role, mr_enclave)}"""


def prepare(workdir: Path, size: DemoSize, *, align: bool = True) -> None:
    """Write the data (unaligned: shuffled, 80% overlap, when ``align``) and both job files."""
    from cvfl.attestation import measure_code
    from cvfl.sealing import new_key_file

    overlap = 0.8 if align else 1.0
    spec = SynthSpec(rows=size.rows, slots=size.slots, overlap=overlap, shuffle=align, seed=11)
    tables = synthesize(spec)
    write_arrow(tables.leader, workdir / "data" / "leader.parquet")
    write_arrow(tables.follower, workdir / "data" / "follower.parquet")
    for role in ROLES:
        key = workdir / "keys" / f"{role}.key"
        if not key.exists():
            new_key_file(key)
    mr_enclave = measure_code().hex()
    port = free_port()
    for role in ROLES:
        text = job_toml(role, size, mr_enclave, port, align=align)
        (workdir / f"{role}.toml").write_text(text)


def demo(
    workdir: Path = typer.Option(Path("demo-run"), "--workdir", help="Folder for everything."),
    quick: bool = typer.Option(False, "--quick", help="A small job (seconds, not minutes)."),
    dataset: str = typer.Option(
        "synthetic", "--dataset", help="synthetic, or breast-cancer (scikit-learn's, MLP)."
    ),
    workers: int = typer.Option(
        1, "--workers", min=1, max=16, help="Training workers per party (synthetic data)."
    ),
) -> None:
    """Generate data, train both parties over the attested channel, print the held-out AUC."""
    from cvfl.cli.bcdemo import dataset_demo, demo_report

    if workers != 1 and dataset != "synthetic":
        raise ConfigError(
            mismatch("--workers with --dataset " + dataset, 1, workers), code="config.option"
        )
    if dataset_demo(dataset, workdir):
        return

    size = dataclasses.replace(QUICK if quick else FULL, workers=workers)
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    _out.print(
        f"[bold]cvfl demo[/]: {size.rows} rows, {size.slots} slots per party, "
        f"{size.workers} worker(s) per party, in {workdir}\n"
        "[bold yellow]simulated TEE: not a real enclave; the attestation proves nothing[/]"
    )
    prepare(workdir, size)
    _out.print("[bold]1/3[/] private alignment of the two tables (ECDH-PSI)…")
    run_parties("align", workdir)
    _out.print("[bold]2/3[/] split training over the attested channel…")
    # The demo makes its data anew, so it trains anew; its previous run goes to previous-runs/.
    # The job files it leaves resume as any job does (see "Reruns" in the README).
    run_parties("train", workdir, ["--fresh"])
    _out.print("[bold]3/3[/] quality report: leader-only and centralized, trained the same way…")
    report = demo_report(workdir)
    table = Table(title="cvfl demo: held-out quality")
    for column in ("model", "auc", "log-loss", "accuracy"):
        table.add_column(column)
    for model in report.models:
        m = model.metrics
        table.add_row(model.name, f"{m.auc:.4f}", f"{m.log_loss:.4f}", f"{m.accuracy:.4f}")
    _out.print(table)
    _out.print(f"split training: {report.examples_per_second:.0f} examples/s")
    _out.print(f"leader-only auc: {report.leader_only.metrics.auc:.4f}")
    _out.print(f"auc: {report.split.metrics.auc:.4f}")


def register(app: typer.Typer) -> None:
    """Attach ``cvfl demo``."""
    app.command("demo")(demo)
