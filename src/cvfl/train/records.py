"""The checkpoint record: a small JSON file beside each checkpoint (versioned format).

Format 2 (this code)::

    {"format": 2, "step": 40, "digest": "<hex>", "peer": "<hex or empty>",
     "binding": {...fields...}, "binding_digest": "<hex>", "rebound_from": "<hex or empty>"}

``digest`` is the SHA-256 of the checkpoint's plaintext, ``peer`` the peer's digest for the
same step once committed. ``binding`` holds what the checkpoint continues (see
:mod:`cvfl.train.binding`); ``rebound_from`` is the binding digest it had before an operator
resumed it with changes on purpose (``--resume-from``). Format 1 (older code) had only
``step``, ``digest`` and ``peer``: such a checkpoint's configuration is unknown.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from cvfl.bridge.fields import Fields, FieldsError, check_fields
from cvfl.bridge.serde import CheckpointState
from cvfl.errors import ModelError, mismatch
from cvfl.train.binding import fields_digest

RECORD_FORMAT = 2
MAX_RECORD_BYTES = 65536
MAX_STEP = 1 << 62
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Record:
    """A checkpoint's record: its state, and the binding it continues (None: unknown)."""

    state: CheckpointState
    binding: Fields | None = None
    rebound_from: str = ""

    @property
    def binding_digest(self) -> str:
        """The digest of :attr:`binding` (hex; empty when unknown)."""
        return fields_digest(self.binding) if self.binding is not None else ""


def encode_record(record: Record) -> bytes:
    """The record as format-2 JSON."""
    state = record.state
    body = {
        "format": RECORD_FORMAT,
        "step": state.step,
        "digest": state.digest.hex(),
        "peer": state.peer_digest.hex(),
        "binding": record.binding,
        "binding_digest": record.binding_digest,
        "rebound_from": record.rebound_from,
    }
    return json.dumps(body, sort_keys=True, allow_nan=False).encode()


def parse_record(data: bytes, source: Path) -> Record:
    """Parse a record of format 1 or 2, checking every field.

    Raises:
        ModelError: malformed, another format, or a binding that does not match its digest
            (``model.corrupt``), naming the file.
    """
    try:
        return _parse(data)
    except (FieldsError, ValueError, RecursionError) as exc:
        raise ModelError(f"{source}: checkpoint record: {exc}", code="model.corrupt") from None


def _parse(data: bytes) -> Record:
    if len(data) > MAX_RECORD_BYTES:
        raise ValueError(f"{len(data)} bytes, more than {MAX_RECORD_BYTES}")
    raw = json.loads(data.decode("utf-8"))
    if not isinstance(raw, dict):
        raise ValueError(mismatch("record", "a JSON object", type(raw).__name__))
    version = raw.get("format", 1)
    if version not in (1, 2) or isinstance(version, bool):
        raise ValueError(mismatch("format", f"1 or {RECORD_FORMAT}", repr(version)[:32]))
    step = raw.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or not 0 < step <= MAX_STEP:
        raise ValueError(mismatch("step", "a positive whole number", repr(step)[:32]))
    state = CheckpointState(step, _hex(raw, "digest"), _hex(raw, "peer", empty=True))
    if version == 1:
        return Record(state)
    binding = raw.get("binding")
    fields = None if binding is None else check_fields(binding)
    record = Record(state, fields, _text_hex(raw, "rebound_from"))
    if record.binding_digest != _text_hex(raw, "binding_digest"):
        raise ValueError("binding_digest does not match the binding")
    return record


def _hex(raw: dict[str, object], name: str, *, empty: bool = False) -> bytes:
    value = _text_hex(raw, name)
    if not value and not empty:
        raise ValueError(mismatch(name, "64 hex digits", "nothing"))
    return bytes.fromhex(value)


def _text_hex(raw: dict[str, object], name: str) -> str:
    value = raw.get(name, "")
    if not isinstance(value, str) or (value and not _HEX64.match(value)):
        raise ValueError(mismatch(name, "64 lowercase hex digits or nothing", repr(value)[:32]))
    return value
