"""One strict loader for job-file sections: every key checked against its dataclass annotation.

A section is a frozen dataclass. :func:`load_section` refuses unknown keys (suggesting the nearest
valid name), missing required keys, values of the wrong type and values out of range, each as a
:class:`~cvfl.errors.ConfigError` naming ``[section] key`` with the expected and the seen value:

- ``config.unknown_key``: a key the section does not have;
- ``config.missing``: a required key is absent;
- ``config.type``: the value's TOML type does not fit the annotation (a boolean is not a
  number; a string is never a number, a path list or a boolean);
- ``config.value``: a value outside a ``Literal[...]`` or an enumeration;
- ``config.range``: a number outside the bounds in the field's metadata (see :func:`bounds`), or
  not finite.

Annotations understood: ``bool``, ``int``, ``float`` (an integer is accepted and made a float),
``str``, ``Path`` (resolved against the job file's folder), ``Literal[...]``, enumerations,
``tuple[X, ...]`` and ``X | None``; a field whose metadata has ``"parse"`` is given to that
function instead (it validates and converts, raising its own ConfigError). The section's own
``__post_init__`` still runs afterwards for checks that span several keys.
"""

from __future__ import annotations

import difflib
import enum
import math
import types
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, Field, fields
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from cvfl.errors import ConfigError, mismatch

T = TypeVar("T")
_NAMES = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}


