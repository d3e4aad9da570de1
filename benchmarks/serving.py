"""Online scoring latency: ``cvfl serve`` on loopback over RA-TLS (simulated TEE), two processes.

The demo job's Fedlearner-shaped wide & deep halves (512 categorical slots, cut width 64;
exported as initialised from the job's seed: latency does not depend on the weights) serve the
demo tables. A gRPC client in this process (one thread per concurrent caller, blocking calls)
sends single-id requests at each concurrency for ``--seconds`` seconds and prints p50/p99
latency, requests/s (= scored ids/s), the CPU time per request of the client and of each party,
and, last, ``serving p99 ms at concurrency 16: <value>``.

    .venv/bin/python benchmarks/serving.py [--seconds 3] [--concurrency 1,16,64]
        [--security ratls|insecure] [--max-wait-ms 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import grpc
import numpy as np

from cvfl.cli.demo import FULL, prepare
from cvfl.train import leader as leader_loop
from cvfl.train.config import load_job
from cvfl.train.follower import cut_spec as follower_cut
from cvfl.train.party import export, load_party
from cvfl.train.result import TrainResult
from cvfl.wire import scoring_pb2 as spb
from cvfl.wire import scoring_pb2_grpc as sgrpc

ROLES = ("leader", "follower")


def setup(folder: Path, security: str, max_wait_ms: float = 2.0) -> list[str]:
    """The demo job with a [serve] section per party, both halves exported; the leader's ids."""
    prepare(folder, FULL, align=False)
    for role in ROLES:
        party = load_party(load_job(folder / f"{role}.toml"))
        cut = leader_loop.cut_spec(party) if role == "leader" else follower_cut(party)
        export(party, TrainResult(role=role, steps=0, seconds=0.0), cut)
        extra = (
            'grpc_listen = "127.0.0.1:0"\nhttp_listen = "127.0.0.1:0"\n'
            f'port_file = "leader/serve-ports.json"\nmax_wait_ms = {max_wait_ms}\n'
            if role == "leader"
            else ""
        )
        path = folder / f"{role}.toml"
        text = path.read_text().replace('security = "ratls"', f'security = "{security}"')
        path.write_text(text + f'\n[serve]\ntable = "data/{role}.parquet"\n{extra}')
    import pyarrow.parquet as pq

    return [str(i) for i in pq.read_table(folder / "data" / "leader.parquet")["example_id"]]


def start(folder: Path) -> list[subprocess.Popen[bytes]]:
    """Both parties as ``cvfl serve`` processes."""
    return [
        subprocess.Popen(
            [sys.executable, "-m", "cvfl", "serve", "--config", f"{role}.toml"],
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=open(folder / f"{role}-serve.log", "wb"),
        )
        for role in ROLES
    ]


def wait_ready(folder: Path, timeout: float = 120) -> dict[str, int]:
    """The leader's ports once it is up and its follower connected."""
    deadline = time.monotonic() + timeout
    ports_file = folder / "leader" / "serve-ports.json"
    while time.monotonic() < deadline:
        if ports_file.is_file():
            ports: dict[str, int] = json.loads(ports_file.read_text())
            url = f"http://127.0.0.1:{ports['http']}/healthz"
            with urllib.request.urlopen(url, timeout=5) as answer:
                if json.loads(answer.read())["follower"] == "connected":
                    return ports
        time.sleep(0.5)
    raise SystemExit("the parties did not come up; see leader-serve.log and follower-serve.log")


