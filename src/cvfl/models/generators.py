"""Borrowing PyTorch's global CPU generator for a block, in a generator's state, under a lock.

Modules such as dropout, and PyTorch's parameter initialisers, draw from the global generator,
which cannot be passed explicitly. Library code that must draw (building a half from the job
seed, a training step) runs the block with the global generator set to its own
:class:`torch.Generator`'s state and gives the caller's state back afterwards.

The global generator is one per process: blocks in threads of one process (both parties of
:func:`cvfl.api.run_local`) take turns under a lock, so neither sees the other's state. A caller
drawing from the global generator in another thread meanwhile is not kept out.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

_GLOBAL = threading.RLock()  # the blocks that borrow the process's global generator


@contextmanager
def drawing_from(generator: torch.Generator) -> Iterator[None]:
    """Run the block with the global CPU generator in ``generator``'s state.

    Afterwards the global generator is back in the caller's state and ``generator`` holds the
    block's draws (even when the block raises). The block must not wait on another party.
    """
    with _GLOBAL, torch.random.fork_rng(devices=[]):
        torch.random.set_rng_state(generator.get_state())
        try:
            yield
        finally:
            generator.set_state(torch.random.get_rng_state())
