"""Report rendering (text, JSON, PNG) and the wire figures of a schedule."""

from __future__ import annotations

import dataclasses
import json
import math
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvfl.errors import DataError
from cvfl.report import Curve, ModelFigures, QualityReport, wire_figures, write_report
from cvfl.report.quality import curve_from_history, read_split_result
from cvfl.report.render import PNG_MAGIC, loss_scale, render_json, render_text
from cvfl.train.metrics import Metrics
from cvfl.train.schedule import Schedule


def _model(name: str, auc: float, epochs: int = 4) -> ModelFigures:
    curve = Curve(
        tuple(range(1, epochs + 1)),
        tuple(0.7 / e for e in range(1, epochs + 1)),
        tuple(0.6 / e + 0.01 for e in range(1, epochs + 1)),
    )
    metrics = Metrics("binary", {"auc": auc, "log_loss": 0.1, "accuracy": 0.95}, 100)
    return ModelFigures(name, metrics, curve, 1.5, 40)


def _report(centralized: bool = True) -> QualityReport:
    schedule = Schedule(num_rows=500, holdout_fraction=0.2, seed=1, batch_size=32, epochs=4)
    return QualityReport(
        job_id="j",
        split=_model("split", 0.99),
        leader_only=_model("leader only", 0.95),
        centralized=_model("centralized", 0.99) if centralized else None,
        wire=wire_figures(schedule, 8, "act1_f"),
        batch_size=32,
        examples_per_second=1000.0,
        notes=("a note",),
    )


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_report_files(tmp_path: Path) -> None:
    files = write_report(_report(), tmp_path / "out")
    png = files.png.read_bytes()
    assert len(png) > 10_000 and png.endswith(b"IEND\xaeB`\x82")
    assert _png_size(png) == (750, 450)
    text = files.text.read_text()
    for name in (
        "split",
        "leader only",
        "centralized",
        "per step (batch 32, mean)",
        "note: a note",
    ):
        assert name in text
    data = json.loads(files.json.read_text())
    assert set(data["models"]) == {"split", "leader only", "centralized"}
    assert data["models"]["split"]["auc"] == 0.99


def test_report_shows_each_tasks_metrics() -> None:
    values = {"rmse": 0.5, "mae": 0.4, "r2": 0.75}
    report = _report()
    split = ModelFigures("split", Metrics("regression", values), report.split.curve, 1.0, 40)
    regression = QualityReport(
        job_id="r",
        split=split,
        leader_only=split,
        centralized=None,
        wire=report.wire,
        batch_size=32,
        examples_per_second=1.0,
    )
    text = render_text(regression)
    header = text.splitlines()[2]
    assert "task regression" in text
    assert header.split()[1:4] == ["RMSE", "MAE", "R²"] and "AUC" not in text
    assert "0.5000" in text.splitlines()[3]
    data = json.loads(render_json(regression))
    assert data["task"] == "regression" and data["primary_metric"] == "rmse"
    assert data["lower_is_better"] is True
    assert data["models"]["split"]["r2"] == 0.75


def test_report_without_centralized() -> None:
    text = render_text(_report(centralized=False))
    assert "centralized" not in text.split("loss curves")[0]


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 300), st.integers(1, 64), st.integers(1, 16), st.integers(1, 3))
def test_wire_figures_grow_with_tensor_bytes(
    rows: int, batch: int, width: int, epochs: int
) -> None:
    schedule = Schedule(
        num_rows=rows + 1, holdout_fraction=0.2, seed=0, batch_size=batch, epochs=epochs
    )
    w = wire_figures(schedule, width, "act1_f")
    assert w.steps == schedule.total_steps
    payload = sum(len(s.rows) for s in schedule.steps()) * width * 4
    for total in (w.forward_bytes, w.backward_bytes):
        assert payload < total < payload + 130 * w.steps  # MAC, names, shape, sequence numbers
    assert w.bytes_per_step * w.steps == pytest.approx(w.train_bytes)
    assert w.total_bytes == w.train_bytes + w.eval_bytes > 0


def test_curve_from_both_history_kinds() -> None:
    split = curve_from_history([{"epoch": 0, "train_loss": 0.5, "val_loss": 0.4}])
    local = curve_from_history([{"epoch": 0, "train_loss": 0.5, "val_log_loss": 0.3}])
    assert split == Curve((1,), (0.5,), (0.4,)) and local.val_loss == (0.3,)
    assert math.isnan(curve_from_history([{"epoch": 0}]).train_loss[0])


def test_missing_split_result_is_named(small_job, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lead, _ = small_job()
    with pytest.raises(DataError) as info:
        read_split_result(lead)
    assert "leader-result.json: no such file" in info.value.message


@pytest.mark.parametrize(
    ("values", "scale"),
    [
        ([0.7, 0.35, 0.2], "linear"),
        ([10.0, 0.1], "linear"),  # exactly two decades
        ([10.0, 0.099], "log"),
        ([5.0, 0.01, math.nan], "log"),
        ([5.0, 0.0], "linear"),  # a zero loss cannot sit on a log axis
        ([math.inf, math.nan], "linear"),
        ([], "linear"),
    ],
)
def test_loss_axis_is_logarithmic_beyond_two_decades(values: list[float], scale: str) -> None:
    assert loss_scale(values) == scale


def test_the_png_uses_the_log_axis_for_a_wide_loss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from matplotlib.axes import Axes

    scales: list[str] = []
    original = Axes.set_yscale

    def spy(self: Axes, value: str, **kwargs: object) -> None:
        scales.append(value)
        original(self, value, **kwargs)

    monkeypatch.setattr(Axes, "set_yscale", spy)
    report = _report()
    wide = Curve((1, 2, 3), (9.0, 0.5, 0.02), (8.0, 0.6, 0.03))
    report = dataclasses.replace(report, split=dataclasses.replace(report.split, curve=wide))
    png = write_report(report, tmp_path / "wide").png.read_bytes()
    assert _png_size(png) == (750, 450)
    write_report(_report(), tmp_path / "narrow")
    assert scales == ["log", "linear"]
