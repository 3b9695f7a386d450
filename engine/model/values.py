"""Cell values as the engine reads them: text, blanks, numbers, yes/no, names.

One rule for each question a cell is asked, wherever it is asked (Departments,
Usage, drivers, Settings, Rates), so two sheets never disagree about the same
cell: `is_blank`, `cell_text`, `cell_number`, `yes_no`, and `first_spellings`
for the spelling a name is shown in. `shown` quotes a bad value in a message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime, time
from decimal import Decimal

import numpy as np
import pandas as pd

from costloop.rules.ast import name_key

_NUMBER_TEXT = re.compile(r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|[+-]?\.\d+")
# docs/contract.md#input-sheets: what a yes/no column (Billable, Enabled) accepts.
# T and F are TRUE and FALSE as a finance user abbreviates them, never a guess of yes.
YES_WORDS = frozenset(("y", "yes", "t", "true", "1"))
NO_WORDS = frozenset(("n", "no", "f", "false", "0"))


def is_blank(value: object) -> bool:
    """None, whitespace-only text, or a missing value that went through pandas (NaN, NA, NaT)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, float | np.floating):
        return value != value
    return isinstance(value, Decimal) and value.is_nan()


def cell_text(value: object) -> str:
    """A cell as trimmed text: 4400.0 -> ``4400`` (Excel stores codes typed as numbers)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        if value != value:  # NaN: a blank that went through pandas
            return ""
        return str(int(value)) if value.is_integer() else repr(value)
    if value is pd.NaT:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip()


def shown(value: object) -> str:
    """How a bad value is quoted in a message: ``"n/a"``, ``-5``, ``a blank cell``."""
    if value is None or (isinstance(value, float) and value != value):
        return "a blank cell"
    if isinstance(value, str):
        return '"' + value + '"' if value.strip() else "a blank cell"
    if isinstance(value, datetime | date):
        return f"the date {cell_text(value)}"
    return cell_text(value)


def number_text(text: str) -> Decimal | None:
    """Plain numeric text (``1,234.50``, ``-3``) as an exact Decimal, else None."""
    text = text.strip()
    if not _NUMBER_TEXT.fullmatch(text):
        return None
    return Decimal(text.replace(",", ""))


def cell_number(value: object) -> Decimal | None:
    """A number cell or plain numeric text (``1,234.50``) as the exact decimal shown, else None.

    The one rule for "is this a number" wherever a cell must be one: amounts,
    quantities, rates, and driver columns such as Headcount. A float is the
    decimal Excel shows (0.1 -> 0.1, not the binary fraction it holds); a
    TRUE/FALSE cell is not a number.
    """
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, int | np.integer):
        return Decimal(int(value))
    if isinstance(value, float | np.floating):
        number = float(value)
        return Decimal(repr(number)) if np.isfinite(number) else None
    if isinstance(value, str):
        return number_text(value)
    return None


def yes_no(value: object) -> bool | None:
    """A yes/no cell (Billable, Enabled) -> bool; blank -> True (yes); anything else -> None.

    Y/N, Yes/No, T/F, TRUE/FALSE and 1/0 in any case, as text, as a TRUE/FALSE
    cell or as the number 1 or 0. None means the cell is neither: the reader
    reports it at its cell rather than guess.
    """
    if is_blank(value):
        return True
    if isinstance(value, bool | np.bool_):
        return bool(value)
    word = cell_text(value).casefold()
    return True if word in YES_WORDS else False if word in NO_WORDS else None


def first_spellings(*columns: Iterable[object]) -> dict[str, str]:
    """Name key -> the name as first written (trimmed), over ``columns`` in order.

    Names match ignoring case and spacing (docs/contract.md): ``service desk``
    and ``Service Desk`` are one pool, shown as its first occurrence spells it.
    Blank cells are skipped; each distinct value is keyed once, so a million
    Usage rows of a dozen metrics cost one pass.
    """
    out: dict[str, str] = {}
    for column in columns:
        if isinstance(column, pd.Series | pd.Index | np.ndarray):
            values = np.asarray(column, dtype=object)
        else:
            items = list(column)
            values = np.empty(len(items), dtype=object)
            values[:] = items
        for value in pd.unique(values):
            if is_blank(value):
                continue
            text = cell_text(value)
            out.setdefault(name_key(text), text)
    return out
