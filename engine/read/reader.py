"""Reading a workbook into a validated, typed `Book` (docs/contract.md#workbook-contract).

``read_book(wb)`` reads every input sheet through the narrow `Workbook`
interface and returns ``(book, problems)``. Validation is lazy, like pandera:
every problem in every sheet is collected, so a finance user sees all of them
at once. Each message names the sheet, the cell and the fix.

Choices the contract leaves open (also in docs/workbook.md):

- Sheets are found by exact name, else case-insensitively (``usage`` is
  Usage). ``Actuals`` and ``Rates`` may be absent (empty frames).
- Headers match case-insensitively ignoring surrounding spaces (also
  non-breaking ones); a contract column also matches with inner spaces or
  underscores (``Effective From``, ``tier_to``). A blank header cell makes
  its column ignored.
- A period is text ``YYYY-MM`` (``YYYY-M`` tolerated) or a date cell.
- Amounts and quantities are number cells, or plain numeric text such as
  ``1,234.50`` (thousands commas allowed). Text with a currency sign or
  accounting brackets is refused: the message says to type the number.
- Amounts become exact integer minor units: the number as Excel shows it
  (``repr`` of the float, so 0.1 is exactly 10 cents), rounded half-up to
  the currency's minor unit. Negative amounts are allowed in Budget
  (planned offsets) and Actuals (credits), without a warning.
- Quantities and Volume are non-negative; a blank required value (Amount,
  Quantity, Period, a name) is an error, a blank optional one (Volume,
  TierFrom) is NaN.
- An Excel error value, or a formula with no calculated value, in a contract
  column is an error; in an extra column it is a warning (the column is only
  used if a rule names it).
- Hidden rows are counted (as Excel's SUM counts them) and warned about, one
  warning per sheet with the cells of the hidden rows that hold data.
- Names in rows left out for a problem are kept in ``Book.names_seen``, so the
  rule checks do not add a false "unknown pool"; a name cell with no value
  makes that kind of name uncertain (``Book.unreadable_names``).
- A missing sheet's did-you-mean never names a sheet costloop reads or writes.
- A row with a problem is left out of its frame, so later checks still run
  on the rest; the book is None only if a required sheet or column is
  missing.
- Names are trimmed; the spelling of a name's first occurrence (sheets in
  contract order: Departments, Budget, Actuals, Usage, Rates; rows top-down)
  is used everywhere.
- Text columns hold trimmed text, "" for a blank optional cell (pandas
  infers its text dtype); extra columns are float64 when every filled cell
  is a number, else the cells as read with blanks as None.
- Settings keys match like headers (``Fiscal Year Start`` works); a blank
  value keeps the default; an unknown key is kept in ``raw`` and, when it
  looks like a known one, warned about with a did-you-mean.
- Rules: a row with a blank Rule cell is skipped (a placeholder); its text
  is kept exactly as read, since the parser's spans index into it.
- ``Book.fingerprint`` hashes every cell of the input sheets read (not the
  outputs), numbers as float64 so 1 and 1.0 agree, trailing empties trimmed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

import numpy as np
import pandas as pd
from pandas.api.types import infer_dtype

from costloop.engine.model.book import Book, Settings
from costloop.engine.model.currency import minor_unit, normalize_code
from costloop.engine.model.money import to_minor_units
from costloop.engine.model.periods import parse_period
from costloop.engine.model.sheets import INPUT_SHEETS, OUTPUT_SHEETS, REQUIRED_SHEETS
from costloop.engine.model.values import cell_number, cell_text, is_blank, shown, yes_no
from costloop.engine.read.headers import headers_below, unheaded_columns
from costloop.engine.read.rates import RatesSheet, rate_schedule_problems
from costloop.engine.read.usage_checks import repeated_usage
from costloop.engine.read.usage_source import with_usage_source
from costloop.engine.workbook.host import (
    ColumnReads,
    ExcelError,
    HiddenRows,
    Workbook,
    column_letter,
    workbook_folder,
)
from costloop.engine.xlsx.sheet_xml import Uncalculated
from costloop.problems import Problem, Reason, Severity
from costloop.rules.ast import RuleCell, name_key
from costloop.rules.suggest import closest, did_you_mean

COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "Settings": (("Key", "Value"), ()),
    "Departments": (("Department", "Fund"), ("Name", "Email", "Parent", "Billable")),
    "Budget": (("Period", "Pool", "Amount"), ("Metric", "Volume", "Tower", "Service")),
    "Actuals": (("Period", "Pool", "Amount"), ("Account", "Description")),
    "Usage": (("Period", "Department", "Metric", "Quantity"), ("Service", "Reference")),
    "Rates": (("Metric", "Rate"), ("Pool", "Unit", "TierFrom", "TierTo", "EffectiveFrom")),
    "Rules": (("ID", "Rule"), ("Enabled", "Note")),
}
"""Sheet -> (required columns, optional columns), as docs/contract.md#input-sheets names them."""

