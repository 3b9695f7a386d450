"""A column of cells as read, judged once per distinct value: blank, an Excel error, a
formula with no calculated value, and any function of a cell (Usage repeats few values).

Every input sheet's validation (`grid`, `columns`, `settings`) asks these, so a
million-row Usage column takes a few vectorised passes, not a million calls.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from pandas.api.types import infer_dtype

from costloop.engine.model.values import cell_text, is_blank
from costloop.engine.workbook.host import ExcelError
from costloop.engine.xlsx.sheet_xml import Uncalculated
from costloop.problems import Problem, Reason, Severity

NUMERIC_KINDS = {"floating", "integer", "mixed-integer-float", "empty"}


def compact(key: str) -> str:
    return key.replace(" ", "").replace("_", "")


def map_unique(values: np.ndarray, fn: Callable[[object], object]) -> np.ndarray:
    """``fn`` applied to each value, computed once per distinct value (Usage has few)."""
    kind = infer_dtype(values, skipna=True)
    if kind in ("string", "empty", "floating", "datetime", "date", "mixed-integer-float"):
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        mapped = np.empty(len(uniques) + 1, dtype=object)
        if fn is cell_text and kind == "string":
            # A column of mostly distinct text (a Reference per usage row): str.strip is
            # what cell_text does to a str, without a call and type tests per value.
            mapped[:-1] = [unique.strip() for unique in uniques]
        else:
            for i, unique in enumerate(uniques):
                mapped[i] = fn(unique)
        mapped[-1] = fn(None) if (codes < 0).any() else None
        return mapped[codes]
    # Mixed cells: True == 1 == 1.0 in a hash table, so key on the type too.
    cache: dict[tuple[type, object], object] = {}
    out = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        key = (type(value), value)
        if key not in cache:
            cache[key] = fn(value)
        out[i] = cache[key]
    return out


def blank_mask(values: np.ndarray) -> np.ndarray:
    """None, NaN or whitespace-only text; judged once per distinct value."""
    kind = infer_dtype(values, skipna=True)
    if kind in NUMERIC_KINDS or kind in ("boolean", "datetime", "date"):
        return pd.isna(values)
    # Hashing lumps True with 1 together, harmless here: only text can be blank.
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    if kind == "string":  # every distinct value a str (None and NaN are code -1)
        blank = np.fromiter((not u.strip() for u in uniques), dtype=bool, count=len(uniques))
    else:
        blank = np.fromiter((is_blank(u) for u in uniques), dtype=bool, count=len(uniques))
    return np.append(blank, True)[codes]


def error_mask(values: np.ndarray) -> np.ndarray:
    """Cells holding an Excel error or a formula with no calculated value."""
    inferred = infer_dtype(values, skipna=True)
    if inferred in NUMERIC_KINDS or inferred in ("string", "boolean", "datetime", "date"):
        return np.zeros(len(values), dtype=bool)
    return np.fromiter(
        (isinstance(v, ExcelError | Uncalculated) for v in values), dtype=bool, count=len(values)
    )


RECALC_HINT = "open and save the workbook in Excel, or run `costloop recalc`"


UNCALCULATED_MESSAGE = f"formula with no calculated value: {RECALC_HINT}"


def is_unreadable(value: object) -> bool:
    """An Excel error or a formula with no calculated value: the cell has no usable value."""
    return isinstance(value, ExcelError | Uncalculated)


def unreadable_problem(where: str, value: object, severity: Severity) -> Problem:
    if isinstance(value, Uncalculated):
        return Problem(Reason.UNCALCULATED, severity, where, UNCALCULATED_MESSAGE)
    return Problem(
        Reason.EXCEL_ERROR,
        severity,
        where,
        f"the cell shows the Excel error {value}; fix the formula or type a value",
    )
