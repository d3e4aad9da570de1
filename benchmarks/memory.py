"""Memory at scale: each phase's peak RSS per party, from synthesis through alignment to training.

For each size (rows per party) it writes two Fedlearner-shaped tables with ``cvfl data synth``
(512 categorical slots per party by default, 80% of the population shared, each party's rows
shuffled), aligns them with ECDH-PSI (``cvfl align``, leader and follower as two processes over
RA-TLS on loopback, simulated TEE, sealed output), then trains ``--steps`` steps with the
streamed reader (``[data] reader = "stream"``, ``cvfl train``, two processes). Every phase runs
as child processes; a child's peak RSS is the kernel's own high-water mark for it
(``os.wait4``'s ``ru_maxrss``), so nothing is sampled or missed. Printed per size and phase:
leader and follower peak MiB and the wall time; then the ratio of the largest size's peak to
the smallest's, and, last, ``peak MiB per party at <N> rows: X`` for the largest size (the
highest of every phase and party).

    .venv/bin/python benchmarks/memory.py --rows 1000000,10000000 --psi-ids 8388608
    .venv/bin/python benchmarks/memory.py --rows 100000,300000 --slots 64 --steps 50

Disk: about 0.5 KB per row and party for the input at 512 slots, the same again for the sealed
aligned table (10M rows: ~20 GB in all); ``--workdir`` puts it elsewhere, and it is deleted at
the end unless ``--keep``. The held-out share is 1% (``--holdout``) so the final evaluation does
not dominate the training phase.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from cvfl.cli.parties import free_port
from cvfl.sealing import new_key_file

CVFL = [sys.executable, "-m", "cvfl"]
OVERLAP = 0.8
ROLES = ("leader", "follower")

JOB = """
[job]
id = "memory-bench"
role = "{role}"
seed = 7
workdir = "work-{role}"

[data]
path = "data/{role}.parquet"
kind = "categorical"
holdout_fraction = {holdout}
{reader}
[model]
kind = "widedeep"
slots = {slots}
vocab = 101
embed_dim = 16
cut_width = 64
leader_hidden = [256, 64]

[train]
optimizer = "adam"
lr = 0.001
batch_size = {batch}
max_steps = {steps}
eval_batch_size = 4096
checkpoint_every = {steps}

[psi]
output = "aligned/{role}.parquet.sealed"

[peer]
{peer}

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


@dataclass(frozen=True)
class Phase:
    """One phase's peak resident memory per party (MiB) and wall time (s)."""

    name: str
    peaks: dict[str, float]
    seconds: float


def population_for(rows: int) -> int:
    """The population whose synthesis gives each party ``rows`` rows (80% shared)."""
    return math.ceil(rows / (OVERLAP + (1 - OVERLAP) / 2))


def wait_peak(proc: subprocess.Popen[bytes]) -> tuple[int, float]:
    """Wait for ``proc``; its exit status and peak RSS in MiB (Linux: ru_maxrss is KiB)."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss / 1024


def run_children(commands: dict[str, list[str]], folder: Path, name: str) -> Phase:
    """Run each command as a child (at once), wait for all; fail loudly on an error."""
    start = time.perf_counter()
    logs = {key: (folder / f"{name}-{key}.log").open("wb") for key in commands}
    procs = {
        key: subprocess.Popen(cmd, cwd=folder, stdout=logs[key], stderr=subprocess.STDOUT)
        for key, cmd in commands.items()
    }
    peaks: dict[str, float] = {}
    failed: list[str] = []
    for key, proc in procs.items():
        code, peaks[key] = wait_peak(proc)
        logs[key].close()
        if code != 0:
            failed.append(f"{key} exited {code} (log: {folder / f'{name}-{key}.log'})")
    if failed:
        raise SystemExit(f"{name}: " + "; ".join(failed))
    return Phase(name, peaks, time.perf_counter() - start)


def write_jobs(folder: Path, args: argparse.Namespace, phase: str) -> None:
    port = free_port()  # cvfl align dials the leader's address as written
    for role in ROLES:
        verb = "listen" if role == "leader" else "connect"
        peer = f'{verb} = "127.0.0.1:{port}"'
        text = JOB.format(
            role=role,
            holdout=args.holdout,
            # memory is the default reader: omitting the key also runs on older code.
            reader="" if args.reader == "memory" else f'reader = "{args.reader}"\n',
            slots=args.slots,
            batch=args.batch,
            steps=args.steps,
            peer=peer,
        )
        (folder / f"{role}-{phase}.toml").write_text(text)


def measure(rows: int, args: argparse.Namespace, folder: Path) -> list[Phase]:
    """Synthesise, align and train at ``rows`` rows per party; each phase's peaks."""
    phases = [synthesise(rows, args.slots, folder)]
    for name in ("align", "train"):
        write_jobs(folder, args, name)
        commands = {role: [*CVFL, name, "--config", f"{role}-{name}.toml"] for role in ROLES}
        phases.append(run_children(commands, folder, name))
    return phases


