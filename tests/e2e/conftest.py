"""End-to-end tests: real ``cvfl`` processes."""

from __future__ import annotations

import signal

import pytest


@pytest.fixture(autouse=True, scope="session")
def _children_take_ctrl_c() -> None:
    """Let the parties the tests start receive SIGINT, as at a terminal.

    A shell starts a background job with SIGINT ignored, and a child inherits an ignored
    signal: Python then leaves it ignored, and a test's Ctrl-C to a party would do nothing.
    """
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
