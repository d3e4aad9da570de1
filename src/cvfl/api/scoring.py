"""``predict`` and ``report``: scoring with both exported halves, and the quality report."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cvfl.api.jobs import JobLike, as_job
from cvfl.api.tables import TableLike, is_path, table_file

if TYPE_CHECKING:
    from cvfl.report.quality import QualityReport
    from cvfl.report.render import ReportFiles
    from cvfl.serve import PredictJob, PredictResult, PredictSection
    from cvfl.train import JobConfig


def predict(
    job: JobLike,
    table: TableLike | None = None,
    *,
    output: str | os.PathLike[str] | None = None,
    plaintext_scores: bool | None = None,
    settings: Mapping[str, Any] | None = None,
) -> PredictResult:
    """Score a table with both exported halves (this party's side of ``cvfl predict``).

    Args:
        job: A loaded job or the path of its job file (whose ``[predict]`` section is read).
        table: This party's scoring table: a path, a ``pyarrow.Table`` or a pandas
            ``DataFrame`` (overrides ``[predict] input``).
        output: Leader: the scores file (overrides ``[predict] output``); sealed unless
            ``plaintext_scores``.
        plaintext_scores: Leader: write the scores unsealed (asked for by name).
        settings: ``[predict]`` keys for a loaded job (a job file's own section is used for a
            path).

    Returns:
        Counts, sizes and fingerprints; the leader's scores are in ``result.output``.
    """
    return run_prediction(job, table, output, plaintext_scores, settings)[1]


def run_prediction(
    job: JobLike,
    table: TableLike | None,
    output: str | os.PathLike[str] | None,
    plaintext_scores: bool | None,
    settings: Mapping[str, Any] | None = None,
) -> tuple[PredictJob, PredictResult]:
    """:func:`predict`, also returning the loaded scoring job (the CLI prints its summary)."""
    from cvfl.serve import prepare_predict, run_predict_follower, run_predict_leader
    from cvfl.train.channel import security_for

    cfg, section = _predict_job(job, table, settings)
    if output is not None:
        section = replace(section, output=Path(output).resolve())
    if plaintext_scores is not None:
        section = replace(section, plaintext_scores=plaintext_scores)
    plain_scores = cfg.role == "leader" and section.plaintext_scores
    security = security_for(cfg, "predict", plaintext_extra=plain_scores)
    scoring = prepare_predict(cfg, section, security)
    run = run_predict_leader if cfg.role == "leader" else run_predict_follower
    return scoring, run(scoring, security)


def _predict_job(
    job: JobLike, table: TableLike | None, settings: Mapping[str, Any] | None
) -> tuple[JobConfig, PredictSection]:
    from cvfl.serve import PredictSection, load_predict_job

    if isinstance(job, str | os.PathLike):
        path = Path(job)
        if table is None or is_path(table):
            return load_predict_job(path, input=Path(table).resolve() if table else None)
        return load_predict_job(path, input=_input_file(as_job(path), table))
    cfg = as_job(job)
    section = dict(settings or {})
    if table is not None:
        section["input"] = str(_input_file(cfg, table))
    return cfg, PredictSection.from_toml_table(section, cfg.source.parent)


def _input_file(cfg: JobConfig, table: TableLike) -> Path:
    if is_path(table):
        return Path(table).resolve()
    return table_file(table, cfg.job.workdir, f"{cfg.role}-scoring", "table")


@dataclass(frozen=True)
class Report:
    """The quality report and the files it was written to."""

    quality: QualityReport
    files: ReportFiles
    text: str


def report(
    leader_job: JobLike,
    follower_job: JobLike | None = None,
    *,
    out: str | os.PathLike[str] | None = None,
) -> Report:
    """The split model beside leader-only and (with the follower's job) centralized models.

    Args:
        leader_job: The leader's job, trained (its ``<role>-result.json`` is read).
        follower_job: The follower's job, for the centralized model (demo or evaluation only:
            it needs both tables in one place).
        out: Folder for the report (default ``<workdir>/report``).
    """
    from cvfl.report import build_report, render_text, write_report
    from cvfl.train.tracking import track_report

    leader = as_job(leader_job)
    follower = as_job(follower_job) if follower_job is not None else None
    quality = build_report(leader, follower)
    files = write_report(quality, Path(out) if out is not None else leader.job.workdir / "report")
    track_report(leader, quality, files.png.read_bytes())  # [train] track (none: nothing)
    return Report(quality, files, render_text(quality))