_NUMERIC_KINDS = {"floating", "integer", "mixed-integer-float", "empty"}


def _compact(key: str) -> str:
    return key.replace(" ", "").replace("_", "")


def _map_unique(values: np.ndarray, fn: Callable[[object], object]) -> np.ndarray:
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


def _blank_mask(values: np.ndarray) -> np.ndarray:
    """None, NaN or whitespace-only text; judged once per distinct value."""
    kind = infer_dtype(values, skipna=True)
    if kind in _NUMERIC_KINDS or kind in ("boolean", "datetime", "date"):
        return pd.isna(values)
    # Hashing lumps True with 1 together, harmless here: only text can be blank.
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    if kind == "string":  # every distinct value a str (None and NaN are code -1)
        blank = np.fromiter((not u.strip() for u in uniques), dtype=bool, count=len(uniques))
    else:
        blank = np.fromiter((is_blank(u) for u in uniques), dtype=bool, count=len(uniques))
    return np.append(blank, True)[codes]


def _error_mask(values: np.ndarray) -> np.ndarray:
    """Cells holding an Excel error or a formula with no calculated value."""
    inferred = infer_dtype(values, skipna=True)
    if inferred in _NUMERIC_KINDS or inferred in ("string", "boolean", "datetime", "date"):
        return np.zeros(len(values), dtype=bool)
    return np.fromiter(
        (isinstance(v, ExcelError | Uncalculated) for v in values), dtype=bool, count=len(values)
    )


RECALC_HINT = "open and save the workbook in Excel, or run `costloop recalc`"
UNCALCULATED_MESSAGE = f"formula with no calculated value: {RECALC_HINT}"


def _unreadable(value: object) -> bool:
    """An Excel error or a formula with no calculated value: the cell has no usable value."""
    return isinstance(value, ExcelError | Uncalculated)


def _unreadable_problem(where: str, value: object, severity: Severity) -> Problem:
    if isinstance(value, Uncalculated):
        return Problem(Reason.UNCALCULATED, severity, where, UNCALCULATED_MESSAGE)
    return Problem(
        Reason.EXCEL_ERROR,
        severity,
        where,
        f"the cell shows the Excel error {value}; fix the formula or type a value",
    )


# --- money -------------------------------------------------------------------

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


# --- one sheet's grid --------------------------------------------------------


@dataclass
class _Sheet:
    """An input sheet's header and non-blank data rows, cells still as read."""

    logical: str
    actual: str
    headers: dict[str, tuple[str, str, int]]
    """Column key -> (header as written, column letter, 0-based index)."""
    cells: dict[str, np.ndarray] = field(default_factory=dict)
    """Column key -> the column's cells (object array), non-blank rows only."""
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """Excel row number of each kept row."""
    usable: bool = True
    """False when a required column is missing (its rows cannot be read)."""

    def where(self, key: str, row: int) -> str:
        return f"{self.actual}!{self.headers[key][1]}{row}"

    def has(self, key: str) -> bool:
        return key in self.headers

    def extras(self) -> list[str]:
        known = {name_key(c) for group in COLUMNS[self.logical] for c in group}
        return [k for k in self.headers if k not in known]

    def __len__(self) -> int:
        return len(self.rows)


def _header_key(text: str, known: dict[str, str]) -> str:
    """A contract column's key for its header (``Effective From`` -> ``effectivefrom``)."""
    key = name_key(text)
    return known.get(_compact(key), key)


Body = list[np.ndarray]
"""The rows below the header as columns (A first), cells as read (object), all one height."""


def _height(body: Body) -> int:
    return len(body[0]) if body else 0


def _body(grid: list[list[object]]) -> Body:
    """Every row below the header, padded to the widest row, as columns."""
    rows = grid[1:]
    width = max((len(r) for r in grid), default=0)
    table = np.empty((len(rows), width), dtype=object)
    for i, row in enumerate(rows):
        table[i, : len(row)] = row
    return [table[:, j].copy() for j in range(width)]


def _header_and_body(wb: Workbook, sheet: str) -> tuple[list[object], Body]:
    """Row 1 and the rows below it; column-wise when the host can (a big Usage sheet)."""
    columns = wb.read_columns(sheet) if isinstance(wb, ColumnReads) else None
    if columns is None:
        grid = wb.read_sheet(sheet)
        return (list(grid[0]) if grid else []), _body(grid)
    return [column[0] for column in columns], [column[1:] for column in columns]


