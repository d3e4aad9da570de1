"""The job's ``[attestation]`` table, and the provider and verifier it selects.

```toml
[attestation]
provider = "gramine"            # or "simulated" (development only, loud)
gramine_root = "/dev/attestation"
collateral = "collateral.json"  # dcap-qvl QuoteCollateralV3 JSON ...
pccs_url = "https://pccs.example:8081"   # ... or a PCCS (one of the two for real quotes)
verify_at = 1750334171          # optional fixed UNIX time for verification; a live channel
allow_fixed_time = true         # refuses it unless this is set (collateral expiry unchecked)
code_paths = ["model.py"]       # extra code measured into the simulated mr_enclave
policy_file = "policy.toml"     # or cczoo_config = "dynamic_config.json", or inline:

[attestation.policy]
allowed_tcb_statuses = ["UpToDate"]
[[attestation.policy.identities]]
mr_enclave = "<64 hex digits>"
```
Relative paths are resolved against ``base_dir`` (the folder of the job file).
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cvfl.attestation.cczoo import load_cczoo_json
from cvfl.attestation.dcap import CollateralSource, DcapVerifier, FileCollateral
from cvfl.attestation.evidence import EvidenceProvider, QuoteVerifier, VerifiedEvidence
from cvfl.attestation.gramine import DEFAULT_ROOT, GramineProvider
from cvfl.attestation.pccs import PccsCollateral
from cvfl.attestation.policy import Policy
from cvfl.attestation.quote import parse_quote
from cvfl.attestation.simulated import SimulatedProvider, SimulatedVerifier, is_simulated_quote
from cvfl.configload import home_expanded, refuse_unknown_keys
from cvfl.errors import AttestationError, ConfigError, mismatch
from cvfl.logs import get_logger

log = get_logger(__name__)

ProviderName = Literal["simulated", "gramine"]
_KEYS = frozenset(
    {
        "provider",
        "gramine_root",
        "collateral",
        "pccs_url",
        "verify_at",
        "allow_fixed_time",
        "code_paths",
        "policy",
        "policy_file",
        "cczoo_config",
    }
)


@dataclass(frozen=True)
class AttestationConfig:
    """Validated ``[attestation]`` settings."""

    provider: ProviderName = "gramine"
    gramine_root: Path = DEFAULT_ROOT
    collateral: Path | None = None
    pccs_url: str | None = None
    verify_at: int | None = None
    allow_fixed_time: bool = False
    code_paths: tuple[Path, ...] = ()
    policy: Policy = dataclasses.field(default_factory=Policy)

    def __post_init__(self) -> None:
        if self.provider not in ("simulated", "gramine"):
            raise _error("provider", '"simulated" or "gramine"', self.provider)
        if self.collateral is not None and self.pccs_url is not None:
            raise _error("collateral/pccs_url", "at most one of them", "both")
        if not isinstance(self.allow_fixed_time, bool):
            raise _error("allow_fixed_time", "true or false", self.allow_fixed_time)

    @classmethod
    def from_toml_table(
        cls, table: Mapping[str, object], *, base_dir: Path | None = None
    ) -> AttestationConfig:
        """Parse the ``[attestation]`` table (relative paths resolve against ``base_dir``).

        Raises:
            ConfigError: unknown keys, wrong types, unreadable policy files.
        """
        refuse_unknown_keys("attestation", table, _KEYS)
        base = base_dir or Path.cwd()
        return cls(
            provider=_provider(table.get("provider", "gramine")),
            gramine_root=_path(table.get("gramine_root", str(DEFAULT_ROOT)), "gramine_root", base),
            collateral=_opt_path(table, "collateral", base),
            pccs_url=_opt_str(table, "pccs_url"),
            verify_at=_opt_time(table.get("verify_at")),
            allow_fixed_time=_opt_bool(table, "allow_fixed_time"),
            code_paths=_code_paths(table.get("code_paths", []), base),
            policy=_policy(table, base),
        )


def check_live_channel(cfg: AttestationConfig) -> None:
    """Refuse a fixed verification time for a live channel unless it is allowed by name.

    ``verify_at`` makes every peer's evidence be checked at that moment instead of now, so
    collateral that has since expired (a revoked platform, an outdated TCB) still passes. That is
    for recorded evidence (``cvfl attest verify --at``) and tests, not for a channel to a live
    peer. Call this wherever a job's ``[attestation]`` table becomes a channel security.

    Raises:
        ConfigError: ``verify_at`` is set and ``allow_fixed_time`` is not (``config.verify_at``).
    """
    if cfg.verify_at is None:
        return
    if not cfg.allow_fixed_time:
        raise ConfigError(
            mismatch(
                "attestation.verify_at",
                "unset on a live channel (collateral expiry is checked against the clock), or "
                "attestation.allow_fixed_time = true",
                cfg.verify_at,
            ),
            code="config.verify_at",
        )
    log.warning(
        "INSECURE: attestation.verify_at = %s: peers' evidence is verified at that fixed time, "
        "so collateral expiry is NOT checked (allowed by attestation.allow_fixed_time = true)",
        cfg.verify_at,
    )


def make_provider(cfg: AttestationConfig) -> EvidenceProvider:
    """Create the evidence provider the config names (the simulated one logs a WARNING)."""
    if cfg.provider == "simulated":
        return SimulatedProvider(cfg.code_paths)
    return GramineProvider(cfg.gramine_root)


def collateral_source(cfg: AttestationConfig) -> CollateralSource | None:
    """The configured DCAP collateral source, or None when neither file nor PCCS is set."""
    if cfg.collateral is not None:
        return FileCollateral(cfg.collateral)
    if cfg.pccs_url is not None:
        return PccsCollateral(cfg.pccs_url)
    return None


class RoutingVerifier:
    """Sends simulated quotes to the simulated verifier and real ones to DCAP."""

    def __init__(self, dcap: QuoteVerifier | None, *, default_at: int | None = None) -> None:
        self.dcap = dcap
        self.simulated = SimulatedVerifier()
        self.default_at = default_at

    def verify(self, quote: bytes, *, at: int | None = None) -> VerifiedEvidence:
        """Verify ``quote`` with the verifier its marker selects.

        Raises:
            AttestationError: malformed, unverifiable, or no DCAP collateral configured.
        """
        parsed = parse_quote(quote)
        if is_simulated_quote(parsed):
            return self.simulated.verify(parsed.raw)
        if self.dcap is None:
            raise AttestationError(
                mismatch("DCAP collateral", "attestation.collateral or pccs_url", "none set"),
                code="attestation.no_collateral",
            )
        return self.dcap.verify(parsed.raw, at=at if at is not None else self.default_at)


def default_verifier(cfg: AttestationConfig) -> QuoteVerifier:
    """The verifier for the job: simulated quotes checked in software, real ones by dcap-qvl."""
    source = collateral_source(cfg)
    dcap = DcapVerifier(source) if source is not None else None
    return RoutingVerifier(dcap, default_at=cfg.verify_at)


def _error(key: str, expected: str, seen: object) -> ConfigError:
    return ConfigError(mismatch(f"attestation.{key}", expected, repr(seen)), code="config.invalid")


def _provider(value: object) -> ProviderName:
    if value == "simulated":
        return "simulated"
    if value == "gramine":
        return "gramine"
    raise _error("provider", '"simulated" or "gramine"', value)


def _path(value: object, key: str, base: Path) -> Path:
    if not isinstance(value, str) or not value:
        raise _error(key, "a path string", value)
    path = home_expanded(value)
    if path is None:
        raise _error(key, "a path whose ~ names a user with a home directory", value)
    return path if path.is_absolute() else base / path


def _opt_path(table: Mapping[str, object], key: str, base: Path) -> Path | None:
    return None if key not in table else _path(table[key], key, base)


def _opt_str(table: Mapping[str, object], key: str) -> str | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise _error(key, "a string", value)
    return value


def _opt_time(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _error("verify_at", "a UNIX time (non-negative integer)", value)
    return value


def _opt_bool(table: Mapping[str, object], key: str) -> bool:
    value = table.get(key, False)
    if not isinstance(value, bool):  # a string "true" is not true
        raise _error(key, "true or false", value)
    return value


def _code_paths(value: object, base: Path) -> tuple[Path, ...]:
    if not isinstance(value, list):
        raise _error("code_paths", "an array of paths", value)
    return tuple(_path(item, "code_paths", base) for item in value)


def _policy(table: Mapping[str, object], base: Path) -> Policy:
    sources = [key for key in ("policy", "policy_file", "cczoo_config") if key in table]
    if len(sources) > 1:
        raise _error("policy", "one of policy, policy_file, cczoo_config", sources)
    if "policy_file" in table:
        return load_policy_file(_path(table["policy_file"], "policy_file", base))
    if "cczoo_config" in table:
        return load_cczoo_json(_path(table["cczoo_config"], "cczoo_config", base))
    inline = table.get("policy", {})
    if not isinstance(inline, Mapping):
        raise _error("policy", "a table", inline)
    return Policy.from_toml_table(inline)


def load_policy_file(path: Path) -> Policy:
    """Load a policy from a TOML file (a ``[policy]`` table, or the policy keys at top level).

    Raises:
        ConfigError: unreadable or invalid file.
    """
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read policy ({exc})", code="config.policy") from None
    table = doc.get("policy", doc)
    if isinstance(doc.get("attestation"), Mapping) and "policy" in doc["attestation"]:
        table = doc["attestation"]["policy"]
    if not isinstance(table, Mapping):
        raise ConfigError(
            mismatch(f"{path} policy", "a table", type(table).__name__), code="config.policy"
        )
    return Policy.from_toml_table(table)


def load_policy(path: Path) -> Policy:
    """Load a policy from a TOML file or, for ``.json``, a CCZoo ``dynamic_config.json``."""
    if path.suffix.lower() == ".json":
        return load_cczoo_json(path)
    return load_policy_file(path)
