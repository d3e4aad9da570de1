"""Label leakage with and without a defence: leak AUC of each attack and the model's held-out AUC.

Trains the same split job (same seed, same schedule) twice over a loopback bridge, once without a
defence and once with ``[privacy]`` set as asked, and prints the leader's audit (norm, cosine and
sign attacks) beside the held-out AUC of each run, then, last,
``leak auc undefended: X, defended: Y, model auc drop: Z`` (X and Y: the larger of the norm and
cosine attacks' leak AUC; Z: undefended AUC minus defended AUC).

Data: ``demo`` is the demo's Fedlearner-shaped synthetic data (``--rows``, ``--slots``; the
quick demo's size by default), ``breast-cancer`` the FATE-style split of scikit-learn's table
with the breast-cancer job's MLP. ``--sweep`` trains at several strengths of the defence instead
and draws model AUC against leak AUC as a PNG (``--plot``).

    python benchmarks/privacy.py --data breast-cancer --defence marvell --strength 4
    python benchmarks/privacy.py --data demo --defence max_norm
    python benchmarks/privacy.py --data demo --defence marvell --sweep 0.5,1,2,4,8 --plot t.png
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from cvfl.bridge.security import PlaintextSecurity
from cvfl.data import SynthSpec, synthesize, write_arrow
from cvfl.datasets import breast_cancer_split
from cvfl.datasets.jobs import HOLDOUT, SEED, BreastCancerJob
from cvfl.train import TrainResult, load_party, run_follower, run_leader
from cvfl.train.config import JobConfig, job_from_mapping

STRENGTH = {"max_norm": None, "marvell": "marvell_strength", "gaussian": "noise_multiplier"}


def prepare(folder: Path, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Write both tables; return each role's job tables (without [privacy])."""
    data = folder / "data"
    if args.data == "breast-cancer":
        split = breast_cancer_split(SEED, HOLDOUT)
        tables = {"leader": split.leader, "follower": split.follower}
        job = BreastCancerJob()
        model = {
            "kind": "mlp",
            "cut_width": job.cut_width,
            "leader_hidden": [job.hidden],
            "follower_hidden": [job.hidden],
        }
        train = {"lr": job.lr, "batch_size": job.batch_size, "epochs": args.epochs or job.epochs}
        kind, seed = "numeric", SEED
    else:
        synth = synthesize(SynthSpec(rows=args.rows, slots=args.slots, seed=11))
        tables = {"leader": synth.leader, "follower": synth.follower}
        model = {"kind": "widedeep", "slots": args.slots, "leader_hidden": [256, 64]}
        train = {"lr": 0.001, "batch_size": 32, "epochs": args.epochs or 2}
        kind, seed = "categorical", 1
    if args.lr:
        train["lr"] = args.lr
    if args.hidden_top:
        model["leader_hidden_top"] = [args.hidden_top]
    jobs = {}
    for role, table in tables.items():
        write_arrow(table, data / f"{role}.parquet")
        jobs[role] = {
            "job": {"id": "privacy-bench", "role": role, "seed": seed, "plaintext_outputs": True},
            "data": {"path": str(data / f"{role}.parquet"), "kind": kind},
            "model": model,
            "train": train | {"optimizer": args.optimizer, "threads": 1, "eval_batch_size": 2048},
            "peer": {"listen": "127.0.0.1:0", "connect": "127.0.0.1:0", "security": "insecure"},
        }
    return jobs


def train_pair(folder: Path, jobs: dict[str, dict[str, Any]], privacy: dict[str, Any]) -> Any:
    """Train both parties in this process; return the leader's result."""
    cfgs: dict[str, JobConfig] = {}
    for role, tables in jobs.items():
        raw = tables | {"privacy": privacy}
        raw["job"] = raw["job"] | {"workdir": str(folder / role)}
        cfgs[role] = job_from_mapping(raw, folder / f"{role}.toml")
    port_file = folder / "port"
    lead_cfg = dataclasses.replace(
        cfgs["leader"], peer=dataclasses.replace(cfgs["leader"].peer, port_file=port_file)
    )
    outcome: dict[str, Any] = {}

    def lead() -> None:
        try:
            outcome["leader"] = run_leader(load_party(lead_cfg, threads=True), PlaintextSecurity())
        except BaseException as exc:  # reported below
            outcome["leader"] = exc

    thread = threading.Thread(target=lead)
    thread.start()
    while not port_file.exists() and thread.is_alive():
        time.sleep(0.02)
    address = f"127.0.0.1:{port_file.read_text().strip()}"
    follow_cfg = dataclasses.replace(
        cfgs["follower"], peer=dataclasses.replace(cfgs["follower"].peer, connect=address)
    )
    run_follower(load_party(follow_cfg), PlaintextSecurity())
    thread.join()
    result = outcome["leader"]
    if not isinstance(result, TrainResult):
        raise SystemExit(f"the leader failed: {result!r}")
    return result