def _read_grid(
    logical: str,
    actual: str,
    header_row: list[object],
    body: Body,
    problems: list[Problem],
) -> _Sheet:
    required, optional = COLUMNS[logical]
    known = {_compact(name_key(c)): name_key(c) for c in (*required, *optional)}
    headers: dict[str, tuple[str, str, int]] = {}
    for index, value in enumerate(header_row):
        text = cell_text(value)
        if not text:
            continue
        key = _header_key(text, known)
        letter = column_letter(index)
        if key in headers:
            first = headers[key]
            problems.append(
                Problem(
                    Reason.DUPLICATE_COLUMN,
                    Severity.ERROR,
                    f"{actual}!{letter}1",
                    f'the column header "{text}" appears twice (first in {first[1]}1); '
                    f"rename or delete one of them",
                )
            )
            continue
        headers[key] = (text, letter, index)

    sheet = _Sheet(logical, actual, headers)
    if any(name_key(c) not in headers for c in required):
        # A title above the headers: one message saying so, not one per "missing" column.
        moved = headers_below(actual, body, required, lambda t: _header_key(t, known))
        if moved is not None:
            problems.append(moved)
            sheet.usable = False
            return sheet
    _check_required_columns(sheet, header_row, required, known, problems)
    if not sheet.usable:
        return sheet
    problems += unheaded_columns(actual, header_row, body, _blank_mask)

    columns = {key: body[index] for key, (_, _, index) in headers.items()}
    blank = np.ones(_height(body), dtype=bool)
    for values in columns.values():
        if not blank.any():
            break  # no row can be blank throughout any more: the other columns need no look
        blank &= _blank_mask(values)
    keep = _rows_kept(~blank)
    sheet.cells = {key: values[keep] for key, values in columns.items()}
    sheet.rows = np.arange(_height(body), dtype=np.int64)[keep] + 2  # grid row 1 is the header
    return sheet


def _rows_kept(keep: np.ndarray) -> np.ndarray | slice:
    """An index for the kept rows: the mask, or a plain slice (no copy) when all are kept."""
    return slice(None) if keep.all() else keep


def _check_required_columns(
    sheet: _Sheet,
    header_row: list[object],
    required: tuple[str, ...],
    known: dict[str, str],
    problems: list[Problem],
) -> None:
    present = [text for text, _, _ in sheet.headers.values()]
    unmatched = {k: t for k, (t, _, _) in sheet.headers.items() if k not in known.values()}
    last = column_letter(max(len(header_row), 1) - 1)
    where = f"{sheet.actual}!A1:{last}1" if last != "A" else f"{sheet.actual}!A1"
    for column in required:
        if name_key(column) in sheet.headers:
            continue
        sheet.usable = False
        listed = ", ".join(present) if present else "no headers at all"
        message = f'required column "{column}" is missing from row 1 (the header row has {listed})'
        guess = closest(column, unmatched.values(), cutoff=0.5)
        if guess:
            message += f"; {did_you_mean(guess)} Rename that header to {column}"
        else:
            message += f"; add a {column} column with {column} in row 1"
        problems.append(Problem(Reason.MISSING_COLUMN, Severity.ERROR, where, message))


# --- validating a sheet's columns --------------------------------------------


class _Columns:
    """Typed conversion of one sheet's columns; bad cells become problems, their rows drop."""

    def __init__(self, sheet: _Sheet, problems: list[Problem]):
        self.sheet = sheet
        self.problems = problems
        self.bad = np.zeros(len(sheet), dtype=bool)
        self.errors: dict[str, np.ndarray] = {}
        required, optional = COLUMNS[sheet.logical]
        spec = {name_key(c) for c in (*required, *optional)}
        for key, values in sheet.cells.items():
            self.errors[key] = _error_mask(values)
            # In an extra column it only matters if a rule names the column: a warning.
            severity = Severity.ERROR if key in spec else Severity.WARNING
            for i in np.flatnonzero(self.errors[key]):
                where = sheet.where(key, int(sheet.rows[i]))
                problems.append(_unreadable_problem(where, values[i], severity))
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
        texts = _map_unique(values, cell_text)
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
        periods = _map_unique(values, parse_period)
        if self.sheet.has(key):
            wrong = pd.isna(periods) & self._checkable(key)
            if not required:
                wrong &= ~_blank_mask(values)
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
        blank = _blank_mask(values)
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
        if infer_dtype(values, skipna=True) in _NUMERIC_KINDS:
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
        wrong |= _blank_mask(values)
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
        flags = _map_unique(values, yes_no)
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
        if infer_dtype(values, skipna=True) in _NUMERIC_KINDS:
            return values.astype(np.float64)
        blank = _blank_mask(values)
        out = values.copy()
        out[blank] = None
        strings = np.fromiter((isinstance(v, str) for v in out), dtype=bool, count=len(out))
        out[strings] = [v.strip() for v in out[strings]]
        return out


def unknown_receiver(name: str, receivers: Iterable[str]) -> str:
    """The message for a Usage department that is neither a department nor a pool."""
    guess = closest(name, receivers)
    fix = did_you_mean(guess) if guess else "add it to Departments or fix the name"
    return f'"{name}" is not a department or a cost pool; {fix}'


