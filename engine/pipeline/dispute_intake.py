"""Disputes raised outside the workbook (the portal), typed into its `Disputes` sheet.

Finance answers disputes in the workbook (docs/contract.md, the Disputes sheet): a
dispute raised elsewhere becomes a new row there, Status `Open`, in the sheet's own
columns wherever they are, below the last filled row. Its id says where it came from,
so adding it twice is impossible: a dispute whose id is already on the sheet is left
alone, and an id on the sheet that means another dispute (another department or
period) is an error at its cell rather than a dispute silently not added.

Only the Disputes sheet changes, through the lossless row typing of
`costloop.engine.xlsx.typed_rows` (the sheet's formats, drop-downs and the user's own
columns stay); a workbook without a Disputes sheet gets one, as the template lays it
out. Every problem is found before anything is written, and a refused write leaves
the file as it was.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from costloop.engine.model.disputes import (
    DISPUTE_COLUMNS,
    DISPUTES_SHEET,
    OPEN,
    OPTIONAL_DISPUTE_COLUMNS,
)
from costloop.engine.model.periods import parse_period
from costloop.engine.model.values import cell_text, is_blank
from costloop.engine.workbook.cells import column_letter
from costloop.engine.workbook.host import OutputSheet
from costloop.engine.xlsx.file_workbook import FileWorkbook
from costloop.engine.xlsx.write_guard import refuse_unwritable
from costloop.problems import Problem, Reason, Reported, Severity
from costloop.rules.ast import name_key

RAISED = "Raised"
ALL_COLUMNS = [*DISPUTE_COLUMNS, *OPTIONAL_DISPUTE_COLUMNS]


@dataclass(frozen=True)
class RaisedDispute:
    """A dispute raised outside the workbook, to become one new Disputes row."""

    dispute: str
    """Its id on the sheet, unique there (the portal's are ``PORTAL-<number>``)."""
    department: str
    period: str
    pool: str
    reason: str
    amount: Decimal
    note: str
    raised: dt.date


@dataclass
class Intake(Reported):
    """What `add_disputes` wrote: each new dispute and the cell of its id."""

    sheet: str = DISPUTES_SHEET
    added: list[tuple[RaisedDispute, str]] = field(default_factory=list)
    already: list[RaisedDispute] = field(default_factory=list)
    """Already on the sheet (a pull before this one wrote them)."""
    made_sheet: bool = False
    problems: list[Problem] = field(default_factory=list)


def _problem(where: str, message: str) -> Problem:
    return Problem(Reason.BAD_DISPUTE, Severity.ERROR, where, message)


def _row(d: RaisedDispute, at: dict[str, int], width: int) -> list[object]:
    values: dict[str, object] = {
        "Dispute": d.dispute,
        "Department": d.department,
        "Period": d.period,
        "Pool": d.pool,
        "Reason": d.reason,
        "Amount": d.amount,
        "Status": OPEN,
        "Note": d.note,
        RAISED: d.raised,
    }
    row: list[object] = [None] * width
    for column, value in values.items():
        if column in at:
            row[at[column]] = value
    return row


def add_disputes(path: Path, raised: list[RaisedDispute]) -> Intake:
    """Type every dispute of ``raised`` not yet on the Disputes sheet into it, as Open."""
    refuse_unwritable(path)  # a workbook open in Excel is refused before any work
    wb = FileWorkbook(path)
    intake = Intake()
    name = next((n for n in wb.sheet_names() if n.casefold() == DISPUTES_SHEET.casefold()), None)
    if name is None:
        if raised:
            at = {c: i for i, c in enumerate(ALL_COLUMNS)}
            rows = [tuple(_row(d, at, len(ALL_COLUMNS))) for d in raised]
            wb.add_user_sheet(OutputSheet(DISPUTES_SHEET, ALL_COLUMNS, rows,
                                          formats={RAISED: "yyyy-mm-dd"}))  # fmt: skip
            intake.made_sheet = True
            intake.added = [(d, f"{DISPUTES_SHEET}!A{n}") for n, d in enumerate(raised, start=2)]
        return intake
    intake.sheet = name
    grid = wb.read_sheet(name)
    header = grid[0] if grid else []
    at = {}
    for i, value in enumerate(header):
        for column in ALL_COLUMNS:
            if not is_blank(value) and name_key(cell_text(value)) == name_key(column):
                at.setdefault(column, i)
    missing = [c for c in DISPUTE_COLUMNS if c not in at]
    if missing:
        intake.problems.append(
            _problem(
                f"{name}!A1",
                f"the Disputes sheet has no {', '.join(missing)} column(s) in row 1, so no "
                f"dispute was added; its columns are {', '.join(DISPUTE_COLUMNS)} (and "
                "optionally Raised)",
            )
        )
        return intake
    ids: dict[str, tuple[str, str, str | None]] = {}
    last = 0  # the last filled row, 1-based (the header is row 1)
    for offset, row in enumerate(grid[1:], start=2):
        if any(not is_blank(v) for v in row):
            last = offset
        value = {c: row[i] if i < len(row) else None for c, i in at.items()}
        if not is_blank(value["Dispute"]):
            ids.setdefault(
                name_key(cell_text(value["Dispute"])),
                (
                    f"{name}!{column_letter(at['Dispute'])}{offset}",
                    name_key(cell_text(value["Department"])),
                    parse_period(value["Period"]),
                ),
            )
    new: list[RaisedDispute] = []
    for d in raised:
        found = ids.get(name_key(d.dispute))
        if found is None:
            new.append(d)
            continue
        where, department, period = found
        if department != name_key(d.department) or period != d.period:
            intake.problems.append(
                _problem(
                    where,
                    f"the Dispute id {d.dispute} is already used here for another dispute "
                    f"(not {d.department}'s of {d.period}), so that dispute was not added; "
                    f"give this row another id and add the disputes again",
                )
            )
        else:
            intake.already.append(d)
    if intake.problems or not new:
        return intake
    first = max(last, 1) + 1
    width = max(len(header), max(at.values()) + 1)
    wb.type_rows(name, first, [_row(d, at, width) for d in new])
    letter = column_letter(at["Dispute"])
    intake.added = [(d, f"{name}!{letter}{n}") for n, d in enumerate(new, start=first)]
    return intake
