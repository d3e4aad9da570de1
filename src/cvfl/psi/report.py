"""What one party's alignment did, and the shared last step: write the rows and the report."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

from cvfl.data.tables import table_format
from cvfl.errors import AlignmentError
from cvfl.fsutil import atomic_write_bytes
from cvfl.logs import get_logger
from cvfl.psi.config import AlignJob, PsiConfig
from cvfl.psi.gather import ordered_rows
from cvfl.psi.output import write_aligned
from cvfl.psi.sets import Intersection
from cvfl.sealing import KeyProvider

log = get_logger(__name__)


@dataclass(frozen=True)
class AlignReport:
    """What one party's alignment did; written next to the output as JSON (no ids in it)."""

    job_id: str
    role: str
    mode: str
    channel: str
    own_rows: int
    duplicates_dropped: int
    peer_items: int
    intersection: int
    order_fingerprint: str
    output: str
    sealed: bool
    spills: int
    seconds_blind: float
    seconds_exchange: float
    seconds_output: float
    seconds_total: float

    def to_json(self) -> str:
        """Return the report as indented JSON."""
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"


def write_rows(
    job: AlignJob, cfg: PsiConfig, keys: KeyProvider | None, found: Intersection
) -> bytes:
    """Write this party's rows of the intersection (``found``) in the agreed order; atomic.

    Sealed unless plaintext was asked for; streamed in row groups with bounded memory
    (:mod:`cvfl.psi.gather`, :func:`cvfl.psi.output.write_aligned`). Returns the order
    fingerprint (see :mod:`cvfl.psi.order`).

    Raises:
        AlignmentError: ``psi.empty`` when no row is common to both parties (both sides learn
            the same count): nothing is written, so an aligned table from an earlier run stays
            as it was.
    """
    if found.count == 0:
        raise AlignmentError(
            f"{job.data}: no row is common to both parties; {cfg.output} was not written "
            "(an aligned table from an earlier run stays as it was)",
            code="psi.empty",
        )
    with ordered_rows(job.data, job.id_column, job.job_id, job.seed, cfg.spill_dir) as ordered:
        ordered.distribute(found.mask)
        fmt = table_format(cfg.output)  # as its name says
        tables = ordered.sorted_tables()
        write_aligned(cfg.output, fmt, keys, ordered.schema, tables, expected=found.count)
        return ordered.fingerprint()


def write_report(cfg: PsiConfig, report: AlignReport) -> None:
    """Write the JSON report atomically and log the outcome."""
    atomic_write_bytes(cfg.report_path, report.to_json().encode("utf-8"))
    log.info(
        "psi: %s holds %d of the %d common rows in the agreed order; wrote %s (%s)",
        report.role,
        report.intersection,
        report.intersection,
        cfg.output,
        "sealed" if report.sealed else "PLAINTEXT",
    )


@dataclass(frozen=True)
class Counts:
    """What a mode counted on its way to the intersection (for the report)."""

    own_rows: int
    duplicates_dropped: int
    peer_items: int
    spills: int


def finish_alignment(
    job: AlignJob,
    cfg: PsiConfig,
    keys: KeyProvider | None,
    found: Intersection,
    *,
    channel: str,
    counts: Counts,
    marks: tuple[float, float, float],
) -> AlignReport:
    """Write this party's ``found`` rows and the report; return the report.

    Args:
        job: The party's alignment.
        cfg: Its ``[psi]`` settings (the report's mode, output and place).
        keys: The sealing keys of the output (None: plaintext, as asked for).
        found: This party's rows of the intersection (a mask of its rows).
        channel: The channel security's name.
        counts: What the mode counted.
        marks: ``time.perf_counter()`` when the alignment started, when this party's own ids
            were blinded (or hashed), and when the exchange ended.
    """
    started, blinded, exchanged = marks
    fingerprint = write_rows(job, cfg, keys, found)
    done = time.perf_counter()
    report = AlignReport(
        job_id=job.job_id,
        role=job.role,
        mode=cfg.mode,
        channel=channel,
        own_rows=counts.own_rows,
        duplicates_dropped=counts.duplicates_dropped,
        peer_items=counts.peer_items,
        intersection=found.count,
        order_fingerprint=fingerprint.hex(),
        output=str(cfg.output),
        sealed=keys is not None,
        spills=counts.spills,
        seconds_blind=round(blinded - started, 3),
        seconds_exchange=round(exchanged - blinded, 3),
        seconds_output=round(done - exchanged, 3),
        seconds_total=round(done - started, 3),
    )
    write_report(cfg, report)
    return report
