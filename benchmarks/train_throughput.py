"""Training throughput: split (two processes over loopback) against centralized (one process).

Fedlearner's wide&deep shape (512 slots per party, 101 x 16 embeddings), batch 256, the same steps
in each mode, in one run, each mode given the whole machine (one mode at a time, interleaved over
the repeats; medians). Modes: centralized (one process, the combined model); split over plaintext
gRPC; split over attested RA-TLS (the default); split over RA-TLS without the reliable session
(no acknowledgements, resending or heartbeats). Prints examples per second per mode, the ratios
ratls/plaintext and reliable/direct, and, last, ``ratio split/centralized: <value>`` (RA-TLS,
reliable: what a user gets by default; the median over the repeats of each split run's figure
against the centralized run beside it). Beside them, on a machine shared by both parties: the
centralized run on one thread and the ceiling of split/centralized it implies (every core busy
with single-threaded work, no messaging at all), each half's training step timed alone, and a
split run with one thread per party whose CPU time per step (both processes, every thread:
messaging included) bounds split/centralized on these cores however the work is scheduled.

With ``--workers N`` it instead compares 1 and N workers per party (RA-TLS, 2N training processes
for N workers; the same global batch, each worker training 1/N of it) and prints, last,
``ratio N workers/1 worker: <value>``.

With ``--privacy DEFENCE`` it instead compares RA-TLS split training without and with that
``[privacy] defence`` (the leakage audit runs in both) and prints, last,
``ratio privacy/none: <value>``.

    .venv/bin/python benchmarks/train_throughput.py [--steps 300] [--batch 256] [--repeats 5]
    .venv/bin/python benchmarks/train_throughput.py --workers 2
    .venv/bin/python benchmarks/train_throughput.py --privacy marvell
    .venv/bin/python benchmarks/train_throughput.py --readers
    .venv/bin/python benchmarks/train_throughput.py --rtt-ms 0,10,50 --mbit 100,1000 \
        --wire float32,bfloat16
    .venv/bin/python benchmarks/train_throughput.py --rtt-ms 0,50 --mbit 100 --staleness 4

With ``--readers`` it instead compares RA-TLS split training reading the tables in memory and
streamed (``[data] reader = "stream"``), and prints, last, ``ratio stream/memory: <value>``.
The tables are written in row groups of 65,536 rows, as ``cvfl align`` writes aligned tables.

With ``--rtt-ms``/``--mbit`` it instead compares RA-TLS split training on loopback with the same
job through an emulated WAN link (``benchmarks/wan.py``: a delay-and-rate proxy between the
parties) for each round trip and rate, each ``--wire`` dtype a mode of its own, and prints,
last, ``ratio exact WIRE wan/loopback at R ms, M Mbit/s: <value>`` for the last link and dtype.
With ``--staleness K`` each dtype also runs pipelined (``[train] staleness = K``), centralized
training runs on loopback beside them, and the last line is
``ratio pipelined wan/loopback: <value>`` (the last link and dtype).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pyarrow.parquet as pq
import torch
from torch import nn
from torch.nn.functional import cross_entropy
from wan import WanProxy  # benchmarks/wan.py, beside this file

from cvfl.data import SynthSpec, synthesize
from cvfl.models import CombinedModel, ModelSpec, build_follower, build_leader
from cvfl.sealing import new_key_file
from cvfl.train import load_job, load_party, train_centralized
from cvfl.train.party import set_threads

JOB = """
[job]
id = "bench"
role = "{role}"
seed = 1
workdir = "{role}-{mode}"

[data]
path = "data/{role}.parquet"
reader = "{reader}"

[model]
kind = "widedeep"
slots = {slots}

[train]
optimizer = "{optimizer}"
lr = {lr}
batch_size = {batch}
max_steps = {steps}
eval_batch_size = 4096
threads = {threads}
workers = {workers}
wire_dtype = "{wire}"
staleness = {staleness}

[peer]
{peer}
port_file = "{port_file}"
security = "{security}"
reliable = {reliable}

[sealing]
provider = "file"
key_file = "{role}.key"

[attestation]
provider = "simulated"