def level(
    port: int, ids: list[str], concurrency: int, seconds: float, per_request: int = 1
) -> np.ndarray:
    """Latencies (s) of ``per_request``-id requests from ``concurrency`` callers for ``seconds``.

    Each caller is a thread making blocking calls on one shared channel: the benchmark measures
    the service, and a threaded synchronous client costs less CPU per call than one asyncio
    loop, leaving more of the two cores to the parties.
    """
    latencies: list[float] = []
    failures: list[str] = []
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = sgrpc.ScoringStub(channel)

        def worker(offset: int, stop: float) -> None:
            k = offset
            while time.monotonic() < stop and not failures:
                started = time.perf_counter()
                asked = [ids[(k + j) % len(ids)] for j in range(per_request)]
                answer = stub.Score(spb.ScoreRequest(ids=asked), timeout=10)
                latencies.append(time.perf_counter() - started)
                if not all(score.scored for score in answer.scores):
                    failures.append(answer.scores[0].reason)
                k += 7919

        worker(0, time.monotonic())  # warm-up: one request
        latencies.clear()
        stop = time.monotonic() + seconds
        callers = [
            threading.Thread(target=worker, args=(c, stop), daemon=True) for c in range(concurrency)
        ]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join()
    if failures:
        raise SystemExit(f"not scored: {failures[0]}")
    return np.asarray(latencies)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scraped(port: int) -> dict[str, float]:
    """The ``_sum`` and ``_count`` lines of the leader's /metrics, by name."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        lines = answer.read().decode().splitlines()
    pairs = (line.split(" ") for line in lines if line.endswith(tuple("0123456789")))
    return {name: float(value) for name, value in pairs if name.endswith(("_sum", "_count"))}


def mean_of(before: dict[str, float], after: dict[str, float], name: str) -> float:
    """The mean of histogram ``name`` over the observations between two scrapes."""
    count = after[f"{name}_count"] - before.get(f"{name}_count", 0.0)
    total = after[f"{name}_sum"] - before.get(f"{name}_sum", 0.0)
    return total / count if count else float("nan")


def main() -> None:
    """Start both parties, measure each concurrency, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--security", choices=("ratls", "insecure"), default="ratls")
    parser.add_argument("--max-wait-ms", type=float, default=2.0)
    parser.add_argument("--ids-per-request", type=int, default=32, help="for the ids/s line")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cvfl-bench-serve-") as tmp:
        folder = Path(tmp)
        ids = setup(folder, args.security, args.max_wait_ms)
        procs = start(folder)
        try:
            ports = wait_ready(folder)
            channel = "RA-TLS (simulated TEE)" if args.security == "ratls" else "plaintext gRPC"
            print(f"single-id gRPC requests, {channel} between the parties:")
            print(
                f"{'concurrency':>11} {'p50 ms':>8} {'p99 ms':>8} {'requests/s':>11} "
                f"{'client CPU ms/req':>18} {'leader CPU ms/req':>18} "
                f"{'follower CPU ms/req':>20} {'ids/batch':>10} "
                f"{'follower RTT ms':>16}"
            )
            p99_16 = float("nan")
            pids = [os.getpid(), *(p.pid for p in procs)]  # the client, leader, follower
            for c in (int(x) for x in args.concurrency.split(",")):
                cpu = [cpu_seconds(pid) for pid in pids]
                before = scraped(ports["http"])
                lat = level(ports["grpc"], ids, c, args.seconds)
                after = scraped(ports["http"])
                batch = mean_of(before, after, "cvfl_serve_batch_ids")
                rtt = mean_of(before, after, "cvfl_serve_follower_rtt_seconds") * 1000
                used = [
                    (cpu_seconds(pid) - c0) * 1000 / len(lat)
                    for pid, c0 in zip(pids, cpu, strict=True)
                ]
                p50, p99 = np.percentile(lat, [50, 99]) * 1000
                print(
                    f"{c:>11} {p50:>8.2f} {p99:>8.2f} {len(lat) / args.seconds:>11.0f} "
                    f"{used[0]:>18.2f} {used[1]:>18.2f} {used[2]:>20.2f} {batch:>10.1f} "
                    f"{rtt:>16.2f}"
                )
                p99_16 = p99 if c == 16 else p99_16
            many = args.ids_per_request
            lat = level(ports["grpc"], ids, 16, args.seconds, many)
            print(
                f"requests of {many} ids at concurrency 16: {len(lat) * many / args.seconds:.0f} "
                f"scored ids/s, p99 {np.percentile(lat, 99) * 1000:.2f} ms"
            )
            print(f"serving p99 ms at concurrency 16: {p99_16:.2f}")
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(30)


if __name__ == "__main__":
    main()
