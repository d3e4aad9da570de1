"""The quality report: split vs leader-only vs centralized, loss curves, wire figures."""

from cvfl.report.quality import Curve, ModelFigures, QualityReport, build_report
from cvfl.report.render import ReportFiles, render_png, render_text, write_report
from cvfl.report.wire import WireFigures, wire_figures

__all__ = [
    "Curve",
    "ModelFigures",
    "QualityReport",
    "ReportFiles",
    "WireFigures",
    "build_report",
    "render_png",
    "render_text",
    "wire_figures",
    "write_report",
]
