"""Peak memory of ``cvfl data synth`` and of ``cvfl align`` (both parties) as tables grow.

Usage: ``.venv/bin/python benchmarks/psi_memory.py --rows 100000 [--slots 512] [--overlap 0.8]
[--mode ecdh|fast] [--keep DIR]``.

It runs ``cvfl data synth`` (Fedlearner-shaped tables, shuffled, ``--overlap`` of the rows on
both sides) as one child process, then ``cvfl align`` for the leader and the follower as two
child processes on 127.0.0.1 (the demo's job files: simulated TEE, sealed output), and prints
each process's peak resident memory (``ru_maxrss`` of the exited child, which is its VmHWM) and
wall time, and the two parties' intersection and order fingerprint (which must agree). The last
line is ``align peak MiB: <leader> <follower>``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cvfl.attestation import measure_code
from cvfl.cli.demo import DemoSize, job_toml
from cvfl.cli.parties import free_port
from cvfl.roles import ROLES
from cvfl.sealing import new_key_file


@dataclass(frozen=True)
class Child:
    """What one finished child process used."""

    name: str
    peak_mib: float
    wall_s: float
    output: str


def run_children(named: dict[str, list[str]], cwd: Path) -> dict[str, Child]:
    """Run the commands at once; return each one's peak RSS (from wait4) and wall time."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="200")
    t0 = time.perf_counter()
    logs = {name: (cwd / f"{name}.log").open("w+") for name in named}
    procs = {
        name: subprocess.Popen(cmd, cwd=cwd, stdout=logs[name], stderr=subprocess.STDOUT, env=env)
        for name, cmd in named.items()
    }
    by_pid = {p.pid: name for name, p in procs.items()}
    done: dict[str, Child] = {}
    while by_pid:
        pid, status, usage = os.wait4(-1, 0)
        name = by_pid.pop(pid, None)
        if name is None:
            continue
        procs[name].returncode = os.waitstatus_to_exitcode(status)
        logs[name].seek(0)
        text = logs[name].read()
        logs[name].close()
        if procs[name].returncode:
            raise SystemExit(f"{name} failed ({procs[name].returncode}):\n{text[-3000:]}")
        done[name] = Child(name, usage.ru_maxrss / 1024, time.perf_counter() - t0, text)
    return done


def cvfl(*args: str) -> list[str]:
    """A ``cvfl`` command line in this interpreter."""
    return [sys.executable, "-m", "cvfl", *args]


def write_jobs(folder: Path, rows: int, slots: int, mode: str) -> None:
    """The demo's job files for aligning ``data/<role>.parquet`` and keys for both parties."""
    size = DemoSize(rows=rows, slots=slots, epochs=1)
    port = free_port()
    mr_enclave = measure_code().hex()
    for role in ROLES:
        new_key_file(folder / "keys" / f"{role}.key")
        text = job_toml(role, size, mr_enclave, port, align=True)
        if mode == "fast":
            text = text.replace("[psi]\n", '[psi]\nmode = "fast"\n')
        (folder / f"{role}.toml").write_text(text)


def measure(folder: Path, rows: int, slots: int, overlap: float, mode: str) -> None:
    """Synthesise, align, print the figures."""
    synth = cvfl("data", "synth", "--out", "data", "--rows", str(rows), "--slots", str(slots))
    synth += ["--overlap", str(overlap), "--shuffle"]
    made = run_children({"synth": synth}, folder)["synth"]
    size_mib = sum(p.stat().st_size for p in (folder / "data").iterdir()) / 2**20
    print(
        f"synth {rows} rows x {slots} slots: peak {made.peak_mib:.0f} MiB, "
        f"{made.wall_s:.1f} s, tables {size_mib:.0f} MiB on disk"
    )
    write_jobs(folder, rows, slots, mode)
    extra = ["--insecure-fast-mode"] if mode == "fast" else []
    parties = {role: cvfl("align", "--config", f"{role}.toml", *extra) for role in ROLES}
    ran = run_children(parties, folder)
    reports = {
        role: json.loads((folder / "aligned" / f"{role}.parquet.sealed.report.json").read_text())
        for role in ROLES
    }
    for role in ROLES:
        r = reports[role]
        print(
            f"  align {role:8s} peak {ran[role].peak_mib:6.0f} MiB  wall {ran[role].wall_s:6.1f} s"
            f"  (blind {r['seconds_blind']:.1f} s, exchange {r['seconds_exchange']:.1f} s, "
            f"output {r['seconds_output']:.1f} s; spills {r['spills']})"
        )
    first, second = (reports[role] for role in ROLES)
    assert first["intersection"] == second["intersection"], reports
    assert first["order_fingerprint"] == second["order_fingerprint"], reports
    print(f"  intersection {first['intersection']}, fingerprint {first['order_fingerprint'][:16]}")
    print(f"align peak MiB: {ran['leader'].peak_mib:.0f} {ran['follower'].peak_mib:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--slots", type=int, default=512)
    parser.add_argument("--overlap", type=float, default=0.8)
    parser.add_argument("--mode", choices=("ecdh", "fast"), default="ecdh")
    parser.add_argument("--keep", type=Path, help="Work in this folder and keep it.")
    args = parser.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        measure(args.keep, args.rows, args.slots, args.overlap, args.mode)
        return
    with tempfile.TemporaryDirectory(prefix="cvfl-psi-mem-") as tmp:
        measure(Path(tmp), args.rows, args.slots, args.overlap, args.mode)


if __name__ == "__main__":
    main()
