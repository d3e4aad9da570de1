"""Packages whose public names are imported on first use (so reading a job file stays light)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_names(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports each name from its module.

    ``where`` maps a name to its module: a submodule of ``package`` (``"config"``) or an
    absolute module path (``"cvfl.train.config"``).
    """

    def attribute(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = where[name]
        path = module if module.startswith("cvfl.") else f"{package}.{module}"
        return getattr(importlib.import_module(path), name)

    return attribute
