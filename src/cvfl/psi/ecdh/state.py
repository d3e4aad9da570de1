"""The saved state of a resumable ECDH alignment: its manifest, as JSON, and its strict parser.

The manifest says what the state is for (:class:`Manifest` ``binding``), holds the secret
exponent and the blinded own store (checkpoint A), the exchange's progress (``session``) and,
once the exchange ended, the intersection's totals (``intersected``; the mask is a file beside
it). It is sealed in the state folder (:mod:`cvfl.psi.ecdh.saving`); this module only turns it
into bytes and back, refusing anything malformed with ``psi.bad_state``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cvfl.errors import AlignmentError, mismatch
from cvfl.psi.spill import StoreState, store_state_from_json

STATE_VERSION = 1
Binding = dict[str, str | int]


@dataclass(frozen=True)
class Blinded:
    """Checkpoint A: the secret exponent and the blinded own ids (store ``own``)."""

    secret: bytes
    rows: int
    duplicates: int
    own: StoreState


@dataclass(frozen=True)
class SessionState:
    """The exchange's progress: K own batches' answers and J of the peer's batches saved."""

    session: bytes
    peer_count: int
    peer_terms: bytes
    own_answered: int
    peer_answered: int
    own_d: StoreState
    peer_d: StoreState


@dataclass(frozen=True)
class Intersected:
    """Checkpoint B: the exchange ended; the row mask is saved beside the manifest."""

    peer_items: int
    spills: int


@dataclass(frozen=True)
class Manifest:
    """Everything a rerun needs to continue; ``log_key`` authenticates the answer log."""

    binding: Binding
    log_key: bytes
    blinded: Blinded
    session: SessionState | None = None
    intersected: Intersected | None = None


def encode_manifest(manifest: Manifest) -> bytes:
    """Return the manifest as canonical JSON (bytes as hex)."""
    b, s, done = manifest.blinded, manifest.session, manifest.intersected
    doc: dict[str, Any] = {
        "version": STATE_VERSION,
        "binding": manifest.binding,
        "log_key": manifest.log_key.hex(),
        "blinded": {
            "secret": b.secret.hex(),
            "rows": b.rows,
            "duplicates": b.duplicates,
            "own": b.own.to_json(),
        },
        "session": None,
        "intersected": None,
    }
    if s is not None:
        doc["session"] = {
            "session": s.session.hex(),
            "peer_count": s.peer_count,
            "peer_terms": s.peer_terms.hex(),
            "own_answered": s.own_answered,
            "peer_answered": s.peer_answered,
            "own_d": s.own_d.to_json(),
            "peer_d": s.peer_d.to_json(),
        }
    if done is not None:
        doc["intersected"] = {"peer_items": done.peer_items, "spills": done.spills}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")


def refuse(what: str, expected: object, seen: object) -> AlignmentError:
    """A malformed state's refusal (``psi.bad_state``), naming the field."""
    return AlignmentError(mismatch(f"psi state {what}", expected, seen), code="psi.bad_state")


def parse_manifest(data: bytes) -> Manifest:
    """Read a manifest written by :func:`encode_manifest`, checking every field.

    Raises:
        AlignmentError: ``psi.bad_state``, naming the first field that is wrong.
    """
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise refuse("manifest", "JSON", f"{len(data)} other bytes") from None
    top = _table(
        doc, "manifest", {"version", "binding", "log_key", "blinded", "session", "intersected"}
    )
    if top["version"] != STATE_VERSION:
        raise refuse("version", STATE_VERSION, repr(top["version"])[:20])
    blinded = _table(top["blinded"], "blinded", {"secret", "rows", "duplicates", "own"})
    manifest = Manifest(
        binding=_binding(top["binding"]),
        log_key=_hex(top["log_key"], "log_key", 32),
        blinded=Blinded(
            secret=_hex(blinded["secret"], "secret", 32),
            rows=_count(blinded["rows"], "rows"),
            duplicates=_count(blinded["duplicates"], "duplicates"),
            own=store_state_from_json("own", blinded["own"]),
        ),
        session=None if top["session"] is None else _session(top["session"]),
        intersected=None if top["intersected"] is None else _intersected(top["intersected"]),
    )
    return manifest


def _session(value: object) -> SessionState:
    keys = {"session", "peer_count", "peer_terms", "own_answered", "peer_answered"}
    s = _table(value, "session", keys | {"own_d", "peer_d"})
    return SessionState(
        session=_hex(s["session"], "session id", 32),
        peer_count=_count(s["peer_count"], "peer_count"),
        peer_terms=_hex(s["peer_terms"], "peer_terms", None),
        own_answered=_count(s["own_answered"], "own_answered"),
        peer_answered=_count(s["peer_answered"], "peer_answered"),
        own_d=store_state_from_json("own-d", s["own_d"]),
        peer_d=store_state_from_json("peer-d", s["peer_d"]),
    )


def _intersected(value: object) -> Intersected:
    i = _table(value, "intersected", {"peer_items", "spills"})
    return Intersected(_count(i["peer_items"], "peer_items"), _count(i["spills"], "spills"))


def _table(value: object, what: str, keys: set[str]) -> Mapping[str, object]:
    if not isinstance(value, dict) or set(value) != keys:
        seen = sorted(value) if isinstance(value, dict) else type(value).__name__
        raise refuse(what, f"an object with keys {sorted(keys)}", seen)
    return value


def _binding(value: object) -> Binding:
    if not isinstance(value, dict) or not value:
        raise refuse("binding", "a non-empty object", type(value).__name__)
    for key, item in value.items():
        if type(item) not in (str, int):
            raise refuse(f"binding {key}", "a string or an integer", type(item).__name__)
    return dict(value)


def _count(value: object, what: str) -> int:
    if type(value) is not int or value < 0:
        raise refuse(what, "an integer >= 0", repr(value)[:40])
    return value


def _hex(value: object, what: str, size: int | None) -> bytes:
    try:
        raw = bytes.fromhex(value) if isinstance(value, str) else None
    except ValueError:
        raw = None
    if raw is None or (size is not None and len(raw) != size):
        expected = "hex" if size is None else f"{size} bytes in hex"
        raise refuse(what, expected, repr(value)[:40])
    return raw
