"""Peak memory and training throughput of the in-memory and the streamed training reader.

For each ``[data] reader`` (memory, then stream) the two parties train ``--steps`` split steps
over loopback gRPC, each party in a child process of its own; each child reports its peak
resident memory (``VmHWM`` of /proc/self/status: the whole process, Python and PyTorch
included) and the leader its training examples per second between its first and last step (the
final held-out evaluation, and loading, excluded). Prints one line per reader and, last,
``ratio stream/memory: <examples/s ratio>``.

Without ``--leader``/``--follower`` it first writes synthetic Parquet tables (``--rows`` x
``--slots`` categorical slots per party, row groups of ``--group-rows``) into a scratch folder.
``--readers stream`` runs only the streamed reader (for tables the in-memory one cannot hold).

    .venv/bin/python benchmarks/stream_memory.py [--rows 300000] [--slots 512] [--steps 200]
    .venv/bin/python benchmarks/stream_memory.py --leader l.parquet --follower f.parquet
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from cvfl.data.synth import ID_COLUMN

_CHUNK = 100_000

JOB = """
[job]
id = "stream-bench"
role = "{role}"
seed = 1
workdir = "{role}-{reader}"

[data]
path = "{data}"
reader = "{reader}"
block_rows = {block_rows}
shuffle_blocks = {shuffle_blocks}

[model]
kind = "widedeep"
slots = {slots}

[train]
batch_size = {batch}
max_steps = {steps}
eval_batch_size = 4096
threads = {threads}
checkpoint_every_s = 0

[peer]
{peer}
port_file = "port-{reader}"
security = "insecure"

[sealing]
provider = "file"
key_file = "{role}.key"
"""


def make_tables(folder: Path, rows: int, slots: int, group_rows: int) -> tuple[Path, Path]:
    """Synthetic aligned tables of both parties, written in ``group_rows``-row groups.

    Written 100,000 rows at a time (each chunk synthesised with a seed of its own, its ids
    prefixed with the chunk's number), so a table larger than memory can be made too.
    """
    from cvfl.data import SynthSpec, synthesize

    paths = folder / "leader.parquet", folder / "follower.parquet"
    writers: list[pq.ParquetWriter] = []
    for chunk, start in enumerate(range(0, rows, _CHUNK)):
        spec = SynthSpec(rows=min(_CHUNK, rows - start), slots=slots, informative=8, seed=3 + chunk)
        tables = synthesize(spec)
        for i, part in enumerate((tables.leader, tables.follower)):
            ids = pc.binary_join_element_wise(f"c{chunk}", part.column(ID_COLUMN), "-")
            table = part.set_column(0, ID_COLUMN, ids)
            if not chunk:
                writers.append(pq.ParquetWriter(paths[i], table.schema))
            writers[i].write_table(table, row_group_size=group_rows)
    for writer in writers:
        writer.close()
    return paths


def child(role: str, config: Path) -> None:
    """Train one party; print its peak RSS and, for the leader, its step throughput (JSON)."""
    from cvfl.bridge.security import PlaintextSecurity
    from cvfl.train import NoProgress, load_job, load_party, run_follower, run_leader

    class Clock(NoProgress):
        def __init__(self) -> None:
            self.times: dict[int, float] = {}

        def step(self, number: int, loss: float | None) -> None:
            self.times[number] = time.perf_counter()

    cfg = load_job(config)
    party = load_party(cfg, threads=True)
    clock = Clock()
    run = run_leader if role == "leader" else run_follower
    result = run(party, PlaintextSecurity(), clock)
    steps = sorted(clock.times)
    rate = 0.0
    if len(steps) > 1:
        elapsed = clock.times[steps[-1]] - clock.times[steps[0]]
        rate = (len(steps) - 1) * cfg.train.batch_size / elapsed
    print(
        json.dumps(
            {"role": role, "rss_mib": peak_rss_mib(), "examples_per_s": rate, "steps": result.steps}
        )
    )


def peak_rss_mib() -> float:
    """This process's peak resident set size (VmHWM) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_reader(
    folder: Path, reader: str, tables: tuple[Path, Path], args: argparse.Namespace
) -> dict[str, dict[str, float]]:
    """Train both parties with ``reader``; return each child's report."""
    threads = max(1, (os.cpu_count() or 2) // 2)
    for role, data in zip(("leader", "follower"), tables, strict=True):
        peer = 'listen = "127.0.0.1:0"' if role == "leader" else 'connect = "127.0.0.1:0"'
        text = JOB.format(
            role=role,
            reader=reader,
            data=data,
            slots=args.slots,
            batch=args.batch,
            steps=args.steps,
            peer=peer,
            threads=threads,
            block_rows=args.block_rows,
            shuffle_blocks=args.shuffle_blocks,
        )
        (folder / f"{role}-{reader}.toml").write_text(text)
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    procs = {
        role: subprocess.Popen(
            [sys.executable, __file__, "--child", role, "--config", f"{role}-{reader}.toml"],
            cwd=folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for role in ("leader", "follower")
    }
    reports = {}
    for role, proc in procs.items():
        out, err = proc.communicate(timeout=1800)
        if proc.returncode != 0:
            raise SystemExit(f"{role} ({reader}) failed:\n{err[-3000:]}")
        reports[role] = json.loads(out.strip().splitlines()[-1])
    return reports


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", choices=["leader", "follower"], help=argparse.SUPPRESS)
    parser.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--leader", type=Path, help="the leader's aligned Parquet table")
    parser.add_argument("--follower", type=Path, help="the follower's aligned Parquet table")
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--slots", type=int, default=512)
    parser.add_argument("--group-rows", type=int, default=65536)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--block-rows", type=int, default=65536)
    parser.add_argument("--shuffle-blocks", type=int, default=1)
    parser.add_argument("--readers", default="memory,stream", help="which readers to run")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.config)
        return
    with tempfile.TemporaryDirectory(prefix="cvfl-stream-bench-") as scratch:
        folder = Path(scratch)
        from cvfl.sealing import new_key_file

        for role in ("leader", "follower"):
            new_key_file(folder / f"{role}.key")
        if args.leader and args.follower:
            tables = args.leader.resolve(), args.follower.resolve()
            args.slots = len(pq.read_schema(tables[1]).names) - 1
        else:
            started = time.perf_counter()
            tables = make_tables(folder, args.rows, args.slots, args.group_rows)
            print(
                f"tables: {args.rows} rows x {args.slots} slots per party "
                f"({time.perf_counter() - started:.0f} s to write)"
            )
        rates = {}
        for reader in args.readers.split(","):
            reports = run_reader(folder, reader, tables, args)
            rates[reader] = reports["leader"]["examples_per_s"]
            print(
                f"{reader:>6}: leader peak RSS {reports['leader']['rss_mib']:.0f} MiB, "
                f"follower peak RSS {reports['follower']['rss_mib']:.0f} MiB, "
                f"{rates[reader]:.0f} examples/s over {reports['leader']['steps']} steps"
            )
        if {"memory", "stream"} <= rates.keys():
            print(f"ratio stream/memory: {rates['stream'] / rates['memory']:.3f}")


if __name__ == "__main__":
    main()
