"""Which verified enclaves a party accepts: identities, debug, TCB status, advisories, simulation.

A :class:`Policy` is applied to :class:`~cvfl.attestation.evidence.VerifiedEvidence` (a quote
whose signature already checked out). Every refusal is an :class:`~cvfl.errors.AttestationError`
whose message names the field, the expected and the seen value.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

from cvfl.attestation.evidence import TCB_STATUSES, VerifiedEvidence
from cvfl.attestation.quote import EnclaveIdentity
from cvfl.attestation.terms import PeerRequirements
from cvfl.errors import AttestationError, ConfigError, mismatch

_T = TypeVar("_T")
MEASUREMENT_LEN = 32
_IDENTITY_KEYS = frozenset(
    {"mr_enclave", "mr_signer", "isv_prod_id", "isv_svn", "same_as_self", "allow_debug"}
)
_POLICY_KEYS = frozenset(
    {
        "identities",
        "allow_debug",
        "allowed_tcb_statuses",
        "refused_advisories",
        "allow_simulated",
        "allow_any_identity",
        "peer",
    }
)


@dataclass(frozen=True)
class AcceptedIdentity:
    """One accepted enclave: every field that is set must match (``min_isv_svn`` is a floor).

    ``same_as_self`` stands for "the peer runs exactly my enclave": until
    :meth:`Policy.for_self` replaces it with this party's own mr_enclave it accepts nothing.
    ``allow_debug`` accepts a debug build of this enclave even when the policy's does not.
    """

    mr_enclave: bytes | None = None
    mr_signer: bytes | None = None
    isv_prod_id: int | None = None
    min_isv_svn: int | None = None
    same_as_self: bool = False
    allow_debug: bool = False

    def __post_init__(self) -> None:
        for name in ("mr_enclave", "mr_signer"):
            value = getattr(self, name)
            if value is not None and len(value) != MEASUREMENT_LEN:
                raise ConfigError(
                    mismatch(f"policy {name} length", MEASUREMENT_LEN, len(value)),
                    code="config.policy",
                )
        if self.same_as_self and self.mr_enclave is not None:
            raise ConfigError(
                "policy identity: same_as_self and mr_enclave both set; keep one",
                code="config.policy",
            )
        if self.mr_enclave is None and self.mr_signer is None and not self.same_as_self:
            raise ConfigError(
                "policy identity: expected mr_enclave, mr_signer or same_as_self, seen none",
                code="config.policy",
            )

    def named_fields(self) -> int:
        """How many fields this entry constrains."""
        values = (self.mr_enclave, self.mr_signer, self.isv_prod_id, self.min_isv_svn)
        return sum(value is not None for value in values) + int(self.same_as_self)

    def canonical(self) -> dict[str, object]:
        """A JSON-ready form for the policy digest."""
        return {
            "mr_enclave": self.mr_enclave.hex() if self.mr_enclave else None,
            "mr_signer": self.mr_signer.hex() if self.mr_signer else None,
            "isv_prod_id": self.isv_prod_id,
            "min_isv_svn": self.min_isv_svn,
            "same_as_self": self.same_as_self,
            "allow_debug": self.allow_debug,
        }

    def failures(self, seen: EnclaveIdentity) -> list[str]:
        """Return one refusal phrase per field of ``seen`` that this entry does not accept."""
        out: list[str] = []
        if self.same_as_self:
            out.append(mismatch("mr_enclave", "this party's own (same_as_self), unknown here", "-"))
        if self.mr_enclave is not None and not hmac.compare_digest(
            self.mr_enclave, seen.mr_enclave
        ):
            out.append(mismatch("mr_enclave", self.mr_enclave.hex(), seen.mr_enclave.hex()))
        if self.mr_signer is not None and not hmac.compare_digest(self.mr_signer, seen.mr_signer):
            out.append(mismatch("mr_signer", self.mr_signer.hex(), seen.mr_signer.hex()))
        if self.isv_prod_id is not None and self.isv_prod_id != seen.isv_prod_id:
            out.append(mismatch("isv_prod_id", self.isv_prod_id, seen.isv_prod_id))
        if self.min_isv_svn is not None and seen.isv_svn < self.min_isv_svn:
            out.append(mismatch("isv_svn", f"at least {self.min_isv_svn}", seen.isv_svn))
        return out


@dataclass(frozen=True)
class Policy:
    """The local decision on a peer's verified evidence.

    Defaults are strict: no debug enclaves, only ``UpToDate`` TCB, no simulated evidence, and an
    empty identity list accepts nobody unless ``allow_any_identity`` is set explicitly.
    """

    identities: tuple[AcceptedIdentity, ...] = ()
    allow_debug: bool = False
    allowed_tcb_statuses: frozenset[str] = field(default_factory=lambda: frozenset({"UpToDate"}))
    refused_advisories: frozenset[str] = frozenset()
    allow_simulated: bool = False
    allow_any_identity: bool = False
    peer: PeerRequirements = field(default_factory=PeerRequirements)

    def for_self(self, own: EnclaveIdentity) -> Policy:
        """This policy with every ``same_as_self`` entry pinned to ``own``'s mr_enclave."""
        return replace(
            self,
            identities=tuple(
                replace(entry, same_as_self=False, mr_enclave=own.mr_enclave)
                if entry.same_as_self
                else entry
                for entry in self.identities
            ),
        )

    def digest(self) -> str:
        """SHA-256 (hex) of a canonical encoding of this policy, as written (before for_self)."""
        doc = {
            "identities": [entry.canonical() for entry in self.identities],
            "allow_debug": self.allow_debug,
            "allowed_tcb_statuses": sorted(self.allowed_tcb_statuses),
            "refused_advisories": sorted(self.refused_advisories),
            "allow_simulated": self.allow_simulated,
            "allow_any_identity": self.allow_any_identity,
            "peer": self.peer.canonical(),
        }
        encoded = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(encoded).hexdigest()

    def check(self, evidence: VerifiedEvidence) -> None:
        """Accept ``evidence`` or raise.

        Raises:
            AttestationError: naming the failed field with the expected and seen values.
        """
        self._check_platform(evidence)
        self._check_identity(evidence.identity)

    def _check_platform(self, evidence: VerifiedEvidence) -> None:
        if evidence.simulated and not self.allow_simulated:
            raise _refusal(
                mismatch("simulated", "false (real SGX evidence)", "true"),
                code="attestation.policy_simulated",
            )
        if evidence.identity.debug and not self._debug_allowed(evidence.identity):
            flags = f"0x{evidence.identity.attributes_flags:02x}"
            raise _refusal(
                mismatch("debug", "false (production enclave)", f"true (flags {flags})"),
                code="attestation.policy_debug",
            )
        if not evidence.simulated and evidence.tcb_status not in self.allowed_tcb_statuses:
            allowed = " or ".join(sorted(self.allowed_tcb_statuses)) or "nothing"
            raise _refusal(
                mismatch("tcb_status", allowed, evidence.tcb_status),
                code="attestation.policy_tcb_status",
            )
        refused = sorted(self.refused_advisories.intersection(evidence.advisory_ids))
        if refused:
            raise _refusal(
                mismatch("advisory_ids", f"none of {sorted(self.refused_advisories)}", refused),
                code="attestation.policy_advisory",
            )

    def _debug_allowed(self, seen: EnclaveIdentity) -> bool:
        """Debug is allowed by the policy, or by an identity entry that ``seen`` matches."""
        return self.allow_debug or any(
            entry.allow_debug and not entry.failures(seen) for entry in self.identities
        )

    def _check_identity(self, seen: EnclaveIdentity) -> None:
        if not self.identities:
            if self.allow_any_identity:
                return
            raise _refusal(
                mismatch(
                    "identity", "an entry of the policy (it lists none)", seen.mr_enclave.hex()
                ),
                code="attestation.policy_identity",
            )
        results = [(entry.failures(seen), index) for index, entry in enumerate(self.identities)]
        if any(not failed for failed, _ in results):
            return
        failed, index = min(
            results, key=lambda item: (len(item[0]), -self.identities[item[1]].named_fields())
        )
        if len(self.identities) == 1:
            raise _refusal("; ".join(failed), code="attestation.policy_identity")
        raise _refusal(
            f"no accepted identity matches; closest is entry {index + 1} of "
            f"{len(self.identities)}: " + "; ".join(failed),
            code="attestation.policy_identity",
        )

    @classmethod
    def from_toml_table(cls, table: Mapping[str, object]) -> Policy:
        """Build a policy from the job TOML's ``[attestation.policy]`` table.

        Raises:
            ConfigError: unknown keys, wrong types, bad hex, unknown TCB status names.
        """
        _reject_unknown(table, _POLICY_KEYS, "attestation.policy")
        raw_ids = table.get("identities", [])
        if not isinstance(raw_ids, list):
            raise _config_error("attestation.policy.identities", "an array of tables", raw_ids)
        return cls(
            identities=tuple(_identity_from_table(item, i) for i, item in enumerate(raw_ids)),
            allow_debug=_bool(table, "allow_debug", default=False),
            allowed_tcb_statuses=_statuses(table.get("allowed_tcb_statuses", ["UpToDate"])),
            refused_advisories=frozenset(_strings(table, "refused_advisories")),
            allow_simulated=_bool(table, "allow_simulated", default=False),
            allow_any_identity=_bool(table, "allow_any_identity", default=False),
            peer=PeerRequirements.from_toml_table(table.get("peer", {})),
        )