def _hint(value: object) -> str:
    """The fix for a number typed as text that costloop does not read."""
    if isinstance(value, str) and re.search(r"[$€£¥]|^\s*\(.*\)\s*$", value):
        return " (type the number without currency signs or brackets, e.g. -1234.50)"
    return ""


def _frame(checked: _Columns, columns: dict[str, np.ndarray], extras: bool = True) -> pd.DataFrame:
    """The sheet's good rows: contract columns, then extra columns under their own headers."""
    keep = _rows_kept(~checked.bad)
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


# --- the sheets ---------------------------------------------------------------

_SETTING_SPELLINGS = {
    name_key(k): k
    for k in (
        "Organization", "Currency", "Period", "FiscalYearStart", "CostBasis", "ITFund",
        "RevenueAccount", "ExpenseAccount", "ReimbursementAccount", "DueFromAccount",
        "DueToAccount", "ReserveDays", "EmailFrom", "EmailSubject", "EmailBody",
        "UsageSource", "UsageDepartmentTag", "UsageDateFormat", "UsageCost",
        "UntaggedDepartment", "DisputeDays",
    )
}  # fmt: skip
"""Known setting key -> its spelling in the contract."""
_SETTING_KEYS = {_compact(key): key for key in _SETTING_SPELLINGS}
_SETTING_FIELDS = {
    "organization": "organization",
    "itfund": "it_fund",
    "revenueaccount": "revenue_account",
    "expenseaccount": "expense_account",
    "reimbursementaccount": "reimbursement_account",
    "duefromaccount": "due_from_account",
    "duetoaccount": "due_to_account",
    "emailfrom": "email_from",
    "emailsubject": "email_subject",
    "emailbody": "email_body",
}
_SETTINGS_READ_ELSEWHERE = frozenset(
    (
        "usagesource", "usagedepartmenttag", "usagedateformat", "usagecost",
        "untaggeddepartment", "disputedays",
    )
)  # fmt: skip
"""Known keys kept only as written (``Settings.raw``): engine/read/usage_source.py and
engine/read/disputes.py read them."""


def _read_settings(sheet: _Sheet | None, problems: list[Problem]) -> Settings:
    if sheet is None or not sheet.usable:
        return Settings()
    typed: dict[str, object] = {}
    raw: dict[str, str] = {}
    cells: dict[str, str] = {}
    first_cell: dict[str, str] = {}
    keys, values = sheet.cells["key"], sheet.cells["value"]

    def problem(where: str, message: str, severity: Severity = Severity.ERROR) -> None:
        problems.append(Problem(Reason.BAD_SETTING, severity, where, message))

    for key_cell, value, row in zip(keys, values, sheet.rows, strict=True):
        key_where, where = sheet.where("key", int(row)), sheet.where("value", int(row))
        if _unreadable(key_cell) or _unreadable(value):
            bad = key_where if _unreadable(key_cell) else where
            unread = key_cell if _unreadable(key_cell) else value
            problems.append(_unreadable_problem(bad, unread, Severity.ERROR))
            continue
        written = cell_text(key_cell)
        if not written:
            continue
        key = _SETTING_KEYS.get(_compact(name_key(written)), name_key(written))
        if key in first_cell:
            problem(
                key_where,
                f"the setting {written} is set twice (first in {first_cell[key]}); "
                f"delete one of the rows",
            )
            continue
        first_cell[key] = key_where
        raw[key] = cell_text(value)
        cells[key] = where
        if key not in _SETTING_SPELLINGS:
            guess = closest(written, _SETTING_SPELLINGS.values(), cutoff=0.8)
            if guess:
                problem(
                    key_where,
                    f'costloop does not know the setting "{written}"; {did_you_mean(guess)}',
                    Severity.WARNING,
                )
            continue
        if is_blank(value):
            continue  # a blank value keeps the default
        message = _set(typed, key, value)
        if message:
            problem(where, message)
    typed["raw"] = raw
    typed["cells"] = cells
    return Settings(**typed)


def _set(typed: dict[str, object], key: str, value: object) -> str | None:
    """Type one known setting into ``typed``; a message if its value is wrong."""
    if key in _SETTINGS_READ_ELSEWHERE:
        return None
    if key in _SETTING_FIELDS:
        typed[_SETTING_FIELDS[key]] = cell_text(value)
        return None
    if key == "currency":
        code = normalize_code(cell_text(value))
        places = minor_unit(code)
        if places is None:
            return f"Currency must be an ISO 4217 code such as USD, EUR or JPY, got {shown(value)}"
        typed["currency"], typed["minor_unit"] = code, places
        return None
    if key == "period":
        period = parse_period(value)
        if period is None:
            return f"Period must be a month as YYYY-MM text or a date, got {shown(value)}"
        typed["period"] = period
        return None
    if key == "costbasis":
        basis = cell_text(value).upper()
        if basis not in ("ACTUAL", "BUDGET"):
            return f"CostBasis must be ACTUAL or BUDGET, got {shown(value)}"
        typed["cost_basis"] = basis
        return None
    number = cell_number(value)
    whole = number is not None and number == number.to_integral_value()
    if key == "fiscalyearstart":
        if not whole or not 1 <= number <= 12:
            return f"FiscalYearStart must be a month number 1-12, got {shown(value)}"
        typed["fiscal_year_start"] = int(number)
        return None
    if key == "reservedays":
        if not whole or number <= 0:
            return f"ReserveDays must be a whole number of days above 0, got {shown(value)}"
        typed["reserve_days"] = int(number)
        return None
    raise AssertionError(f"setting {key} has no typing")  # pragma: no cover


