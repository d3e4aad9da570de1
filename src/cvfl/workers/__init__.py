"""A party's data-parallel worker group: attested enrolment, sealed gloo traffic (docs/workers.md).

Public API: :class:`WorkerContext` and :func:`context_from_env` (no PyTorch import), and
:func:`join_group` returning a :class:`SecureGroup`. Names are loaded on first use, so reading
the context does not import PyTorch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cvfl.workers.context import WorkerContext, context_from_env
    from cvfl.workers.group import SecureGroup, join_group

_EXPORTS = {
    "WorkerContext": "cvfl.workers.context",
    "context_from_env": "cvfl.workers.context",
    "SecureGroup": "cvfl.workers.group",
    "join_group": "cvfl.workers.group",
}
__all__ = ["SecureGroup", "WorkerContext", "context_from_env", "join_group"]


def __getattr__(name: str) -> Any:
    """Import the module that defines ``name`` on first use."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cvfl.workers' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
