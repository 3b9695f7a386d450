"""The lazy validation of one sheet's columns: each column typed (names, periods,
numbers, money in integer minor units, exact rates, yes/no), every bad cell a problem
at its cell, the rows with a problem left out of the sheet's frame.

Like pandera's lazy validation: every problem in every column is collected, so a
finance user sees all of them at once, and later checks still run on the rest.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pandas as pd
from pandas.api.types import infer_dtype

from costloop.engine.model.money import to_minor_units
from costloop.engine.model.periods import parse_period
from costloop.engine.model.values import cell_number, cell_text, is_blank, shown, yes_no
from costloop.engine.read.cell_checks import (
    NUMERIC_KINDS,
    blank_mask,
    error_mask,
    map_unique,
    unreadable_problem,
)
from costloop.engine.read.grid import COLUMNS, InputSheet, rows_kept
from costloop.problems import Problem, Reason, Severity
from costloop.rules.ast import name_key

MAX_AMOUNT = 1e14
"""A hundred trillion in the currency: past any budget, well inside 64-bit minor units."""


def minor_units(value: object, places: int) -> int | None:
    """A number cell or numeric text -> integer minor units, half-up (0.125 -> 13 cents)."""
    number = cell_number(value)
    return None if number is None else to_minor_units(number, places)


def _cents_of_numbers(numbers: np.ndarray, originals: np.ndarray, places: int) -> np.ndarray:
    """Vectorised `minor_units` for number cells.

    Where the scaled float is clearly not near a half (more than 1e-3 away) and
    small enough that float error is far below that, the nearest integer is the
    exact half-up result; only the few others go through Decimal.
    """
    scaled = numbers * (10**places)
    fraction = np.abs(scaled - np.trunc(scaled))
    safe = (np.abs(scaled) < 1e12) & (np.abs(fraction - 0.5) > 1e-3)
    cents = np.zeros(len(numbers), dtype=np.int64)
    cents[safe] = np.rint(scaled[safe]).astype(np.int64)
    for i in np.flatnonzero(~safe):
        cents[i] = minor_units(originals[i], places)
    return cents


class CheckedColumns:
    """Typed conversion of one sheet's columns; bad cells become problems, their rows drop."""

    def __init__(self, sheet: InputSheet, problems: list[Problem]):
        self.sheet = sheet
        self.problems = problems
        self.bad = np.zeros(len(sheet), dtype=bool)
        self.errors: dict[str, np.ndarray] = {}
        required, optional = COLUMNS[sheet.logical]
        spec = {name_key(c) for c in (*required, *optional)}
        for key, values in sheet.cells.items():
            self.errors[key] = error_mask(values)
            # In an extra column it only matters if a rule names the column: a warning.
            severity = Severity.ERROR if key in spec else Severity.WARNING
            for i in np.flatnonzero(self.errors[key]):
                where = sheet.where(key, int(sheet.rows[i]))
                problems.append(unreadable_problem(where, values[i], severity))
            if key in spec:
                self.bad |= self.errors[key]

    def _report(
        self,
        mask: np.ndarray,
        key: str,
        message: Callable[[object], str],
        code: Reason = Reason.BAD_VALUE,
        severity: Severity = Severity.ERROR,
        drop: bool = True,
    ) -> None:
        values = self.sheet.cells[key]
        for i in np.flatnonzero(mask):
            where = self.sheet.where(key, int(self.sheet.rows[i]))
            self.problems.append(Problem(code, severity, where, message(values[i])))
        if drop:
            self.bad |= mask

    def raw(self, key: str) -> np.ndarray:
        if key in self.sheet.cells:
            return self.sheet.cells[key]
        return np.full(len(self.sheet), None, dtype=object)

    def _checkable(self, key: str) -> np.ndarray:
        """Cells not already reported as Excel errors."""
        return ~self.errors.get(key, np.zeros(len(self.sheet), dtype=bool))

    def text(self, key: str) -> np.ndarray:
        """Trimmed text ("" for blank) of an optional text column."""
        values = self.raw(key)
        texts = map_unique(values, cell_text)
        texts[~self._checkable(key)] = ""
        return texts

    def name(self, key: str, fix: str) -> np.ndarray:
        """A required name: trimmed text, blank is an error."""
        texts = self.text(key)
        if self.sheet.has(key):
            label = self.sheet.headers[key][0]
            self._report(
                (texts == "") & self._checkable(key), key, lambda _: f"{label} is blank; {fix}"
            )
        return texts

    def period(self, key: str, required: bool = True) -> np.ndarray:
        values = self.raw(key)
        periods = map_unique(values, parse_period)
        if self.sheet.has(key):
            wrong = pd.isna(periods) & self._checkable(key)
            if not required:
                wrong &= ~blank_mask(values)
            label = self.sheet.headers[key][0]
            self._report(
                wrong,
                key,
                lambda v: f"{label} must be a month as YYYY-MM text or a date, got {shown(v)}",
                Reason.BAD_PERIOD,
            )
        return periods

    def number(self, key: str, required: bool, non_negative: bool) -> np.ndarray:
        """float64 of a number column (numeric text accepted); NaN where blank or bad."""
        values = self.raw(key)
        numbers, wrong = self._floats(values)
        if not self.sheet.has(key):
            return numbers
        blank = blank_mask(values)
        wrong |= blank if required else np.zeros(len(values), dtype=bool)
        if non_negative:
            wrong |= numbers < 0
        wrong &= self._checkable(key)
        label = self.sheet.headers[key][0]
        kind = "a non-negative number" if non_negative else "a number"
        self._report(wrong, key, lambda v: f"{label} must be {kind}, got {shown(v)}{_hint(v)}")
        numbers[wrong] = np.nan
        return numbers

    def _floats(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Number cells as float64 and a mask of non-blank cells that are not numbers."""
        if infer_dtype(values, skipna=True) in NUMERIC_KINDS:
            return values.astype(np.float64), np.zeros(len(values), dtype=bool)
        numbers = np.full(len(values), np.nan)
        wrong = np.zeros(len(values), dtype=bool)
        for i, value in enumerate(values):
            if is_blank(value):
                continue
            exact = cell_number(value)
            if exact is None:
                wrong[i] = True
            else:
                numbers[i] = float(value) if not isinstance(value, str) else float(exact)
        return numbers, wrong

    def cents(self, key: str, places: int) -> np.ndarray:
        """Integer minor units of a required money column."""
        values = self.raw(key)
        numbers, wrong = self._floats(values)
        wrong |= blank_mask(values)
        wrong &= self._checkable(key)
        label = self.sheet.headers[key][0]
        self._report(wrong, key, lambda v: f"{label} must be a number, got {shown(v)}{_hint(v)}")
        # Cents are 64-bit integers inside the engine; no public budget comes near the limit.
        huge = ~wrong & (np.abs(np.nan_to_num(numbers)) >= MAX_AMOUNT)
        self._report(
            huge,
            key,
            lambda v: (
                f"{label} {shown(v)} is too large; amounts must be below "
                f"{MAX_AMOUNT:,.0f} — check for a pasted ID or a missing decimal point"
            ),
        )
        wrong |= huge
        ok = ~wrong & ~np.isnan(numbers)
        cents = np.zeros(len(values), dtype=np.int64)
        texts = np.array([isinstance(v, str) for v in values[ok]], dtype=bool)
        if texts.any():
            # Numeric text is exact already: round it from its Decimal, not a float.
            positions = np.flatnonzero(ok)
            for i in positions[texts]:
                cents[i] = minor_units(values[i], places)
            ok[positions[texts]] = False
        cents[ok] = _cents_of_numbers(numbers[ok], values[ok], places)
        return cents

    def decimal(self, key: str, non_negative: bool) -> np.ndarray:
        """Exact Decimals of a required number column (rates: never rounded)."""
        values = self.raw(key)
        out = np.empty(len(values), dtype=object)
        wrong = np.zeros(len(values), dtype=bool)
        for i, value in enumerate(values):
            exact = cell_number(value)
            out[i] = exact
            wrong[i] = exact is None or (non_negative and exact < 0)
        wrong &= self._checkable(key)
        label = self.sheet.headers[key][0]
        kind = "a non-negative number" if non_negative else "a number"
        self._report(wrong, key, lambda v: f"{label} must be {kind}, got {shown(v)}{_hint(v)}")
        return out

    def yes_no(self, key: str) -> np.ndarray:
        values = self.raw(key)
        flags = map_unique(values, yes_no)
        if self.sheet.has(key):
            label = self.sheet.headers[key][0]
            self._report(
                pd.isna(flags) & self._checkable(key),
                key,
                lambda v: f"{label} must be Y or N (or blank for Y), got {shown(v)}",
            )
        flags[pd.isna(flags)] = True
        return flags.astype(bool)

    def extra(self, key: str) -> np.ndarray:
        """An extra column: float64 if every filled cell is a number, else the cells as read."""
        values = self.raw(key)
        if infer_dtype(values, skipna=True) in NUMERIC_KINDS:
            return values.astype(np.float64)
        blank = blank_mask(values)
        out = values.copy()
        out[blank] = None
        strings = np.fromiter((isinstance(v, str) for v in out), dtype=bool, count=len(out))
        out[strings] = [v.strip() for v in out[strings]]
        return out


def _hint(value: object) -> str:
    """The fix for a number typed as text that costloop does not read."""
    if isinstance(value, str) and re.search(r"[$€£¥]|^\s*\(.*\)\s*$", value):
        return " (type the number without currency signs or brackets, e.g. -1234.50)"
    return ""


def frame_of(
    checked: CheckedColumns, columns: dict[str, np.ndarray], extras: bool = True
) -> pd.DataFrame:
    """The sheet's good rows: contract columns, then extra columns under their own headers."""
    keep = rows_kept(~checked.bad)
    data: dict[str, object] = {name: values[keep] for name, values in columns.items()}
    if extras:
        for key in checked.sheet.extras():
            header = checked.sheet.headers[key][0]
            if header in data or header.startswith("_"):
                continue  # an extra header that shadows a contract column: the contract one wins
            data[header] = checked.extra(key)[keep]
    data["_row"] = checked.sheet.rows[keep]
    # Text stays Python strings (object), as read: pandas' Arrow strings would convert a
    # million-row Usage sheet's names to Arrow here and back to Python in every use.
    # copy=False: the arrays are this call's own, and a million-row frame is not
    # copied into one block per type (a third of a second).
    return pd.DataFrame({name: _as_series(values) for name, values in data.items()}, copy=False)


def _as_series(values: np.ndarray) -> pd.Series | np.ndarray:
    if values.dtype == object and infer_dtype(values, skipna=True) == "string":
        return pd.Series(values, dtype=object, copy=False)
    return values
