"""Leader and follower as real OS processes over the attested (simulated) channel on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cvfl.cli.demo import DemoSize, job_toml

pytestmark = pytest.mark.e2e


def _cvfl(*args: str, cwd: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, COLUMNS="200")
    return subprocess.Popen(
        [sys.executable, "-m", "cvfl", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def _small_job(tmp_path: Path) -> None:
    from cvfl.attestation import measure_code
    from cvfl.cli.demo import prepare

    prepare(tmp_path, DemoSize(rows=1200, slots=8, epochs=2))
    # Smaller model than the demo's, same file format.
    for role in ("leader", "follower"):
        path = tmp_path / f"{role}.toml"
        text = job_toml(
            role, tmp_path, DemoSize(rows=1200, slots=8, epochs=2), measure_code().hex()
        )
        text = text.replace("embed_dim = 16", "embed_dim = 4").replace("[256, 64]", "[32, 16]")
        text = text.replace("lr = 0.001", "lr = 0.01").replace("[train]", "[train]\nthreads = 1")
        path.write_text(text)


def test_train_two_processes_then_fingerprint(tmp_path: Path) -> None:
    _small_job(tmp_path)
    leader = _cvfl("train", "--config", "leader.toml", cwd=tmp_path)
    follower = _cvfl("train", "--config", "follower.toml", cwd=tmp_path)
    out_f, _ = follower.communicate(timeout=240)
    out_l, _ = leader.communicate(timeout=240)
    assert leader.returncode == 0, out_l
    assert follower.returncode == 0, out_f
    assert "simulated" in (out_l + out_f).lower()
    assert "auc: " in out_l.splitlines()[-1]

    result = json.loads((tmp_path / "leader" / "leader-result.json").read_text())
    assert result["steps"] == 2 * 30
    assert result["metrics"]["auc"] > 0.6
    assert len(result["history"]) == 2
    for role in ("leader", "follower"):
        weights = tmp_path / role / "export" / f"{role}.safetensors"
        spec = json.loads(weights.with_suffix(".json").read_text())
        assert spec["role"] == role and spec["job_id"] == "cvfl-demo"
        fp = _cvfl("model", "fingerprint", str(weights), cwd=tmp_path)
        out, _ = fp.communicate(timeout=60)
        assert fp.returncode == 0, out
        assert out.strip() == spec["fingerprint"]
    follower_result = json.loads((tmp_path / "follower" / "follower-result.json").read_text())
    assert follower_result["metrics"] is None  # the follower never sees labels or scores


def test_malformed_table_exits_with_data_code(tmp_path: Path) -> None:
    _small_job(tmp_path)
    import pyarrow.parquet as pq

    data = tmp_path / "data" / "leader.parquet"
    table = pq.read_table(data).drop_columns(["label"])
    pq.write_table(table, data)
    proc = _cvfl("train", "--config", "leader.toml", cwd=tmp_path)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 3, out
    assert "data.missing_column" in out and "missing column 'label'" in out
    assert not (tmp_path / "leader" / "export").exists()