def bounds(
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> dict[str, Any]:
    """Field metadata declaring a number's range (``low_open``: ``low`` itself is refused).

    Example: ``batch_size: int = field(default=32, metadata=bounds(low=1))``.
    """
    return {"low": low, "high": high, "low_open": low_open, "high_open": high_open}


def load_section(cls: type[T], section: str, table: object, base: Path | None) -> T:
    """Build the dataclass ``cls`` from the TOML table ``[section]``, checking every key.

    Args:
        cls: A dataclass whose fields are the section's keys.
        section: The section's name, as written in the job file (``"train"``).
        table: The parsed TOML value of the section.
        base: The job file's folder (relative paths resolve against it); None keeps them as given.

    Raises:
        ConfigError: with one of the codes listed in this module's docstring.
    """
    if not isinstance(table, Mapping):
        raise ConfigError(
            mismatch(f"[{section}]", "a table", type(table).__name__), code="config.type"
        )
    known = {f.name: f for f in fields(cls) if f.init}  # type: ignore[arg-type]
    refuse_unknown_keys(section, table, known)
    hints = get_type_hints(cls)
    values = {}
    for key, value in table.items():
        where = f"[{section}] {key}"
        parse = known[key].metadata.get("parse")
        converted = parse(value) if parse else _convert(where, hints[key], value, base)
        values[key] = _check_range(where, known[key], converted)
    for name, spec in known.items():
        if name not in values and _required(spec):
            raise ConfigError(f"[{section}] {name}: required, missing", code="config.missing")
    return cls(**values)


def refuse_unknown_keys(section: str, table: Mapping[Any, Any], valid: Iterable[str]) -> None:
    """Refuse the first key of ``table`` not in ``valid``, suggesting the nearest valid name.

    For sections with their own reader (``[attestation]``); :func:`load_section` calls it too.

    Raises:
        ConfigError: ``config.unknown_key``, e.g. ``[train] batchsize: unknown key; did you
            mean batch_size?``.
    """
    names = sorted(valid)
    for key in table:
        if key not in names:
            raise ConfigError(_unknown(section, str(key), names), code="config.unknown_key")


def _unknown(section: str, key: str, valid: list[str]) -> str:
    near = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    hint = f"did you mean {near[0]}?" if near else f"valid keys: {', '.join(sorted(valid))}"
    return f"[{section}] {key}: unknown key; {hint}"


def _required(spec: Field[Any]) -> bool:
    return spec.default is MISSING and spec.default_factory is MISSING


def _type_error(where: str, expected: str, value: object) -> ConfigError:
    return ConfigError(mismatch(where, expected, repr(value)[:80]), code="config.type")


def _convert(where: str, kind: Any, value: object, base: Path | None) -> Any:
    """``value`` checked against the annotation ``kind`` (and converted: paths, tuples, floats)."""
    origin = get_origin(kind)
    if origin in (Union, types.UnionType):
        options = [arg for arg in get_args(kind) if arg is not type(None)]
        if len(options) != 1:
            raise TypeError(f"{where}: unsupported annotation {kind!r}")
        return _convert(where, options[0], value, base)
    if origin is Literal:
        return _literal(where, get_args(kind), value)
    if origin in (tuple, list):
        return _sequence(where, get_args(kind), value, base)
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return _enum(where, kind, value)
    if kind is Path:
        return _path(where, value, base)
    return _scalar(where, kind, value)


def _path(where: str, value: object, base: Path | None) -> Path:
    if not isinstance(value, str) or not value:
        raise _type_error(where, "a file path (a non-empty string)", value)
    path = home_expanded(value)
    if path is None:
        raise ConfigError(
            mismatch(where, "a path whose ~ names a user with a home directory", repr(value)),
            code="config.value",
        )
    return path if path.is_absolute() or base is None else base / path


def home_expanded(value: str) -> Path | None:
    """``value`` as a path with a leading ``~`` or ``~user`` expanded; None if it cannot be."""
    try:
        return Path(value).expanduser()
    except RuntimeError:  # ~user of no such user, or no home directory to expand ~ to
        return None


def _scalar(where: str, kind: type, value: object) -> Any:
    if kind not in _NAMES:
        raise TypeError(f"{where}: unsupported annotation {kind!r}")
    if isinstance(value, bool) != (kind is bool):
        raise _type_error(where, _NAMES[kind], value)
    if kind is float and isinstance(value, int):
        value = float(value)
    if not isinstance(value, kind):
        raise _type_error(where, _NAMES[kind], value)
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(mismatch(where, "a finite number", repr(value)), code="config.range")
    return value


def _literal(where: str, allowed: tuple[Any, ...], value: object) -> Any:
    for option in allowed:
        if type(option) is type(value) and option == value:
            return value
    expected = "one of " + ", ".join(repr(option) for option in allowed)
    raise ConfigError(mismatch(where, expected, repr(value)[:80]), code="config.value")


def _enum(where: str, kind: type[enum.Enum], value: object) -> Any:
    for member in kind:
        if type(member.value) is type(value) and member.value == value:
            return member
    expected = "one of " + ", ".join(repr(member.value) for member in kind)
    raise ConfigError(mismatch(where, expected, repr(value)[:80]), code="config.value")


def _sequence(where: str, args: tuple[Any, ...], value: object, base: Path | None) -> Any:
    item = args[0] if args else Any
    if not isinstance(value, list | tuple):
        raise _type_error(where, f"a list of {_describe(item)}", value)
    try:
        return tuple(_convert(where, item, element, base) for element in value)
    except ConfigError as exc:
        raise ConfigError(
            mismatch(where, f"a list of {_describe(item)}", repr(value)[:80]), code=exc.code
        ) from None


def _describe(kind: Any) -> str:
    if get_origin(kind) is Literal:
        return "values from " + ", ".join(repr(option) for option in get_args(kind))
    return {bool: "booleans", int: "whole numbers", float: "numbers", str: "strings"}.get(
        kind, "values"
    )


def _check_range(where: str, spec: Field[Any], value: Any) -> Any:
    limits = spec.metadata
    if not limits or not isinstance(value, int | float) or isinstance(value, bool):
        return value
    low, high = limits.get("low"), limits.get("high")
    too_low = low is not None and (value <= low if limits.get("low_open") else value < low)
    too_high = high is not None and (value >= high if limits.get("high_open") else value > high)
    if too_low or too_high:
        raise ConfigError(mismatch(where, _range_text(limits), repr(value)), code="config.range")
    return value


def _range_text(limits: Mapping[str, Any]) -> str:
    parts = []
    if limits.get("low") is not None:
        parts.append(f"{'>' if limits.get('low_open') else '>='} {limits['low']}")
    if limits.get("high") is not None:
        parts.append(f"{'<' if limits.get('high_open') else '<='} {limits['high']}")
    return " and ".join(parts)


def check_table_name(where: str, path: Path) -> None:
    """Refuse a table file name whose format cannot be told from it.

    A table is written and read in the format its name says: ``.parquet`` (or ``.pq``) or
    ``.csv``, optionally followed by ``.sealed``.

    Raises:
        ConfigError: ``config.format``, naming ``where`` (e.g. ``[psi] output``).
    """
    name = path.name.removesuffix(".sealed")
    if not name.endswith((".parquet", ".pq", ".csv")):
        raise ConfigError(
            mismatch(
                where,
                "a file name ending .parquet or .csv (optionally followed by .sealed)",
                repr(path.name),
            ),
            code="config.format",
        )
