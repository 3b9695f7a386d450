"""A sheet's cells column by column, in the cell-value contract, without a Python loop per cell.

`costloop.engine.workbook.cells.grid` turns a host's rows into the engine's cell values
one cell at a time; for a Usage sheet of a million rows that loop, and then
building a frame from a list of rows, cost more than reading the file. Here
the host rows become one 2-D object array, and each column is brought into
the contract with a few whole-column operations:

- a column of numbers (and blanks) gets its whole numbers as int and the rest
  as float in one vectorised pass;
- a column of text gets ``""`` as None, and equal texts share one string
  object (a Usage sheet repeats a few thousand names a million times);
- any other column (dates, booleans, a mix) goes through `cells.cell_value`
  once per distinct value, or per cell when the column mixes kinds.

The values are exactly those `cells.grid` gives, column for column (the tests
hold the two to that).

`arrow_columns` does the same from an Arrow table (fastexcel's read of a big
sheet): a column of text is dictionary-encoded by Arrow, so a million cells
cost one Python string per distinct name.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.api.types import infer_dtype

from costloop.engine.workbook.cells import EXACT_LIMIT, cell_value

_NUMBERS = {"floating", "integer", "mixed-integer-float"}


def _numbers(column: np.ndarray) -> np.ndarray:
    floats = column.astype(np.float64)  # None becomes NaN
    out = floats.astype(object)
    blank = np.isnan(floats)
    whole = ~blank & (floats == np.trunc(floats)) & (np.abs(floats) < EXACT_LIMIT)
    out[whole] = floats[whole].astype(np.int64).astype(object)
    out[blank] = None
    return out


def _texts(column: np.ndarray) -> np.ndarray:
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    shared = np.empty(len(uniques) + 1, dtype=object)
    shared[: len(uniques)] = [None if u == "" else u for u in uniques]
    shared[-1] = None
    return shared[codes]


def _by_value(column: np.ndarray) -> np.ndarray:
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    mapped = np.empty(len(uniques) + 1, dtype=object)
    mapped[: len(uniques)] = [cell_value(u) for u in uniques]
    mapped[-1] = None
    return mapped[codes]


def contract_column(column: np.ndarray) -> np.ndarray:
    """One column of host cells (object array) as the engine's cell values."""
    kind = infer_dtype(column, skipna=True)
    if kind in _NUMBERS:
        return _numbers(column)
    if kind == "string":
        return _texts(column)
    if kind in ("datetime", "date", "time"):
        return _by_value(column)
    # Mixed kinds (True, 1 and 1.0 hash alike, so no de-duplicating), booleans, empty.
    out = np.empty(len(column), dtype=object)
    out[:] = [None if v is None else cell_value(v) for v in column]
    return out


def rows_to_columns(rows: list[list[object]], pad_left: int = 0) -> list[np.ndarray] | None:
    """Host rows (as calamine's ``to_python`` gives them) as contract columns, A first.

    None when the rows are ragged (callers then use the row-wise path).
    """
    if not rows:
        return []
    width = len(rows[0])
    if any(len(r) != width for r in rows):
        return None
    table = np.empty((len(rows), width), dtype=object)
    table[:] = rows
    blank = np.full(len(rows), None, dtype=object)
    return [blank.copy() for _ in range(pad_left)] + [
        contract_column(table[:, j]) for j in range(width)
    ]


def arrow_columns(table, header: list[object]) -> list[np.ndarray] | None:
    """An Arrow table's columns (the rows below ``header``) as contract columns, header first.

    None when a column cannot be brought over exactly: a column of numbers, dates or
    booleans with an empty cell in it (fastexcel reads text such as "n/a" in a number
    column as empty, so an empty cell there is not known to be blank), or a kind of
    value this path does not take (a time of day, a fraction of a second).
    """
    width = max(table.num_columns, len(header))
    header = [*header, *([None] * (width - len(header)))]
    columns = []
    for j in range(width):
        if j < table.num_columns:
            values = _arrow_column(table.column(j))
        else:
            values = np.full(table.num_rows, None, dtype=object)
        if values is None:
            return None
        out = np.empty(len(values) + 1, dtype=object)
        out[0] = header[j]
        out[1:] = values
        columns.append(out)
    return columns


def _arrow_column(column) -> np.ndarray | None:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    kind = column.type
    if pa.types.is_null(kind):
        return np.full(len(column), None, dtype=object)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        encoded = pc.dictionary_encode(column)
        names = encoded.dictionary.to_pylist()
        shared = np.empty(len(names) + 1, dtype=object)
        shared[: len(names)] = [name or None for name in names]  # "" reads as None
        codes = pc.fill_null(encoded.indices, len(names)).to_numpy()
        return shared[codes]
    if column.null_count:
        return None
    if pa.types.is_floating(kind) or pa.types.is_integer(kind):
        floats = column.to_numpy().astype(np.float64, copy=False)
        return None if np.isnan(floats).any() else _numbers(floats)
    if pa.types.is_boolean(kind):
        return column.to_numpy(zero_copy_only=False).astype(object)
    if pa.types.is_timestamp(kind) and kind.tz is None:
        ticks = column.cast(pa.timestamp("us")).to_numpy().astype(np.int64)
        if (ticks % 1_000_000).any():
            return None  # fractions of a second: the general reader rounds them its own way
        codes, uniques = pd.factorize(ticks)
        epoch = dt.datetime(1970, 1, 1)
        mapped = np.array(
            [cell_value(epoch + dt.timedelta(microseconds=int(u))) for u in uniques] + [None],
            dtype=object,
        )
        return mapped[codes]
    return None
