"""Scoring throughput: two-party scoring (two processes) against the combined model (one process).

The breast-cancer job's MLP halves (exported as trained by the job's seed; throughput does not
depend on the weights) score a table of ``--rows`` rows made by repeating the 569 real rows under
new ids. In one run, for each batch size: split scoring with ``cvfl predict`` as two OS processes
over attested RA-TLS (simulated TEE) and over plaintext gRPC, and local scoring of the same rows
with the combined model in this process. Split figures are the leader's scoring loop (hello done,
until the last batch is scored; the sealed write of the scores is excluded) and the wall time of
the whole command (process start, attestation, alignment-free scoring, sealed output). Prints
rows per second per mode and, last, ``ratio split/local: <value>`` (RA-TLS, the largest batch).

    .venv/bin/python benchmarks/predict_throughput.py [--rows 200000] [--batches 256,4096]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from cvfl.attestation import measure_code
from cvfl.cli.parties import free_port
from cvfl.data.tables import write_arrow
from cvfl.datasets.breast_cancer import breast_cancer_split
from cvfl.datasets.jobs import HOLDOUT, SEED, prepare_breast_cancer
from cvfl.models.nets import CombinedModel
from cvfl.sealing import FileKeyProvider
from cvfl.serve.halves import default_export, load_scoring_half
from cvfl.train import leader as leader_loop
from cvfl.train.config import load_job
from cvfl.train.follower import cut_spec as follower_cut
from cvfl.train.party import export, load_party
from cvfl.train.result import TrainResult

ROLES = ("leader", "follower")


def big_tables(folder: Path, rows: int) -> None:
    """Repeat the real rows under fresh ids, ``rows`` in all, for both parties."""
    split = breast_cancer_split(SEED, HOLDOUT)
    index = np.arange(rows) % split.leader.num_rows
    ids = pa.array([f"r{i}" for i in range(rows)], type=pa.string())
    for role, table in (("leader", split.leader), ("follower", split.follower)):
        big = table.take(index).set_column(0, "example_id", ids)
        write_arrow(big, folder / "data" / f"{role}-big.parquet")


def export_halves(folder: Path) -> None:
    """Export both parties' halves as initialised from the job's seed."""
    for role in ROLES:
        party = load_party(load_job(folder / f"{role}.toml"))
        cut = leader_loop.cut_spec(party) if role == "leader" else follower_cut(party)
        export(party, TrainResult(role=role, steps=0, seconds=0.0), cut)


def predict_files(folder: Path, batch: int, security: str) -> None:
    """``<role>-predict.toml``: the job file plus a [predict] section."""
    port = free_port()
    measured = measure_code().hex()  # the shared checkout may have changed since prepare
    for role in ROLES:
        text = (folder / f"{role}.toml").read_text()
        text = re.sub(r'mr_enclave = "[0-9a-f]+"', f'mr_enclave = "{measured}"', text)
        text = text.replace('security = "ratls"', f'security = "{security}"')
        text = re.sub(r"127\.0\.0\.1:\d+", f"127.0.0.1:{port}", text)
        out = 'output = "leader/scores.parquet"\n' if role == "leader" else ""
        text += f'\n[predict]\ninput = "data/{role}-big.parquet"\n{out}batch_size = {batch}\n'
        (folder / f"{role}-predict.toml").write_text(text)


def split_run(folder: Path, batch: int, security: str) -> tuple[float, float, int]:
    """Rows/s of the leader's scoring loop, rows/s of the whole command, wire bytes per row."""
    predict_files(folder, batch, security)
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "cvfl", "predict", "--config", f"{role}-predict.toml"],
            cwd=folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        for role in ROLES
    ]
    codes = [p.poll() for p in procs]
    while None in codes and not any(codes):  # until both end or one fails
        time.sleep(0.05)
        codes = [p.poll() for p in procs]
    wall = time.perf_counter() - started
    for p in procs:
        if p.poll() is None:
            p.terminate()  # its peer failed
    outs = [p.communicate(timeout=60)[0] for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit("\n".join(outs))
    result = json.loads((folder / "leader" / "leader-predict.json").read_text())
    rows = int(result["rows"])
    return rows / result["seconds"], rows / wall, result["bytes_received"] // rows


def local_run(folder: Path, batch: int) -> float:
    """Rows/s of the combined model scoring the same rows in one process."""
    halves, feats = [], []
    for role in ("follower", "leader"):
        cfg = load_job(folder / f"{role}.toml")
        keys = FileKeyProvider(folder / "keys" / f"{role}.key")
        halves.append(load_scoring_half(default_export(cfg), cfg, keys).module)
        table = pq.read_table(folder / "data" / f"{role}-big.parquet")
        names = [n for n in table.column_names if n not in ("example_id", "label")]
        feats.append(np.column_stack([table.column(n).to_numpy() for n in names]))
    model = CombinedModel(halves[0], halves[1]).eval()
    rows = len(feats[0])
    started = time.perf_counter()
    with torch.no_grad():
        for start in range(0, rows, batch):
            end = min(start + batch, rows)
            logits = model(
                torch.from_numpy(feats[1][start:end]), torch.from_numpy(feats[0][start:end])
            )
            torch.softmax(logits.double(), dim=1)
    return rows / (time.perf_counter() - started)


def main() -> None:
    """Run every mode for every batch size and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batches", default="256,4096")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="cvfl-bench-predict-") as tmp:
        folder = Path(tmp)
        prepare_breast_cancer(folder, free_port())
        big_tables(folder, args.rows)
        export_halves(folder)
        print(f"scoring {args.rows} rows (breast-cancer MLP halves, cut width 8), rows/s:")
        print(
            f"{'batch':>6} {'local':>10} {'split ratls':>12} {'(wall)':>10} "
            f"{'split plain':>12} {'(wall)':>10} {'B/row':>6} {'ratls/local':>12}"
        )
        ratio = 0.0
        for batch in (int(b) for b in args.batches.split(",")):
            local = local_run(folder, batch)
            ratls, ratls_wall, per_row = split_run(folder, batch, "ratls")
            plain, plain_wall, _ = split_run(folder, batch, "insecure")
            ratio = ratls / local
            print(
                f"{batch:>6} {local:>10.0f} {ratls:>12.0f} {ratls_wall:>10.0f} "
                f"{plain:>12.0f} {plain_wall:>10.0f} {per_row:>6} {ratio:>12.3f}"
            )
        print(f"ratio split/local: {ratio:.3f}")


if __name__ == "__main__":
    main()
