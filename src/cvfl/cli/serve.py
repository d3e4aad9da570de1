"""``cvfl serve``: one party of online two-party scoring, running until SIGTERM or Ctrl-C."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer


def serve(
    config: Annotated[
        Path, typer.Option("--config", "-c", help="The party's job file with [serve] (TOML).")
    ],
) -> None:
    """Serve scores online: the leader takes requests, the follower answers its lookups.

    SIGHUP reloads the export and table (and the [serve] section); SIGTERM drains and stops.
    """
    from cvfl.errors import CvflError
    from cvfl.logs import get_logger
    from cvfl.online import load_serve_job, start_party
    from cvfl.online.service import FollowerService
    from cvfl.train.channel import security_for
    from cvfl.train.party import set_threads

    log = get_logger("cvfl.cli.serve")
    stop, reload = threading.Event(), threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        (reload if signum == signal.SIGHUP else stop).set()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _on_signal)
    cfg, section = load_serve_job(config.resolve())
    set_threads(section.threads)
    service = start_party(cfg, section, security_for(cfg, "serve"))
    log.info("serve: up; SIGHUP reloads the export, SIGTERM or Ctrl-C drains and stops")
    while not stop.wait(0.5):
        if isinstance(service, FollowerService) and not service.running:
            break
        if reload.is_set():
            reload.clear()
            try:
                service.reload(load_serve_job(config.resolve())[1])
            except CvflError as exc:  # the old export keeps serving
                log.error("serve: reload refused, still serving the old export: %s", exc)
    service.drain()
    if isinstance(service, FollowerService) and service.error is not None:
        raise service.error


def register(app: typer.Typer) -> None:
    """Attach ``cvfl serve``."""
    app.command("serve")(serve)
