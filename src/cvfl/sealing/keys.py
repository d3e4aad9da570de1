"""Sealing key providers: Gramine SGX sealing keys, a key file, an environment variable.

Every provider exposes a non-secret ``key_id`` (``<source>:<fingerprint>``, the fingerprint being
an HMAC of a fixed label under the key, so it reveals nothing about the key) and ``key()``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

from cvfl.errors import SealingError, mismatch
from cvfl.fsutil import fsync_dir
from cvfl.logs import get_logger

log = get_logger(__name__)

GramineKeyKind = Literal["mrenclave", "mrsigner"]
GRAMINE_KEY_KINDS: tuple[GramineKeyKind, ...] = ("mrenclave", "mrsigner")
DEFAULT_GRAMINE_ROOT = Path("/dev/attestation")
GRAMINE_KEY_SIZE = 16
KEY_SIZES = (16, 24, 32)
NEW_KEY_SIZE = 32
MAX_KEY_FILE_SIZE = 1024
_FINGERPRINT_LABEL = b"cvfl-key-fingerprint-v1"


@runtime_checkable
class KeyProvider(Protocol):
    """Where a sealing key comes from."""

    @property
    def key_id(self) -> str:
        """Non-secret label of the key (``<source>:<fingerprint>``), written in file headers."""
        ...

    def key(self) -> bytes:
        """Return the secret key bytes (16, 24 or 32 bytes)."""
        ...


def fingerprint(key: bytes) -> str:
    """A short non-secret fingerprint of ``key`` (16 hex characters)."""
    return hmac.new(key, _FINGERPRINT_LABEL, hashlib.sha256).hexdigest()[:16]


def key_fingerprint_of(key_id: str) -> str:
    """The fingerprint part of a key id (the text after its last colon)."""
    return key_id.rsplit(":", 1)[-1]


class _StaticKey:
    """A key held in memory with its id."""

    def __init__(self, source: str, key: bytes) -> None:
        self._key = key
        self._key_id = f"{source}:{fingerprint(key)}"

    @property
    def key_id(self) -> str:
        """Non-secret label of the key."""
        return self._key_id

    def key(self) -> bytes:
        """Return the secret key bytes."""
        return self._key


def _parse_hex_key(text: str, where: str) -> bytes:
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        raise SealingError(
            f"{where}: " + mismatch("key encoding", "hex digits", "non-hex characters"),
            code="sealing.key_invalid",
        ) from None
    if len(key) not in KEY_SIZES:
        raise SealingError(
            f"{where}: " + mismatch("key length", "16, 24 or 32 bytes", f"{len(key)} bytes"),
            code="sealing.key_invalid",
        )
    return key


class FileKeyProvider(_StaticKey):
    """A key stored hex-encoded in a file that only its owner may read (mode 0600 or stricter)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        super().__init__("file", _parse_hex_key(_read_private(self.path), f"key file {self.path}"))


def _read_private(path: Path) -> str:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise SealingError(
            f"key file {path}: cannot open: {exc.strerror}", code="sealing.key_missing"
        ) from None
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(handle.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise SealingError(f"key file {path}: not a regular file", code="sealing.key_invalid")
        if st.st_mode & 0o077:
            raise SealingError(
                f"key file {path}: "
                + mismatch("permissions", "0600 or stricter", f"{stat.S_IMODE(st.st_mode):04o}")
                + f" (group/others may access it; run: chmod 600 {path})",
                code="sealing.key_permissions",
            )
        raw = handle.read(MAX_KEY_FILE_SIZE + 1)
    if len(raw) > MAX_KEY_FILE_SIZE:
        raise SealingError(f"key file {path}: too large for a key", code="sealing.key_invalid")
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        raise SealingError(
            f"key file {path}: " + mismatch("key encoding", "hex digits", "binary data"),
            code="sealing.key_invalid",
        ) from None


class EnvKeyProvider(_StaticKey):
    """A hex key taken from an environment variable. For development only: logs a warning."""

    def __init__(self, var: str, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.var = var
        value = env.get(var)
        if not value:
            raise SealingError(f"sealing key variable {var} is not set", code="sealing.key_missing")
        super().__init__("env", _parse_hex_key(value, f"environment variable {var}"))
        log.warning(
            "sealing key taken from environment variable %s: for development only, "
            "use a key file or Gramine sealing keys in production",
            var,
        )


class GramineKeyProvider(_StaticKey):
    """Gramine's SGX sealing key (``<root>/keys/_sgx_mrenclave`` or ``_sgx_mrsigner``)."""

    def __init__(
        self, root: str | os.PathLike[str] = DEFAULT_GRAMINE_ROOT, kind: str = "mrenclave"
    ) -> None:
        if kind not in GRAMINE_KEY_KINDS:
            raise SealingError(
                mismatch("gramine key kind", " or ".join(GRAMINE_KEY_KINDS), repr(kind)),
                code="sealing.key_invalid",
            )
        self.root = Path(root)
        self.kind = kind
        path = self.root / "keys" / f"_sgx_{kind}"
        try:
            key = path.read_bytes()
        except OSError as exc:
            raise SealingError(
                f"Gramine sealing key {path}: cannot read ({exc.strerror}); "
                "is the process running under gramine-sgx?",
                code="sealing.key_missing",
            ) from None
        if len(key) != GRAMINE_KEY_SIZE:
            raise SealingError(
                f"Gramine sealing key {path}: "
                + mismatch("length", f"{GRAMINE_KEY_SIZE} bytes", f"{len(key)} bytes"),
                code="sealing.key_invalid",
            )
        super().__init__(f"sgx-{kind}", key)


def new_key_file(path: str | os.PathLike[str]) -> FileKeyProvider:
    """Create a fresh random 32-byte key file (mode 0600); never overwrites an existing file."""
    target = Path(path)
    if target.exists() or target.is_symlink():
        raise SealingError(
            f"key file {target} already exists; refusing to overwrite it", code="sealing.key_exists"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(NEW_KEY_SIZE).hex().encode("ascii") + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.link(tmp, target)  # fails if the target appeared meanwhile: no overwrite
        fsync_dir(target.parent)
    except FileExistsError:
        raise SealingError(
            f"key file {target} already exists; refusing to overwrite it", code="sealing.key_exists"
        ) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    provider = FileKeyProvider(target)
    log.info("created sealing key file %s (key id %s)", target, provider.key_id)
    return provider