def _refusal(message: str, *, code: str) -> AttestationError:
    return AttestationError(f"policy refused the peer: {message}", code=code)


def _config_error(where: str, expected: str, seen: object) -> ConfigError:
    return ConfigError(mismatch(where, expected, repr(seen)), code="config.policy")


def _reject_unknown(table: Mapping[str, object], known: frozenset[str], where: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise _config_error(f"{where} keys", f"some of {sorted(known)}", unknown)


def _bool(table: Mapping[str, object], key: str, *, default: bool) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise _config_error(f"attestation.policy.{key}", "true or false", value)
    return value


def _strings(table: Mapping[str, object], key: str) -> list[str]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _config_error(f"attestation.policy.{key}", "an array of strings", value)
    return list(value)


def _statuses(value: object) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _config_error("attestation.policy.allowed_tcb_statuses", "an array of strings", value)
    unknown = sorted(set(value) - TCB_STATUSES)
    if unknown:
        raise _config_error(
            "attestation.policy.allowed_tcb_statuses", f"names from {sorted(TCB_STATUSES)}", unknown
        )
    return frozenset(value)


def parse_measurement(value: object, where: str) -> bytes:
    """Parse a 64-hex-digit measurement (``mr_enclave``/``mr_signer``).

    Raises:
        ConfigError: not a string of 64 hex digits.
    """
    if not isinstance(value, str):
        raise _config_error(where, "64 hex digits", value)
    try:
        raw = bytes.fromhex(value.strip())
    except ValueError:
        raise _config_error(where, "64 hex digits", value) from None
    if len(raw) != MEASUREMENT_LEN:
        raise _config_error(where, "64 hex digits", value)
    return raw


def parse_u16(value: object, where: str) -> int:
    """Parse an SGX 16-bit field given as an integer or a decimal string (CCZoo writes ``"0"``).

    Raises:
        ConfigError: not an integer in 0..65535.
    """
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFFFF:
        raise _config_error(where, "an integer in 0..65535", value)
    return value


def _identity_from_table(item: object, index: int) -> AcceptedIdentity:
    where = f"attestation.policy.identities[{index}]"
    if not isinstance(item, Mapping):
        raise _config_error(where, "a table", item)
    _reject_unknown(item, _IDENTITY_KEYS, where)
    flags = {key: item.get(key, False) for key in ("same_as_self", "allow_debug")}
    for key, value in flags.items():
        if not isinstance(value, bool):
            raise _config_error(f"{where}.{key}", "true or false", value)
    return AcceptedIdentity(
        mr_enclave=_opt(item, "mr_enclave", where, parse_measurement),
        mr_signer=_opt(item, "mr_signer", where, parse_measurement),
        isv_prod_id=_opt(item, "isv_prod_id", where, parse_u16),
        min_isv_svn=_opt(item, "isv_svn", where, parse_u16),
        same_as_self=flags["same_as_self"],
        allow_debug=flags["allow_debug"],
    )


def _opt(
    item: Mapping[str, object], key: str, where: str, parse: Callable[[object, str], _T]
) -> _T | None:
    if key not in item:
        return None
    return parse(item[key], f"{where}.{key}")


def identities_summary(identities: Sequence[AcceptedIdentity]) -> list[str]:
    """Describe accepted identities for status output (measurements abbreviated)."""
    out = []
    for entry in identities:
        parts = ["same_as_self"] if entry.same_as_self else []
        if entry.mr_enclave is not None:
            parts.append(f"mr_enclave={entry.mr_enclave.hex()[:16]}…")
        if entry.mr_signer is not None:
            parts.append(f"mr_signer={entry.mr_signer.hex()[:16]}…")
        if entry.isv_prod_id is not None:
            parts.append(f"isv_prod_id={entry.isv_prod_id}")
        if entry.min_isv_svn is not None:
            parts.append(f"isv_svn>={entry.min_isv_svn}")
        out.append(" ".join(parts))
    return out
