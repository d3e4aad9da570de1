"""The tables a party reads: its own input, and the aligned table ``cvfl align`` wrote.

The two are treated differently on purpose. The user's own table (``[data] path``, a
``[predict] input`` scored without alignment) is the user's to supply: plaintext, or sealed
with the party's key. The aligned table is an *artifact*: it is read only in the form the job's
configuration says (sealed with ``[sealing]``, plaintext only with
``[job] plaintext_outputs = true``), so a plaintext file planted in place of the sealed one is
refused rather than trained on or scored.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from cvfl.data.tables import PartyTable, TableSchema, load_arrow, table_format, validate
from cvfl.errors import SealingError
from cvfl.sealing import KeyProvider, is_sealed
from cvfl.sealing.artifacts import require_form


def read_input_table(path: Path, schema: TableSchema, keys: KeyProvider | None) -> PartyTable:
    """Read the user's own table: plaintext, or sealed (purpose ``aligned-table``) with ``keys``.

    Raises:
        DataError: unreadable or invalid table.
        SealingError: a sealed table and no key, or a sealed table that fails to open.
    """
    return validate(input_arrow(path, schema.id_column, keys), path, schema)


def input_arrow(path: Path, id_column: str, keys: KeyProvider | None) -> pa.Table:
    """The user's own table as Arrow, unchecked (see :func:`read_input_table`)."""
    if not is_sealed(path):
        return load_arrow(path)
    if keys is None:
        raise SealingError(f"{path}: the table is sealed; add [sealing]", code="sealing.no_key")
    return _sealed_arrow(path, id_column, keys)


def read_aligned_table(
    path: Path, schema: TableSchema, keys: KeyProvider | None, *, sealed: bool
) -> PartyTable:
    """Read an aligned table, only in the form the job's configuration gives (``sealed``).

    Raises:
        SealingError: the file is plaintext where the job seals its outputs
            (``sealing.unexpected_plaintext``, naming the file), sealed in a plaintext job, or
            a sealed file that fails to open.
        DataError: the table is invalid.
    """
    return validate(aligned_arrow(path, schema.id_column, keys, sealed=sealed), path, schema)


def aligned_arrow(
    path: Path, id_column: str, keys: KeyProvider | None, *, sealed: bool
) -> pa.Table:
    """An aligned table as Arrow, unchecked (see :func:`read_aligned_table`)."""
    require_form(path, sealed=sealed)
    if not sealed:
        return load_arrow(path)
    if keys is None:
        raise SealingError(f"{path}: the table is sealed; add [sealing]", code="sealing.no_key")
    return _sealed_arrow(path, id_column, keys)


def _sealed_arrow(path: Path, id_column: str, keys: KeyProvider) -> pa.Table:
    from cvfl.psi import read_aligned

    # read_sealed checks the magic and authenticates every chunk: a file swapped for a
    # plaintext one after the check above fails here.
    return read_aligned(path, keys, table_format(path), id_column=id_column)
