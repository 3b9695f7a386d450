"""The workbook's names as the static checks see them (no pandas beyond here)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import Decimal

import numpy as np
import pandas as pd

from costloop.engine.model.book import Book
from costloop.engine.model.values import cell_number, is_blank
from costloop.engine.read.cell_checks import RECALC_HINT
from costloop.engine.workbook.host import ExcelError
from costloop.engine.xlsx.sheet_xml import Uncalculated
from costloop.rules.ast import name_key
from costloop.rules.checks import Names, value_key

# Columns with a fixed meaning in Departments: not drivers even if numeric.
_DEPARTMENT_FIXED = {"department", "fund", "name", "email", "parent", "billable", "portal group"}


def names_from_book(book: Book) -> Names:
    """Pools, departments, metrics and columns the rules may name."""
    dept_columns = {
        key: header for key, (header, _letter) in book.columns.get("Departments", {}).items()
    }
    numeric: set[str] = set()
    stray: dict[str, tuple[tuple[str, str], ...]] = {}
    for key in dept_columns:
        column = _frame_column(book.departments, key)
        if key in _DEPARTMENT_FIXED or column is None:
            continue
        numbers, not_numbers = _driver_cells(book, column)
        if not not_numbers:
            numeric.add(key)
        elif numbers:
            stray[key] = tuple(not_numbers)
    usage_columns = {
        key: header for key, (header, _letter) in book.columns.get("Usage", {}).items()
    }

    def with_seen(kind: str, known: dict[str, str]) -> dict[str, str]:
        # Names only rows left out for a problem carry still exist: no second, false error.
        return known | {k: v for k, v in book.names_seen.get(kind, {}).items() if k not in known}

    return Names(
        pools=with_seen("pools", book.pools),
        departments=with_seen("departments", book.department_names),
        metrics=with_seen("metrics", book.metrics),
        department_columns=dept_columns,
        numeric_department_columns=frozenset(numeric),
        usage_columns=usage_columns,
        column_values=_ColumnValues(book),
        cells_not_numbers=stray,
        uncertain=book.unreadable_names,
    )


def _frame_column(frame: pd.DataFrame, key: str) -> str | None:
    """The frame's column whose header has this name key (helper columns excluded)."""
    for column in frame.columns:
        if isinstance(column, str) and not column.startswith("_") and name_key(column) == key:
            return column
    return None


def _driver_cells(book: Book, column: str) -> tuple[int, list[tuple[str, str]]]:
    """How many cells of a Departments column are numbers (or numeric text, as amounts may
    be), and the cell and shown value of each filled one that is not."""
    values = book.departments[column]
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return int(values.notna().sum()), []
    numbers, stray = 0, []
    for value, row in zip(values, book.departments["_row"], strict=True):
        if is_blank(value):
            continue
        if cell_number(value) is None:
            shown = _shown_driver_value(value)
            stray.append((book.cell("Departments", column, int(row)), shown))
        else:
            numbers += 1
    return numbers, stray


def _shown_driver_value(value: object) -> str:
    """A driver cell that is not a number, as the message shows it."""
    if isinstance(value, Uncalculated):
        # Its own fix, not "type the number": the formula is right, only its value is missing.
        return f"a formula with no calculated value ({RECALC_HINT})"
    if isinstance(value, ExcelError):
        return f"the Excel error {value}"
    return f'"{value}"' if isinstance(value, str) else str(value)


class _ColumnValues(Mapping):
    """(sheet, column key) -> value key -> spelling, worked out only for columns a WHERE
    names (Usage's Reference column can hold a distinct value on every row)."""

    def __init__(self, book: Book):
        self._frames = {"Departments": book.departments, "Usage": book.usage}
        self._columns = {
            (sheet, key): column
            for sheet, frame in self._frames.items()
            for key in book.columns.get(sheet, {})
            if (column := _frame_column(frame, key)) is not None
        }
        self._cache: dict[tuple[str, str], dict[str, str]] = {}

    def __contains__(self, item: object) -> bool:
        return item in self._columns

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._columns)

    def __len__(self) -> int:
        return len(self._columns)

    def __getitem__(self, item: tuple[str, str]) -> dict[str, str]:
        if item not in self._cache:
            column = self._columns[item]
            frame = self._frames[item[0]]
            self._cache[item] = _values(frame[column].to_numpy(dtype=object))
        return self._cache[item]


def _values(cells: np.ndarray) -> dict[str, str]:
    """Value key -> spelling of each distinct filled cell, matched as WHERE matches them."""
    out: dict[str, str] = {}
    for value in pd.unique(cells):
        if is_blank(value):
            continue
        text = str(value).strip() if not isinstance(value, float) else repr(value)
        out.setdefault(value_key(text), text)
        number = None if isinstance(value, bool | np.bool_) else cell_number(value)
        if number is not None:
            # WHERE Tier = 3 matches a cell 3, 3.0 or "3.00": numbers compare by value.
            out.setdefault(value_key(Decimal(number)), text)
    return out
