"""Per-party preprocessing: fitted on the party's training rows, kept as plain JSON, never shared.

Numeric columns are centred and scaled (``standard``: mean and standard deviation; ``robust``:
median and inter-quartile range; ``quantile``: mapped through 101 training quantiles onto
[0, 1]); a missing cell (null or NaN) takes the training mean (``standard``) or median (the
others) and, for a column whose training rows had missing cells, a ``<name>.missing`` 0/1
indicator column is added. Categorical columns (text, integers, booleans) become indices:
0 is the out-of-vocabulary bucket (values unseen in training and missing cells, empty text
included), the sorted
training values are 1..V; a column with more than ``max_categories`` distinct training values is
hashed (BLAKE2b of its text) into ``max_categories`` buckets 1..B instead.

The output is one float32 matrix per party: the numeric columns, then the indicator columns,
then the categorical indices (exact small integers). :class:`InputLayout` tells the model which
is which. The state (:meth:`Preprocessing.to_json`) holds only numbers and strings.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cvfl.data.columns import ColumnsSpec
from cvfl.errors import ModelError, mismatch

FORMAT = "cvfl-prep/v1"
QUANTILES = 101
MISSING_SUFFIX = ".missing"
_F32_MAX = float(np.finfo(np.float32).max)
_BIG = float(np.finfo(np.float64).max)


@dataclass(frozen=True)
class InputLayout:
    """How a party's feature matrix is laid out for the model.

    Attributes:
        numeric_width: Leading float columns (values and missing indicators).
        cardinalities: Indices per categorical column, in the order of the trailing columns.
        embed_dim: Embedding width of each categorical column.
    """

    numeric_width: int
    cardinalities: tuple[int, ...]
    embed_dim: int

    @property
    def width(self) -> int:
        """Columns of the feature matrix."""
        return self.numeric_width + len(self.cardinalities)


@dataclass(frozen=True)
class NumericState:
    """One fitted numeric column."""

    name: str
    scaling: str
    center: float
    scale: float
    fill: float
    indicator: bool
    quantiles: tuple[float, ...] = ()


@dataclass(frozen=True)
class CategoricalState:
    """One fitted categorical column: a sorted vocabulary, or a number of hash buckets."""

    name: str
    vocab: tuple[str, ...] = ()
    buckets: int = 0

    @property
    def size(self) -> int:
        """Indices this column takes (bucket 0 included)."""
        return 1 + (self.buckets or len(self.vocab))


@dataclass(frozen=True)
class Preprocessing:
    """A party's fitted preprocessing."""

    numeric: tuple[NumericState, ...]
    categorical: tuple[CategoricalState, ...]
    embed_dim: int

    @property
    def input_columns(self) -> tuple[str, ...]:
        """The columns of the party's table it reads."""
        return tuple(c.name for c in self.numeric) + tuple(c.name for c in self.categorical)

    @property
    def output_names(self) -> tuple[str, ...]:
        """The names of the feature matrix's columns."""
        flags = tuple(c.name + MISSING_SUFFIX for c in self.numeric if c.indicator)
        return tuple(c.name for c in self.numeric) + flags + tuple(c.name for c in self.categorical)

    @property
    def layout(self) -> InputLayout:
        """The model's view of the feature matrix."""
        width = len(self.numeric) + sum(c.indicator for c in self.numeric)
        return InputLayout(width, tuple(c.size for c in self.categorical), self.embed_dim)

    def transform(self, table: pa.Table) -> np.ndarray:
        """The float32 feature matrix of ``table`` (its columns checked beforehand)."""
        raw = [numeric_values(table.column(s.name)) for s in self.numeric]
        values = [_scale(s, x) for s, x in zip(self.numeric, raw, strict=True)]
        flags = [
            (~np.isfinite(x)).astype(np.float64)
            for s, x in zip(self.numeric, raw, strict=True)
            if s.indicator
        ]
        codes = [_encode(s, category_text(table.column(s.name))) for s in self.categorical]
        columns = values + flags + [c.astype(np.float64) for c in codes]
        out = np.zeros((table.num_rows, len(columns)), dtype=np.float32)
        for j, column in enumerate(columns):
            out[:, j] = column
        return out

    def to_json(self) -> dict[str, Any]:
        """The state as plain numbers and strings."""
        return {
            "format": FORMAT,
            "embed_dim": self.embed_dim,
            "numeric": [
                {
                    "name": s.name,
                    "scaling": s.scaling,
                    "center": s.center,
                    "scale": s.scale,
                    "fill": s.fill,
                    "indicator": s.indicator,
                    "quantiles": list(s.quantiles),
                }
                for s in self.numeric
            ],
            "categorical": [
                {"name": s.name, "vocab": list(s.vocab), "buckets": s.buckets}
                for s in self.categorical
            ],
        }

    @classmethod
    def from_json(cls, data: object) -> Preprocessing:
        """Rebuild from :meth:`to_json` output, every field checked.

        Raises:
            ModelError: ``model.spec``, naming the field with its expected and seen value.
        """
        doc = _mapping("preprocessing", data)
        if doc.get("format") != FORMAT:
            raise _bad("preprocessing format", FORMAT, doc.get("format"))
        dim = _int("preprocessing embed_dim", doc.get("embed_dim"), low=1)
        numeric = tuple(_numeric_state(x) for x in _list("preprocessing numeric", doc))
        categorical = tuple(_categorical_state(x) for x in _list("preprocessing categorical", doc))
        names = [s.name for s in numeric] + [s.name for s in categorical]
        if len(set(names)) != len(names):
            raise _bad("preprocessing columns", "distinct names", names)
        return cls(numeric, categorical, dim)


