"""One party's serving state: its half and its feature table, indexed by example id."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa

from cvfl.data.tables import FeatureKind, PartyTable
from cvfl.errors import ConfigError, DataError, ModelError, mismatch
from cvfl.logs import get_logger
from cvfl.models.nets import LeaderHalf
from cvfl.online.cache import RowCache
from cvfl.online.config import ServeSection
from cvfl.online.top import NumpyTop
from cvfl.sealing.artifacts import twin_names
from cvfl.sealing.keys import KeyProvider
from cvfl.serve.halves import ScoringHalf, load_scoring_half
from cvfl.serve.hello import PredictHello
from cvfl.serve.prepare import half_hello, load_own_half, scoring_schema, scoring_table
from cvfl.train.config import JobConfig
from cvfl.train.fallback import VARIANT, fallback_export

log = get_logger(__name__)

# Distinct from cvfl predict's version: a predict peer and a serve peer refuse each other.
SERVE_PROTOCOL_VERSION = 101
INLINE = Path("<request features>")
WAIT_WARNING = 30.0  # seconds between warnings that a reloaded half waits for its peer


@dataclass(frozen=True)
class ServingParty:
    """A party's half in eval mode and its feature rows by example id."""

    cfg: JobConfig
    section: ServeSection
    half: ScoringHalf
    table: PartyTable
    index: Mapping[str, int]
    fallback: ScoringHalf | None = None  # the leader-only model ([serve] fallback)
    cache: RowCache | None = None  # the half's per-row outputs (None: computed per batch)
    top: NumpyTop | None = None  # the leader's top layers, when its bottom tower is cached

    @property
    def short(self) -> str:
        """The half's fingerprint shortened for logs and refusals (16 hex digits)."""
        return self.half.fingerprint[:16]

    def rows_of(self, ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """For ``ids``: a mask of the ones this party holds and their row positions."""
        found = [self.index.get(i, -1) for i in ids]
        rows = np.asarray(found, dtype=np.int64)
        present = rows >= 0
        return present, rows[present]

    def hello(self, nonce: bytes) -> PredictHello:
        """The serving hello: the half's declaration; no table (each side serves its own)."""
        mine = half_hello(self.cfg, self.half, nonce, self.section.peer_fingerprint)
        return replace(mine, protocol_version=SERVE_PROTOCOL_VERSION)

    def inline_features(
        self, ids: Sequence[str], rows: Sequence[Mapping[str, float]]
    ) -> np.ndarray:
        """The features of request rows given inline, checked and preprocessed as the table's.

        Raises:
            DataError: a missing column or a bad value (``data.*``, naming the column).
        """
        schema = scoring_schema(self.cfg, self.half)
        columns: dict[str, pa.Array] = {schema.id_column: pa.array(list(ids), type=pa.string())}
        for name in sorted({k for row in rows for k in row}):
            values = [row.get(name) for row in rows]
            columns[name] = _column(name, values, schema.kind)
        table = scoring_table(pa.table(columns), INLINE, schema, self.half)
        return table.features


def _column(name: str, values: list[float | None], kind: FeatureKind) -> pa.Array:
    for value in values:
        if value is not None and not math.isfinite(value):
            raise DataError(
                mismatch(f"features column {name!r}", "finite numbers", value),
                code="data.nan",
            )
    if kind is FeatureKind.CATEGORICAL and all(v is None or float(v).is_integer() for v in values):
        return pa.array([None if v is None else int(v) for v in values], type=pa.int64())
    return pa.array(values, type=pa.float64())


def load_serving_party(cfg: JobConfig, section: ServeSection) -> ServingParty:
    """Load this party's half and table (sealed as the job says) and index the rows by id.

    Raises:
        DataError: an id appears twice in the table (``data.duplicate_id``).
    """
    half, table, keys = load_own_half(cfg, section.export, section.table)
    fallback = load_fallback(cfg, section, half, keys)
    index = {example: row for row, example in enumerate(table.ids)}
    if len(index) != table.rows:
        raise DataError(
            mismatch(f"{section.table}: distinct ids", table.rows, len(index)),
            code="data.duplicate_id",
        )
    log.info(
        "serve: %s holds %d rows of %d features", cfg.role, table.rows, len(half.feature_names)
    )
    cache = row_cache(cfg.role, half, table, section.cache_ids)
    module = half.module
    top = NumpyTop.of(module.top) if cache is not None and isinstance(module, LeaderHalf) else None
    return ServingParty(cfg, section, half, table, index, fallback, cache, top)


def row_cache(role: str, half: ScoringHalf, table: PartyTable, capacity: int) -> RowCache | None:
    """The cache of what ``half`` computes per row of ``table``; None where there is none.

    The follower's whole half and the leader's bottom tower (a built-in :class:`LeaderHalf`
    only: a custom leader module is not split) are cached, unless ``capacity`` is 0.
    """
    module = half.module
    if capacity == 0 or table.rows == 0:
        return None
    if role == "leader" and not isinstance(module, LeaderHalf):
        return None
    compute = module.own if isinstance(module, LeaderHalf) else module
    started = time.perf_counter()
    cache = RowCache(compute, table.features, capacity)
    if cache.whole:
        log.info(
            "serve: computed the %s's per-row outputs of %d rows in %.1f s",
            role,
            table.rows,
            time.perf_counter() - started,
        )
    return cache


def load_fallback(
    cfg: JobConfig, section: ServeSection, half: ScoringHalf, keys: KeyProvider | None
) -> ScoringHalf | None:
    """The leader-only model when ``[serve] fallback = "leader_only"``, checked against ``half``.

    It must read the same feature columns, prepared the same way, as the split half whose
    table the service holds.

    Raises:
        ConfigError: the fallback is asked of the follower (``config.serve``).
        ModelError: no leader-only export (``model.missing``: run ``cvfl fallback``), one of
            another job or variant, or one reading other columns (``model.spec``).
    """
    if section.fallback != "leader_only":
        return None
    if cfg.role != "leader":
        raise ConfigError(
            mismatch('[serve] fallback = "leader_only": [job] role', "leader", cfg.role),
            code="config.serve",
        )
    path = section.fallback_export or fallback_export(cfg)
    if not any(p.is_file() for p in twin_names(path)):
        raise ModelError(
            f"{path}: no leader-only model (run `cvfl fallback --config` with this job file, "
            'or set [serve] fallback = "not_scorable")',
            code="model.missing",
        )
    model = load_scoring_half(path, cfg, keys, variant=VARIANT)
    for what, want, seen in (
        ("feature columns", half.feature_names, model.feature_names),
        ("preprocessing", _prep(half), _prep(model)),
    ):
        if want != seen:
            raise ModelError(
                mismatch(f"{path}: the leader-only model's {what}", "the split half's", seen),
                code="model.spec",
            )
    log.info("serve: the leader-only model scores what the split model cannot (%s)", path)
    return model


def _prep(half: ScoringHalf) -> object:
    return half.prep.to_json() if half.prep is not None else None
