"""PSI benchmark: both parties on this machine as two processes, half the ids overlapping.

Usage: ``.venv/bin/python benchmarks/psi.py [--mode ecdh|fast] [--group x25519|ristretto255]
[--log2 16 20] [--threads N]``.

For each size 2^k it writes two shuffled Parquet tables of 2^k ids (half shared), runs the leader
and the follower as separate processes over gRPC on 127.0.0.1 (plaintext channel: the benchmark
measures PSI, not TLS), with sealed output and sealed spilling, and prints wall time, CPU time and
peak memory per party. As a baseline it measures, in the same run, the cost of each group's
operations on one core (hash-to-group, scalar multiplication, validation of a received point;
both groups are printed), once alone and once with one copy per core running at once (the two
cores of this machine slow each other down), and prints the ratio of the measured wall time to
the crypto-bound ideal of the selected group with every core busy (per id and party: one
hash-to-group, two multiplications, one validation). The last line is
``psi 2^20 seconds: <value>``.

``--mode fast`` runs fast mode instead (keyed hashes; over the plaintext channel, so with
``insecure_fast_mode``: the benchmark measures the PSI, not attestation). Its baseline is
HMAC-SHA256 of one canonical id on one core. Each party's line also shows its time inside
``align()``: the total wall time includes starting two interpreters and importing cvfl.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import os
import random
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from cvfl.bridge.security import PlaintextSecurity
from cvfl.psi import AlignJob, PsiConfig, align
from cvfl.psi.config import DEFAULT_GROUP, GROUP_NAMES
from cvfl.psi.ecdh.group import Blinder, domain_label, get_group
from cvfl.psi.ecdh.points import lib
from cvfl.psi.ecdh.x25519 import X25519, multiply
from cvfl.psi.keyed import KeyedHasher
from cvfl.sealing import new_key_file


def make_tables(folder: Path, n: int) -> tuple[Path, Path]:
    rng = random.Random(n)
    half = n // 2
    leader = [f"user-{i:09d}" for i in range(n)]
    follower = [f"user-{i:09d}" for i in range(half, half + n)]
    rng.shuffle(leader)
    rng.shuffle(follower)
    paths = []
    for name, ids in (("leader", leader), ("follower", follower)):
        table = pa.table({"id": ids, f"{name}_x": pa.array(range(n), type=pa.float32())})
        path = folder / f"{name}.parquet"
        pq.write_table(table, path)
        paths.append(path)
    return paths[0], paths[1]


def party(
    role: str, data: Path, port: int, folder: Path, threads: int, mode: str, batch: int
) -> None:
    keys = new_key_file(folder / f"{role}.key")
    mode, _, group = mode.partition(":")
    cfg = PsiConfig(
        mode=mode,
        group=group or DEFAULT_GROUP,
        insecure_fast_mode=mode == "fast",
        output=folder / f"{role}-aligned.parquet",
        threads=threads,
        batch_size=batch,
        spill_dir=folder / f"{role}-spill",
        connect_timeout_s=600,
        timeout_s=3600,
    )
    job = AlignJob("bench", role, data, "id", f"127.0.0.1:{port}")
    base_mib = peak_mib()
    t0 = time.perf_counter()
    report = align(job, cfg, PlaintextSecurity(), keys=keys)
    wall = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "role": role,
                "wall_s": wall,
                "cpu_s": usage.ru_utime + usage.ru_stime,
                "peak_mib": peak_mib(),
                "import_mib": base_mib,
                "intersection": report.intersection,
                "fingerprint": report.order_fingerprint,
                "blind_s": report.seconds_blind,
                "exchange_s": report.seconds_exchange,
                "output_s": report.seconds_output,
            }
        ),
        flush=True,
    )


def peak_mib() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, reset by exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def crypto_baseline(name: str, samples: int = 4096, repeats: int = 3) -> dict[str, float]:
    """Seconds per hash-to-group, scalar multiplication and validation, on one core.

    Each is timed through the group's own code over one batch of ``samples`` items (the best of
    ``repeats``): hash-to-group alone (x25519: ``ed25519_from_hash`` and the batched Montgomery
    map); the multiplication (ristretto255: libsodium validates the point inside it); the
    validation of a received point (x25519: canonical and twist checks) plus that of an answer.
    """
    group = get_group(name)
    items = [b"t" + f"user-{i:09d}".encode() for i in range(samples)]
    label = domain_label("bench", group)
    points = Blinder(group).hash_and_blind(label, items)

    def best(fn: Callable[[], object]) -> float:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times) / samples

    t_hash = best(lambda: _hash_only(name, label, items))
    t_check = best(lambda: group.check_answers(points, batch=0, what="bench"))
    if isinstance(group, X25519):
        encoded = group.validate(points, batch=0, what="bench")
        secret = group.new_secret()
        t_mult = best(lambda: multiply(secret, encoded))
        t_check += best(lambda: group.validate(points, batch=0, what="bench"))
    else:
        other = Blinder(group)
        t_mult = best(lambda: other.blind_points(points, batch=0, what="bench"))
    return {"hash": t_hash, "mult": t_mult, "check": t_check}


def parallel_baseline(name: str) -> dict[str, float]:
    """The baseline measured by one process per core at once (the mean): the cost per operation
    while every core is busy, as during a benchmark run (cores may share execution units)."""
    cores = len(os.sched_getaffinity(0))
    cmd = [sys.executable, __file__, "--baseline", name]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(cores)]
    runs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    return {key: sum(r[key] for r in runs) / len(runs) for key in runs[0]}


def _print_baseline(name: str, how: str, t: dict[str, float]) -> float:
    """Print one group's per-operation costs; return the cost per id and party."""
    cost = t["hash"] + 2 * t["mult"] + t["check"]
    print(
        f"baseline {name:12s} ({how}): hash-to-group {t['hash'] * 1e6:.1f} us, "
        f"multiplication {t['mult'] * 1e6:.1f} us, validation {t['check'] * 1e6:.1f} us; "
        f"per id and party {cost * 1e6:.1f} us"
    )
    return cost


