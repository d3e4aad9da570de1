"""The leader's top layers in NumPy, for the few rows of a micro-batch.

With the bottom tower cached (:mod:`cvfl.online.cache`), a request needs only the top: a linear
layer, or linear layers with ReLU between them, over ``[own, act1_f]``. Evaluating them in NumPy
(float64, from the float32 inputs) spares a micro-batch a dozen PyTorch calls, each of which
gives up Python's global lock and waits to take it back from the service's other threads.
The float64 result differs from PyTorch's float32 one only by that one's rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn

Layer = tuple[np.ndarray, np.ndarray] | None  # (weight transposed, bias), or None for a ReLU


def _layers(module: nn.Module) -> list[Layer] | None:
    """The module as a list of linear layers and ReLUs; None if it is anything else."""
    if isinstance(module, nn.Linear):
        weight = module.weight.detach().double().numpy().T.copy()
        bias = (
            module.bias.detach().double().numpy().copy()
            if module.bias is not None
            else np.zeros(weight.shape[1])
        )
        return [(weight, bias)]
    if isinstance(module, nn.ReLU):
        return [None]
    if isinstance(module, nn.Sequential):
        out: list[Layer] = []
        for child in module:
            inner = _layers(child)
            if inner is None:
                return None
            out += inner
        return out
    return None


@dataclass(frozen=True)
class NumpyTop:
    """A stack of linear layers and ReLUs, as float64 arrays copied from a module."""

    layers: tuple[Layer, ...]

    @classmethod
    def of(cls, module: nn.Module) -> NumpyTop | None:
        """The module's layers, or None if it holds anything but linear layers and ReLUs."""
        layers = _layers(module)
        return cls(tuple(layers)) if layers else None

    def __call__(self, own: np.ndarray, act: np.ndarray) -> np.ndarray:
        """The outputs (float64) over the rows of ``[own, act]``, joined column-wise."""
        x = np.concatenate([own, act], axis=1, dtype=np.float64)
        for layer in self.layers:
            x = np.maximum(x, 0.0) if layer is None else x @ layer[0] + layer[1]
        return x
