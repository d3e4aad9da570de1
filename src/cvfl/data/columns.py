"""``[data.columns]``: how a party declares the columns of its own table.

The table maps column names to ``"numeric"``, ``"categorical"`` or ``"ignore"`` (or to an inline
table ``{kind = "...", ...}`` with per-column options), beside a few option keys:

- ``default``: what undeclared columns are (``"auto"``, the default: numbers are numeric, text
  and booleans categorical; or one of the three kinds);
- ``scaling``: ``"standard"`` (default), ``"robust"`` or ``"quantile"`` for numeric columns;
- ``max_categories``: a categorical column with more distinct training values is hashed into
  that many buckets (default 1000);
- ``embed_dim``: the embedding width of each categorical column in the MLP halves (default 4).

A column whose name is one of those option keys cannot be declared one by one: it takes the
``default`` kind. Nothing here imports PyTorch.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from cvfl.errors import ConfigError, mismatch

Kind = Literal["numeric", "categorical", "ignore"]
Default = Literal["auto", "numeric", "categorical", "ignore"]
Scaling = Literal["standard", "robust", "quantile"]
KINDS: tuple[Kind, ...] = ("numeric", "categorical", "ignore")
DEFAULTS: tuple[Default, ...] = ("auto", "numeric", "categorical", "ignore")
SCALINGS: tuple[Scaling, ...] = ("standard", "robust", "quantile")
OPTIONS = ("default", "scaling", "max_categories", "embed_dim")
COLUMN_KEYS = ("kind", "scaling", "max_categories")
MAX_CATEGORIES = 1000
EMBED_DIM = 4
_LIMIT = 1 << 24  # categories and widths beyond this are a typo, not a table


@dataclass(frozen=True)
class ColumnRule:
    """One declared column: its kind and its own options (None: the table-wide option)."""

    kind: Kind
    scaling: Scaling | None = None
    max_categories: int | None = None


@dataclass(frozen=True)
class ColumnsSpec:
    """A validated ``[data.columns]`` table."""

    columns: tuple[tuple[str, ColumnRule], ...] = ()
    default: Default = "auto"
    scaling: Scaling = "standard"
    max_categories: int = MAX_CATEGORIES
    embed_dim: int = EMBED_DIM
    _by_name: dict[str, ColumnRule] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_name.update(dict(self.columns))

    def rule(self, name: str) -> ColumnRule | None:
        """The declaration of ``name``, or None when it is undeclared."""
        return self._by_name.get(name)

    def to_toml(self) -> dict[str, object]:
        """The table as it would be written in a job file (for round trips)."""
        out: dict[str, object] = {
            "default": self.default,
            "scaling": self.scaling,
            "max_categories": self.max_categories,
            "embed_dim": self.embed_dim,
        }
        for name, rule in self.columns:
            if rule.scaling is None and rule.max_categories is None:
                out[name] = rule.kind
                continue
            inline: dict[str, object] = {"kind": rule.kind}
            if rule.scaling is not None:
                inline["scaling"] = rule.scaling
            if rule.max_categories is not None:
                inline["max_categories"] = rule.max_categories
            out[name] = inline
        return out


def parse_columns(value: object) -> ColumnsSpec:
    """Validate a ``[data.columns]`` table.

    Raises:
        ConfigError: ``config.type`` (not a table, a value of the wrong type), ``config.value``
            (an unknown kind or scaling, with the nearest valid name), ``config.range`` (a
            count below 1) or ``config.unknown_key`` (an unknown key in an inline table).
    """
    if not isinstance(value, Mapping):
        raise ConfigError(
            mismatch("[data] columns", "a table", type(value).__name__), code="config.type"
        )
    default = _choice("[data.columns] default", value.get("default", "auto"), DEFAULTS)
    scaling = _choice("[data.columns] scaling", value.get("scaling", "standard"), SCALINGS)
    top = _count("[data.columns] max_categories", value.get("max_categories", MAX_CATEGORIES))
    dim = _count("[data.columns] embed_dim", value.get("embed_dim", EMBED_DIM))
    columns = tuple(
        (str(name), _rule(str(name), raw)) for name, raw in value.items() if name not in OPTIONS
    )
    return ColumnsSpec(columns, default, scaling, top, dim)  # type: ignore[arg-type]


def _rule(name: str, raw: object) -> ColumnRule:
    where = f"[data.columns] {name}"
    if isinstance(raw, str):
        return ColumnRule(_choice(where, raw, KINDS))  # type: ignore[arg-type]
    if not isinstance(raw, Mapping):
        raise ConfigError(
            mismatch(where, 'a kind ("numeric", "categorical", "ignore") or an inline table', raw),
            code="config.type",
        )
    for key in raw:
        if key not in COLUMN_KEYS:
            near = difflib.get_close_matches(str(key), COLUMN_KEYS, n=1, cutoff=0.6)
            hint = f"did you mean {near[0]}?" if near else f"valid keys: {', '.join(COLUMN_KEYS)}"
            raise ConfigError(f"{where}: {key}: unknown key; {hint}", code="config.unknown_key")
    if "kind" not in raw:
        raise ConfigError(f"{where} kind: required, missing", code="config.missing")
    kind = _choice(f"{where} kind", raw["kind"], KINDS)
    scaling = _choice(f"{where} scaling", raw["scaling"], SCALINGS) if "scaling" in raw else None
    top = (
        _count(f"{where} max_categories", raw["max_categories"])
        if "max_categories" in raw
        else None
    )
    if scaling is not None and kind != "numeric":
        raise ConfigError(
            mismatch(f"{where} scaling", "only on numeric columns", kind), code="config.value"
        )
    if top is not None and kind != "categorical":
        raise ConfigError(
            mismatch(f"{where} max_categories", "only on categorical columns", kind),
            code="config.value",
        )
    return ColumnRule(kind, scaling, top)  # type: ignore[arg-type]


def _choice(where: str, value: object, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str):
        raise ConfigError(
            mismatch(where, "one of " + ", ".join(map(repr, allowed)), repr(value)[:80]),
            code="config.type",
        )
    if value in allowed:
        return value
    near = difflib.get_close_matches(value, allowed, n=1, cutoff=0.5)
    hint = f"; did you mean {near[0]!r}?" if near else ""
    expected = "one of " + ", ".join(map(repr, allowed))
    raise ConfigError(mismatch(where, expected, repr(value)[:80]) + hint, code="config.value")


def _count(where: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(mismatch(where, "a whole number", repr(value)[:80]), code="config.type")
    if not 1 <= value <= _LIMIT:
        raise ConfigError(mismatch(where, f"1 to {_LIMIT}", value), code="config.range")
    return value
