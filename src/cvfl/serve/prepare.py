"""Everything one party loads before scoring: its half, its (aligned) table, its keys."""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from cvfl import __version__
from cvfl.bridge.security import ChannelSecurity
from cvfl.data.check import apply_state
from cvfl.data.ids import id_order_fingerprint
from cvfl.data.tables import PartyTable, TableSchema, table_format, validate
from cvfl.logs import get_logger
from cvfl.sealing import key_provider_from_config
from cvfl.sealing.keys import KeyProvider
from cvfl.serve.config import PredictSection
from cvfl.serve.halves import ScoringHalf, default_export, load_scoring_half
from cvfl.serve.hello import PREDICT_PROTOCOL_VERSION, PredictHello
from cvfl.train.config import JobConfig, outputs_sealed
from cvfl.train.inputs import aligned_arrow, input_arrow

log = get_logger(__name__)


@dataclass(frozen=True)
class PredictJob:
    """One party's scoring job, loaded and checked."""

    cfg: JobConfig
    section: PredictSection
    half: ScoringHalf
    table: PartyTable
    keys: KeyProvider | None

    def hello(self) -> PredictHello:
        """This party's predict hello (with a fresh nonce)."""
        return dataclasses.replace(
            half_hello(self.cfg, self.half, secrets.token_bytes(32), self.section.peer_fingerprint),
            batch_size=self.section.batch_size,
            num_rows=self.table.rows,
            id_order_fingerprint=id_order_fingerprint(self.cfg.job.id, self.table.ids),
        )

    @property
    def report_path(self) -> Path:
        """Where this party's JSON summary goes."""
        return self.section.report or self.cfg.job.workdir / f"{self.cfg.role}-predict.json"


def half_hello(cfg: JobConfig, half: ScoringHalf, nonce: bytes, pinned: str) -> PredictHello:
    """A hello declaring ``half`` (``pinned``: the peer's expected fingerprint); no table yet."""
    return PredictHello(
        protocol_version=PREDICT_PROTOCOL_VERSION,
        job_id=cfg.job.id,
        role=cfg.role,
        export_format=half.export_format,
        software_version=half.software_version,
        model_fingerprint=half.fingerprint,
        trained_steps=half.steps,
        cut_layer=half.cut_layer,
        batch_size=0,
        num_rows=0,
        id_order_fingerprint=b"",
        nonce=nonce,
        expected_peer_fingerprint=pinned,
    )


def scoring_schema(cfg: JobConfig, half: ScoringHalf) -> TableSchema:
    """The scoring table must hold the id column and exactly the export's feature columns."""
    return TableSchema(
        kind=cfg.data.kind,
        id_column=cfg.data.id_column,
        label_column=None,
        vocab=half.model.vocab,
        features=half.feature_names,
    )


def align_scoring_table(
    cfg: JobConfig, section: PredictSection, security: ChannelSecurity, keys: KeyProvider | None
) -> Path:
    """Align the scoring table with the peer by PSI (``[psi]`` settings); return the output."""
    from cvfl.psi import AlignJob, align

    assert cfg.psi is not None
    fmt = table_format(section.input)
    out = section.aligned or cfg.job.workdir / "predict" / f"aligned-{cfg.role}.{fmt}"
    if keys is not None and not section.aligned:
        out = out.with_name(out.name + ".sealed")
    psi = dataclasses.replace(cfg.psi, output=out, report=None)
    peer = cfg.peer.for_worker(0)
    job = AlignJob(
        job_id=cfg.job.id,
        role="leader" if cfg.role == "leader" else "follower",
        data=section.input,
        id_column=cfg.data.id_column,
        address=peer.listen if cfg.role == "leader" else peer.connect,
        seed=cfg.job.seed,
    )
    report = align(job, psi, security, keys=keys)
    log.info(
        "predict: %d of %d scoring rows are common to both parties",
        report.intersection,
        report.own_rows,
    )
    return out


def scoring_table(
    arrow: pa.Table, path: Path, schema: TableSchema, half: ScoringHalf
) -> PartyTable:
    """Check a scoring table and apply the export's preprocessing, if it has one.

    Every column the export reads must be there, of the right kind; an unseen category goes to
    bucket 0 and a missing cell is imputed as in training.

    Raises:
        DataError: naming ``path``, the column and the first bad row.
    """
    if half.prep is None:
        return validate(arrow, path, schema)
    return apply_state(arrow, path, half.prep, TableSchema(schema.kind, schema.id_column))


def load_own_half(
    cfg: JobConfig, export: Path | None, table: Path
) -> tuple[ScoringHalf, PartyTable, KeyProvider | None]:
    """This party's half (``export`` or the job's default), its checked table and its keys.

    Raises:
        ModelError: a missing, inconsistent or foreign export.
        SealingError: a sealed file that fails to open, or plaintext where the job seals.
        DataError: the table lacks a column the export reads, or has a bad value (named).
    """
    keys = key_provider_from_config(cfg.sealing) if cfg.sealing is not None else None
    half = load_scoring_half(export or default_export(cfg), cfg, keys)
    schema = scoring_schema(cfg, half)
    rows = scoring_table(input_arrow(table, schema.id_column, keys), table, schema, half)
    return half, rows, keys


def prepare_predict(
    cfg: JobConfig, section: PredictSection, security: ChannelSecurity
) -> PredictJob:
    """Load the half (checking it belongs to this job), align and read the scoring table.

    The export and the aligned table are artifacts: read only in the form the job's
    configuration gives (sealed with ``[sealing]``). The ``[predict] input`` table is the
    user's own and may be plaintext.

    Raises:
        ConfigError: no ``[sealing]`` and no ``[job] plaintext_outputs = true``.
        SealingError: a plaintext artifact where the job keeps them sealed (names the file).
    """
    sealed = outputs_sealed(cfg)
    # The user's own table is checked (its own rows named) before the peer is contacted.
    half, table, keys = load_own_half(cfg, section.export, section.input)
    schema = scoring_schema(cfg, half)
    if cfg.psi is not None and section.align:
        path = align_scoring_table(cfg, section, security, keys)
        arrow = aligned_arrow(path, schema.id_column, keys, sealed=sealed)
        table = scoring_table(arrow, path, schema, half)
    log.info("predict: %s scores %d rows with cvfl %s", cfg.role, table.rows, __version__)
    return PredictJob(cfg, section, half, table, keys)