[attestation.policy]
# A benchmark, not a security test: any simulated identity (the checks still run in full).
allow_simulated = true
allow_any_identity = true
"""


def write_jobs(
    folder: Path,
    mode: str,
    args: argparse.Namespace,
    workers: int = 1,
    privacy: str = "",
    *,
    wan: bool = False,
    wire: str = "float32",
    staleness: int = 0,
    reader: str = "memory",
    threads: int = 0,
) -> None:
    security = "insecure" if mode == "plaintext" else "ratls"
    reliable = "false" if mode == "direct" else "true"
    for role in ("leader", "follower"):
        peer = 'listen = "127.0.0.1:0"' if role == "leader" else 'connect = "127.0.0.1:0"'
        text = JOB.format(
            role=role,
            mode=mode,
            slots=args.slots,
            optimizer=args.optimizer,
            lr=args.lr,
            batch=args.batch,
            steps=args.steps,
            peer=peer,
            security=security,
            reliable=reliable,
            workers=workers,
            wire=wire,
            staleness=staleness,
            reader=reader,
            threads=threads,
            # Over the emulated WAN the follower dials the proxy, whose port the benchmark
            # writes to a file of its own once the leader has written its port.
            port_file=f"port-{mode}.wan" if wan and role == "follower" else f"port-{mode}",
        )
        if privacy:
            text += f'\n[privacy]\ndefence = "{privacy}"\n'
        (folder / f"{role}-{mode}.toml").write_text(text)


def run_split(folder: Path, mode: str, link: tuple[float, float] | None = None) -> float:
    """Train both parties of ``mode``; over ``link`` (rtt ms, Mbit/s) through a WAN proxy."""
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "cvfl", "train", "--config", f"{role}-{mode}.toml"],
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for role in ("leader", "follower")
    ]
    proxy = _start_proxy(folder, mode, link) if link is not None else None
    try:
        for proc in procs:
            _, err = proc.communicate(timeout=1800)
            if proc.returncode != 0:
                raise SystemExit(f"split run ({mode}) failed:\n{err[-3000:]}")
    finally:
        if proxy is not None:
            proxy.close()
    result = json.loads((folder / f"leader-{mode}" / "leader-result.json").read_text())
    return float(result["examples_per_second"])


def _start_proxy(folder: Path, mode: str, link: tuple[float, float]) -> WanProxy:
    """Wait for the leader's port, put a WAN proxy in front of it, tell the follower its port."""
    port_file = folder / f"port-{mode}"
    deadline = time.monotonic() + 120
    while not port_file.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"the leader of {mode} wrote no port file")
        time.sleep(0.02)
    proxy = WanProxy(int(port_file.read_text().strip()), *link)
    scratch = folder / f"port-{mode}.wan.tmp"
    scratch.write_text(f"{proxy.port}\n")
    scratch.replace(folder / f"port-{mode}.wan")
    return proxy


def cpu_per_step(folder: Path, mode: str) -> tuple[float, float]:
    """Each party's CPU seconds per training step in ``mode``'s last run (its result files)."""
    shares = []
    for role in ("leader", "follower"):
        result = json.loads((folder / f"{role}-{mode}" / f"{role}-result.json").read_text())
        shares.append(float(result["cpu_seconds"]) / max(int(result["steps"]), 1))
    return shares[0], shares[1]


def run_centralized(folder: Path, threads: int = 0) -> float:
    """Centralized training on every core (``threads`` 0) or on ``threads`` intra-op threads."""
    leader = load_party(load_job(folder / "leader-plaintext.toml"), threads=True)
    follower = load_party(load_job(folder / "follower-plaintext.toml"))
    if threads:
        set_threads(threads)
    try:
        _, result = train_centralized(leader, follower)
    finally:
        set_threads(0)  # every core again
    return result.examples_per_second


