"""Hidden rows of an input sheet: counted as Excel's SUM counts them, and said where."""

from __future__ import annotations

from costloop.engine.read.grid import InputSheet
from costloop.engine.workbook.host import HiddenRows, Workbook, column_letter
from costloop.problems import Problem, Reason, Severity

MAX_RANGES_SHOWN = 5


def hidden_rows_warning(wb: Workbook, sheet: InputSheet, width: int) -> list[Problem]:
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
