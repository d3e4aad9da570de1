"""examples/breast_cancer_api.py trains exactly what `cvfl train` trains for the same job."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cvfl.cli.parties import free_port, run_parties
from cvfl.datasets.jobs import prepare_breast_cancer

pytestmark = pytest.mark.e2e
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "breast_cancer_api.py"
DEMO_AUC = "0.9972"  # what `cvfl demo --dataset breast-cancer` reports


def test_example_matches_the_cli(tmp_path: Path) -> None:
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), str(tmp_path / "api")],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    auc = float(re.findall(r"held-out auc: (\S+)", proc.stdout)[-1])
    fingerprint = re.findall(r"fingerprint: ([0-9a-f]{64})", proc.stdout)[-1]

    prepare_breast_cancer(tmp_path / "cli", free_port())
    run_parties("train", tmp_path / "cli")
    result = json.loads((tmp_path / "cli" / "leader" / "leader-result.json").read_text())
    assert abs(auc - result["metrics"]["auc"]) <= 1e-6
    assert fingerprint == result["fingerprint"]
    assert f"{auc:.4f}" == DEMO_AUC
