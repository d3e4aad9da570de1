"""The ``cvfl.*`` logger hierarchy; configured once, by the CLI."""

from __future__ import annotations

import logging

ROOT = "cvfl"


def get_logger(name: str) -> logging.Logger:
    """Return the logger ``cvfl.<name>`` (pass ``__name__`` from inside the package)."""
    if name == ROOT or name.startswith(ROOT + "."):
        return logging.getLogger(name)
    return logging.getLogger(f"{ROOT}.{name}")


def configure(level: int = logging.INFO, *, prefix: str = "") -> None:
    """Configure the ``cvfl`` hierarchy to log to stderr through rich (idempotent)."""
    from rich.console import Console
    from rich.logging import RichHandler

    root = logging.getLogger(ROOT)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = RichHandler(
        console=Console(stderr=True),
        show_path=False,
        rich_tracebacks=False,
        markup=False,
    )
    fmt = f"{prefix}%(message)s" if prefix else "%(message)s"
    handler.setFormatter(logging.Formatter(fmt))
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
