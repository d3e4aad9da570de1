"""Leader and follower as real OS processes over the attested (simulated) channel on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cvfl.models.export import load_half, spec_path_for
from cvfl.sealing import FileKeyProvider
from tests.e2e.jobs import Party, write_small_job

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


def test_train_two_processes_then_fingerprint(tmp_path: Path) -> None:
    write_small_job(tmp_path)
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
        weights = tmp_path / role / "export" / f"{role}.safetensors.sealed"
        key = tmp_path / "keys" / f"{role}.key"
        half = load_half(weights, FileKeyProvider(key))
        assert half.spec["role"] == role and half.spec["job_id"] == "cvfl-demo"
        assert not (tmp_path / role / "export" / f"{role}.safetensors").exists()  # sealed only
        fp = _cvfl("model", "fingerprint", str(weights), "--key-file", str(key), cwd=tmp_path)
        out, _ = fp.communicate(timeout=60)
        assert fp.returncode == 0, out
        assert out.strip() == half.spec["fingerprint"]
        if role == "leader":
            assert out.strip() == result["fingerprint"]
        # Unsealed with `cvfl unseal`, the same parameters give the same fingerprint.
        plain = tmp_path / f"{role}-plain.safetensors"
        for src, dst, purpose in (
            (weights, plain, "cvfl/export/weights"),
            (spec_path_for(weights), plain.with_suffix(".json"), "cvfl/export/spec"),
        ):
            unseal = _cvfl(
                "unseal",
                str(src),
                str(dst),
                "--purpose",
                purpose,
                "--key-file",
                str(key),
                cwd=tmp_path,
            )
            assert unseal.wait(timeout=60) == 0
        fp2 = _cvfl("model", "fingerprint", str(plain), cwd=tmp_path)
        assert fp2.communicate(timeout=60)[0].strip() == out.strip()
        # A tampered sealed export is refused, naming the file.
        data = bytearray(weights.read_bytes())
        data[-40] ^= 0x01
        weights.write_bytes(bytes(data))
        bad = _cvfl("model", "fingerprint", str(weights), "--key-file", str(key), cwd=tmp_path)
        bad_out, _ = bad.communicate(timeout=60)
        assert bad.returncode == 6, bad_out
        assert f"{role}.safetensors.sealed" in bad_out
    follower_result = json.loads((tmp_path / "follower" / "follower-result.json").read_text())
    assert follower_result["metrics"] is None  # the follower never sees labels or scores


def test_malformed_table_exits_with_data_code_and_the_follower_is_told(tmp_path: Path) -> None:
    write_small_job(tmp_path)
    import pyarrow.parquet as pq

    data = tmp_path / "data" / "leader.parquet"
    table = pq.read_table(data).drop_columns(["label"])
    pq.write_table(table, data)
    leader = Party(tmp_path, "train", "--config", "leader.toml")
    follower = Party(tmp_path, "train", "--config", "follower.toml")
    assert leader.wait_for("stopping on [data.missing_column]", 120), leader.output
    failed = time.monotonic()
    code = follower.finish(30)
    assert time.monotonic() - failed < 5, follower.output
    assert code == 4, follower.output
    told = " ".join(follower.output.split())
    assert "the leader stopped: [data.missing_column] a local data error" in told
    assert "fix it there and restart both" in told
    assert leader.finish(30) == 3, leader.output
    assert "data.missing_column" in leader.output and "missing column 'label'" in leader.output
    assert not (tmp_path / "leader" / "export").exists()
