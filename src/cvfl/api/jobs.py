"""Jobs built in Python: the same :class:`~cvfl.train.config.JobConfig` a job file gives.

:func:`build_job` takes a mapping shaped like the job file's TOML and validates it with the
file's own loader; two values may be Python objects instead of strings:

- ``model.follower_factory`` / ``model.leader_factory``: a module-level function (or an
  ``nn.Module`` class) taking ``(spec, num_features)``; it is recorded as its importable
  ``"package.module:name"``, so the config and the export stay plain data.
- ``data.path``: a ``pyarrow.Table`` or pandas ``DataFrame``, written to a private file in the
  job's workdir (:mod:`cvfl.api.tables`).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Union

from cvfl.api.tables import table_file
from cvfl.errors import ConfigError, mismatch
from cvfl.logs import get_logger
from cvfl.train.config import JobConfig, job_from_mapping, load_job

log = get_logger(__name__)

JobLike = Union[JobConfig, str, "os.PathLike[str]"]
"""A loaded job, or the path of a job file."""

FACTORY_KEYS = ("follower_factory", "leader_factory")


def as_job(job: JobLike) -> JobConfig:
    """``job`` itself, or the job file at that path loaded and validated.

    Raises:
        ConfigError: the file is missing or invalid.
        TypeError: neither a JobConfig nor a path.
    """
    if isinstance(job, JobConfig):
        return job
    if isinstance(job, str | os.PathLike):
        return load_job(Path(job))
    raise TypeError(f"job: expected a JobConfig or a job file's path, seen {type(job).__name__}")


def factory_path(factory: Callable[..., Any] | str) -> str:
    """The ``"package.module:name"`` of a model factory, checked to import back to it.

    Raises:
        ConfigError: a lambda, a nested function or a method (not importable by name), or a
            name that imports to another object (``config.model``).
    """
    if isinstance(factory, str):
        return factory
    from cvfl.models.factory import load_factory

    module = getattr(factory, "__module__", None)
    name = getattr(factory, "__qualname__", None)
    expected = "a module-level function or class, importable as 'package.module:name'"
    if not module or not name or "." in name or "<" in name:
        raise ConfigError(
            mismatch("model factory", expected, repr(factory)[:80]), code="config.model"
        )
    path = f"{module}:{name}"
    if load_factory(path) is not factory:
        raise ConfigError(
            mismatch(f"model factory {path}", expected, "another object"), code="config.model"
        )
    if module == "__main__":
        log.warning(
            "model factory %s lives in __main__: only this process can rebuild it "
            "(`cvfl predict` cannot load the export; move it into a module)",
            path,
        )
    return path


def build_job(mapping: Mapping[str, Any], folder: str | os.PathLike[str]) -> JobConfig:
    """A job from a mapping shaped like the job file (``{"job": {...}, "data": {...}, ...}``).

    Relative paths resolve against ``folder``, as a job file's resolve against its own folder
    (the job's ``source`` is ``<folder>/<role>.toml``; nothing is written there).

    Raises:
        ConfigError: what loading the same job file would raise, or a factory that cannot be
            named by its import path.
    """
    raw = plain_mapping(mapping, folder)
    return job_from_mapping(raw, Path(folder) / f"{raw['job']['role']}.toml")


def save_job(mapping: Mapping[str, Any], path: str | os.PathLike[str]) -> JobConfig:
    """Write a job built in Python as the job file ``path`` and return it loaded from there.

    The file is what ``cvfl train --config`` and the other commands read: factories appear as
    their import paths, in-memory tables as the private files they were written to, and
    relative paths stay relative to the file's folder.

    Raises:
        ConfigError: as :func:`build_job`, or a value TOML cannot hold (``config.value``).
    """
    from cvfl.api.tomlout import dumps
    from cvfl.fsutil import atomic_write_bytes

    target = Path(path)
    raw = plain_mapping(mapping, target.parent)
    job_from_mapping(raw, target)  # refused before anything is written
    atomic_write_bytes(target, dumps(raw).encode("utf-8"))
    return load_job(target)


def plain_mapping(mapping: Mapping[str, Any], folder: str | os.PathLike[str]) -> dict[str, Any]:
    """``mapping`` with factories as import paths and in-memory tables as private files."""
    raw: dict[str, Any] = {
        k: copy.copy(dict(v)) if isinstance(v, Mapping) else v for k, v in mapping.items()
    }
    job = raw.get("job")
    if not isinstance(job, dict) or job.get("role") not in ("leader", "follower"):
        seen = job.get("role") if isinstance(job, dict) else None
        raise ConfigError(
            mismatch("[job] role", "leader or follower", repr(seen)), code="config.role"
        )
    model = raw.get("model")
    if isinstance(model, dict):
        for key in FACTORY_KEYS:
            if key in model and callable(model[key]):
                model[key] = factory_path(model[key])
    data = raw.get("data")
    if isinstance(data, dict) and "path" in data:
        workdir = Path(folder) / Path(str(job.get("workdir", "cvfl-out")))
        data["path"] = str(table_file(data["path"], workdir, job["role"], "[data] path"))
    return raw
