"""A sheet's cells column by column, in the cell-value contract, without a Python loop per cell.

`costloop.engine.cells.grid` turns a host's rows into the engine's cell values
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
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pandas.api.types import infer_dtype

from costloop.engine.cells import EXACT_LIMIT, cell_value

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
