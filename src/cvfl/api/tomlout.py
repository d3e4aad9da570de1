"""Writing a job mapping as TOML (the stdlib reads TOML but does not write it).

Only what job files hold: tables, arrays of tables, strings, booleans, integers, finite or
infinite floats, and arrays of those.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import Any

from cvfl.errors import ConfigError, mismatch

_BARE = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def dumps(doc: Mapping[str, Any]) -> str:
    """``doc`` as TOML text that ``tomllib.loads`` reads back equal (tuples become lists).

    Raises:
        ConfigError: a value TOML cannot hold (``config.value``), named by its dotted key.
    """
    lines: list[str] = []
    _table(doc, (), lines)
    return "\n".join(lines).lstrip("\n") + "\n"


def _is_table(value: object) -> bool:
    return isinstance(value, Mapping)


def _is_table_array(value: object) -> bool:
    return isinstance(value, list | tuple) and bool(value) and all(_is_table(v) for v in value)


def _table(doc: Mapping[str, Any], path: tuple[str, ...], lines: list[str]) -> None:
    nested = {k: v for k, v in doc.items() if _is_table(v) or _is_table_array(v)}
    for key, value in doc.items():
        if key not in nested:
            lines.append(f"{_key(key)} = {_value(value, (*path, key))}")
    for key, value in nested.items():
        where = (*path, key)
        if _is_table(value):
            lines.extend(["", f"[{_dotted(where)}]"])
            _table(value, where, lines)
            continue
        for item in value:
            lines.extend(["", f"[[{_dotted(where)}]]"])
            _table(item, where, lines)


def _dotted(path: tuple[str, ...]) -> str:
    return ".".join(_key(part) for part in path)


def _key(key: object) -> str:
    if not isinstance(key, str):
        raise ConfigError(mismatch("TOML key", "a string", repr(key)[:40]), code="config.value")
    return key if _BARE.fullmatch(key) else _string(key, key)


def _value(value: object, path: tuple[str, ...]) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, str | PurePath):
        return _string(str(value), _dotted(path))
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return "[" + ", ".join(_value(v, path) for v in value) + "]"
    raise ConfigError(
        mismatch(
            _dotted(path),
            "a TOML value (string, number, boolean, list, table)",
            type(value).__name__,
        ),
        code="config.value",
    )


def _float(value: float) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return repr(value)


def _string(text: str, where: str) -> str:
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif 0xD800 <= ord(char) <= 0xDFFF:
            raise ConfigError(
                mismatch(where, "text without lone surrogates", repr(text)[:40]),
                code="config.value",
            )
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'
