"""[train] track: the leader's per-epoch metrics and the report's figures, read back."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cvfl.errors import ConfigError
from cvfl.report.quality import Curve, ModelFigures, QualityReport
from cvfl.report.render import render_png
from cvfl.report.wire import WireFigures
from cvfl.train import TrainResult
from cvfl.train.config import JobConfig, TrainSection, job_from_mapping
from cvfl.train.metrics import Metrics
from cvfl.train.tracking import epoch_metrics, open_tracker, track_report
from tests.conftest import job_tables
from tests.train.helpers import run_pair

Build = Callable[..., tuple[JobConfig, JobConfig]]


def _trained(small_job: Build, **track: Any) -> tuple[JobConfig, TrainResult, JobConfig]:
    leader_cfg, follower_cfg = small_job(**{f"train__{k}": v for k, v in track.items()})
    leader, follower = run_pair(leader_cfg, follower_cfg)
    assert isinstance(leader, TrainResult), leader
    assert isinstance(follower, TrainResult), follower
    assert len(leader.history) == 2
    return leader_cfg, leader, follower_cfg


def _expected(result: TrainResult) -> dict[str, list[tuple[int, float]]]:
    """Each metric's (step, value) pairs, as the leader's result records them."""
    series: dict[str, list[tuple[int, float]]] = {}
    for record in result.history:
        for key, value in epoch_metrics(record).items():
            series.setdefault(key, []).append((int(record["step"]), value))
    return series


def test_tensorboard_holds_the_results_metrics(small_job: Build) -> None:
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    leader_cfg, result, follower_cfg = _trained(small_job, track="tensorboard")
    folder = leader_cfg.job.workdir / "tensorboard"
    events = accumulator.EventAccumulator(str(folder / "test-job-train")).Reload()
    seen = {
        tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
    }
    expected = _expected(result)
    assert set(seen) == set(expected) >= {"epoch", "train_loss", "val_loss", "val_auc"}
    for tag, points in expected.items():
        assert [s for s, _ in seen[tag]] == [s for s, _ in points]
        assert [v for _, v in seen[tag]] == pytest.approx([v for _, v in points], rel=1e-6)
    assert not (follower_cfg.job.workdir / "tensorboard").exists()  # the follower logs nothing


def _report() -> QualityReport:
    curve = Curve((1, 2), (0.6, 0.5), (0.62, 0.55))
    split = ModelFigures("split", Metrics("binary", {"auc": 0.8, "log_loss": 0.5}), curve, 2.0, 30)
    alone = ModelFigures("leader only", Metrics("binary", {"auc": 0.7}), curve, 1.0, 30)
    return QualityReport("test-job", split, alone, None, WireFigures(30, 3000, 3000, 800), 32, 9.5)


def test_the_reports_figures_and_plot_go_to_tensorboard(small_job: Build) -> None:
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    leader_cfg, _ = small_job(train__track="tensorboard")
    report = _report()
    track_report(leader_cfg, report, render_png(report))
    folder = leader_cfg.job.workdir / "tensorboard" / "test-job-report"
    events = accumulator.EventAccumulator(str(folder)).Reload()
    figures = {tag: events.Scalars(tag)[0] for tag in events.Tags()["scalars"]}
    assert figures["report/split/auc"].value == pytest.approx(0.8)
    assert figures["report/leader_only/auc"].value == pytest.approx(0.7)
    assert figures["report/wire_bytes_per_step"].value == pytest.approx(200.0)
    assert {e.step for e in figures.values()} == {30}
    assert events.Tags()["images"] == ["report/loss-curves.png"]
    (image,) = events.Images("report/loss-curves.png")
    assert (image.width, image.height) == (750, 450)


def test_mlflow_run_holds_the_results_metrics_and_no_path(
    small_job: Build, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("mlflow")
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 asks to opt in to file:
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = (tmp_path / "runs").as_uri()
    _, result, _ = _trained(small_job, track="mlflow", track_uri=uri)
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("test-job")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "test-job-train" and run.info.status == "FINISHED"
    for key, points in _expected(result).items():
        history = client.get_metric_history(run.info.run_id, key)
        assert [m.step for m in history] == [s for s, _ in points]
        assert [m.value for m in history] == pytest.approx([v for _, v in points], rel=1e-6)
    assert run.data.params["optimizer"] == "adam" and run.data.params["job_id"] == "test-job"
    assert not any(str(tmp_path) in value for value in run.data.params.values())


def test_mlflow_refusing_the_store_is_a_configuration_error(
    small_job: Build, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "false")
    leader_cfg, _ = small_job(train__track="mlflow", train__track_uri=tmp_path.as_uri())
    with pytest.raises(ConfigError, match=r"\[train\] track_uri") as info:
        open_tracker(leader_cfg)
    assert info.value.code == "config.track"


@pytest.mark.parametrize(
    ("backend", "module"), [("tensorboard", "torch.utils.tensorboard"), ("mlflow", "mlflow")]
)
def test_a_backend_not_installed_names_the_key_and_the_install_command(
    small_job: Build, monkeypatch: pytest.MonkeyPatch, backend: str, module: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # importing it now raises ImportError
    leader_cfg, follower_cfg = small_job(train__track=backend)
    with pytest.raises(ConfigError, match=rf"\[train\] track.*pip install 'cvfl\[{backend}\]'"):
        open_tracker(leader_cfg)
    open_tracker(follower_cfg).close()  # the follower records nothing, so needs nothing


@pytest.mark.parametrize(
    ("train", "code"),
    [
        ({"track": "wandb"}, "config.value"),
        ({"track": True}, "config.value"),
        ({"track_dir": "tb"}, "config.track"),
        ({"track": "tensorboard", "track_uri": "file:///x"}, "config.track"),
        ({"track": "mlflow", "track_uri": "mlruns"}, "config.track"),
        ({"track": "mlflow", "track_uri": 5}, "config.type"),
    ],
)
def test_bad_tracking_settings_are_refused(
    tmp_path: Path, train: dict[str, Any], code: str
) -> None:
    raw = job_tables(tmp_path, tmp_path / "t.parquet", "leader")
    raw["train"] |= train
    with pytest.raises(ConfigError, match=r"\[train\] track") as info:
        job_from_mapping(raw, tmp_path / "job.toml")
    assert info.value.code == code


def test_default_places_are_in_the_workdir(small_job: Build) -> None:
    from cvfl.train.tracking import mlflow_uri, tensorboard_dir

    leader_cfg, _ = small_job(train__track="tensorboard")
    assert tensorboard_dir(leader_cfg) == leader_cfg.job.workdir / "tensorboard"
    assert mlflow_uri(leader_cfg) == (leader_cfg.job.workdir / "mlruns").absolute().as_uri()


@given(st.text(max_size=40))
def test_any_track_uri_loads_or_is_a_configuration_error(uri: str) -> None:
    try:
        section = TrainSection(track="mlflow", track_uri=uri)
    except ConfigError as exc:
        assert exc.code == "config.track"
    else:
        scheme, _, rest = section.track_uri.partition(":")
        assert not uri or (scheme.isalnum() and rest)