def step_times(args: argparse.Namespace, threads: int, repeats: int = 30) -> dict[str, float]:
    """Seconds per training step of the combined model and of each half alone, on ``threads``."""
    spec = ModelSpec(slots=args.slots)
    set_threads(threads)
    follower, leader = build_follower(spec, args.slots, seed=1), build_leader(spec, args.slots, 1)
    combined = CombinedModel(follower, leader)
    codes = torch.randint(0, spec.vocab, (args.batch, args.slots))
    labels = torch.randint(0, 2, (args.batch,))
    act = torch.randn(args.batch, spec.cut_width)
    losses: dict[str, tuple[nn.Module, Callable[[], torch.Tensor]]] = {
        "centralized": (combined, lambda: cross_entropy(combined(codes, codes), labels)),
        "leader": (leader, lambda: cross_entropy(leader(codes, act), labels)),
        # the follower's backward starts from a gradient on its activations (act stands in)
        "follower": (follower, lambda: torch.sum(follower(codes) * act)),
    }
    seconds = {}
    for name, (model, loss_of) in losses.items():
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            optimizer.zero_grad()
            loss_of().backward()
            optimizer.step()
            times.append(time.perf_counter() - started)
        seconds[name] = statistics.median(times)
    set_threads(0)  # every core again
    return seconds


def half_steps(args: argparse.Namespace) -> None:
    """Print the combined model's and each half's training step, timed alone, on 1 and 2 threads.

    Shows how the work divides between the parties (the heavier half bounds a split step).
    """
    one, two = step_times(args, 1), step_times(args, 2)
    print(
        "one training step alone, ms (1 thread / 2 threads): "
        + ", ".join(f"{k} {one[k] * 1e3:.1f} / {two[k] * 1e3:.1f}" for k in one)
    )


