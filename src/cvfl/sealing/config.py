"""The job file's ``[sealing]`` table: which key provider seals this party's files."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

from cvfl.errors import ConfigError, SealingError, mismatch
from cvfl.sealing.format import DEFAULT_CHUNK_SIZE, check_chunk_size
from cvfl.sealing.keys import (
    DEFAULT_GRAMINE_ROOT,
    GRAMINE_KEY_KINDS,
    EnvKeyProvider,
    FileKeyProvider,
    GramineKeyKind,
    GramineKeyProvider,
    KeyProvider,
)

ProviderKind = Literal["file", "env", "gramine"]
PROVIDERS: tuple[ProviderKind, ...] = ("file", "env", "gramine")
_KEYS = frozenset({"provider", "key_file", "key_env", "gramine_root", "gramine_key", "chunk_size"})
_NEEDS = {"file": "key_file", "env": "key_env"}
_ONLY = {"key_file": "file", "key_env": "env", "gramine_root": "gramine", "gramine_key": "gramine"}


@dataclass(frozen=True)
class SealingConfig:
    """Validated sealing settings.

    Attributes:
        provider: ``"file"`` (key file), ``"env"`` (environment variable, development only) or
            ``"gramine"`` (SGX sealing key from Gramine's ``/dev/attestation``).
        key_file: The key file, for ``provider = "file"``.
        key_env: The variable holding a hex key, for ``provider = "env"``.
        gramine_root: Gramine's attestation folder, for ``provider = "gramine"``.
        gramine_key: ``"mrenclave"`` or ``"mrsigner"``, for ``provider = "gramine"``.
        chunk_size: Plaintext bytes per sealed chunk.
    """

    provider: ProviderKind
    key_file: Path | None = None
    key_env: str | None = None
    gramine_root: Path = DEFAULT_GRAMINE_ROOT
    gramine_key: GramineKeyKind = "mrenclave"
    chunk_size: int = DEFAULT_CHUNK_SIZE

    def __post_init__(self) -> None:
        if self.provider not in PROVIDERS:
            raise ConfigError(
                mismatch("sealing.provider", " | ".join(PROVIDERS), repr(self.provider))
            )
        if self.provider == "file" and self.key_file is None:
            raise ConfigError(mismatch("sealing.key_file", "a path (provider = file)", "missing"))
        if self.provider == "env" and not self.key_env:
            raise ConfigError(mismatch("sealing.key_env", "a name (provider = env)", "missing"))
        if self.gramine_key not in GRAMINE_KEY_KINDS:
            raise ConfigError(
                mismatch("sealing.gramine_key", "mrenclave | mrsigner", repr(self.gramine_key))
            )
        try:
            check_chunk_size(self.chunk_size)
        except SealingError as exc:
            raise ConfigError(f"sealing.chunk_size: {exc}") from None

    @classmethod
    def from_toml_table(
        cls, table: Mapping[str, object], *, base_dir: Path | None = None
    ) -> SealingConfig:
        """Build from the job's ``[sealing]`` table; relative paths resolve against ``base_dir``."""
        unknown = sorted(set(table) - _KEYS)
        if unknown:
            raise ConfigError(mismatch("sealing keys", ", ".join(sorted(_KEYS)), unknown))
        provider = _string(table, "provider")
        if provider is None:
            raise ConfigError(mismatch("sealing.provider", " | ".join(PROVIDERS), "missing"))
        for key, owner in _ONLY.items():
            if key in table and provider != owner:
                raise ConfigError(mismatch(f"sealing.{key}", f"provider = {owner}", provider))
        key_file = _path(table, "key_file", base_dir)
        root = _path(table, "gramine_root", base_dir) or DEFAULT_GRAMINE_ROOT
        chunk_size = table.get("chunk_size", DEFAULT_CHUNK_SIZE)
        if not isinstance(chunk_size, int) or isinstance(chunk_size, bool):
            raise ConfigError(mismatch("sealing.chunk_size", "an integer", repr(chunk_size)))
        return cls(
            provider=cast(ProviderKind, provider),
            key_file=key_file,
            key_env=_string(table, "key_env"),
            gramine_root=root,
            gramine_key=cast(GramineKeyKind, _string(table, "gramine_key") or "mrenclave"),
            chunk_size=chunk_size,
        )


def _string(table: Mapping[str, object], key: str) -> str | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(mismatch(f"sealing.{key}", "a non-empty string", repr(value)))
    return value


def _path(table: Mapping[str, object], key: str, base_dir: Path | None) -> Path | None:
    value = _string(table, key)
    if value is None:
        return None
    path = Path(value).expanduser()
    return base_dir / path if base_dir is not None and not path.is_absolute() else path


def key_provider_from_config(cfg: SealingConfig) -> KeyProvider:
    """Open the key provider ``cfg`` names (reads the key now, so problems surface at start)."""
    if cfg.provider == "file":
        assert cfg.key_file is not None  # guaranteed by __post_init__
        return FileKeyProvider(cfg.key_file)
    if cfg.provider == "env":
        assert cfg.key_env is not None
        return EnvKeyProvider(cfg.key_env)
    return GramineKeyProvider(cfg.gramine_root, cfg.gramine_key)
