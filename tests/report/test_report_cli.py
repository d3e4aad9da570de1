"""``cvfl report`` on a prepared breast-cancer job with a recorded split result."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cvfl.cli.app import _register, app
from cvfl.datasets.jobs import prepare_breast_cancer
from cvfl.report.render import PNG_MAGIC


def _split_result(folder: Path) -> None:
    history = [
        {"epoch": e, "step": 15 * (e + 1), "train_loss": 0.6 / (e + 1), "val_loss": 0.5 / (e + 1)}
        for e in range(10)
    ]
    result = {
        "role": "leader",
        "steps": 150,
        "seconds": 1.0,
        "examples_per_second": 4550.0,
        "metrics": {"auc": 0.99, "log_loss": 0.08, "accuracy": 0.96},
        "history": history,
        "privacy": {
            "settings": {"defence": "max_norm"},
            "audit": {"norm": 0.55, "cosine": 0.98, "sign": 0.99, "steps": 150},
            "epsilon": {"delta": 1e-5},
        },
    }
    (folder / "leader").mkdir(parents=True, exist_ok=True)
    (folder / "leader" / "leader-result.json").write_text(json.dumps(result))


def test_report_command(tmp_path: Path) -> None:
    prepare_breast_cancer(tmp_path, 50000, mr_enclave="00" * 32)
    _split_result(tmp_path)
    _register()
    args = ["report", "--config", str(tmp_path / "leader.toml"), "--out", str(tmp_path / "r")]
    out = CliRunner().invoke(app, [*args, "--follower-config", str(tmp_path / "follower.toml")])
    assert out.exit_code == 0, out.output
    assert "centralized" in out.output and "leader only" in out.output
    assert (tmp_path / "r" / "loss-curves.png").read_bytes().startswith(PNG_MAGIC)
    assert "label leakage" in out.output and "cosine   leak auc 0.9800" in out.output
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["privacy"]["defence"] == "max_norm"
    assert report["privacy"]["leak_auc"]["norm"] == 0.55
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["models"]["split"]["auc"] == 0.99
    assert report["wire"]["steps"] == 150
    # Without the follower's job file: no centralized model, and the report says why.
    alone = CliRunner().invoke(app, args)
    assert alone.exit_code == 0, alone.output
    assert "centralized: left out" in alone.output
