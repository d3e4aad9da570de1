"""The job file's ``[sealing]`` table: which key provider seals this party's files."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cvfl.configload import load_section
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
                mismatch("[sealing] provider", " | ".join(PROVIDERS), repr(self.provider)),
                code="config.sealing",
            )
        if self.provider == "file" and self.key_file is None:
            raise ConfigError(
                mismatch("[sealing] key_file", "a path (provider = file)", "missing"),
                code="config.sealing",
            )
        if self.provider == "env" and not self.key_env:
            raise ConfigError(
                mismatch("[sealing] key_env", "a name (provider = env)", "missing"),
                code="config.sealing",
            )
        if self.gramine_key not in GRAMINE_KEY_KINDS:
            raise ConfigError(
                mismatch("[sealing] gramine_key", "mrenclave | mrsigner", repr(self.gramine_key)),
                code="config.sealing",
            )
        try:
            check_chunk_size(self.chunk_size)
        except SealingError as exc:
            raise ConfigError(f"[sealing] chunk_size: {exc}", code="config.sealing") from None

    @classmethod
    def from_toml_table(
        cls, table: Mapping[str, object], *, base_dir: Path | None = None
    ) -> SealingConfig:
        """Build from the job's ``[sealing]`` table; relative paths resolve against ``base_dir``.

        Every key is checked by :func:`cvfl.configload.load_section`; a key of another provider
        (e.g. ``key_file`` with ``provider = "env"``) is refused too.
        """
        cfg = load_section(cls, "sealing", table, base_dir)
        for key, owner in _ONLY.items():
            if key in table and cfg.provider != owner:
                raise ConfigError(
                    mismatch(f"[sealing] {key}", f"provider = {owner}", cfg.provider),
                    code="config.value",
                )
        return cfg


def key_provider_from_config(cfg: SealingConfig) -> KeyProvider:
    """Open the key provider ``cfg`` names (reads the key now, so problems surface at start)."""
    if cfg.provider == "file":
        assert cfg.key_file is not None  # guaranteed by __post_init__
        return FileKeyProvider(cfg.key_file)
    if cfg.provider == "env":
        assert cfg.key_env is not None
        return EnvKeyProvider(cfg.key_env)
    return GramineKeyProvider(cfg.gramine_root, cfg.gramine_key)
