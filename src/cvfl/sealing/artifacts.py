"""Where a party's artifacts go: sealed by default, plaintext only when the job asks by name.

A sealed artifact is stored as ``<name>.sealed``; its purpose string binds what it is (e.g.
``cvfl/export/leader/weights``), so a file of one kind cannot be passed off as another.

Whether an artifact is read sealed or plaintext is decided by the job (its ``[sealing]`` table,
or ``[job] plaintext_outputs = true``), never by which file happens to be on disk: a job that
seals its outputs refuses a plaintext file where a sealed one belongs (the host may have planted
it), and a plaintext job refuses a sealed one.
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
        """Whether artifacts are sealed (written, and read back, only in sealed form)."""
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
        """Read an artifact by its base name or on-disk name; refuse the wrong kind of file.

        Raises:
            SealingError: missing (``sealing.missing``), a plaintext file at either name of a
                sealed artifact (``sealing.unexpected_plaintext``), a sealed file in a
                plaintext job (``sealing.unexpected_sealed``), or a sealed file that fails.
        """
        found = locate(path, sealed=self.sealed)
        return read_artifact(found, purpose, self.keys, expect_sealed=self.sealed)


def twin_names(path: Path) -> tuple[Path, Path]:
    """The sealed and the plaintext name of the artifact ``path`` (base or on-disk name)."""
    base = path.with_name(path.name.removesuffix(SUFFIX))
    return base.with_name(base.name + SUFFIX), base


def locate(path: Path, *, sealed: bool) -> Path:
    """The file to read for the artifact ``path`` (its base name or its ``.sealed`` name).

    For a sealed job this is ``<base>.sealed`` (or, when only that exists, ``<base>`` holding a
    sealed file); a plaintext file at either name is refused, even beside the sealed one. A
    plaintext job reads ``path`` as given.

    Raises:
        SealingError: no file (``sealing.missing``), or a plaintext file where this job keeps
            only sealed ones (``sealing.unexpected_plaintext``).
    """
    if not sealed:
        if not path.exists():
            raise SealingError(f"{path}: no such file", code="sealing.missing")
        return path
    target, base = twin_names(path)
    for candidate in (target, base):
        if candidate.is_file():
            require_form(candidate, sealed=True)
    for candidate in (target, base):
        if candidate.exists():
            return candidate
    raise SealingError(f"{target}: no such file", code="sealing.missing")


def require_form(path: Path, *, sealed: bool) -> None:
    """Refuse ``path`` unless it is sealed (``sealed``) or plaintext (not ``sealed``).

    Raises:
        SealingError: ``sealing.unexpected_plaintext`` or ``sealing.unexpected_sealed``,
            naming the file.
    """
    seen = is_sealed(path)
    if seen == sealed:
        return
    if sealed:
        raise SealingError(
            f"{path}: expected a sealed file, seen a plaintext one (this job seals its outputs "
            "with [sealing], so it reads them back only sealed; only a job with "
            "[job] plaintext_outputs = true and no [sealing] reads plaintext)",
            code="sealing.unexpected_plaintext",
        )
    raise SealingError(
        f"{path}: expected a plaintext file, seen a sealed one (this job has no [sealing])",
        code="sealing.unexpected_sealed",
    )


def read_artifact(
    path: Path, purpose: str, keys: KeyProvider | None, *, expect_sealed: bool | None = None
) -> bytes:
    """Read ``path``, unsealing it when it is sealed.

    Args:
        path: The file.
        purpose: The purpose it must have been sealed for.
        keys: The key provider (needed for sealed files).
        expect_sealed: If set, refuse a file whose sealed-ness differs (a plaintext file where a
            sealed one belongs may have been planted by the host). Every read on behalf of a job
            sets it from the job's configuration; only offline tools looking at a file the user
            named leave it unset.
    """
    if expect_sealed is not None:
        require_form(path, sealed=expect_sealed)
    # With an expectation, the form checked is the form read: a file swapped for a plaintext
    # one after the check still fails, in read_sealed (magic, then authentication).
    sealed = is_sealed(path) if expect_sealed is None else expect_sealed
    if not sealed:
        return path.read_bytes()
    if keys is None:
        raise SealingError(
            f"{path}: the file is sealed; give the key ([sealing] in the job file or --key-file)",
            code="sealing.no_key",
        )
    return read_sealed(path, purpose=purpose, keys=keys)
