"""Turn result frames into engine-owned sheets (`OutputSheet`), with formats.

Money stays Decimal all the way into the cell; a missing value (None, NaN,
pd.NA) becomes an empty cell rather than the text "nan".
"""

from __future__ import annotations

import math
from decimal import Decimal

import pandas as pd

from costloop.engine.workbook import OutputSheet


def money_format(minor_unit: int) -> str:
    """Excel number format showing the currency's minor unit: ``#,##0.00`` for USD."""
    return "#,##0" + ("." + "0" * minor_unit if minor_unit > 0 else "")


QUANTITY_FORMAT = "#,##0.####"
RATE_FORMAT = "#,##0.00####"
PERCENT_FORMAT = "0.0%"


def _cell(value: object) -> object:
    kind = type(value)
    if kind is str or kind is int:
        return value
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if kind is float:
        return None if math.isnan(value) else value
    if kind is Decimal:
        return None if value.is_nan() else value
    if hasattr(value, "item") and not isinstance(value, (str, bytes, Decimal)):
        return value.item()  # numpy scalar -> Python scalar
    return value


def frame_to_sheet(
    name: str, frame: pd.DataFrame, columns: list[str], formats: dict[str, str] | None = None
) -> OutputSheet:
    """An owned sheet with exactly ``columns`` (the contract's order) from ``frame``."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name}: result has no column(s) {missing}")
    # Column by column: tolist() hands back Python scalars far faster than itertuples.
    values = [[_cell(v) for v in frame[c].tolist()] for c in columns]
    rows = list(zip(*values, strict=True))
    return OutputSheet(name=name, columns=list(columns), rows=rows, formats=dict(formats or {}))