def synthesise(rows: int, slots: int, folder: Path) -> Phase:
    """Make the folder, the parties' keys and their tables (``rows`` each); synthesis's peak."""
    folder.mkdir(parents=True)
    for role in ROLES:
        new_key_file(folder / f"{role}.key")
    synth = [*CVFL, "data", "synth", "--out", "data", "--rows", str(population_for(rows))]
    synth += ["--slots", str(slots), "--overlap", str(OVERLAP), "--shuffle"]
    return run_children({"both": synth}, folder, "synth")


def psi_only(ids: int, args: argparse.Namespace, folder: Path) -> None:
    """Align two one-slot tables of ``ids`` rows each; print the PSI's wall time and phases."""
    synthesise(ids, 1, folder)
    write_jobs(folder, args, "align")
    commands = {role: [*CVFL, "align", "--config", f"{role}-align.toml"] for role in ROLES}
    phase = run_children(commands, folder, "align")
    report_path = folder / "aligned" / "leader.parquet.sealed.report.json"
    parts = json.loads(report_path.read_text())
    blind, exchange = parts["seconds_blind"], parts["seconds_exchange"]
    peaks = ", ".join(f"{who} {mib:,.0f} MiB" for who, mib in phase.peaks.items())
    print(
        f"psi at {ids:,} ids per side (one slot): align wall {phase.seconds:,.1f} s (leader: "
        f"blind {blind:,.1f} s, exchange {exchange:,.1f} s, output "
        f"{parts['seconds_output']:,.1f} s); peaks {peaks}",
        flush=True,
    )
    exponent = math.log2(ids)
    name = f"2^{exponent:.0f}" if exponent.is_integer() else f"{ids:,}"
    print(f"psi wall s at {name} ids per side: {blind + exchange:,.1f}", flush=True)


def report(rows: int, phases: list[Phase]) -> float:
    """Print one size's phases; return the highest peak of any phase and party."""
    for phase in phases:
        peaks = ", ".join(f"{who} {mib:,.0f} MiB" for who, mib in phase.peaks.items())
        print(f"rows {rows:,} {phase.name:5s}: {peaks}; wall {phase.seconds:,.1f} s", flush=True)
    return max(mib for phase in phases for mib in phase.peaks.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000000,10000000", help="Rows per party, ascending.")
    parser.add_argument("--slots", type=int, default=512)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--holdout", type=float, default=0.01)
    parser.add_argument("--reader", default="stream", help="[data] reader: stream or memory.")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="Keep the tables and artifacts.")
    parser.add_argument(
        "--psi-ids", type=int, default=0, help="Also time ECDH-PSI alone at this many ids a side."
    )
    args = parser.parse_args()
    sizes = sorted(int(r) for r in args.rows.split(","))
    root = Path(args.workdir or tempfile.mkdtemp(prefix="cvfl-memory-"))
    print(f"slots {args.slots}, {args.steps} steps of {args.batch}, reader {args.reader}, {root}")
    peaks: dict[int, float] = {}
    for rows in sizes:  # a failed phase leaves its folder and logs for a look
        peaks[rows] = report(rows, measure(rows, args, root / f"rows-{rows}"))
        if not args.keep:
            shutil.rmtree(root / f"rows-{rows}")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    if args.psi_ids:
        psi_only(args.psi_ids, args, root / f"psi-{args.psi_ids}")
        if not args.keep:
            shutil.rmtree(root / f"psi-{args.psi_ids}")
    small, large = sizes[0], sizes[-1]
    if small != large:
        print(f"peak ratio {large:,} / {small:,} rows: {peaks[large] / peaks[small]:.3f}")
    print(f"peak MiB per party at {large:,} rows: {peaks[large]:,.0f}")


if __name__ == "__main__":
    main()