def _read_departments(sheet: _Sheet, problems: list[Problem]) -> pd.DataFrame:
    checked = _Columns(sheet, problems)
    names = checked.name("department", "type the department's code or name")
    keys = _map_unique(names, name_key)
    filled = names != ""
    first_seen: dict[str, int] = {}
    for i in np.flatnonzero(filled & pd.Series(keys).duplicated(keep=False).to_numpy()):
        key = keys[i]
        if key not in first_seen:
            first_seen[key] = i
            continue
        first = sheet.where("department", int(sheet.rows[first_seen[key]]))
        problems.append(
            Problem(
                Reason.DUPLICATE_DEPARTMENT,
                Severity.ERROR,
                sheet.where("department", int(sheet.rows[i])),
                f'department "{names[i]}" is listed twice (first in {first}); '
                f"delete one row or give it another name",
            )
        )
        checked.bad[i] = True
    columns = {
        "Department": names,
        "Fund": checked.name("fund", "type the department's fund code"),
        "Name": checked.text("name"),
        "Email": checked.text("email"),
        "Parent": checked.text("parent"),
        "Billable": checked.yes_no("billable"),
    }
    frame = _frame(checked, columns)
    frame["_key"] = _map_unique(frame["Department"].to_numpy(dtype=object), name_key)
    return frame


def _read_costs(sheet: _Sheet | None, places: int, problems: list[Problem]) -> pd.DataFrame:
    """Budget or Actuals: pool cost per period, in integer minor units."""
    if sheet is None:
        return _empty_actuals()
    checked = _Columns(sheet, problems)
    columns = {
        "Period": checked.period("period"),
        "Pool": checked.name("pool", "type the cost pool's name"),
        "Cents": checked.cents("amount", places),
    }
    if sheet.logical == "Budget":
        columns["Metric"] = checked.text("metric")
        columns["Volume"] = checked.number("volume", required=False, non_negative=True)
        columns["Tower"] = checked.text("tower")
        columns["Service"] = checked.text("service")
    else:
        columns["Account"] = checked.text("account")
        columns["Description"] = checked.text("description")
    frame = _frame(checked, columns)
    frame["Cents"] = frame["Cents"].astype(np.int64)
    frame["_key"] = _map_unique(frame["Pool"].to_numpy(dtype=object), name_key)
    return frame


def _empty(columns: dict[str, object]) -> pd.DataFrame:
    """An absent optional sheet: no rows, the columns and dtypes of a read one."""
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in columns.items()})


def _empty_actuals() -> pd.DataFrame:
    text = str
    return _empty(
        {
            "Period": text,
            "Pool": text,
            "Cents": np.int64,
            "Account": text,
            "Description": text,
            "_row": np.int64,
            "_key": text,
        }
    )


def _read_usage(
    sheet: _Sheet, receivers: dict[str, str] | None, problems: list[Problem]
) -> pd.DataFrame:
    """Usage; ``receivers`` (department and pool key -> spelling) None skips the name check."""
    checked = _Columns(sheet, problems)
    departments = checked.name("department", "type who used it (a department or a pool)")
    columns = {
        "Period": checked.period("period"),
        "Department": departments,
        "Metric": checked.name("metric", "type the metric's name, e.g. vCPU-Hours"),
        "Quantity": checked.number("quantity", required=True, non_negative=True),
        "Service": checked.text("service"),
        "Reference": checked.text("reference"),
    }
    keys = _map_unique(departments, name_key)
    if receivers is not None:
        known = pd.Series(keys, dtype=object).isin(receivers.keys()).to_numpy()
        unknown = (departments != "") & ~known

        # One suggestion per distinct name, however many rows carry it.
        suggest = functools.cache(lambda name: unknown_receiver(name, receivers.values()))

        def message(value: object) -> str:
            return suggest(cell_text(value))

        checked._report(unknown, "department", message, Reason.UNKNOWN_DEPARTMENT)
    frame = _frame(checked, columns)
    frame["_key"] = pd.Series(keys[~checked.bad], index=frame.index, dtype=object)
    return frame


