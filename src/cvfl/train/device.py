"""Where a party computes: ``[train] device`` resolved on this machine.

Each party chooses on its own; tensors cross the wire from host memory whatever it chooses.
"""

from __future__ import annotations

import torch

from cvfl.errors import ConfigError, mismatch


def resolve_device(name: str, workers: int = 1) -> torch.device:
    """The torch device of ``[train] device``: ``auto`` is CUDA when it is available.

    With several ``workers`` ``auto`` is the CPU: the workers' group reduces in host memory.

    Raises:
        ConfigError: ``cuda`` on a machine where CUDA is not available (``config.train``).
    """
    cuda = torch.cuda.is_available() and workers == 1
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            mismatch(
                "[train] device",
                'a device this machine has ("auto" or "cpu": CUDA is not available here)',
                repr(name),
            ),
            code="config.train",
        )
    return torch.device("cuda" if name == "cuda" or (name == "auto" and cuda) else "cpu")
