"""The cell-value contract every workbook implementation keeps.

Hosts hand back cells in their own shapes: calamine reads a whole number as
``6400.0`` and an empty string as ``""``; Excel over COM gives every number as
a float, a time of day as a datetime on 30 December 1899 and, with xlwings'
``err_to_str``, an error as the text ``#REF!``. The engine sees one shape,
whatever the host:

- an empty cell, and a cell holding an empty string, read as None;
- a whole number reads as int (account ``6400`` stays ``6400``, never
  ``6400.0``); other numbers as float; bool stays bool;
- a date reads as ``datetime.date``, a date with a time of day as
  ``datetime.datetime``, a time of day alone as ``datetime.time``;
- an error value reads as `ExcelError` (``#REF!``, ``#DIV/0!``, ...);
- text is str.

The other direction, `stored_value`, says what a cell holds after costloop
writes a value into it, so an in-memory or live workbook reads back exactly
what a file written and re-read would.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import numbers
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

CellValue = Any
"""None, str, int, float, bool, datetime.date/datetime/time, or an `ExcelError`."""

MAX_CELL_CHARS = 32_767
"""Excel cannot open a cell holding more characters than this."""

ERROR_CODES = frozenset(
    (
        "#NULL!",
        "#DIV/0!",
        "#VALUE!",
        "#REF!",
        "#NAME?",
        "#NUM!",
        "#N/A",
        "#GETTING_DATA",
        "#SPILL!",
        "#CALC!",
        "#FIELD!",
        "#BLOCKED!",
        "#CONNECT!",
        "#BUSY!",
        "#UNKNOWN!",
        "#DATA!",
    )
)
"""Excel's error values (the dynamic-array ones included)."""


def column_letter(index: int) -> str:
    """A 0-based column index as Excel's letters: 0 -> ``A``, 25 -> ``Z``, 26 -> ``AA``."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


@functools.lru_cache(maxsize=16384)
def column_index(letters: str) -> int:
    """Excel's column letters (any case) as a 0-based index: ``A`` -> 0, ``AA`` -> 26.

    Cached: a sheet's parser asks it for every cell reference, of a few columns.
    """
    index = 0
    for ch in letters.upper():
        index = index * 26 + ord(ch) - 64
    return index - 1


EXACT_LIMIT = 2.0**53
"""Beyond this a float is not a whole number Excel could have stored exactly."""

_DAY_ZERO = (dt.date(1899, 12, 30), dt.date(1899, 12, 31), dt.date(1904, 1, 1))
"""Where hosts put a time of day that has no date (serial 0 in each date system)."""


@dataclass(frozen=True)
class ExcelError:
    """An Excel error value in a cell, such as ``#REF!`` or ``#DIV/0!``."""

    code: str

    def __str__(self) -> str:
        return self.code


def cell_value(value: object, errors_as_text: bool = False) -> CellValue:
    """One host value in the engine's shape (see the module docstring).

    ``errors_as_text``: the host reports error values as their text (xlwings'
    ``err_to_str``), so ``"#REF!"`` is an error, not a string.
    """
    kind = type(value)
    if kind is str:
        if not value:
            return None
        if errors_as_text and value in ERROR_CODES:
            return ExcelError(value)
        return value
    if kind is float:
        return int(value) if value.is_integer() and -EXACT_LIMIT < value < EXACT_LIMIT else value
    if value is None or kind is int or kind is bool or kind is ExcelError:
        return value
    return _other_value(value)


def _other_value(value: object) -> CellValue:
    # The rarer kinds, kept out of cell_value's fast path.
    if isinstance(value, dt.datetime):
        value = value.replace(tzinfo=None)
        if value.date() in _DAY_ZERO and value.time() != dt.time():
            return value.time()  # a time of day with no date
        return value.date() if value.time() == dt.time() else value
    if isinstance(value, dt.date | dt.time):
        return value
    if isinstance(value, bool):  # numpy.bool_ is not a bool, but says so through .item()
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, Decimal):
        return cell_value(float(value)) if value.is_finite() else None
    if isinstance(value, numbers.Real):
        number = float(value)
        return None if math.isnan(number) else cell_value(number)
    if hasattr(value, "to_pydatetime"):  # pandas.Timestamp
        return cell_value(value.to_pydatetime())
    if hasattr(value, "item"):  # numpy scalars
        return cell_value(value.item())
    if isinstance(value, str):  # a str subclass
        return cell_value(str(value))
    return value


def grid(rows: list, errors_as_text: bool = False, pad_left: int = 0, pad_top: int = 0) -> list:
    """A rectangular grid from A1 of host rows: every cell through `cell_value`.

    ``pad_left``/``pad_top`` say how many empty columns/rows the host left out
    before its first row and cell (a used range that starts below or right of A1).
    """
    lead = [None] * pad_left
    if errors_as_text:
        out = [lead + [cell_value(v, True) for v in row] for row in rows]
    else:
        # Inline, not a call per cell: this loop runs once for every cell of Usage.
        out = [
            lead
            + [
                None
                if v is None or v == ""
                else int(v)
                if type(v) is float and v.is_integer() and -EXACT_LIMIT < v < EXACT_LIMIT
                else v
                if type(v) in _PLAIN
                else cell_value(v)
                for v in row
            ]
            for row in rows
        ]
    if out and pad_top:
        out[:0] = [[] for _ in range(pad_top)]
    width = max((len(r) for r in out), default=0)
    for cells in out:
        if len(cells) < width:
            cells.extend([None] * (width - len(cells)))
    return out


_PLAIN = frozenset((str, int, float, bool, dt.date, dt.time))
"""Types `grid` passes on as they are (after the empty and whole-number checks)."""


def stored_value(value: object) -> CellValue:
    """What a cell holds, read back, after costloop writes ``value`` into it.

    Decimal, int and float are numbers (a whole one reads back as int, unless
    it is past what a double holds exactly: Excel keeps the double); NaN, None
    and "" leave the cell empty; infinity is ``#NUM!``; text longer than
    Excel's limit is cut; dates and times as in `cell_value`.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral) and not -EXACT_LIMIT < value < EXACT_LIMIT:
        return float(value)
    if isinstance(value, Decimal):
        if value.is_nan():
            return None
        if value.is_infinite():
            return ExcelError("#NUM!")
        return cell_value(float(value))
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        number = float(value)
        if math.isnan(number):
            return None
        if math.isinf(number):
            return ExcelError("#NUM!")
    if isinstance(value, str) and len(value) > MAX_CELL_CHARS:
        return value[: MAX_CELL_CHARS - 1] + "…"
    if isinstance(value, dt.date) and value.year < 1900:
        return value.isoformat()  # before Excel's calendar: kept readable as text
    return cell_value(value)
