"""The report's files: a plain-text table, a JSON summary and a PNG of the loss curves."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cvfl.fsutil import atomic_write_bytes
from cvfl.report.leakage import leak_json, leak_rows
from cvfl.report.quality import QualityReport
from cvfl.train.metrics import LABELS, LOWER_IS_BETTER

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class ReportFiles:
    """Where a written report went."""

    text: Path
    json: Path
    png: Path


def _fmt(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.4f}"


def _quality_rows(report: QualityReport) -> list[str]:
    """One row per model: the task's metrics (primary first), steps and seconds."""
    names = report.split.metrics.names
    heads = "".join(f" {LABELS.get(n, n):>10}" for n in names)
    lines = [f"{'model':<14}{heads} {'steps':>6} {'seconds':>8}"]
    for m in report.models:
        cells = "".join(f" {_fmt(m.metrics.get(n)):>10}" for n in names)
        lines.append(f"{m.name:<14}{cells} {m.steps:>6} {m.seconds:>8.2f}")
    return lines


def _curve_rows(report: QualityReport) -> list[str]:
    lines = ["loss curves (per epoch: train / validation)"]
    header = f"{'epoch':>5} " + " ".join(f"{m.name:>23}" for m in report.models)
    lines.append(header)
    epochs = max(len(m.curve.epochs) for m in report.models)
    for i in range(epochs):
        cells = []
        for m in report.models:
            c = m.curve
            pair = f"{_fmt(c.train_loss[i])} / {_fmt(c.val_loss[i])}" if i < len(c.epochs) else ""
            cells.append(f"{pair:>23}")
        lines.append(f"{i + 1:>5} " + " ".join(cells))
    return lines


def render_text(report: QualityReport) -> str:
    """The report as a plain-text table."""
    w = report.wire
    seconds = report.split.seconds
    steps = report.split.steps
    task = report.split.metrics.task
    lines = [f"cvfl quality report: job {report.job_id}, task {task} (held-out rows)", ""]
    lines += _quality_rows(report)
    if report.leakage is not None and task == "binary":  # the audit scores 0/1 labels only
        lines += ["", *leak_rows(report.leakage, report.split.metrics.auc)]
    lines += ["", *_curve_rows(report), ""]
    lines += [
        "split training on the wire",
        f"  steps {steps}, {seconds:.2f} s, {1000 * seconds / max(steps, 1):.2f} ms/step, "
        f"{report.examples_per_second:.0f} examples/s",
        f"  per step (batch {report.batch_size}, mean): forward {w.forward_bytes_per_step:.0f} B"
        f" + backward {w.backward_bytes_per_step:.0f} B = {w.bytes_per_step:.0f} B",
        f"  whole job: training {w.train_bytes} B, evaluation {w.eval_bytes} B, "
        f"total {w.total_bytes} B",
        "  (serialized protobuf envelopes; gRPC framing and TLS records add a little)",
    ]
    lines += ["", *(f"note: {n}" for n in report.notes)]
    return "\n".join(lines) + "\n"


def render_json(report: QualityReport) -> str:
    """The report's figures as JSON (metrics, curves, wire; no data)."""
    w = report.wire
    metrics = report.split.metrics
    data = {
        "job_id": report.job_id,
        "task": metrics.task,
        "primary_metric": metrics.primary_name,
        "lower_is_better": metrics.primary_name in LOWER_IS_BETTER,
        "models": {
            m.name: {
                **m.metrics.as_dict(),
                "steps": m.steps,
                "seconds": round(m.seconds, 3),
                "train_loss": list(m.curve.train_loss),
                "val_loss": list(m.curve.val_loss),
            }
            for m in report.models
        },
        "wire": {
            "steps": w.steps,
            "forward_bytes": w.forward_bytes,
            "backward_bytes": w.backward_bytes,
            "eval_bytes": w.eval_bytes,
            "bytes_per_step": round(w.bytes_per_step, 1),
        },
        "examples_per_second": report.examples_per_second,
        "privacy": leak_json(report.leakage) if report.leakage is not None else None,
        "notes": list(report.notes),
    }
    return json.dumps(data, indent=2, allow_nan=True) + "\n"


def loss_scale(values: Sequence[float]) -> str:
    """``"log"`` when the positive finite ``values`` span more than two decades, else linear.

    A loss that falls from 10 to 0.01 is flat on a linear axis after the first epoch; on a log
    axis every epoch's change shows. Zero, negative or non-finite values keep the axis linear.
    """
    finite = [v for v in values if math.isfinite(v)]
    if not finite or min(finite) <= 0:
        return "linear"
    return "log" if max(finite) / min(finite) > 100 else "linear"


def render_png(report: QualityReport) -> bytes:
    """Training (solid) and validation (dashed) loss per epoch of every model, as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(7.5, 4.5), dpi=100)
    ax = fig.add_subplot()
    for i, m in enumerate(report.models):
        # The split curve is drawn wide and pale: exact split training lies under the
        # centralized model's thin line.
        width, alpha = (5.0, 0.35) if m is report.split else (1.5, 1.0)
        color, c = f"C{i}", m.curve
        # Markers keep a one-epoch job visible (a single point draws no line).
        style: dict[str, Any] = {
            "color": color,
            "lw": width,
            "alpha": alpha,
            "markersize": 3 + width,
        }
        ax.plot(c.epochs, c.train_loss, "-o", label=f"{m.name} train", **style)
        ax.plot(c.epochs, c.val_loss, "--s", label=f"{m.name} validation", **style)
    losses = [v for m in report.models for v in (*m.curve.train_loss, *m.curve.val_loss)]
    ax.set_yscale(loss_scale(losses))
    epochs = sorted({e for m in report.models for e in m.curve.epochs})
    if len(epochs) <= 12:
        ax.set_xticks(epochs)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    regression = report.split.metrics.task == "regression"
    ax.set_ylabel("squared error (validation: MSE)" if regression else "cross-entropy loss")
    ax.set_title(f"cvfl {report.job_id}: training and validation loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    sink = io.BytesIO()
    fig.savefig(sink, format="png")
    return sink.getvalue()


def write_report(report: QualityReport, folder: Path) -> ReportFiles:
    """Write ``report.txt``, ``report.json`` and ``loss-curves.png`` into ``folder`` atomically."""
    files = ReportFiles(folder / "report.txt", folder / "report.json", folder / "loss-curves.png")
    atomic_write_bytes(files.text, render_text(report).encode(), mode=0o644)
    atomic_write_bytes(files.json, render_json(report).encode(), mode=0o644)
    atomic_write_bytes(files.png, render_png(report), mode=0o644)
    return files