def figures(result: TrainResult) -> dict[str, float]:
    """Model AUC, each attack's leak AUC, the headline leak and ε (when there is one)."""
    assert result.metrics is not None and result.privacy is not None
    audit = result.privacy["audit"]
    out = {"model auc": result.metrics.auc, "seconds": result.seconds}
    out |= {attack: float(audit[attack]) for attack in ("norm", "cosine", "sign")}
    out["leak"] = max(out["norm"], out["cosine"])
    if "gaussian" in result.privacy["epsilon"]:
        out["epsilon"] = float(result.privacy["epsilon"]["gaussian"])
    return out


def settings_for(args: argparse.Namespace, strength: float | None) -> dict[str, Any]:
    """The [privacy] table of the defended run."""
    privacy: dict[str, Any] = {"defence": args.defence, "delta": args.delta}
    key = STRENGTH.get(args.defence)
    if key is not None and strength is not None:
        privacy[key] = strength
    if args.defence == "gaussian":
        privacy["clip_norm"] = args.clip
    if args.label_epsilon:
        privacy["label_epsilon"] = args.label_epsilon
    return privacy


def row(name: str, f: dict[str, float]) -> str:
    eps = f"  ε {f['epsilon']:.3g}" if "epsilon" in f else ""
    return (
        f"{name:<24} model auc {f['model auc']:.4f}  leak auc norm {f['norm']:.4f} "
        f"cosine {f['cosine']:.4f} sign {f['sign']:.4f}  {f['seconds']:.1f} s{eps}"
    )


def plot(points: list[tuple[str, dict[str, float]]], path: Path, title: str) -> None:
    """Model AUC against leak AUC, one labelled point per run."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 4.5), dpi=100)
    ax = fig.add_subplot()
    xs = [f["leak"] for _, f in points]
    ys = [f["model auc"] for _, f in points]
    ax.plot(xs, ys, "-o")
    for i, ((name, _), x, y) in enumerate(zip(points, xs, ys, strict=True)):
        offset = (4, 4) if i % 2 == 0 else (4, -12)  # neighbours' labels on opposite sides
        ax.annotate(name, (x, y), textcoords="offset points", xytext=offset, fontsize=8)
    ax.set_xlabel("leak AUC (larger of norm and cosine attacks)")
    ax.set_ylabel("model held-out AUC")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, format="png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=("demo", "breast-cancer"), default="demo")
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--slots", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=0, help="0: the job's own")
    parser.add_argument("--lr", type=float, default=0.0, help="0: the job's own")
    parser.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    parser.add_argument(
        "--defence", choices=("none", "max_norm", "marvell", "gaussian"), default="marvell"
    )
    parser.add_argument("--strength", type=float, default=None, help="marvell_strength/noise")
    parser.add_argument("--clip", type=float, default=0.05, help="gaussian clip_norm")
    parser.add_argument("--delta", type=float, default=1e-5)
    parser.add_argument("--label-epsilon", type=float, default=0.0)
    parser.add_argument("--hidden-top", type=int, default=0, help="leader_hidden_top width")
    parser.add_argument("--sweep", default="", help="comma-separated strengths to train at")
    parser.add_argument("--plot", type=Path, default=None, help="the sweep's PNG")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the loopback bridge is plaintext on purpose
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        jobs = prepare(folder, args)
        plain = figures(train_pair(folder / "none", jobs, {}))
        print(row("undefended", plain))
        strengths = [float(s) for s in args.sweep.split(",") if s] or [args.strength]
        points = [("none", plain)]
        for strength in strengths:
            privacy = settings_for(args, strength)
            got = figures(train_pair(folder / f"s{strength}", jobs, privacy))
            name = args.defence if strength is None else f"{args.defence} {strength:g}"
            if args.label_epsilon:
                name += f" + labels ε {args.label_epsilon:g}"
            print(row(name, got))
            points.append((name, got))
    if args.plot is not None:
        plot(points, args.plot, f"cvfl privacy trade-off: {args.data}, {args.defence}")
        print(f"plot: {args.plot}")
    defended = points[-1][1]
    drop = plain["model auc"] - defended["model auc"]
    print(
        f"leak auc undefended: {plain['leak']:.4f}, defended: {defended['leak']:.4f}, "
        f"model auc drop: {drop:.4f}"
    )


if __name__ == "__main__":
    main()
