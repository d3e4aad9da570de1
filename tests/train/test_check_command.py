"""``cvfl check`` and the checks ``cvfl train`` runs on the user's own table before the peer."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import cvfl
from cvfl.cli.app import main
from cvfl.data import write_arrow
from cvfl.errors import DataError
from cvfl.train import load_party
from cvfl.train.config import job_from_mapping
from tests.conftest import job_tables
from tests.data.mixed import mixed_tables

JOB = """
[job]
id = "check-job"
role = "leader"
plaintext_outputs = true

[data]
path = "leader-mixed.csv"

[data.columns]
{color}
user = {{ kind = "categorical", max_categories = 16 }}
{extra}

[model]
kind = "mlp"
"""


def _job(tmp: Path, extra: str = "", color: str = 'color = "categorical"') -> Path:
    mixed_tables(tmp)
    path = tmp / "leader.toml"
    path.write_text(JOB.format(extra=extra, color=color))
    return path


def test_check_reports_a_good_job(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["check", "--config", str(_job(tmp_path))])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "job check-job: leader, outputs PLAINTEXT" in out
    assert "leader-mixed.csv: 400 rows; columns [data.columns]" in out
    assert "numeric (2): income, ratio" in out
    assert "categorical (2): color, user" in out
    assert "labels: checked" in out and out.rstrip().endswith("ok")


@pytest.mark.parametrize(
    ("color", "extra", "code", "shown"),
    [
        ('color = "categorcal"', "", 2, "[config.value] [data.columns] color: expected one of"),
        ('color = "numeric"', "", 3, "column 'color' row 0: declared numeric, holds text"),
        ("", 'height = "numeric"', 3, "missing column 'height' (declared numeric"),
    ],
)
def test_check_refuses_a_bad_job_with_its_exit_code(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    color: str,
    extra: str,
    code: int,
    shown: str,
) -> None:
    path = _job(tmp_path, extra, color)
    with pytest.raises(SystemExit) as exit_:
        main(["check", "--config", str(path)])
    assert exit_.value.code == code
    err = " ".join(capsys.readouterr().err.split())
    assert shown in err


def test_check_does_not_import_torch(tmp_path: Path) -> None:
    path = _job(tmp_path)
    code = (
        "import sys\nfrom cvfl.cli.app import main\n"
        f"try:\n    main(['check', '--config', {str(path)!r}])\nexcept SystemExit as e:\n"
        "    assert not e.code, e.code\nprint('torch' in sys.modules)\n"
    )
    src = str(Path(cvfl.__file__).resolve().parents[1])  # this checkout's cvfl
    env = dict(os.environ, PYTHONPATH=src)
    done = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"


def test_train_checks_the_users_own_table_before_the_aligned_one(tmp_path: Path) -> None:
    leader, _ = mixed_tables(tmp_path)
    lines = leader.read_text().splitlines()
    cells = lines[8].split(",")
    cells[3] = "lots"  # the ratio column of data row 7
    lines[8] = ",".join(cells)
    leader.write_text("\n".join(lines) + "\n")
    raw = job_tables(tmp_path, leader, "leader", model__kind="mlp")
    raw["data"]["columns"] = {"ratio": "numeric"}
    raw["psi"] = {"output": str(tmp_path / "aligned.parquet.sealed")}  # never made
    with pytest.raises(DataError) as info:
        load_party(job_from_mapping(raw, tmp_path / "job.toml"))
    assert info.value.message.startswith(f"{leader}: column 'ratio' row 7: declared numeric")


def test_unscaled_numeric_columns_get_one_warning_naming_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(0)
    rows = 64
    table = pa.table(
        {
            "example_id": [f"r{i}" for i in range(rows)],
            "salary": rng.normal(6e4, 1e4, rows),
            "small": rng.normal(0, 1, rows),
            "count": rng.integers(0, 5000, rows).astype(np.float64),
            "label": rng.integers(0, 2, rows),
        }
    )
    data = tmp_path / "plain.parquet"
    write_arrow(table, data)
    raw = job_tables(tmp_path, data, "leader", model__kind="mlp", data__kind="numeric")
    caplog.set_level(logging.WARNING, logger="cvfl")
    load_party(job_from_mapping(raw, tmp_path / "job.toml"))
    warnings = [r.getMessage() for r in caplog.records if "look unscaled" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].endswith("salary, count; declare them in [data.columns] to standardise them")
    assert "small" not in warnings[0] and "6" not in warnings[0].split(":")[-1]
