"""The ``cvfl`` command: sub-commands, error-to-exit-code mapping, logging set-up."""

from __future__ import annotations

import logging
import os
import sys

import typer
from rich.console import Console
from rich.markup import escape

from cvfl import __version__
from cvfl.errors import CvflError, exit_code_of

app = typer.Typer(
    name="cvfl",
    help="Confidential vertical federated learning: align, train, seal, attest.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_err = Console(stderr=True)


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug detail."),
) -> None:
    """Confidential vertical federated learning."""
    from cvfl.logs import configure

    configure(logging.DEBUG if verbose else logging.INFO)


@app.command()
def version() -> None:
    """Print the cvfl version."""
    typer.echo(__version__)


_registered: list[bool] = []


def _register() -> None:
    """Attach every concern's commands once."""
    if _registered:
        return
    from cvfl.cli import commands

    commands.register(app)
    _registered.append(True)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; turn a :class:`CvflError` into its message and documented exit code.

    The exit code is the error class's entry in :data:`cvfl.errors.EXIT_CODES` (docs/errors.md).
    """
    # The two parties take turns on the CPU; OpenMP threads that spin while waiting for the
    # next parallel region would steal the peer's cores (about 10x slower on 2 cores).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    _register()
    try:
        app(args=argv)
    except CvflError as exc:
        _err.print(
            f"[bold red]error[/] {escape(f'[{exc.code}] {exc.message}')}",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(exit_code_of(exc))
    except KeyboardInterrupt:
        _err.print("[bold red]interrupted[/]")
        sys.exit(130)
