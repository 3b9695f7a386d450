"""What the bills are made from: the main workbook after `costloop run`.

Bills re-run the engine in memory (nothing is written to the workbook) rather
than parse the written `Bills` sheet, because a department's bill needs more
than that sheet holds: its charges in every month of the fiscal year (for the
chart, the change against last period and the year to date), the rules behind
each line and its usage rows. The re-run is tied to the run finance saw:

- the `Run Log` must say the run succeeded; its Run ID and Period are the bill's;
- its Input Fingerprint must match the inputs now, so bills never show numbers
  from inputs edited after the run (run `costloop run` again to accept them);
- every department's total in the re-run must equal its total in the written
  `Bills` sheet, to the cent.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pandas as pd

from costloop.engine.model.book import Book
from costloop.engine.model.disputes import Dispute
from costloop.engine.model.issued import Issued
from costloop.engine.model.periods import add_months, fiscal_periods_to_date
from costloop.engine.model.sheets import BILLS, RUN_LOG, RunLogKey
from costloop.engine.pipeline.ledger import bills_as_issued
from costloop.engine.pipeline.run import bills_by_period, prepare
from costloop.engine.xlsx.file_workbook import FileWorkbook
from costloop.problems import Problem, Reason, Severity, has_errors
from costloop.rules.ast import Statement, name_key
from costloop.rules.plan import Plan


@dataclass(frozen=True)
class RunStamp:
    """The run the bills belong to, as its `Run Log` recorded it."""

    run_id: str
    period: str
    run_time: str
    """``YYYY-MM-DD HH:MM:SS`` in UTC."""
    fingerprint: str


@dataclass
class BilledYear:
    """The billed period's bill lines and every earlier month's of the fiscal year."""

    book: Book
    stamp: RunStamp
    period: str
    by_period: dict[str, pd.DataFrame]
    """Period -> that period's Bills frame (fiscal year to date, and the month before it)."""
    rules: dict[str, Statement]
    """Rule ID -> its parsed statement (for a bill line's lineage)."""
    disputes: list[Dispute] = field(default_factory=list)
    """The Disputes sheet (an open dispute is shown on its department's bill)."""
    issued: Issued = field(default_factory=Issued)
    """The closed periods (the Issued sheet): their bills are shown as they were issued."""
    plan: Plan | None = None
    """The rules in run order (for a re-run at another cost basis: the department's budget)."""

    @property
    def bills(self) -> pd.DataFrame:
        return self.by_period[self.period]


def _problem(where: str, message: str, code: Reason = Reason.NO_DATA) -> Problem:
    return Problem(code, Severity.ERROR, where, message)


def read_run_log(wb: FileWorkbook) -> tuple[RunStamp | None, list[Problem]]:
    """The last run's stamp; a problem if there was none or it failed."""
    if RUN_LOG not in wb.sheet_names():
        return None, [
            _problem(
                f"{RUN_LOG}!A1",
                "the workbook has not been run yet: run `costloop run BOOK` first, then make "
                "the bills from its result",
            )
        ]
    values: dict[str, str] = {}
    for row in wb.read_sheet(RUN_LOG)[1:]:
        if len(row) >= 2 and row[0] is not None:
            values.setdefault(str(row[0]).strip(), "" if row[1] is None else str(row[1]).strip())
    if values.get(RunLogKey.STATUS) != "OK":
        why = values.get(RunLogKey.FAILURE) or "its Status is not OK"
        return None, [
            _problem(
                f"{RUN_LOG}!B1",
                f"the last run failed ({why}); fix what Rule Check lists and run "
                "`costloop run BOOK` again before making bills",
            )
        ]
    needed = (RunLogKey.RUN_ID, RunLogKey.PERIOD, RunLogKey.FINGERPRINT)
    missing = [k for k in needed if not values.get(k)]
    if missing:
        return None, [
            _problem(
                f"{RUN_LOG}!A1",
                f"the Run Log has no {', '.join(missing)}; run `costloop run BOOK` again",
            )
        ]
    stamp = RunStamp(
        run_id=values[RunLogKey.RUN_ID],
        period=values[RunLogKey.PERIOD],
        run_time=values.get(RunLogKey.RUN_TIME, ""),
        fingerprint=values[RunLogKey.FINGERPRINT],
    )
    return stamp, []