def _read_rates(sheet: _Sheet | None, problems: list[Problem]) -> pd.DataFrame:
    if sheet is None:
        return _empty(
            {
                "Metric": str,
                "Rate": object,
                "Pool": str,
                "Unit": str,
                "TierFrom": np.float64,
                "TierTo": np.float64,
                "EffectiveFrom": object,
                "_row": np.int64,
            }
        )
    checked = _Columns(sheet, problems)
    columns = {
        "Metric": checked.name("metric", "type the metric the rate prices"),
        "Rate": checked.decimal("rate", non_negative=True),
        "Pool": checked.text("pool"),
        "Unit": checked.text("unit"),
        "TierFrom": checked.number("tierfrom", required=False, non_negative=True),
        "TierTo": checked.number("tierto", required=False, non_negative=True),
        "EffectiveFrom": checked.period("effectivefrom", required=False),
    }
    frame = _frame(checked, columns)
    # None (always in effect) must stay None, not become a NaN of a text column.
    frame["EffectiveFrom"] = pd.Series(
        list(columns["EffectiveFrom"][~checked.bad]), index=frame.index, dtype=object
    )
    frame["Rate"] = pd.Series(list(columns["Rate"][~checked.bad]), index=frame.index, dtype=object)
    # The card as a schedule (engine/read/rates.py); a row left out above leaves its metric's
    # schedules half-read, so they wait until its own error is fixed.
    left_out = {name_key(metric) for metric in columns["Metric"][checked.bad]}
    letters = {key: letter for key, (_, letter, _) in sheet.headers.items()}
    last = column_letter(max(index for _, _, index in sheet.headers.values()))
    problems += rate_schedule_problems(frame, RatesSheet(sheet.actual, letters, last), left_out)
    return frame


def _read_rules(sheet: _Sheet, problems: list[Problem]) -> list[RuleCell]:
    checked = _Columns(sheet, problems)
    enabled = checked.yes_no("enabled")
    notes = checked.text("note")
    rules: list[RuleCell] = []
    ids, texts = sheet.cells["id"], sheet.cells["rule"]
    for i, (rule_id, text) in enumerate(zip(ids, texts, strict=True)):
        if checked.errors["rule"][i] or is_blank(text):
            continue  # an ID without a rule is a placeholder row
        row = int(sheet.rows[i])
        id_where = sheet.where("id", row)
        if checked.errors["id"][i]:
            continue
        if is_blank(rule_id):
            problems.append(
                Problem(
                    Reason.MISSING_ID,
                    Severity.ERROR,
                    id_where,
                    f"the rule in {sheet.where('rule', row).split('!')[1]} has no ID; "
                    f"type a unique ID here (e.g. R{row - 1})",
                )
            )
            continue
        rules.append(
            RuleCell(
                rule_id=cell_text(rule_id),
                where=sheet.where("rule", row),
                # The parser's spans index into this text: keep it exactly as read.
                text=text if isinstance(text, str) else cell_text(text),
                enabled=bool(enabled[i]),
                note=str(notes[i]),
                id_where=id_where,
            )
        )
    return rules


# --- names --------------------------------------------------------------------


def _canonicalise(frames: list[tuple[pd.DataFrame, str]]) -> None:
    """Every name in the spelling of its first occurrence (frames in contract order)."""
    first: dict[str, str] = {}
    for frame, column in frames:
        if column not in frame or frame.empty:
            continue
        values = frame[column].to_numpy(dtype=object)
        uniques = pd.unique(values)
        spelling: dict[str, str] = {}
        for name in uniques:
            if name:
                spelling[name] = first.setdefault(name_key(name), name)
        if any(a != b for a, b in spelling.items()):
            frame[column] = [spelling.get(v, v) for v in values]


# --- sheets and the fingerprint ----------------------------------------------


def _resolve_sheets(
    present: list[str], chosen: Mapping[str, str], problems: list[Problem]
) -> dict[str, str]:
    """Logical input sheet -> the workbook's sheet to read (exact name, else any case)."""
    by_key = {}
    for name in present:
        by_key.setdefault(name.casefold(), name)
    for logical in chosen:
        if logical not in INPUT_SHEETS:
            problems.append(
                Problem(
                    Reason.MISSING_SHEET,
                    Severity.ERROR,
                    logical,
                    f"{logical} is not an input sheet; choose one of {', '.join(INPUT_SHEETS)}",
                )
            )
    resolved: dict[str, str] = {}
    # Renaming a sheet costloop reads or writes would break something else (a
    # "did you mean Rates?" for a missing Rules sheet would lose the rate card).
    spoken_for = {n.casefold() for n in (*INPUT_SHEETS, *OUTPUT_SHEETS, *chosen.values())}
    spare = {
        name_key(n): n
        for n in present
        if n.casefold() not in spoken_for and n.partition("@")[0].casefold() not in spoken_for
    }
    for logical in INPUT_SHEETS:
        wanted = chosen.get(logical, logical)
        actual = wanted if wanted in present else by_key.get(wanted.casefold())
        if actual is not None:
            resolved[logical] = actual
        elif logical in REQUIRED_SHEETS or logical in chosen:
            listed = ", ".join(present) if present else "none"
            message = f'the workbook has no sheet "{wanted}" (its sheets: {listed})'
            guess = closest(wanted, spare.values())
            if guess:
                message += f"; {did_you_mean(guess)} Rename that sheet to {wanted}"
            else:
                message += f"; add a sheet named {wanted} with its header in row 1"
            problems.append(Problem(Reason.MISSING_SHEET, Severity.ERROR, wanted, message))
    return resolved


