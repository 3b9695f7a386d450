"""Read the optional `Disputes` sheet (`costloop.engine.model.disputes`) and check it.

Each cell is checked where it is: an unknown department or pool, a period that is
not closed, a reason or status not in the list, an accepted dispute without a
resolution, a resolution larger than what was billed — each an error at its cell.
A dispute raised more than Settings `DisputeDays` (default 60) after its period
was issued is a warning at its Raised cell.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal

from costloop.engine.model.book import Book
from costloop.engine.model.disputes import (
    ACCEPTED,
    DISPUTE_COLUMNS,
    DISPUTE_DAYS,
    DISPUTES_SHEET,
    OPTIONAL_DISPUTE_COLUMNS,
    REASONS,
    STATUSES,
    Dispute,
)
from costloop.engine.model.issued import Issued, canonical, money_of
from costloop.engine.model.periods import parse_period
from costloop.engine.model.values import cell_number, cell_text, is_blank, shown
from costloop.engine.workbook.host import Workbook, column_letter
from costloop.problems import Problem, Reason, Severity
from costloop.rules.ast import name_key


def _sheet(wb: Workbook) -> str | None:
    return next((n for n in wb.sheet_names() if n.casefold() == DISPUTES_SHEET.casefold()), None)


def disputes_fingerprint(wb: Workbook) -> str:
    """A hash of the Disputes sheet's cells ("" without one), for the Run Log and close."""
    name = _sheet(wb)
    if name is None:
        return ""
    digest = hashlib.sha256()
    for row in wb.read_sheet(name):
        digest.update("\x1f".join(canonical(v) for v in row).encode("utf-8") + b"\x1e")
    return digest.hexdigest()[:16]


def _dispute_days(book: Book, problems: list[Problem]) -> int:
    text = book.settings.raw.get("disputedays", "")
    if not text:
        return DISPUTE_DAYS
    number = cell_number(text)
    if number is None or number != number.to_integral_value() or number <= 0:
        where = book.settings.cells.get("disputedays", "Settings!B1")
        problems.append(
            Problem(
                Reason.BAD_SETTING,
                Severity.ERROR,
                where,
                f"DisputeDays must be a whole number of days above 0, got {text!r}",
            )
        )
        return DISPUTE_DAYS
    return int(number)


def _one_of(value: object, choices: tuple[str, ...]) -> str | None:
    by_key = {name_key(c): c for c in choices}
    return by_key.get(name_key(cell_text(value)))


def _date(value: object) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and value.strip():
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


def billed_amount(issued: Issued, department: str, pool: str, period: str) -> Decimal:
    """What stands billed to a department for a pool in a closed period."""
    dkey, pkey = name_key(department), name_key(pool)
    return sum(
        (
            money_of(r["Amount"], issued.minor_unit)
            for r in issued.standing_lines(period)
            if name_key(str(r["Department"])) == dkey and name_key(str(r["Pool"])) == pkey
        ),
        Decimal(0),
    )


def read_disputes(wb: Workbook, book: Book, issued: Issued) -> tuple[list[Dispute], list[Problem]]:
    """Every dispute as typed, and the problems of the sheet's cells."""
    name = _sheet(wb)
    problems: list[Problem] = []
    days = _dispute_days(book, problems)
    if name is None:
        return [], problems
    grid = wb.read_sheet(name)
    if not grid:
        return [], problems
    header = {name_key(cell_text(v)): i for i, v in enumerate(grid[0]) if not is_blank(v)}
    missing = [c for c in DISPUTE_COLUMNS if name_key(c) not in header]
    if missing:
        problems.append(
            Problem(
                Reason.MISSING_COLUMN,
                Severity.ERROR,
                f"{name}!A1",
                f"the Disputes sheet has no {', '.join(missing)} column(s); its columns are "
                f"{', '.join(DISPUTE_COLUMNS)} (and optionally Raised)",
            )
        )
        return [], problems
    at = {c: header[name_key(c)] for c in DISPUTE_COLUMNS + OPTIONAL_DISPUTE_COLUMNS
          if name_key(c) in header}  # fmt: skip
    seen: dict[str, str] = {}
    out: list[Dispute] = []
    for offset, row in enumerate(grid[1:]):
        excel_row = offset + 2
        if all(is_blank(v) for v in row):
            continue
        cells = {c: f"{name}!{column_letter(i)}{excel_row}" for c, i in at.items()}
        value = {c: row[i] if i < len(row) else None for c, i in at.items()}
        found = _Row(book, issued, days, value, cells, problems).read(seen, excel_row)
        if found is not None:
            out.append(found)
    problems += _credits_beyond_the_bill(out, issued)
    return out, problems


def _credits_beyond_the_bill(disputes: list[Dispute], issued: Issued) -> list[Problem]:
    """Accepted disputes of one bill (department, pool, period) that together credit more
    than it billed: each alone may fit, but a bill is never credited below zero."""
    problems: list[Problem] = []
    taken: dict[tuple[str, str, str], list[Dispute]] = {}
    for d in disputes:
        if d.status != ACCEPTED or d.resolution is None:
            continue
        key = (name_key(d.department), name_key(d.pool), d.period)
        earlier = taken.setdefault(key, [])
        billed = billed_amount(issued, d.department, d.pool, d.period)
        credited = sum((e.resolution for e in earlier), Decimal(0))
        if earlier and credited + d.resolution > billed:
            names = ", ".join(f"{e.dispute} ({e.resolution:,})" for e in earlier)
            problems.append(
                Problem(
                    Reason.BAD_DISPUTE,
                    Severity.ERROR,
                    d.cells["Resolution"],
                    f"dispute {d.dispute} credits {d.resolution:,}, but {names} already "
                    f"credit{'s' if len(earlier) == 1 else ''} {credited:,} of the "
                    f"{billed:,} {d.department} was billed for {d.pool} in {d.period}; "
                    "together they cannot exceed the bill: lower this Resolution to at most "
                    f"{max(billed - credited, Decimal(0)):,}",
                )
            )
            continue
        earlier.append(d)
    return problems



