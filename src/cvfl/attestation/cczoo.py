"""Read CCZoo's RA-TLS ``dynamic_config.json`` into a cvfl :class:`Policy`.

CCZoo (intel/confidential-computing-zoo, grpc-ra-tls) writes::

    {"verify_mr_enclave": "on", "verify_mr_signer": "on",
     "verify_isv_prod_id": "on", "verify_isv_svn": "on",
     "sgx_mrs": [{"mr_enclave": "<hex>", "mr_signer": "<hex>",
                  "isv_prod_id": "0", "isv_svn": "0"}]}

The ``verify_*`` flags apply to every ``sgx_mrs`` entry. Differences from CCZoo are documented in
docs/attestation.md: cvfl reads ``isv_svn`` as a minimum (CCZoo compares it for equality), refuses
a file with every flag off (CCZoo would accept any enclave), and keeps its own strict TCB and
debug defaults: with the Occlum variant's ``verify_enclave_debuggable`` on, an entry with
``"debuggable": true`` also accepts a debug build of *that* enclave (never of another entry's),
and nothing else is weakened.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from cvfl.attestation.policy import AcceptedIdentity, Policy, parse_measurement, parse_u16
from cvfl.errors import ConfigError, mismatch

_FLAGS = ("verify_mr_enclave", "verify_mr_signer", "verify_isv_prod_id", "verify_isv_svn")


def load_cczoo_json(path: str | Path) -> Policy:
    """Load a CCZoo ``dynamic_config.json`` as a policy (strict TCB/debug/simulation defaults).

    Raises:
        ConfigError: unreadable file, invalid JSON, a flag other than "on"/"off", bad entries,
            or every ``verify_*`` flag off.
    """
    source = Path(path)
    try:
        doc = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"{source}: cannot read CCZoo config: {exc}", code="config.policy"
        ) from None
    if not isinstance(doc, Mapping):
        raise _error(source, "top level", "a JSON object", type(doc).__name__)
    return policy_from_cczoo(doc, source)


def policy_from_cczoo(doc: Mapping[str, object], source: Path) -> Policy:
    """Convert a parsed ``dynamic_config.json`` document (see :func:`load_cczoo_json`)."""
    flags = {name: _flag(doc, name, source) for name in _FLAGS}
    if not any(flags.values()):
        raise _error(source, "verify_* flags", 'at least one "on"', 'all "off"')
    entries = doc.get("sgx_mrs")
    if not isinstance(entries, list) or not entries:
        raise _error(source, "sgx_mrs", "a non-empty array of objects", repr(entries))
    debuggable = _flag_optional(doc, "verify_enclave_debuggable", source)
    identities = tuple(
        _entry(item, i, flags, source, debuggable=debuggable) for i, item in enumerate(entries)
    )
    return Policy(identities=identities)


def _entry(
    item: object, index: int, flags: dict[str, bool], source: Path, *, debuggable: bool
) -> AcceptedIdentity:
    """One ``sgx_mrs`` entry; it allows a debug enclave only if it says so and the flag is on."""
    where = f"{source}: sgx_mrs[{index}]"
    if not isinstance(item, Mapping):
        raise _error(source, f"sgx_mrs[{index}]", "an object", type(item).__name__)
    debug = item.get("debuggable", False)
    if not isinstance(debug, bool):
        raise _error(source, f"sgx_mrs[{index}].debuggable", "true or false", repr(debug))

    def get(key: str) -> object:
        if key not in item:
            raise _error(source, f"sgx_mrs[{index}].{key}", "present", "missing")
        return item[key]

    return AcceptedIdentity(
        mr_enclave=parse_measurement(get("mr_enclave"), f"{where}.mr_enclave")
        if flags["verify_mr_enclave"]
        else None,
        mr_signer=parse_measurement(get("mr_signer"), f"{where}.mr_signer")
        if flags["verify_mr_signer"]
        else None,
        isv_prod_id=parse_u16(get("isv_prod_id"), f"{where}.isv_prod_id")
        if flags["verify_isv_prod_id"]
        else None,
        min_isv_svn=parse_u16(get("isv_svn"), f"{where}.isv_svn")
        if flags["verify_isv_svn"]
        else None,
        allow_debug=debuggable and debug,
    )


def _flag(doc: Mapping[str, object], name: str, source: Path) -> bool:
    value = doc.get(name, "off")
    if value not in ("on", "off"):
        raise _error(source, name, '"on" or "off"', repr(value))
    return value == "on"


def _flag_optional(doc: Mapping[str, object], name: str, source: Path) -> bool:
    return name in doc and _flag(doc, name, source)


def _error(source: Path, what: str, expected: str, seen: object) -> ConfigError:
    return ConfigError(f"{source}: {mismatch(what, expected, seen)}", code="config.policy")
