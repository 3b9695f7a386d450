"""Read the `Issued` sheet back and check its seal (`costloop.engine.model.issued`).

An edit anywhere in Issued is an error at the first changed cell: an issued bill
is never edited, it is corrected (docs/audit.md). Only a sheet costloop made is
read: a user's own sheet called Issued is not a record of anything (and a close
refuses to write over it).
"""

from __future__ import annotations

from costloop.engine.model.issued import (
    ISSUED_COLUMNS,
    ISSUED_SHEET,
    SEALED_COLUMNS,
    ClosedPeriod,
    Issued,
    canonical,
    cell_digest,
    period_hash,
    row_check,
)
from costloop.engine.workbook.host import Workbook, column_letter
from costloop.problems import Problem, Reason, Severity

_HOW = (
    "issued bills are never edited: undo the change (or restore the workbook's last saved "
    "copy); to correct a closed period, change its inputs and run the next open period, "
    "which bills a reversal and a correction (docs/audit.md)"
)
_DIGITS = 4


def _sheet_name(wb: Workbook) -> str | None:
    owned = {n.casefold() for n in wb.owned_sheets()}
    for name in wb.sheet_names():
        if name.casefold() == ISSUED_SHEET.casefold() and name.casefold() in owned:
            return name
    return None


def _edited(where: str, message: str) -> tuple[Issued, list[Problem]]:
    return Issued(), [Problem(Reason.ISSUED_EDITED, Severity.ERROR, where, f"{message}; {_HOW}")]


def read_issued(wb: Workbook, minor_unit: int = 2) -> tuple[Issued, list[Problem]]:
    """The closed periods, or an error naming the first cell that is not as it was sealed."""
    name = _sheet_name(wb)
    if name is None:
        return Issued(minor_unit=minor_unit), []
    grid = wb.read_sheet(name)
    if not grid:
        return _edited(f"{name}!A1", "the Issued sheet is empty, but costloop wrote it")
    header = [canonical(v) for v in grid[0]] + [""] * len(ISSUED_COLUMNS)
    for i, column in enumerate(ISSUED_COLUMNS):
        if header[i] != column:
            return _edited(
                f"{name}!{column_letter(i)}1",
                f"the Issued header {column!r} was changed to {header[i]!r}",
            )
    sealed = len(SEALED_COLUMNS)
    at = {c: i for i, c in enumerate(ISSUED_COLUMNS)}
    periods: list[ClosedPeriod] = []
    previous = "0" * 64
    for offset, cells in enumerate(grid[1:]):
        row = offset + 2
        cells = list(cells) + [None] * (len(ISSUED_COLUMNS) - len(cells))
        if all(v is None for v in cells):
            continue
        values = cells[:sealed]
        check = canonical(cells[at["Check"]])
        if row_check(values) != check:
            for i, value in enumerate(values):
                if check[i * _DIGITS : (i + 1) * _DIGITS] != cell_digest(value):
                    period = canonical(cells[0]) or "a closed period"
                    return _edited(
                        f"{name}!{column_letter(i)}{row}",
                        f"this cell of the issued record of {period} ({ISSUED_COLUMNS[i]}) is "
                        f"not what was issued when {period} was closed",
                    )
            return _edited(
                f"{name}!{column_letter(at['Check'])}{row}",
                "this row's Check (the seal of its cells) was changed",
            )
        record = dict(zip(SEALED_COLUMNS, values, strict=True))
        period = canonical(record["Closed Period"])
        if periods and periods[-1].period == period:
            closed = periods[-1]
        else:
            moved = periods and period < periods[-1].period
            if moved or any(p.period == period for p in periods):
                return _edited(
                    f"{name}!A{row}",
                    f"the rows of closed period {period} were moved: each closed period's "
                    "rows stay together, oldest period first",
                )
            closed = ClosedPeriod(
                period=period,
                rows=[],
                first_row=row,
                run_id=canonical(record["Run ID"]),
                fingerprint=canonical(record["Input Fingerprint"]),
                closed_at=canonical(record["Closed (UTC)"]),
                hash=canonical(cells[at["Hash"]]),
            )
            periods.append(closed)
        if canonical(cells[at["Hash"]]) != closed.hash:
            return _edited(
                f"{name}!{column_letter(at['Hash'])}{row}",
                f"this row's Hash differs from the hash of closed period {period}",
            )
        closed.rows.append(record)
    for closed in periods:
        rows = [[r[c] for c in SEALED_COLUMNS] for r in closed.rows]
        if period_hash(previous, rows) != closed.hash:
            return _edited(
                f"{name}!{column_letter(at['Hash'])}{closed.first_row}",
                f"the records of closed period {closed.period} do not hash to its seal: a row "
                f"was added, removed or moved, or an earlier period was changed",
            )
        previous = closed.hash
    return Issued(periods=periods, minor_unit=minor_unit), []
