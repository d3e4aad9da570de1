"""Stopping a training loop on request, between steps (``stop`` of :func:`cvfl.api.train`).

A stop ends the loop with :func:`stopped`'s error: the loop's usual error path then sends the
peer an Abort carrying the code ``train.stopped``, and both parties keep their committed
checkpoints, so rerunning the same job resumes exactly where both sides last agreed.
"""

from __future__ import annotations

import threading

from cvfl.errors import CvflError

STOPPED = "train.stopped"


def stopped(role: str, step: int) -> CvflError:
    """The error that ends ``role``'s loop after ``step`` on request."""
    return CvflError(f"the {role} was stopped on request after step {step}", code=STOPPED)


def check_stop(stop: threading.Event | None, role: str, step: int) -> None:
    """Raise :func:`stopped` if ``stop`` is set (a None ``stop`` never stops).

    Raises:
        CvflError: ``train.stopped``.
    """
    if stop is not None and stop.is_set():
        raise stopped(role, step)
