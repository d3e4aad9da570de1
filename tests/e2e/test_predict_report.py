"""Breast-cancer split: train, export and score with both halves as separate processes over the
attested (simulated) channel, then the quality report."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from cvfl.attestation import measure_code
from cvfl.cli.parties import free_port
from cvfl.datasets.jobs import prepare_breast_cancer
from cvfl.models.nets import CombinedModel
from cvfl.report import build_report, write_report
from cvfl.report.render import PNG_MAGIC
from cvfl.sealing import FileKeyProvider
from cvfl.serve import SCORE_COLUMN, read_scores
from cvfl.serve.halves import default_export, load_scoring_half
from cvfl.train.config import load_job
from cvfl.train.party import artifacts_for
from cvfl.train.training_tables import read_training_table

pytestmark = pytest.mark.e2e
ROLES = ("leader", "follower")


def _cvfl(*args: str, cwd: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, COLUMNS="200", OMP_WAIT_POLICY="PASSIVE")
    return subprocess.Popen(
        [sys.executable, "-m", "cvfl", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def _remeasure(folder: Path) -> None:
    """Refresh the policy's simulated mr_enclave (the shared checkout's files may have changed)."""
    measured = measure_code().hex()
    for path in folder.glob("*.toml"):
        text = re.sub(r'mr_enclave = "[0-9a-f]+"', f'mr_enclave = "{measured}"', path.read_text())
        path.write_text(text)


def _pair(folder: Path, command: str, suffix: str = "", timeout: float = 180) -> None:
    """Run both parties; stop the other one as soon as one fails."""
    _remeasure(folder)
    procs = [_cvfl(command, "--config", f"{role}{suffix}.toml", cwd=folder) for role in ROLES]
    deadline = time.monotonic() + timeout
    while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
        if any(p.poll() for p in procs):
            break
        time.sleep(0.1)
    for p in procs:
        if p.poll() is None:
            p.terminate()
    outs = [p.communicate(timeout=30)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(outs)


def _predict_files(folder: Path) -> None:
    """Job files with a [predict] section: score every row in batches of 64."""
    for role in ROLES:
        text = (folder / f"{role}.toml").read_text()
        output = 'output = "leader/scores.parquet"\n' if role == "leader" else ""
        section = f'\n[predict]\ninput = "data/{role}.parquet"\n{output}batch_size = 64\n'
        (folder / f"{role}-predict.toml").write_text(text + section)


def _combined_scores(folder: Path) -> np.ndarray:
    halves, features = [], []
    for role in ("follower", "leader"):
        cfg = load_job(folder / f"{role}.toml")
        keys = FileKeyProvider(folder / "keys" / f"{role}.key")
        halves.append(load_scoring_half(default_export(cfg), cfg, keys).module)
        table = read_training_table(cfg, artifacts_for(cfg))
        features.append(torch.from_numpy(table.features))
    with torch.no_grad():
        logits = CombinedModel(halves[0], halves[1])(features[1], features[0])
    result: np.ndarray = torch.softmax(logits, dim=1)[:, 1].numpy()
    return result


def test_breast_cancer_train_predict_report(tmp_path: Path) -> None:
    prepare_breast_cancer(tmp_path, free_port())
    _pair(tmp_path, "train")
    _predict_files(tmp_path)
    _pair(tmp_path, "predict", "-predict", timeout=120)

    scores = read_scores(
        tmp_path / "leader" / "scores.parquet.sealed",
        FileKeyProvider(tmp_path / "keys" / "leader.key"),
    )
    assert scores.column("example_id").to_pylist() == [str(i) for i in range(569)]
    np.testing.assert_allclose(
        scores.column(SCORE_COLUMN).to_numpy(), _combined_scores(tmp_path), rtol=0, atol=1e-5
    )
    assert not list((tmp_path / "follower").glob("scores*"))  # the follower learns no scores

    report = build_report(tmp_path / "leader.toml", tmp_path / "follower.toml")
    assert report.centralized is not None
    split, central = report.split.metrics.auc, report.centralized.metrics.auc
    assert abs(split - central) <= 0.01
    assert split > report.leader_only.metrics.auc
    png = write_report(report, tmp_path / "report").png.read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 10_000

    # A half from another job is refused before any data moves, naming the field.
    other = (
        (tmp_path / "follower-predict.toml")
        .read_text()
        .replace('id = "cvfl-breast-cancer"', 'id = "another-job"')
    )
    (tmp_path / "other.toml").write_text(other)
    proc = _cvfl("predict", "--config", "other.toml", cwd=tmp_path)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 9, out
    assert "model.foreign" in out and "job_id: expected another-job, seen cvfl-breast-cancer" in out
