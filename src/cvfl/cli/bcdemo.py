"""``cvfl demo --dataset breast-cancer``: the whole flow on scikit-learn's breast-cancer table.

Both parties run as separate OS processes over the attested (simulated) channel: split training
of an MLP, two-party scoring of the held-out rows with the exported halves, then the quality
report (split vs leader-only vs centralized, loss curves, wire figures).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, TYPE_CHECKING

from rich.console import Console

from cvfl.errors import ConfigError, CvflError, mismatch

if TYPE_CHECKING:
    from cvfl.report import QualityReport

_out = Console()
DATASETS = ("synthetic", "breast-cancer")
ROLES = ("leader", "follower")


def _pump(stream: IO[str], prefix: str) -> None:
    for line in stream:
        sys.stderr.write(f"{prefix} {line}")
        sys.stderr.flush()


def run_both(command: str, folder: Path, extra: dict[str, list[str]] | None = None) -> None:
    """Run ``cvfl COMMAND --config <role>.toml [extra]`` for both parties; raise if either fails."""
    env = dict(os.environ, COLUMNS="120", PYTHONUNBUFFERED="1", OMP_WAIT_POLICY="PASSIVE")
    procs = []
    for role in ROLES:
        args = [sys.executable, "-m", "cvfl", command, "--config", str(folder / f"{role}.toml")]
        args += (extra or {}).get(role, [])
        proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        assert proc.stdout is not None
        thread = threading.Thread(target=_pump, args=(proc.stdout, f"[{role:>8}]"), daemon=True)
        thread.start()
        procs.append((role, proc, thread))
    failed = []
    for role, proc, thread in procs:
        code = proc.wait()
        thread.join(5)
        if code:
            failed.append(f"{role} exited with code {code}")
    if failed:
        raise CvflError(
            f"cvfl {command} failed: " + "; ".join(failed) + " (see the output above)",
            code="demo.failed",
        )


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def scoring_args(workdir: Path) -> dict[str, list[str]]:
    """``cvfl predict`` options per role: score the held-out rows; the leader writes scores."""
    args = {role: ["--input", str(workdir / "data" / f"{role}-holdout.parquet")] for role in ROLES}
    args["leader"] += ["--output", str(workdir / "leader" / "scores.parquet")]
    return args


def breast_cancer_demo(workdir: Path) -> None:
    """Train, score and report on the breast-cancer split in ``workdir``."""
    from cvfl.datasets.jobs import prepare_breast_cancer

    _out.print(
        f"[bold]cvfl demo[/]: breast-cancer (569 rows; leader: label + 10 features, follower: "
        f"20 features), MLP split model, in {workdir}\n"
        "[bold yellow]simulated TEE: not a real enclave; the attestation proves nothing[/]"
    )
    prepare_breast_cancer(workdir, free_port())
    _out.print("[bold]1/3[/] split training over the attested channel…")
    run_both("train", workdir, {role: ["--fresh"] for role in ROLES})  # a demo starts over
    _out.print("[bold]2/3[/] two-party scoring of the held-out rows with the exported halves…")
    run_both("predict", workdir, scoring_args(workdir))
    _out.print("[bold]3/3[/] quality report…")
    report = demo_report(workdir)
    _out.print(f"two-party scores of the held-out rows (sealed): auc {_scored_auc(workdir):.4f}")
    _out.print(f"auc: {report.split.metrics.auc:.4f}")


def _scored_auc(workdir: Path) -> float:
    """AUC of the leader's sealed scores against the held-out labels (the leader's view)."""
    import pyarrow.parquet as pq

    from cvfl.sealing import FileKeyProvider
    from cvfl.serve import SCORE_COLUMN, read_scores
    from cvfl.train.metrics import roc_auc

    keys = FileKeyProvider(workdir / "keys" / "leader.key")
    scores = read_scores(workdir / "leader" / "scores.parquet.sealed", keys)
    labels = pq.read_table(workdir / "data" / "leader-holdout.parquet").column("label")
    return roc_auc(labels.to_numpy(), scores.column(SCORE_COLUMN).to_numpy())


def dataset_demo(dataset: str, workdir: Path) -> bool:
    """Run the demo of ``dataset`` if it is not the built-in synthetic one; False otherwise."""
    if dataset not in DATASETS:
        raise ConfigError(mismatch("--dataset", " or ".join(DATASETS), dataset), code="config.demo")
    if dataset == "synthetic":
        return False
    workdir.mkdir(parents=True, exist_ok=True)
    breast_cancer_demo(workdir.resolve())
    return True


def demo_report(workdir: Path) -> QualityReport:
    """Write the quality report of a finished demo into ``workdir/report`` and print it."""
    from cvfl.report import build_report, render_text, write_report

    _out.print("quality report (leader-only and centralized trained the same way)…")
    report = build_report(workdir / "leader.toml", workdir / "follower.toml")
    files = write_report(report, workdir / "report")
    _out.print(render_text(report), highlight=False, markup=False)
    _out.print(f"report: {files.text}\nplot:   {files.png}", highlight=False)
    return report
