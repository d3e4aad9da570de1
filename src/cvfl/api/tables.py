"""In-memory tables as job inputs: written to a private file in the job's workdir.

A job reads its tables from files (that is what its checks, sealing and reruns expect), so a
``pyarrow.Table`` (or a pandas ``DataFrame``, converted with ``pyarrow.Table.from_pandas`` when
pandas is installed) is written as Parquet to ``<workdir>/tables/<name>.parquet``: the folder
is made readable by this user only (0700) and the file is written atomically with mode 0600.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Union

import pyarrow as pa

from cvfl.errors import ConfigError, mismatch

TableLike = Union[str, "os.PathLike[str]", pa.Table, Any]
"""A path, a ``pyarrow.Table`` or a pandas ``DataFrame``."""

PRIVATE_DIR = "tables"


def is_path(value: object) -> bool:
    """Whether ``value`` names a file rather than holding a table."""
    return isinstance(value, str | os.PathLike)


def to_arrow(value: object, what: str) -> pa.Table:
    """``value`` as a ``pyarrow.Table`` (a pandas ``DataFrame`` is converted, its index dropped).

    Raises:
        ConfigError: neither a pyarrow Table nor a pandas DataFrame (``config.data``).
    """
    if isinstance(value, pa.Table):
        return value
    if type(value).__module__.startswith("pandas") and type(value).__name__ == "DataFrame":
        return pa.Table.from_pandas(value, preserve_index=False)
    raise ConfigError(
        mismatch(what, "a path, a pyarrow.Table or a pandas.DataFrame", type(value).__name__),
        code="config.data",
    )


def private_folder(workdir: Path) -> Path:
    """``<workdir>/tables``, made (0700) if needed; refused if others may read it."""
    folder = workdir / PRIVATE_DIR
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = folder.stat().st_mode & 0o077
    if mode:
        raise ConfigError(
            mismatch(f"{folder}: permissions", "no access for group or others (0700)", oct(mode)),
            code="config.data",
        )
    return folder


def table_file(value: TableLike, workdir: Path, name: str, what: str) -> Path:
    """The file a job reads for ``value``: the path itself, or a private copy of the table.

    Raises:
        ConfigError: ``value`` is neither a path nor a table.
    """
    if is_path(value):
        return Path(value)
    from cvfl.data.tables import write_arrow

    table = to_arrow(value, what)
    path = private_folder(workdir) / f"{name}.parquet"
    write_arrow(table, path)  # atomic, mode 0600
    return path
