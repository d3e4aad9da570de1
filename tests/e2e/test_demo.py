"""``cvfl demo --quick``: what ``make demo`` runs, at a size that takes seconds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def test_quick_demo_aligns_trains_and_reports(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cvfl", "demo", "--quick", "--workdir", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("auc: ") and 0.5 < float(last.removeprefix("auc: ")) <= 1.0
    assert (tmp_path / "run" / "report" / "report.json").is_file()