def _hash_only(group_name: str, label: bytes, items: list[bytes]) -> None:
    """Hash-to-group without blinding, as the group's hot loop does it."""
    if group_name == "x25519":
        X25519().hash_to_group(label, items)
        return
    point = ctypes.create_string_buffer(32)
    for item in items:
        digest = hashlib.sha512(label + len(item).to_bytes(4, "big") + item).digest()
        lib.crypto_core_ristretto255_from_hash(point, digest)


def hmac_baseline(samples: int = 1 << 16) -> float:
    """Seconds per HMAC-SHA256 of a canonical id (fast mode's keyed hash), on one core."""
    items = [b"t" + f"user-{i:09d}".encode() for i in range(samples)]
    hasher = KeyedHasher(os.urandom(32))
    t0 = time.perf_counter()
    hasher.tags(items)
    return (time.perf_counter() - t0) / samples


def run_size(log2: int, threads: int, mode: str, per_id: float, batch: int) -> float:
    n = 1 << log2
    with tempfile.TemporaryDirectory(prefix="cvfl-psi-bench-") as tmp:
        folder = Path(tmp)
        lpath, fpath = make_tables(folder, n)
        port = free_port()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        cmd = [sys.executable, __file__, "--party"]
        t0 = time.perf_counter()
        procs = [
            subprocess.Popen(
                [*cmd, role, str(path), str(port), tmp, str(threads), mode, str(batch)],
                stdout=subprocess.PIPE,
                env=env,
                text=True,
            )
            for role, path in (("leader", lpath), ("follower", fpath))
        ]
        outs = [p.communicate()[0] for p in procs]
        wall = time.perf_counter() - t0
        if any(p.returncode for p in procs):
            raise SystemExit(f"a party failed: {[p.returncode for p in procs]}")
    results = [json.loads(o.strip().splitlines()[-1]) for o in outs]
    assert all(r["intersection"] == n // 2 for r in results), results
    assert results[0]["fingerprint"] == results[1]["fingerprint"]
    cores = len(os.sched_getaffinity(0))
    ideal = 2 * n * per_id / cores
    print(f"2^{log2} ids per side, {n // 2} common: wall {wall:.1f} s (both processes)")
    for r in results:
        print(
            f"  {r['role']:8s} wall {r['wall_s']:7.1f} s  cpu {r['cpu_s']:7.1f} s  "
            f"peak {r['peak_mib']:6.0f} MiB (imports {r['import_mib']:.0f})  "
            f"(blind {r['blind_s']:.1f} s, exchange "
            f"{r['exchange_s']:.1f} s, output {r['output_s']:.1f} s)"
        )
    print(
        f"  crypto-bound ideal on {cores} cores: {ideal:.1f} s; measured/ideal {wall / ideal:.2f}"
    )
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--log2", type=int, nargs="+", default=[16, 20])
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--mode", choices=("ecdh", "fast"), default="ecdh")
    parser.add_argument("--group", choices=GROUP_NAMES, default=DEFAULT_GROUP)
    parser.add_argument("--batch-size", type=int, default=PsiConfig.batch_size)
    parser.add_argument(
        "--party", nargs=7, metavar=("ROLE", "DATA", "PORT", "DIR", "THREADS", "MODE", "BATCH")
    )
    parser.add_argument("--baseline", choices=GROUP_NAMES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.party:
        role, data, port, folder, threads, mode, batch = args.party
        party(role, Path(data), int(port), Path(folder), int(threads), mode, int(batch))
        return
    if args.baseline:
        print(json.dumps(crypto_baseline(args.baseline)))
        return
    print(f"mode: {args.mode}" + ("" if args.mode == "fast" else f", group: {args.group}"))
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.mode == "fast":
        per_id = hmac_baseline()
        print(f"baseline (one core): HMAC-SHA256 of a canonical id {per_id * 1e6:.2f} us")
        mode = "fast"
    else:
        for name in GROUP_NAMES:
            alone = _print_baseline(name, "one core, alone", crypto_baseline(name))
            busy = _print_baseline(name, "every core busy", parallel_baseline(name))
            if name == args.group:
                per_id, kept = busy, alone / busy
        print(
            f"  the ideal below uses the every-core-busy cost (both parties run at once; each core "
            f"then keeps {kept:.2f} of its speed alone)"
        )
        mode = f"ecdh:{args.group}"
    walls = {k: run_size(k, args.threads, mode, per_id, args.batch_size) for k in args.log2}
    last = max(walls)
    print(f"psi 2^{last} seconds: {walls[last]:.1f}")


if __name__ == "__main__":
    main()
