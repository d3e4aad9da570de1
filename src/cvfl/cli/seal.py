"""Operator commands for sealed files: ``seal``, ``unseal``, ``reseal`` and ``keys new``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cvfl.errors import ConfigError
from cvfl.sealing import (
    DEFAULT_CHUNK_SIZE,
    EnvKeyProvider,
    FileKeyProvider,
    GramineKeyProvider,
    KeyProvider,
    new_key_file,
    reseal,
    seal_file,
    unseal_file,
)
from cvfl.sealing.keys import DEFAULT_GRAMINE_ROOT

PurposeOpt = Annotated[
    str, typer.Option("--purpose", "-p", help="What the file holds, e.g. checkpoint, model.")
]
KeyFileOpt = Annotated[Path | None, typer.Option("--key-file", help="Hex key file (mode 0600).")]
KeyEnvOpt = Annotated[
    str | None, typer.Option("--key-env", help="Variable holding a hex key (development only).")
]
GramineKeyOpt = Annotated[
    str | None, typer.Option("--gramine-key", help="Gramine sealing key: mrenclave | mrsigner.")
]
GramineRootOpt = Annotated[
    Path, typer.Option("--gramine-root", help="Gramine's attestation folder.")
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace OUT if it exists.")]


def keys_from_options(
    key_file: Path | None,
    key_env: str | None,
    gramine_key: str | None,
    gramine_root: Path,
    *,
    prefix: str = "",
) -> KeyProvider:
    """Open the one key source the options name (refusing none or several)."""
    given = [
        n
        for n, v in (("key-file", key_file), ("key-env", key_env), ("gramine-key", gramine_key))
        if v
    ]
    if len(given) != 1:
        names = " | ".join(f"--{prefix}{n}" for n in ("key-file", "key-env", "gramine-key"))
        seen = ", ".join(f"--{prefix}{n}" for n in given) or "none"
        raise ConfigError(
            f"key source: expected exactly one of {names}, seen {seen}", code="config.option"
        )
    if key_file is not None:
        return FileKeyProvider(key_file)
    if key_env:
        return EnvKeyProvider(key_env)
    return GramineKeyProvider(gramine_root, gramine_key or "")


def _check_output(out: Path, force: bool) -> None:
    if out.exists() and not force:
        raise ConfigError(
            f"{out} exists; refusing to replace it (pass --force)", code="sealing.output_exists"
        )


def seal_cmd(
    *,
    src: Annotated[Path, typer.Argument(metavar="IN", help="Plain file to seal.")],
    out: Annotated[Path, typer.Argument(metavar="OUT", help="Sealed file to write.")],
    purpose: PurposeOpt,
    key_file: KeyFileOpt = None,
    key_env: KeyEnvOpt = None,
    gramine_key: GramineKeyOpt = None,
    gramine_root: GramineRootOpt = DEFAULT_GRAMINE_ROOT,
    chunk_size: Annotated[
        int, typer.Option("--chunk-size", help="Plaintext bytes per chunk.")
    ] = DEFAULT_CHUNK_SIZE,
    force: ForceOpt = False,
) -> None:
    """Seal IN into OUT (written atomically; nothing is written on failure)."""
    keys = keys_from_options(key_file, key_env, gramine_key, gramine_root)
    _check_output(out, force)
    seal_file(src, out, purpose=purpose, keys=keys, chunk_size=chunk_size)
    typer.echo(f"sealed {src} -> {out} (purpose {purpose}, key {keys.key_id})")


def unseal_cmd(
    *,
    src: Annotated[Path, typer.Argument(metavar="IN", help="Sealed file to open.")],
    out: Annotated[Path, typer.Argument(metavar="OUT", help="Plain file to write.")],
    purpose: PurposeOpt,
    key_file: KeyFileOpt = None,
    key_env: KeyEnvOpt = None,
    gramine_key: GramineKeyOpt = None,
    gramine_root: GramineRootOpt = DEFAULT_GRAMINE_ROOT,
    force: ForceOpt = False,
) -> None:
    """Verify and decrypt IN into OUT; on any failure exit non-zero and write nothing."""
    keys = keys_from_options(key_file, key_env, gramine_key, gramine_root)
    _check_output(out, force)
    unseal_file(src, out, purpose=purpose, keys=keys)
    typer.echo(f"unsealed {src} -> {out} (purpose {purpose})")


def reseal_cmd(
    *,
    path: Annotated[Path, typer.Argument(metavar="FILE", help="Sealed file to re-seal in place.")],
    purpose: PurposeOpt,
    old_key_file: Annotated[Path | None, typer.Option("--old-key-file")] = None,
    old_key_env: Annotated[str | None, typer.Option("--old-key-env")] = None,
    old_gramine_key: Annotated[str | None, typer.Option("--old-gramine-key")] = None,
    old_gramine_root: Annotated[Path, typer.Option("--old-gramine-root")] = DEFAULT_GRAMINE_ROOT,
    new_key_file_: Annotated[Path | None, typer.Option("--new-key-file")] = None,
    new_key_env: Annotated[str | None, typer.Option("--new-key-env")] = None,
    new_gramine_key: Annotated[str | None, typer.Option("--new-gramine-key")] = None,
    new_gramine_root: Annotated[Path, typer.Option("--new-gramine-root")] = DEFAULT_GRAMINE_ROOT,
) -> None:
    """Re-seal FILE under a new key (key rotation); FILE is unchanged on any failure."""
    old = keys_from_options(
        old_key_file, old_key_env, old_gramine_key, old_gramine_root, prefix="old-"
    )
    new = keys_from_options(
        new_key_file_, new_key_env, new_gramine_key, new_gramine_root, prefix="new-"
    )
    reseal(path, old, new, purpose=purpose)
    typer.echo(f"resealed {path}: key {old.key_id} -> {new.key_id}")


def keys_new_cmd(
    path: Annotated[Path, typer.Argument(help="Key file to create (mode 0600).")],
) -> None:
    """Create a new random sealing key file; never overwrites an existing file."""
    provider = new_key_file(path)
    typer.echo(f"created {path} (key id {provider.key_id})")


def register(app: typer.Typer) -> None:
    """Attach ``seal``, ``unseal``, ``reseal`` and ``keys new`` to ``app``."""
    app.command("seal")(seal_cmd)
    app.command("unseal")(unseal_cmd)
    app.command("reseal")(reseal_cmd)
    keys_app = typer.Typer(help="Manage sealing keys.", no_args_is_help=True)
    keys_app.command("new")(keys_new_cmd)
    app.add_typer(keys_app, name="keys")
