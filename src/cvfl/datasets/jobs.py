"""Job files for the breast-cancer split: an MLP split model over the attested channel.

:func:`prepare_breast_cancer` writes into a folder the two parties' tables (standardised with
training-row statistics), their held-out rows as scoring tables, a sealing key per party and
``leader.toml`` / ``follower.toml``, so the same job can be run by
hand with ``cvfl train``, ``cvfl predict`` and ``cvfl report``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cvfl.data.tables import write_arrow
from cvfl.datasets.breast_cancer import breast_cancer_split
from cvfl.datasets.jobfile import adam_lines, mlp_tables, peer_table, trust_tables

JOB_ID = "cvfl-breast-cancer"
SEED = 2024
HOLDOUT = 0.2


@dataclass(frozen=True)
class BreastCancerJob:
    """Training settings of the breast-cancer job (both parties use the same)."""

    epochs: int = 10
    lr: float = 0.003
    batch_size: int = 32
    cut_width: int = 8
    hidden: int = 16
    threads: int = 1


def predict_args(role: str) -> str:
    """The ``cvfl predict`` options that score the held-out rows (already aligned)."""
    scores = " --output leader/scores.parquet" if role == "leader" else ""
    return f"--input data/{role}-holdout.parquet{scores}"


def job_toml(role: str, job: BreastCancerJob, port: int, mr_enclave: str) -> str:
    """One party's job file (simulated TEE; the policy accepts it by name)."""
    return f"""# cvfl breast-cancer job: {role}. Run by hand: cvfl train --config {role}.toml, then
# cvfl predict --config {role}.toml {predict_args(role)}
[job]
id = "{JOB_ID}"
role = "{role}"
seed = {SEED}
workdir = "{role}"
steps = ["train"]  # what `cvfl run --config {role}.toml` runs (the data is already aligned)

[data]
path = "data/{role}.parquet"
kind = "numeric"
holdout_fraction = {HOLDOUT}

{mlp_tables(job.cut_width, job.hidden)}
{adam_lines(job.lr, job.batch_size, job.epochs)}
threads = {job.threads}
checkpoint_every_s = 60  # crash safety: rerun the same command to resume (0 = off)

{peer_table(role, port)}{trust_sections(role, mr_enclave)}"""


def trust_sections(role: str, mr_enclave: str) -> str:
    """The demo jobs' ``[sealing]`` and ``[attestation]`` tables (simulated TEE, by name)."""
    return trust_tables(role, f'mr_enclave = "{mr_enclave}"', notes=True)


def prepare_breast_cancer(
    folder: Path, port: int, job: BreastCancerJob | None = None, mr_enclave: str | None = None
) -> None:
    """Write tables, held-out scoring tables, keys and both job files into ``folder``."""
    from cvfl.attestation import measure_code
    from cvfl.sealing import new_key_file

    job = job or BreastCancerJob()
    split = breast_cancer_split(SEED, HOLDOUT)
    data = folder / "data"
    for role, table in (("leader", split.leader), ("follower", split.follower)):
        write_arrow(table, data / f"{role}.parquet")
        write_arrow(table.take(split.holdout_rows), data / f"{role}-holdout.parquet")
        key = folder / "keys" / f"{role}.key"
        if not key.exists():
            new_key_file(key)
    measured = mr_enclave or measure_code().hex()
    for role in ("leader", "follower"):
        (folder / f"{role}.toml").write_text(job_toml(role, job, port, measured))
