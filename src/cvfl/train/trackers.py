"""The tracker backends of :mod:`cvfl.train.tracking`: TensorBoard event files and MLflow runs.

Each is given its already-imported module (the optional extra), so importing this module needs
neither.
"""

from __future__ import annotations

import importlib
import io
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cvfl.errors import ConfigError, mismatch
from cvfl.train.tracking import Param


class TensorboardTracker:
    """Scalars, the settings as text and figures as images in ``folder/<run>``."""

    def __init__(self, module: Any, folder: Path, run: str) -> None:
        self.folder = folder / run
        self.writer = module.SummaryWriter(log_dir=str(self.folder))

    def log_params(self, params: Mapping[str, Param]) -> None:
        """The settings as one markdown table (TensorBoard's text tab)."""
        rows = "\n".join(f"| {key} | {value} |" for key, value in params.items())
        self.writer.add_text("params", f"| setting | value |\n|---|---|\n{rows}")

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """One scalar per metric at ``step``."""
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)

    def log_png(self, name: str, png: bytes, step: int) -> None:
        """The figure as an image (decoded from PNG)."""
        from matplotlib import image

        pixels = image.imread(io.BytesIO(png), format="png")
        self.writer.add_image(name, pixels, step, dataformats="HWC")

    def close(self) -> None:
        """Flush the event file."""
        self.writer.close()


class MlflowTracker:
    """A run named ``run`` in the experiment ``experiment`` at ``uri``."""

    def __init__(self, module: Any, uri: str, experiment: str, run: str) -> None:
        self.entities = importlib.import_module("mlflow.entities")
        failure = importlib.import_module("mlflow.exceptions").MlflowException
        try:
            self.client = module.MlflowClient(tracking_uri=uri)
            found = self.client.get_experiment_by_name(experiment)
            exp_id = found.experiment_id if found else self.client.create_experiment(experiment)
            self.run_id: str = self.client.create_run(exp_id, run_name=run).info.run_id
        except failure as exc:
            raise ConfigError(
                mismatch("[train] track_uri", "a tracking store MLflow accepts", repr(uri))
                + f": {exc}",
                code="config.track",
            ) from exc

    def log_params(self, params: Mapping[str, Param]) -> None:
        """The settings as the run's parameters."""
        batch = [self.entities.Param(key, str(value)) for key, value in params.items()]
        self.client.log_batch(self.run_id, params=batch)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """The metrics at ``step`` in one batch."""
        now = int(time.time() * 1000)
        batch = [self.entities.Metric(key, value, now, step) for key, value in metrics.items()]
        self.client.log_batch(self.run_id, metrics=batch)

    def log_png(self, name: str, png: bytes, step: int) -> None:
        """The figure as an artifact ``name`` (a path inside the run's artifacts)."""
        target = Path(name)
        with tempfile.TemporaryDirectory(prefix="cvfl-track-") as folder:
            local = Path(folder) / target.name
            local.write_bytes(png)
            parent = str(target.parent) if str(target.parent) != "." else None
            self.client.log_artifact(self.run_id, str(local), artifact_path=parent)

    def close(self) -> None:
        """End the run."""
        self.client.set_terminated(self.run_id)
