"""One input sheet's header row and body: its columns found by header, its blank rows
dropped (docs/contract.md#input-sheets).

Headers match case-insensitively ignoring surrounding spaces (also non-breaking
ones); a contract column also matches with inner spaces or underscores
(``Effective From``, ``tier_to``). A blank header cell makes its column ignored;
a header written twice, a required column missing, a title row above the headers
or data under no header are problems at their cells.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from costloop.engine.model.values import cell_text
from costloop.engine.read.cell_checks import blank_mask, compact
from costloop.engine.read.headers import headers_below, unheaded_columns
from costloop.engine.workbook.host import ColumnReads, Workbook, column_letter
from costloop.problems import Problem, Reason, Severity
from costloop.rules.ast import name_key
from costloop.rules.suggest import closest, did_you_mean

COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "Settings": (("Key", "Value"), ()),
    "Departments": (
        ("Department", "Fund"),
        ("Name", "Email", "Parent", "Billable", "Portal Group"),
    ),
    "Budget": (("Period", "Pool", "Amount"), ("Metric", "Volume", "Tower", "Service")),
    "Actuals": (("Period", "Pool", "Amount"), ("Account", "Description")),
    "Usage": (("Period", "Department", "Metric", "Quantity"), ("Service", "Reference")),
    "Rates": (("Metric", "Rate"), ("Pool", "Unit", "TierFrom", "TierTo", "EffectiveFrom")),
    "Rules": (("ID", "Rule"), ("Enabled", "Note")),
}
"""Sheet -> (required columns, optional columns), as docs/contract.md#input-sheets names them."""


@dataclass
class InputSheet:
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
    return known.get(compact(key), key)


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


def header_and_body(wb: Workbook, sheet: str) -> tuple[list[object], Body]:
    """Row 1 and the rows below it; column-wise when the host can (a big Usage sheet)."""
    columns = wb.read_columns(sheet) if isinstance(wb, ColumnReads) else None
    if columns is None:
        grid = wb.read_sheet(sheet)
        return (list(grid[0]) if grid else []), _body(grid)
    return [column[0] for column in columns], [column[1:] for column in columns]


def read_grid(
    logical: str,
    actual: str,
    header_row: list[object],
    body: Body,
    problems: list[Problem],
) -> InputSheet:
    required, optional = COLUMNS[logical]
    known = {compact(name_key(c)): name_key(c) for c in (*required, *optional)}
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

    sheet = InputSheet(logical, actual, headers)
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
    problems += unheaded_columns(actual, header_row, body, blank_mask)

    columns = {key: body[index] for key, (_, _, index) in headers.items()}
    blank = np.ones(_height(body), dtype=bool)
    for values in columns.values():
        if not blank.any():
            break  # no row can be blank throughout any more: the other columns need no look
        blank &= blank_mask(values)
    keep = rows_kept(~blank)
    sheet.cells = {key: values[keep] for key, values in columns.items()}
    sheet.rows = np.arange(_height(body), dtype=np.int64)[keep] + 2  # grid row 1 is the header
    return sheet


def rows_kept(keep: np.ndarray) -> np.ndarray | slice:
    """An index for the kept rows: the mask, or a plain slice (no copy) when all are kept."""
    return slice(None) if keep.all() else keep


def _check_required_columns(
    sheet: InputSheet,
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
