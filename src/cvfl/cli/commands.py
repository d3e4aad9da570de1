"""Registers every concern's sub-commands on the root app (one line per concern)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach the sub-commands of each concern to ``app``."""
    __import__("cvfl.cli.attest", fromlist=["register"]).register(app)
    __import__("cvfl.cli.seal", fromlist=["register"]).register(app)
    __import__("cvfl.cli.align", fromlist=["register"]).register(app)
    __import__("cvfl.cli.train", fromlist=["register"]).register(app)
    __import__("cvfl.cli.fallback", fromlist=["register"]).register(app)
    __import__("cvfl.cli.demo", fromlist=["register"]).register(app)
    __import__("cvfl.cli.predict", fromlist=["register"]).register(app)
    __import__("cvfl.cli.serve", fromlist=["register"]).register(app)
    __import__("cvfl.cli.report", fromlist=["register"]).register(app)
    __import__("cvfl.cli.run", fromlist=["register"]).register(app)
    __import__("cvfl.cli.check", fromlist=["register"]).register(app)
