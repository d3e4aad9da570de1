"""Where a party's artifacts go: sealed by default, plaintext only when the job asks by name.

A sealed artifact is stored as ``<name>.sealed``; its purpose string binds what it is (e.g.
``cvfl/export/leader/weights``), so a file of one kind cannot be passed off as another.
"""

from __future__ import annotations

from pathlib import Path

from cvfl.errors import SealingError
from cvfl.fsutil import atomic_write_bytes
from cvfl.logs import get_logger
from cvfl.sealing.files import is_sealed, read_sealed, write_sealed
from cvfl.sealing.keys import KeyProvider

log = get_logger(__name__)
SUFFIX = ".sealed"


class Artifacts:
    """Writes and reads a party's files, sealed with ``keys`` (or plaintext when None)."""

    def __init__(self, keys: KeyProvider | None) -> None:
        self.keys = keys
        if keys is None:
            log.warning("INSECURE: outputs are written in plaintext (asked for by the job file)")

    @property
    def sealed(self) -> bool:
        """Whether artifacts are sealed."""
        return self.keys is not None

    def path(self, base: Path) -> Path:
        """The on-disk name of the artifact ``base``."""
        return base.with_name(base.name + SUFFIX) if self.sealed else base

    def write(self, base: Path, data: bytes, purpose: str) -> Path:
        """Write an artifact atomically; return where it went."""
        target = self.path(base)
        if self.keys is None:
            atomic_write_bytes(target, data)
        else:
            write_sealed(target, data, purpose=purpose, keys=self.keys)
        return target

    def read(self, path: Path, purpose: str) -> bytes:
        """Read an artifact by its base name or on-disk name; refuse the wrong kind of file."""
        candidates = [path] if path.name.endswith(SUFFIX) else [self.path(path), path]
        found = next((p for p in candidates if p.exists()), None)
        if found is None:
            raise SealingError(f"{candidates[0]}: no such file", code="sealing.missing")
        return read_artifact(found, purpose, self.keys, expect_sealed=self.sealed)


def read_artifact(
    path: Path, purpose: str, keys: KeyProvider | None, *, expect_sealed: bool | None = None
) -> bytes:
    """Read ``path``, unsealing it when it is sealed.

    Args:
        path: The file.
        purpose: The purpose it must have been sealed for.
        keys: The key provider (needed for sealed files).
        expect_sealed: If set, refuse a file whose sealed-ness differs (a plaintext file where a
            sealed one belongs may have been planted by the host).
    """
    sealed = is_sealed(path)
    if expect_sealed is not None and sealed != expect_sealed:
        raise SealingError(
            f"{path}: expected a {'sealed' if expect_sealed else 'plaintext'} file, "
            f"seen a {'sealed' if sealed else 'plaintext'} one",
            code="sealing.unexpected_plaintext" if expect_sealed else "sealing.unexpected_sealed",
        )
    if not sealed:
        return path.read_bytes()
    if keys is None:
        raise SealingError(
            f"{path}: the file is sealed; give the key ([sealing] in the job file or --key-file)",
            code="sealing.no_key",
        )
    return read_sealed(path, purpose=purpose, keys=keys)
