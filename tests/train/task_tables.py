"""Jobs over synthetic tables whose leader labels are multiclass or regression targets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from cvfl.train.config import JobConfig, job_from_mapping
from tests.conftest import job_tables, make_tables


def relabel(path: Path, task: str, classes: int = 3) -> None:
    """Replace the leader table's 0/1 labels by ``task`` labels that depend on the features."""
    table = pq.read_table(path)
    slots = [c for c in table.column_names if c.startswith("l") and c[1:].isdigit()]
    codes = np.stack([table.column(c).to_numpy() for c in slots[:2]], axis=1).astype(np.float64)
    signal = codes[:, 0] / 10.0 + codes[:, 1] / 25.0
    if task == "multiclass":
        cut = np.quantile(signal, np.linspace(0, 1, classes + 1)[1:-1])
        labels: np.ndarray = np.digitize(signal, cut).astype(np.int64)
        column = pa.array(labels, type=pa.int64())
    else:
        noise = np.random.default_rng(5).normal(0, 0.3, len(signal))
        column = pa.array((signal + noise).astype(np.float64), type=pa.float64())
    index = table.column_names.index("label")
    pq.write_table(table.set_column(index, "label", column), path)


def task_job(folder: Path, task: str, **overrides: Any) -> tuple[JobConfig, JobConfig]:
    """A leader and a follower job on fresh tables whose leader labels fit ``task``."""
    leader_data, follower_data = make_tables(folder, rows=300)
    if task != "binary":
        relabel(leader_data, task)
    overrides = {"model__task": task, **overrides}
    src = folder / "job.toml"
    lead = job_from_mapping(job_tables(folder, leader_data, "leader", **overrides), src)
    follow = job_from_mapping(job_tables(folder, follower_data, "follower", **overrides), src)
    return lead, follow


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_task_jobs(folder: Path, task: str, **overrides: Any) -> tuple[Path, Path]:
    """``leader.toml`` and ``follower.toml`` of :func:`task_job`'s job, in ``folder``."""
    leader_data, follower_data = make_tables(folder, rows=300)
    if task != "binary":
        relabel(leader_data, task)
    overrides = {"model__task": task, **overrides}
    paths = []
    for role, data in (("leader", leader_data), ("follower", follower_data)):
        raw = job_tables(folder, data, role, **overrides)
        lines = []
        for section, table in raw.items():
            lines.append(f"[{section}]")
            lines += [f"{key} = {_toml_value(value)}" for key, value in table.items()]
        path = folder / f"{role}.toml"
        path.write_text("\n".join(lines) + "\n")
        paths.append(path)
    return paths[0], paths[1]
