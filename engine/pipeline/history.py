"""The Run Log's history: one row per run, every run kept (docs/audit.md#the-run-log).

The Run Log sheet keeps its `Key` / `Value` lines for the last run that wrote the
outputs (what `costloop bills` and `costloop email` read) and, to their right after
an empty column, a table of every run and close that wrote to the workbook: run id,
time, user, command, period, input fingerprint, total billed and status. Each write
reads the table back from the sheet and adds its own row, so the history survives as
long as the workbook does (a refused run writes nothing, so it leaves no row).
"""

from __future__ import annotations

import getpass
import os

from costloop.engine.workbook.host import OutputSheet, Workbook

HISTORY_COLUMNS = [
    "Run ID",
    "Run Time (UTC)",
    "User",
    "Command",
    "Period",
    "Input Fingerprint",
    "Total Billed",
    "Status",
]
SPACER = ""
"""The empty column between the last run's Key / Value lines and the history."""


def current_user() -> str:
    """Who ran costloop: the login name (the environment's, where there is no login)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name (a service account, a container)
        return os.environ.get("USER") or os.environ.get("USERNAME") or ""


def read_history(wb: Workbook, name: str) -> list[tuple]:
    """The history rows of an owned Run Log sheet, oldest first ([] without one)."""
    owned = {n.casefold() for n in wb.owned_sheets()}
    sheet = next((n for n in wb.sheet_names() if n.casefold() == name.casefold()), None)
    if sheet is None or sheet.casefold() not in owned:
        return []
    grid = wb.read_sheet(sheet)
    if not grid:
        return []
    header = [str(v) if v is not None else "" for v in grid[0]]
    try:
        start = header.index(HISTORY_COLUMNS[0], 2)
    except ValueError:
        return []  # a Run Log written before the history was kept
    width = len(HISTORY_COLUMNS)
    rows = []
    for row in grid[1:]:
        cells = tuple(row[start : start + width]) + (None,) * width
        if any(v is not None for v in cells[:width]):
            rows.append(cells[:width])
    return rows


def history_entry(values: dict[str, object], command: str, total: object) -> tuple:
    return (
        values.get("Run ID"),
        values.get("Run Time (UTC)"),
        current_user(),
        command,
        values.get("Period"),
        values.get("Input Fingerprint"),
        total,
        values.get("Status"),
    )


def with_history(
    log_rows: list[tuple], history: list[tuple], name: str, money: str = "#,##0.00"
) -> OutputSheet:
    """The Run Log sheet: the Key / Value lines, an empty column, the history table."""
    height = max(len(log_rows), len(history))
    blank_log, blank_history = (None, None), (None,) * len(HISTORY_COLUMNS)
    rows = []
    for i in range(height):
        left = tuple(log_rows[i]) if i < len(log_rows) else blank_log
        right = tuple(history[i]) if i < len(history) else blank_history
        rows.append((*left, None, *right))
    return OutputSheet(
        name=name,
        columns=["Key", "Value", SPACER, *HISTORY_COLUMNS],
        rows=rows,
        formats={"Total Billed": money},
    )