def _money(value: object) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def written_totals(wb: FileWorkbook) -> tuple[dict[str, Decimal] | None, Problem | None]:
    """Department key -> total of the written `Bills` sheet, or why it cannot be read."""
    if BILLS not in wb.sheet_names():
        return None, _problem(
            f"{BILLS}!A1", "there is no Bills sheet; run `costloop run BOOK` first"
        )
    grid = wb.read_sheet(BILLS)
    if not grid:
        return {}, None
    header = [str(h).strip() if h is not None else "" for h in grid[0]]
    missing = [c for c in ("Department", "Amount") if c not in header]
    if missing:
        return None, _problem(
            f"{BILLS}!A1",
            f"the Bills sheet has no {' or '.join(missing)} column in row 1; run "
            "`costloop run BOOK` again to rewrite it, then make the bills",
        )
    dep, amount = header.index("Department"), header.index("Amount")
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for row in grid[1:]:
        if len(row) > max(dep, amount) and row[dep] is not None:
            totals[name_key(str(row[dep]))] += _money(row[amount]) or Decimal(0)
    return dict(totals), None


def department_totals(bills: pd.DataFrame) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for code, amount in zip(bills["Department"], bills["Amount"], strict=True):
        totals[name_key(code)] += Decimal(amount)
    return dict(totals)


def _compare(rerun: dict[str, Decimal], written: dict[str, Decimal]) -> list[Problem]:
    differ = sorted(k for k in rerun.keys() | written.keys() if rerun.get(k) != written.get(k))
    if not differ:
        return []
    return [
        _problem(
            f"{BILLS}!A1",
            f"the Bills sheet does not match the workbook's inputs for {len(differ)} "
            "department(s); run `costloop run BOOK` again, then make the bills",
            Reason.TIE_OUT,
        )
    ]


def load_billed_year(path: Path) -> tuple[BilledYear | None, list[Problem]]:
    """Read the workbook and its last run, and re-run the fiscal year to date in memory."""
    wb = FileWorkbook(path)
    outcome = prepare(wb)
    # Warnings were shown when the workbook was run; bills repeat only what stops them.
    problems = [p for p in outcome.problems if p.is_error]
    if has_errors(problems) or outcome.book is None or outcome.plan is None:
        problems.append(
            _problem(
                "Rule Check!A1",
                "the workbook has errors, so no bills were made; run `costloop check BOOK` "
                "and fix what it lists",
            )
        )
        return None, problems
    book, plan = outcome.book, outcome.plan
    stamp, log_problems = read_run_log(wb)
    if stamp is None:
        return None, problems + log_problems
    if stamp.fingerprint != book.fingerprint:
        return None, [
            *problems,
            _problem(
                f"{RUN_LOG}!B1",
                f"the inputs changed since run {stamp.run_id} wrote the Bills sheet, so bills "
                "made now would not match it; run `costloop run BOOK` again first",
            ),
        ]

    period = stamp.period
    periods = fiscal_periods_to_date(period, book.settings.fiscal_year_start)
    before = add_months(periods[0], -1)
    if before in book.periods:
        periods = [before, *periods]  # last period's change for the year's first month
    # Closed months as issued, the billed month with its corrections and credit memos.
    by_period = bills_as_issued(
        book, plan, outcome.issued, outcome.disputes, bills_by_period(book, plan, periods), period
    )

    written, unreadable = written_totals(wb)
    if written is None:
        return None, [*problems, unreadable]
    mismatch = _compare(department_totals(by_period[period]), written)
    if mismatch:
        return None, problems + mismatch

    rules: dict[str, Statement] = {}
    for step in plan.allocations:
        for rule in step.rules:
            rules[rule.rule_id] = rule
    for rule in plan.charges:
        rules[rule.rule_id] = rule
    year = BilledYear(book, stamp, period, by_period, rules, outcome.disputes, outcome.issued, plan)
    return year, problems