def _fingerprint_cell(value: object) -> object:
    """One cell in a form that does not depend on how the workbook was read."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return ["b", value]
    if isinstance(value, int | float | np.integer | np.floating):
        number = float(value)
        return number if number == number else None
    if isinstance(value, datetime):
        return ["d", value.isoformat()]
    if isinstance(value, date):
        return ["d", datetime(value.year, value.month, value.day).isoformat()]
    if isinstance(value, ExcelError):
        return ["e", value.code]
    return ["o", str(value)]


def _column_bytes(values: np.ndarray) -> bytes:
    """A data column's cells, canonically: numbers as float64 (1 and 1.0 alike), text as text."""
    kind = infer_dtype(values, skipna=True)
    if kind in _NUMERIC_KINDS:
        return b"n" + values.astype(np.float64).tobytes()
    if kind == "string":
        texts = values.copy()
        texts[pd.isna(texts)] = ""
        return b"s" + "\x00".join(texts.tolist()).encode("utf-8", "surrogatepass")
    cells = [_fingerprint_cell(v) for v in values]
    return b"j" + json.dumps(cells, ensure_ascii=False, separators=(",", ":")).encode()


def _filled_height(column: np.ndarray) -> int:
    """Rows down to the column's last filled cell (0 when it has none)."""
    if len(column) and not pd.isna(column[-1]):
        return len(column)  # the usual case, told without looking at every cell
    filled = np.flatnonzero(~pd.isna(column))
    return int(filled[-1]) + 1 if len(filled) else 0


def _fingerprint(sheets: list[tuple[str, str, list[object], Body]]) -> str:
    """sha256 of the input sheets' cells (trailing empties trimmed): stable, follows any cell.

    Hashed column by column, so 100,000 rows take a few vectorised passes, not
    a million Python calls; the header row is hashed on its own so a column's
    data keeps one type.
    """
    digest = hashlib.sha256()
    for logical, actual, header_row, body in sheets:
        filled = [_filled_height(column) for column in body]
        height = max(filled, default=0)
        header = [_fingerprint_cell(v) for v in header_row]
        while header and header[-1] in (None, ""):
            header.pop()
        width = max([len(header)] + [i + 1 for i, f in enumerate(filled) if f])
        digest.update(json.dumps(["sheet", logical, actual, header, width, height]).encode())
        for index in range(width):
            column = _column_bytes(body[index][:height])
            digest.update(len(column).to_bytes(8, "little") + column)
    return digest.hexdigest()


# --- the book -----------------------------------------------------------------


