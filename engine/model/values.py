"""Cell values as the engine reads them: text, blanks, numbers, yes/no.

One rule for each question a cell is asked, wherever it is asked (Departments,
Usage, drivers, Settings), so two sheets never disagree about the same cell.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time
from decimal import Decimal

import numpy as np

_NUMBER_TEXT = re.compile(r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|[+-]?\.\d+")
_YES = {"y", "yes", "true", "1"}
_NO = {"n", "no", "false", "0"}


def _text(value: object) -> str:
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
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip()


def _shown(value: object) -> str:
    """How a bad value is quoted in a message: ``"n/a"``, ``-5``, ``a blank cell``."""
    if value is None or (isinstance(value, float) and value != value):
        return "a blank cell"
    if isinstance(value, str):
        return '"' + value + '"' if value.strip() else "a blank cell"
    if isinstance(value, datetime | date):
        return f"the date {_text(value)}"
    return _text(value)


def _is_blank(value: object) -> bool:
    return (
        value is None
        or (isinstance(value, str) and not value.strip())
        or (isinstance(value, float) and value != value)
    )


def _number_text(text: str) -> Decimal | None:
    """Plain numeric text (``1,234.50``, ``-3``) as an exact Decimal, else None."""
    text = text.strip()
    if not _NUMBER_TEXT.fullmatch(text):
        return None
    return Decimal(text.replace(",", ""))


def _exact(value: object) -> Decimal | None:
    """A number cell or numeric text as the exact decimal Excel shows (0.1 -> 0.1)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | np.integer):
        return Decimal(int(value))
    if isinstance(value, float | np.floating):
        number = float(value)
        return Decimal(repr(number)) if np.isfinite(number) else None
    if isinstance(value, str):
        return _number_text(value)
    return None


def cell_number(value: object) -> Decimal | None:
    """A number cell or plain numeric text (``1,234.50``) as the exact decimal shown, else None.

    The one rule for "is this a number" wherever a cell must be one: amounts,
    quantities, and driver columns such as Headcount.
    """
    return _exact(value)


def _yes_no(value: object) -> bool | None:
    """Y/N/Yes/No/TRUE/FALSE (or a TRUE/FALSE cell) -> bool; blank -> True; else None."""
    if _is_blank(value):
        return True
    if isinstance(value, bool):
        return value
    word = _text(value).casefold()
    return True if word in _YES else False if word in _NO else None
