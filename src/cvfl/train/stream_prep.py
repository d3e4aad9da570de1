"""``[data.columns]`` preprocessing fitted on a streamed table, one column at a time.

The streamed reader never holds the whole table, so the preprocessing is fitted column by
column: each used column is read whole (one column of the table, not its width), checked over
every row as the in-memory reader checks it, and fitted on the training rows (those the id
pass did not hold out) by the same code (:func:`cvfl.data.prep.fit`). The state is therefore the
one the in-memory fit would give on the same training rows. Training then reads rows through
the fitted state (:meth:`cvfl.train.stream_source.ParquetSource.read`).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from cvfl.data.check import check_columns, resolve_kinds
from cvfl.data.columns import ColumnsSpec
from cvfl.data.prep import CategoricalState, NumericState, Preprocessing, fit
from cvfl.errors import DataError
from cvfl.logs import get_logger
from cvfl.train.stream_source import ParquetSource

log = get_logger(__name__)


def fit_streamed(source: ParquetSource, spec: ColumnsSpec, holdout: np.ndarray) -> Preprocessing:
    """Fit ``spec`` on the rows of ``source`` that ``holdout`` does not flag.

    Raises:
        DataError: a declared column missing, a column of the wrong type (naming the file,
            the column and the first bad row), or no training rows.
    """
    schema = source.schema
    exclude = [schema.id_column] + ([schema.label_column] if schema.label_column else [])
    kinds = resolve_kinds(source.arrow_schema.empty_table(), source.path, spec, exclude)
    train = pa.array(np.flatnonzero(~holdout), type=pa.int64())
    if len(train) == 0:
        raise DataError(f"{source.path}: every row is held out", code="data.empty")
    numeric: list[NumericState] = []
    categorical: list[CategoricalState] = []
    for name, kind in kinds:
        column = source.column(name)
        check_columns(column, source.path, [(name, kind)])
        state = fit(column.take(train), [(name, kind)], spec)
        numeric += state.numeric
        categorical += state.categorical
    log.info("fitted [data.columns] on %s training rows, column by column", len(train))
    return Preprocessing(tuple(numeric), tuple(categorical), spec.embed_dim)