def read_book(
    wb: Workbook, sheets: Mapping[str, str] | None = None
) -> tuple[Book | None, list[Problem]]:
    """Read and validate every input sheet; all problems at once, the Book unless unusable.

    ``sheets`` maps a logical input sheet to the sheet to read instead (a
    scenario: ``{"Budget": "Budget@Cloud10"}``); messages then name that sheet.
    The Book is final: usage from the Settings UsageSource files (beside a
    workbook saved as a file) is in it already.
    """
    problems: list[Problem] = []
    present = list(wb.sheet_names())
    resolved = _resolve_sheets(present, sheets or {}, problems)
    read: dict[str, _Sheet] = {}
    grids: list[tuple[str, str, list[object], Body]] = []
    for logical, actual in resolved.items():
        header_row, body = _header_and_body(wb, actual)
        grids.append((logical, actual, header_row, body))
        read[logical] = _read_grid(logical, actual, header_row, body, problems)
        problems += _hidden_rows_warning(wb, read[logical], len(header_row))

    structural = any(p.code in (Reason.MISSING_SHEET, Reason.MISSING_COLUMN) for p in problems)
    usable = {name: sheet for name, sheet in read.items() if sheet.usable}
    settings = _read_settings(usable.get("Settings"), problems)
    places = settings.minor_unit

    departments = (
        _read_departments(usable["Departments"], problems) if "Departments" in usable else None
    )
    budget = _read_costs(usable["Budget"], places, problems) if "Budget" in usable else None
    actuals = _read_costs(usable.get("Actuals"), places, problems)
    rates = _read_rates(usable.get("Rates"), problems)
    rules = _read_rules(usable["Rules"], problems) if "Rules" in usable else []
    names_seen, unreadable = _names_in_cells(usable)
    usage = None
    if "Usage" in usable:
        receivers = None
        if {"Departments", "Budget"} <= usable.keys() and not unreadable & {"departments", "pools"}:
            receivers = names_seen["departments"] | names_seen["pools"]
        if "Actuals" in read and "Actuals" not in usable:
            receivers = None  # its pools are unknown: no check beats false alarms
        usage = _read_usage(usable["Usage"], receivers, problems)
        sheet = usable["Usage"]
        problems += repeated_usage(usage, sheet.actual, sheet.has("reference"))

    if structural or departments is None or budget is None or usage is None:
        return None, problems

    _canonicalise(
        [
            (departments, "Department"),
            (departments, "Parent"),
            (departments, "Fund"),
            (budget, "Pool"),
            (budget, "Metric"),
            (actuals, "Pool"),
            (usage, "Department"),
            (usage, "Metric"),
            (rates, "Metric"),
            (rates, "Pool"),
        ]
    )
    book = Book(
        settings=settings,
        departments=departments,
        budget=budget,
        actuals=actuals,
        usage=usage,
        rates=rates,
        rules=rules,
        columns={
            logical: {key: (text, letter) for key, (text, letter, _) in sheet.headers.items()}
            for logical, sheet in read.items()
        },
        sheet_names=present,
        fingerprint=_fingerprint(grids),
        sources={logical: sheet.actual for logical, sheet in read.items()},
        names_seen=names_seen,
        unreadable_names=frozenset(unreadable),
    )
    book, source_problems = with_usage_source(book, workbook_folder(wb))
    return book, problems + source_problems


_NAME_CELLS = {
    "departments": (("Departments", "department"),),
    "pools": (("Budget", "pool"), ("Actuals", "pool")),
    "metrics": (("Usage", "metric"), ("Budget", "metric"), ("Rates", "metric")),
}
"""Which cells hold the names of each kind that rules and Usage refer to."""


def _names_in_cells(usable: dict[str, _Sheet]) -> tuple[dict[str, dict[str, str]], set[str]]:
    """Every name of each kind as typed, rows left out for a problem included; and the kinds
    with a name cell that has no value (an Excel error, a formula with no calculated value).

    A row rejected for its amount still names its pool: checking names against
    the good rows only would add a false "unknown pool" to the real error. And
    when a name cell cannot be read at all, which names exist is unknown, so
    "unknown name" checks of that kind stand down (the cell's own error stops the run).
    """
    seen: dict[str, dict[str, str]] = {kind: {} for kind in _NAME_CELLS}
    unreadable: set[str] = set()
    for kind, places in _NAME_CELLS.items():
        for logical, key in places:
            sheet = usable.get(logical)
            if sheet is None or key not in sheet.cells:
                continue
            for value in pd.unique(sheet.cells[key]):
                if _unreadable(value):
                    unreadable.add(kind)
                    continue
                name = cell_text(value)
                if name:
                    seen[kind].setdefault(name_key(name), name)
    return seen, unreadable


MAX_RANGES_SHOWN = 5


def _hidden_rows_warning(wb: Workbook, sheet: _Sheet, width: int) -> list[Problem]:
    """Hidden rows holding data are counted (as Excel's SUM counts them); say where they are.

    A row hidden by hand, by a filter or by a collapsed outline still holds the
    sheet's data: skipping it would make a bill depend on how the sheet was last
    viewed. Counting it silently let a hidden row move money unseen, so warn.
    """
    if not isinstance(wb, HiddenRows) or not len(sheet):
        return []  # a host that cannot hide rows has none
    hidden = wb.hidden_rows(sheet.actual)
    if not hidden:
        return []
    rows = [int(r) for r in sheet.rows if int(r) in hidden]
    if not rows:
        return []  # only blank rows are hidden: nothing is counted from them
    ranges: list[tuple[int, int]] = []
    for row in rows:
        if ranges and row == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], row)
        else:
            ranges.append((row, row))
    last = column_letter(max(width, 1) - 1)
    cells = ", ".join(f"A{a}:{last}{b}" for a, b in ranges[:MAX_RANGES_SHOWN])
    if len(ranges) > MAX_RANGES_SHOWN:
        cells += f" and {len(ranges) - MAX_RANGES_SHOWN} more range(s)"
    count = f"{len(rows)} hidden row{'s' if len(rows) != 1 else ''}"
    return [
        Problem(
            Reason.HIDDEN_ROWS,
            Severity.WARNING,
            f"{sheet.actual}!{cells}",
            f"{count} with data {'are' if len(rows) != 1 else 'is'} counted, as Excel's SUM "
            f"counts hidden rows; unhide them (or clear the filter) to see what is counted, "
            f"and delete any row that should not count",
        )
    ]
