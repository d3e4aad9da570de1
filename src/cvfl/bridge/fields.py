"""Named plain values as canonical JSON: job settings two parties compare, or a party records.

Used for the training terms of the session hello (what both parties must agree on) and for the
binding recorded with each checkpoint. Decoding accepts only an object of short printable names
to plain values (null, booleans, integers, finite floats, short printable strings, short lists
of those), so a peer's or a file's fields cannot smuggle anything else.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

MAX_FIELDS = 64
MAX_NAME = 64
MAX_TEXT = 256
MAX_LIST = 64
MAX_ENCODED = 16384

Scalar = str | int | float | bool | None
Value = Scalar | list[str | int | float]
Fields = dict[str, Value]


class FieldsError(ValueError):
    """Encoded fields are malformed (the message says what)."""


def encode_fields(fields: Fields) -> bytes:
    """Canonical JSON (sorted keys, no spaces, ASCII) of checked fields."""
    check_fields(fields)
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def decode_fields(data: bytes) -> Fields:
    """Parse and check encoded fields (a peer's hello terms or a stored record's binding).

    Raises:
        FieldsError: not JSON, not an object of short names to plain values, or too large.
    """
    if len(data) > MAX_ENCODED:
        raise FieldsError(f"{len(data)} bytes, more than {MAX_ENCODED}")
    try:
        raw = json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise FieldsError("not JSON") from exc
    return check_fields(raw)


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a value")


def check_fields(raw: object) -> Fields:
    """Return ``raw`` as fields if it is an object of short names to plain values.

    Raises:
        FieldsError: naming the first problem.
    """
    if not isinstance(raw, dict):
        raise FieldsError(f"expected an object, seen {type(raw).__name__}")
    if len(raw) > MAX_FIELDS:
        raise FieldsError(f"{len(raw)} fields, more than {MAX_FIELDS}")
    for name, value in raw.items():
        if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME or not name.isprintable():
            raise FieldsError(f"a field name is not 1..{MAX_NAME} printable characters")
        if not _plain(value):
            raise FieldsError(f"field {name}: not a plain value")
    return dict(raw)


def _plain(value: object) -> bool:
    if isinstance(value, list):
        return len(value) <= MAX_LIST and all(
            v is not None and not isinstance(v, list) and _scalar(v) for v in value
        )
    return _scalar(value)


def _scalar(value: object) -> bool:
    if value is None or isinstance(value, bool | int):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str) and len(value) <= MAX_TEXT and value.isprintable()


def differences(
    before: Mapping[str, Value], now: Mapping[str, Value]
) -> list[tuple[str, Any, Any]]:
    """``(field, before, now)`` for every field whose value differs, in a stable order."""
    names = [*before, *(n for n in now if n not in before)]
    return [(n, before.get(n), now.get(n)) for n in names if before.get(n) != now.get(n)]


def show(value: object) -> str:
    """A field value for a message: long hex digests shortened, missing ones named."""
    if value is None:
        return "(none)"
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:16] + "…"
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)