class _Row:
    """One dispute row: its cells typed, each problem at its cell."""

    def __init__(self, book, issued, days, value, cells, problems):
        self.book, self.issued, self.days = book, issued, days
        self.value, self.cells, self.problems = value, cells, problems

    def bad(
        self,
        column: str,
        message: str,
        severity: Severity = Severity.ERROR,
        code: Reason = Reason.BAD_DISPUTE,
    ) -> None:
        self.problems.append(Problem(code, severity, self.cells[column], message))

    def choice(self, column: str, choices: tuple[str, ...]) -> str | None:
        found = _one_of(self.value[column], choices)
        if found is None:
            said = shown(self.value[column])
            self.bad(column, f"{column} must be one of {', '.join(choices)}, got {said}")
        return found

    def number(self, column: str, what: str, above_zero: bool) -> Decimal | None:
        cell = self.value[column]
        if is_blank(cell):
            return None
        number = cell_number(cell)
        if number is None or number < 0 or (above_zero and number == 0):
            least = "above 0" if above_zero else "of 0 or more"
            self.bad(column, f"{column} ({what}) must be a number {least}, got {shown(cell)}")
        return number

    def read(self, seen: dict[str, str], excel_row: int) -> Dispute | None:
        value, book, before = self.value, self.book, len(self.problems)
        dispute = cell_text(value["Dispute"])
        if not dispute:
            self.bad("Dispute", "a dispute needs its Dispute id (the department's reference)")
        elif name_key(dispute) in seen:
            first = seen[name_key(dispute)]
            self.bad("Dispute", f"the Dispute id {dispute} is used twice (first in {first})")
        else:
            seen[name_key(dispute)] = self.cells["Dispute"]
        department = book.department_names.get(name_key(cell_text(value["Department"])))
        if department is None:
            said = shown(value["Department"])
            self.bad("Department", f"{said} is not a department in Departments")
        period = parse_period(value["Period"])
        if period is None:
            self.bad("Period", f"Period must be a month as YYYY-MM, got {shown(value['Period'])}")
        pool = book.pools.get(name_key(cell_text(value["Pool"])))
        if pool is None:
            self.bad("Pool", f"{shown(value['Pool'])} is not a pool in Budget or Actuals")
        reason = self.choice("Reason", REASONS)
        status = self.choice("Status", STATUSES)
        amount = self.number("Amount", "the amount disputed", above_zero=False)
        resolution = self.number("Resolution", "the amount credited", above_zero=True)
        places = book.settings.minor_unit
        if resolution is not None and resolution != resolution.quantize(Decimal(1).scaleb(-places)):
            self.bad("Resolution", f"Resolution {resolution} has more decimals than {places}")
        raised = _date(value.get("Raised"))
        if not is_blank(value.get("Raised")) and raised is None:
            self.bad("Raised", f"Raised must be a date, got {shown(value['Raised'])}")
        if len(self.problems) > before:
            return None
        if not self._credit_ok(dispute, department, pool, period, status, resolution):
            return None
        self._window(dispute, period, raised)
        return Dispute(dispute, department, period, pool, reason, amount, status, resolution,
                       cell_text(value["Note"]), raised, excel_row, self.cells)  # fmt: skip

    def _credit_ok(self, dispute, department, pool, period, status, resolution) -> bool:
        if status != ACCEPTED:
            if resolution is not None:
                self.bad(
                    "Resolution",
                    f"dispute {dispute} is {status}: it credits nothing, so its Resolution "
                    f"{resolution:,} is ignored",
                    Severity.WARNING,
                )
            return True
        if resolution is None:
            self.bad("Resolution", f"dispute {dispute} is Accepted: give the amount credited")
            return False
        if self.issued.get(period) is None:
            self.bad(
                "Period",
                f"dispute {dispute} is about {period}, which is not closed: a dispute credits "
                f"an issued bill (close {period} first)",
            )
            return False
        billed = billed_amount(self.issued, department, pool, period)
        if resolution > billed:
            self.bad(
                "Resolution",
                f"dispute {dispute} credits {resolution:,} but {department} was billed "
                f"{billed:,} for {pool} in {period}; a credit cannot exceed the bill",
            )
            return False
        return True

    def _window(self, dispute: str, period: str, raised: dt.date | None) -> None:
        closed = self.issued.get(period)
        if raised is None or closed is None:
            return
        issued_on = _date(closed.closed_at[:10])
        if issued_on is None or (raised - issued_on).days <= self.days:
            return
        self.bad(
            "Raised",
            f"dispute {dispute} was raised {(raised - issued_on).days} days after {period} was "
            f"issued ({issued_on}), past the {self.days}-day window (Settings DisputeDays)",
            Severity.WARNING,
            Reason.LATE_DISPUTE,
        )