def messaging_ceiling(
    args: argparse.Namespace,
    figures: dict[str, list[float]],
    cpu: list[tuple[float, float]],
    cores: int,
) -> None:
    """Print what both parties' CPU time on one thread each allows, messaging included.

    However the work is scheduled, a split step cannot take less than both parties' CPU time
    for it shared out over the cores: ``cores * batch / (leader + follower)`` examples/s.
    """
    leader = statistics.median(c[0] for c in cpu)
    follower = statistics.median(c[1] for c in cpu)
    print(
        f"split, RA-TLS, 1 thread per party:  {statistics.median(figures['single']):8.0f} "
        f"examples/s; CPU per step: leader {leader * 1e3:.1f} ms, follower "
        f"{follower * 1e3:.1f} ms (leader's share {leader / (leader + follower):.2f})"
    )
    bounds = [
        cores * args.batch / (lead + follow) / central
        for (lead, follow), central in zip(cpu, figures["centralized"], strict=True)
    ]
    print(
        f"ceiling of split/centralized from that CPU time ({cores} cores all busy, messaging "
        f"included): {statistics.median(bounds):.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--slots", type=int, default=512)
    parser.add_argument("--optimizer", default="sgd")
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1, help="compare 1 and N workers/party")
    parser.add_argument("--privacy", default="", help="compare without and with this defence")
    parser.add_argument("--rtt-ms", default="", help="WAN round trips to emulate, e.g. 0,10,50")
    parser.add_argument("--mbit", default="", help="WAN rates in Mbit/s, e.g. 100,1000")
    parser.add_argument("--wire", default="float32", help="wire dtypes to compare on links")
    parser.add_argument(
        "--staleness", type=int, default=0, help="on links: also run pipelined with this k"
    )
    parser.add_argument(
        "--readers", action="store_true", help="compare [data] reader memory and stream"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rows = int(args.steps * args.batch / 0.8) + args.batch
        tables = synthesize(SynthSpec(rows=rows, slots=args.slots, seed=3))
        for role, table in (("leader", tables.leader), ("follower", tables.follower)):
            # in row groups of 65,536 rows, as cvfl align writes its aligned tables
            (folder / "data").mkdir(exist_ok=True)
            pq.write_table(table, folder / "data" / f"{role}.parquet", row_group_size=65536)
        for role in ("leader", "follower"):
            new_key_file(folder / f"{role}.key")
        if args.workers > 1:
            compare_workers(folder, args)
            return
        if args.privacy:
            compare_privacy(folder, args)
            return
        if args.rtt_ms or args.mbit:
            compare_links(folder, args)
            return
        if args.readers:
            compare_readers(folder, args)
            return
        modes = ("plaintext", "ratls", "direct", "single")
        for mode in modes:
            write_jobs(folder, mode, args, threads=1 if mode == "single" else 0)
        figures: dict[str, list[float]] = {"centralized": [], "one thread": []}
        figures |= {m: [] for m in modes}
        cpu: list[tuple[float, float]] = []
        for _ in range(args.repeats):  # interleaved, so drift on a shared machine hits all
            figures["centralized"].append(run_centralized(folder))
            figures["one thread"].append(run_centralized(folder, threads=1))
            for mode in modes:
                figures[mode].append(run_split(folder, mode))
            cpu.append(cpu_per_step(folder, "single"))
    median = {k: statistics.median(v) for k, v in figures.items()}
    cores = len(os.sched_getaffinity(0))
    print(f"steps {args.steps} x batch {args.batch}, {args.slots} slots, {args.optimizer}")
    print(f"centralized (1 process):            {median['centralized']:8.0f} examples/s")
    print(f"centralized, 1 thread:              {median['one thread']:8.0f} examples/s")
    # Two parties can at best keep every core busy with single-threaded work and no messaging:
    # that is the ceiling of split training (exact or pipelined) against centralized here.
    pairs = zip(figures["one thread"], figures["centralized"], strict=True)
    ceiling = [cores * one / central for one, central in pairs]
    print(
        f"ceiling of split/centralized on {cores} cores ({cores} x 1-thread / centralized): "
        f"{statistics.median(ceiling):.3f}"
    )
    half_steps(args)
    messaging_ceiling(args, figures, cpu, cores)
    print(f"split, plaintext (2 processes):     {median['plaintext']:8.0f} examples/s")
    print(f"split, attested RA-TLS (simulated): {median['ratls']:8.0f} examples/s")
    print(f"split, RA-TLS, no acks/heartbeats:  {median['direct']:8.0f} examples/s")
    print(f"ratio ratls/plaintext: {median['ratls'] / median['plaintext']:.3f}")
    print(f"ratio reliable/direct (heartbeats and acks): {median['ratls'] / median['direct']:.3f}")
    paired = [r / c for r, c in zip(figures["ratls"], figures["centralized"], strict=True)]
    print(f"split/centralized of the medians: {median['ratls'] / median['centralized']:.3f}")
    print(
        f"split/centralized per repeat (each split run against the centralized run beside it): "
        f"range {min(paired):.3f}-{max(paired):.3f}"
    )
    # The headline is the median of the paired ratios: drift on a shared machine moves both
    # runs of a pair alike, so it cancels there, not in the ratio of two separate medians.
    print(f"ratio split/centralized: {statistics.median(paired):.3f}")


def compare_workers(folder: Path, args: argparse.Namespace) -> None:
    """1 worker against ``args.workers`` workers per party, interleaved repeats, medians."""
    many = f"workers{args.workers}"
    write_jobs(folder, "ratls", args)
    write_jobs(folder, many, args, workers=args.workers)
    figures: dict[str, list[float]] = {"ratls": [], many: []}
    for _ in range(args.repeats):
        for mode, runs in figures.items():
            runs.append(run_split(folder, mode))
    one, n = (statistics.median(figures[m]) for m in ("ratls", many))
    print(f"steps {args.steps} x batch {args.batch}, {args.slots} slots, {args.optimizer}, RA-TLS")
    print(f"1 worker per party (2 processes):   {one:8.0f} examples/s")
    print(f"{args.workers} workers per party ({2 * args.workers} processes):  {n:8.0f} examples/s")
    print(f"ratio {args.workers} workers/1 worker: {n / one:.3f}")


def compare_privacy(folder: Path, args: argparse.Namespace) -> None:
    """RA-TLS without and with ``[privacy] defence = args.privacy``, interleaved, medians."""
    write_jobs(folder, "ratls", args)
    write_jobs(folder, "private", args, privacy=args.privacy)
    figures: dict[str, list[float]] = {"ratls": [], "private": []}
    for _ in range(args.repeats):
        for mode, runs in figures.items():
            runs.append(run_split(folder, mode))
    plain, private = (statistics.median(figures[m]) for m in ("ratls", "private"))
    print(f"steps {args.steps} x batch {args.batch}, {args.slots} slots, {args.optimizer}, RA-TLS")
    print(f"no defence:                {plain:8.0f} examples/s")
    print(f"[privacy] {args.privacy + ':':<15} {private:8.0f} examples/s")
    print(f"ratio privacy/none: {private / plain:.3f}")


def compare_readers(folder: Path, args: argparse.Namespace) -> None:
    """RA-TLS split training with the in-memory and the streamed reader, interleaved, medians."""
    write_jobs(folder, "ratls", args)
    write_jobs(folder, "stream", args, reader="stream")
    figures: dict[str, list[float]] = {"ratls": [], "stream": []}
    for _ in range(args.repeats):
        for mode, runs in figures.items():
            runs.append(run_split(folder, mode))
    memory, stream = (statistics.median(figures[m]) for m in ("ratls", "stream"))
    paired = [s / m for s, m in zip(figures["stream"], figures["ratls"], strict=True)]
    print(f"steps {args.steps} x batch {args.batch}, {args.slots} slots, {args.optimizer}, RA-TLS")
    print(f"[data] reader = memory:  {memory:8.0f} examples/s")
    print(f"[data] reader = stream:  {stream:8.0f} examples/s")
    print(f"paired stream/memory per repeat: range {min(paired):.3f}-{max(paired):.3f}")
    print(f"ratio stream/memory: {statistics.median(paired):.3f}")


def _numbers(text: str, default: str) -> list[float]:
    return [float(part) for part in (text or default).split(",")]


def compare_links(folder: Path, args: argparse.Namespace) -> None:
    """RA-TLS split training on loopback and over each emulated WAN link, interleaved, medians.

    Each ``--wire`` dtype is a mode, exact and (with ``--staleness K``) pipelined; each mode's
    loopback run is its own baseline. With ``--staleness`` centralized training runs too.
    """
    links = [(r, m) for r in _numbers(args.rtt_ms, "0,10,50") for m in _numbers(args.mbit, "100")]
    wires = args.wire.split(",")
    kinds = [("exact", 0)] + (
        [(f"pipelined k={args.staleness}", args.staleness)] * bool(args.staleness)
    )
    variants = [(kind, wire, k) for wire in wires for kind, k in kinds]
    for _kind, wire, k in variants:
        tag = f"{wire}-{k}"
        write_jobs(folder, f"lo-{tag}", args, wire=wire, staleness=k)
        write_jobs(folder, f"wan-{tag}", args, wan=True, wire=wire, staleness=k)
    if args.staleness:
        write_jobs(folder, "plaintext", args)  # the centralized run reads its tables
    runs: dict[tuple[str, str, tuple[float, float] | None], list[float]] = {}
    central: list[float] = []
    for _ in range(args.repeats):
        if args.staleness:
            central.append(run_centralized(folder))
        for kind, wire, k in variants:
            tag = f"{wire}-{k}"
            runs.setdefault((kind, wire, None), []).append(run_split(folder, f"lo-{tag}"))
            for link in links:
                figure = run_split(folder, f"wan-{tag}", link)
                runs.setdefault((kind, wire, link), []).append(figure)
    median = {key: statistics.median(values) for key, values in runs.items()}
    print(f"steps {args.steps} x batch {args.batch}, {args.slots} slots, {args.optimizer}, RA-TLS")
    if central:
        print(f"centralized (1 process, loopback) {statistics.median(central):10.0f} examples/s")
    print("mode, wire                  link                      examples/s   of its loopback")
    for (kind, wire, link), figure in median.items():
        name = "loopback (no proxy)" if link is None else f"{link[0]:g} ms, {link[1]:g} Mbit/s"
        base = median[(kind, wire, None)]
        print(f"{kind + ', ' + wire:<27} {name:<25} {figure:10.0f}   {figure / base:.3f}")
    if central:
        for kind, wire, _ in variants:
            ratio = median[(kind, wire, None)] / statistics.median(central)
            print(f"ratio {kind} {wire} loopback/centralized: {ratio:.3f}")
    rtt, mbit = links[-1]
    kind, wire, _ = variants[-1]
    last = median[(kind, wire, links[-1])] / median[(kind, wire, None)]
    if args.staleness:
        print(f"ratio pipelined wan/loopback: {last:.3f}  ({wire}, {rtt:g} ms, {mbit:g} Mbit/s)")
    else:
        print(f"ratio exact {wire} wan/loopback at {rtt:g} ms, {mbit:g} Mbit/s: {last:.3f}")


if __name__ == "__main__":
    main()