def numeric_values(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A numeric (or all-null) column as float64, missing cells as NaN."""
    cast = pc.cast(column, pa.float64())
    out: np.ndarray = np.array(cast.to_numpy(zero_copy_only=False), dtype=np.float64)
    return out


def category_text(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """A categorical column as text (integers in decimal, booleans ``true``/``false``).

    An empty string is a missing cell (a CSV writes a missing text cell as nothing).
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if pa.types.is_floating(column.type):
        values = numeric_values(column)
        whole = np.isfinite(values) & (values == np.round(values)) & (np.abs(values) < 2**53)
        text = [
            None if math.isnan(v) else (str(int(v)) if w else repr(float(v)))
            for v, w in zip(values.tolist(), whole.tolist(), strict=True)
        ]
        return pa.array(text, type=pa.string())
    cast = pc.cast(column, pa.string())
    return pc.if_else(pc.equal(cast, ""), pa.scalar(None, pa.string()), cast)


def fit(table: pa.Table, kinds: Sequence[tuple[str, str]], spec: ColumnsSpec) -> Preprocessing:
    """Fit the preprocessing of the columns ``kinds`` (name, kind) on ``table``'s rows."""
    numeric: list[NumericState] = []
    categorical: list[CategoricalState] = []
    for name, kind in kinds:
        rule = spec.rule(name)
        if kind == "numeric":
            scaling = (rule.scaling if rule else None) or spec.scaling
            numeric.append(_fit_numeric(name, scaling, table.column(name)))
        elif kind == "categorical":
            top = (rule.max_categories if rule else None) or spec.max_categories
            categorical.append(_fit_categorical(name, top, table.column(name)))
    return Preprocessing(tuple(numeric), tuple(categorical), spec.embed_dim)


def _fit_numeric(name: str, scaling: str, column: pa.ChunkedArray) -> NumericState:
    values = numeric_values(column)
    seen = pa.array(values[np.isfinite(values)], type=pa.float64())
    indicator = len(seen) < len(values)
    if len(seen) == 0:  # every training cell missing: the column is its indicator
        points = (0.0,) if scaling == "quantile" else ()
        return NumericState(name, scaling, 0.0, 1.0, 0.0, indicator, points)
    q25, median, q75 = (float(v) for v in pc.quantile(seen, q=[0.25, 0.5, 0.75]).to_pylist())
    median = median if math.isfinite(median) else 0.0  # only at the edge of float64's range
    if scaling == "standard":
        center = float(pc.mean(seen).as_py())
        center = center if math.isfinite(center) else median
        spread = float(pc.stddev(seen, ddof=0).as_py())
        return NumericState(name, scaling, center, _nonzero(spread), center, indicator)
    if scaling == "robust":
        return NumericState(name, scaling, median, _nonzero(q75 - q25), median, indicator)
    points = pc.quantile(seen, q=np.linspace(0.0, 1.0, QUANTILES).tolist()).to_pylist()
    clipped = np.maximum.accumulate(np.clip(np.array(points, dtype=np.float64), -_BIG, _BIG))
    return NumericState(name, scaling, 0.0, 1.0, median, indicator, tuple(clipped.tolist()))


def _nonzero(spread: float) -> float:
    return spread if math.isfinite(spread) and spread > 0 else 1.0


def _fit_categorical(name: str, top: int, column: pa.ChunkedArray) -> CategoricalState:
    text = category_text(column)
    distinct = sorted(v for v in pc.unique(text).to_pylist() if v is not None)
    if len(distinct) <= top:
        return CategoricalState(name, tuple(distinct))
    return CategoricalState(name, buckets=top)


def _scale(state: NumericState, values: np.ndarray) -> np.ndarray:
    x = np.where(np.isfinite(values), values, state.fill)
    if state.quantiles:
        out = np.interp(x, state.quantiles, np.linspace(0.0, 1.0, len(state.quantiles)))
    else:
        with np.errstate(over="ignore", invalid="ignore"):  # clipped to float32 just below
            out = (x - state.center) / state.scale
    return np.clip(np.nan_to_num(out, nan=0.0), -_F32_MAX, _F32_MAX)


def _encode(state: CategoricalState, text: pa.Array) -> np.ndarray:
    if state.buckets:
        distinct = pc.unique(text)
        slots = pa.array(
            [0 if v is None else 1 + bucket(v, state.buckets) for v in distinct.to_pylist()],
            type=pa.int64(),
        )
        position = pc.index_in(text, value_set=distinct.drop_null())
        mapped = pc.take(slots.filter(pc.is_valid(distinct)), position)
        return np.asarray(mapped.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
    if not state.vocab:
        return np.zeros(len(text), dtype=np.int64)
    index = pc.index_in(text, value_set=pa.array(state.vocab, type=pa.string()))
    return np.asarray(pc.add(index.fill_null(-1), 1).to_numpy(zero_copy_only=False), np.int64)


def bucket(value: str, buckets: int) -> int:
    """The hash bucket (0..buckets-1) of a category's text; the same on every machine."""
    digest = hashlib.blake2b(value.encode("utf-8"), digest_size=8, person=b"cvfl-cat").digest()
    return int.from_bytes(digest, "little") % buckets


def _bad(what: str, expected: object, seen: object) -> ModelError:
    return ModelError(mismatch(what, expected, repr(seen)[:80]), code="model.spec")


def _mapping(what: str, value: object) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _bad(what, "a JSON object", value)
    return value


def _list(what: str, doc: Mapping[str, Any]) -> list[Any]:
    value = doc.get(what.rsplit(" ", 1)[-1])
    if not isinstance(value, list):
        raise _bad(what, "a list", value)
    return value


def _int(what: str, value: object, *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise _bad(what, f"a whole number >= {low}", value)
    return value


def _float(what: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _bad(what, "a finite number", value)
    return float(value)


def _name(what: str, doc: Mapping[str, Any]) -> str:
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        raise _bad(f"{what} name", "a non-empty string", name)
    return name


def _numeric_state(value: object) -> NumericState:
    doc = _mapping("preprocessing numeric column", value)
    name = _name("preprocessing numeric column", doc)
    where = f"preprocessing column {name!r}"
    scaling = doc.get("scaling")
    if scaling not in ("standard", "robust", "quantile"):
        raise _bad(f"{where} scaling", "standard, robust or quantile", scaling)
    scale = _float(f"{where} scale", doc.get("scale"))
    if scale <= 0:
        raise _bad(f"{where} scale", "a positive number", scale)
    indicator = doc.get("indicator")
    if not isinstance(indicator, bool):
        raise _bad(f"{where} indicator", "true or false", indicator)
    raw = doc.get("quantiles")
    if not isinstance(raw, list):
        raise _bad(f"{where} quantiles", "a list", raw)
    points = tuple(_float(f"{where} quantiles", v) for v in raw)
    if (scaling == "quantile") != bool(points) or any(b < a for a, b in itertools.pairwise(points)):
        raise _bad(f"{where} quantiles", "ascending points for quantile scaling only", len(points))
    center = _float(f"{where} center", doc.get("center"))
    fill = _float(f"{where} fill", doc.get("fill"))
    return NumericState(name, str(scaling), center, scale, fill, indicator, points)


def _categorical_state(value: object) -> CategoricalState:
    doc = _mapping("preprocessing categorical column", value)
    name = _name("preprocessing categorical column", doc)
    where = f"preprocessing column {name!r}"
    vocab = doc.get("vocab")
    if not isinstance(vocab, list) or not all(isinstance(v, str) for v in vocab):
        kinds = sorted({type(v).__name__ for v in vocab}) if isinstance(vocab, list) else None
        seen = f"items of type {', '.join(kinds)}" if kinds else type(vocab).__name__
        raise ModelError(  # category values are the party's data: never quoted
            mismatch(f"{where} vocab", "a list of strings", seen), code="model.spec"
        )
    if vocab != sorted(set(vocab)):
        raise _bad(f"{where} vocab", "sorted distinct strings", len(vocab))
    buckets = _int(f"{where} buckets", doc.get("buckets"), low=0)
    if buckets and vocab:
        raise _bad(f"{where}", "a vocabulary or hash buckets, not both", buckets)
    return CategoricalState(name, tuple(vocab), buckets)


def unscaled_columns(features: np.ndarray, names: Sequence[str], limit: float = 1e3) -> list[str]:
    """Names of numeric columns whose largest magnitude or standard deviation exceeds ``limit``."""
    if features.size == 0:
        return []
    values = features.astype(np.float64)
    big = (np.abs(values).max(axis=0) > limit) | (values.std(axis=0) > limit)
    return [name for name, flag in zip(names, big.tolist(), strict=True) if flag]
