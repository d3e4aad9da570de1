"""The job file the README's "Bring your own data" walk-through shows is one cvfl accepts."""

from __future__ import annotations

import tomllib
from pathlib import Path

from cvfl.train.config import job_from_mapping

README = Path(__file__).resolve().parents[1] / "README.md"


def _walkthrough_toml() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Bring your own data") :]
    start = section.index("```toml\n") + len("```toml\n")
    return section[start : section.index("```", start)]


def test_the_walkthrough_job_file_loads(tmp_path: Path) -> None:
    raw = tomllib.loads(_walkthrough_toml())
    raw["job"]["plaintext_outputs"] = True  # the README leaves [sealing] to the example's
    cfg = job_from_mapping(raw, tmp_path / "leader.toml")
    assert cfg.role == "leader" and cfg.model.task == "binary"
    assert cfg.data.columns is not None and cfg.train.early_stopping_metric == "auc"
    assert cfg.psi is not None and cfg.psi.output.name == "leader.parquet.sealed"
