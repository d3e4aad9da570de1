"""A practitioner's own untidy tables, end to end: align, train, predict and report.

Each practice split (``cvfl data example``) has string ids in each party's own order, rows only
one party holds, a string category, missing cells and raw magnitudes; the job files declare
``[data.columns] default = "auto"`` and the task. Both parties run as separate processes over
the attested channel (simulated TEE). Checked for each of wine (multiclass), diabetes
(regression) and digits (binary), from CSV, Parquet and one of each:

- the split model equals the centralized model trained on the same preprocessed inputs (the
  report's figures, to 1e-5), and beats the leader alone on the held-out primary metric;
- ``cvfl predict`` scores the common rows of the raw input tables exactly as the exported halves
  compute them (preprocessing reapplied from the sealed export state).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import torch

from cvfl.data.check import apply_state
from cvfl.data.tables import TableSchema, load_arrow
from cvfl.models.nets import CombinedModel
from cvfl.sealing import FileKeyProvider
from cvfl.serve import read_scores
from cvfl.serve.halves import default_export, load_scoring_half
from cvfl.train import load_job
from tests.e2e.jobs import Party

pytestmark = pytest.mark.e2e

CASES = [("wine", "csv", "csv"), ("diabetes", "parquet", "parquet"), ("digits", "csv", "parquet")]


def _cvfl(folder: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "cvfl", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _both(folder: Path, command: str, per_role: dict[str, list[str]] | None = None) -> None:
    parties = {
        role: Party(folder, command, "--config", f"{role}.toml", *(per_role or {}).get(role, []))
        for role in ("leader", "follower")
    }
    for role, party in parties.items():
        assert party.finish(timeout=300) == 0, f"{role} {command}:\n{party.output}"


def _follower_as(folder: Path, fmt: str) -> None:
    """Store the follower's table in ``fmt`` (its job file follows)."""
    old = next((folder / "data").glob("follower.*"))
    if old.suffix == f".{fmt}":
        return
    table = load_arrow(old)
    new = old.with_suffix(f".{fmt}")
    (pq.write_table if fmt == "parquet" else pacsv.write_csv)(table, new)
    old.unlink()
    job = folder / "follower.toml"
    job.write_text(job.read_text().replace(f"data/{old.name}", f"data/{new.name}"))


@pytest.mark.parametrize(("dataset", "leader_fmt", "follower_fmt"), CASES)
def test_untidy_tables_align_train_predict_and_report(
    tmp_path: Path, dataset: str, leader_fmt: str, follower_fmt: str
) -> None:
    _cvfl(tmp_path, "data", "example", "--dataset", dataset, "--out", ".", "--format", leader_fmt)
    _follower_as(tmp_path, follower_fmt)
    for role in ("leader", "follower"):
        assert "ok" in _cvfl(tmp_path, "check", "--config", f"{role}.toml")
    _both(tmp_path, "run")  # align, then train
    inputs = {role: next((tmp_path / "data").glob(f"{role}.*")) for role in ("leader", "follower")}
    scores_path = tmp_path / "leader" / "scores.parquet"
    _both(
        tmp_path,
        "predict",
        {
            "leader": ["--input", str(inputs["leader"]), "--output", str(scores_path)],
            "follower": ["--input", str(inputs["follower"])],
        },
    )
    _cvfl(tmp_path, "report", "--config", "leader.toml", "--follower-config", "follower.toml")

    report = json.loads((tmp_path / "leader" / "report" / "report.json").read_text())
    models = report["models"]
    split, alone, central = models["split"], models["leader only"], models["centralized"]
    for name, value in split.items():  # metrics, steps and both loss curves
        if name != "seconds":
            assert value == pytest.approx(central[name], abs=1e-5), (name, split, central)
    primary = report["primary_metric"]
    if report["lower_is_better"]:
        assert split[primary] < alone[primary], (primary, split, alone)
    else:
        assert split[primary] > alone[primary], (primary, split, alone)

    scores = read_scores(
        scores_path.with_name(scores_path.name + ".sealed"),
        FileKeyProvider(tmp_path / "keys" / "leader.key"),
    )
    expected = _model_outputs(tmp_path, inputs, scores.column("example_id").to_pylist())
    _assert_scores(scores, expected, report["task"])


def _model_outputs(folder: Path, inputs: dict[str, Path], ids: list[str]) -> np.ndarray:
    """The exported halves' outputs on ``ids``' rows of the raw inputs (state reapplied)."""
    features = {}
    halves = {}
    for role in ("leader", "follower"):
        cfg = load_job(folder / f"{role}.toml")
        keys = FileKeyProvider(folder / "keys" / f"{role}.key")
        half = load_scoring_half(default_export(cfg), cfg, keys)
        assert half.prep is not None  # [data.columns]: the fitted state travels in the export
        raw = load_arrow(inputs[role])
        position = {v: i for i, v in enumerate(raw.column("example_id").to_pylist())}
        rows = raw.take(pa.array([position[i] for i in ids], type=pa.int64()))
        table = apply_state(rows, inputs[role], half.prep, TableSchema(cfg.data.kind))
        features[role], halves[role] = torch.from_numpy(table.features), half
    with torch.no_grad():
        outputs = CombinedModel(halves["follower"].module, halves["leader"].module)(
            features["leader"], features["follower"]
        )
    target = halves["leader"].target
    values: np.ndarray = outputs.double().numpy()
    return target.unscale(values) if target is not None else values


def _assert_scores(scores: pa.Table, outputs: np.ndarray, task: str) -> None:
    assert scores.num_rows == len(outputs) > 0
    if task == "regression":
        np.testing.assert_allclose(scores.column("prediction").to_numpy(), outputs[:, 0], atol=1e-4)
        return
    probs = torch.softmax(torch.from_numpy(outputs), dim=1).numpy()
    if task == "multiclass":
        seen = np.stack([scores.column(f"p_{k}").to_numpy() for k in range(probs.shape[1])], 1)
        np.testing.assert_allclose(seen, probs, atol=1e-5)
        assert scores.column("predicted").to_pylist() == probs.argmax(axis=1).tolist()
        return
    np.testing.assert_allclose(scores.column("score").to_numpy(), probs[:, 1], atol=1e-5)
