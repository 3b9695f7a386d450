"""One run of the loop, start to finish, against any `Workbook`.

read -> parse -> check -> order -> execute -> forecast -> tie-outs -> write.

Every stage returns problems as values; this module gathers them and decides
what is written. A clean run replaces every engine-owned sheet at once. A
failed run (any ERROR, including a failed tie-out) writes only `Rule Check` and
`Run Log`, so the user sees what to fix while every other sheet, the previous
run's outputs included, stays as it was; with ``output`` it writes no file.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from costloop import __version__
from costloop.engine.book import Book
from costloop.engine.names import names_from_book
from costloop.engine.read import read_book
from costloop.engine.report import RunLog, rule_check_sheet
from costloop.engine.workbook import OutputSheet, Workbook
from costloop.problems import Problem, Reason, Severity, has_errors
from costloop.rules import check, order, parse_rules
from costloop.rules.plan import Plan

RULE_CHECK = "Rule Check"
RUN_LOG = "Run Log"


@dataclass
class Outcome:
    """What a command needs to report back to the user."""

    ok: bool
    problems: list[Problem] = field(default_factory=list)
    period: str | None = None
    book: Book | None = None
    plan: Plan | None = None
    result: object | None = None
    written: list[str] = field(default_factory=list)
    """Sheets written into the workbook (empty when nothing was written)."""
    run_log: RunLog = field(default_factory=RunLog)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.is_error]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if not p.is_error]


def _not_owned(wb: Workbook, names: list[str]) -> list[Problem]:
    """User sheets that carry an output sheet's name: an error, never a casualty."""
    owned = {n.casefold() for n in wb.owned_sheets()}
    problems = []
    for existing in wb.sheet_names():
        folded = existing.casefold()
        if folded in {n.casefold() for n in names} and folded not in owned:
            problems.append(
                Problem(
                    Reason.SHEET_NOT_OWNED,
                    Severity.ERROR,
                    f"{existing}!A1",
                    f"the sheet {existing!r} was not made by costloop, which needs that name "
                    f"for its output; rename your sheet (costloop never overwrites it)",
                )
            )
    return problems


def prepare(wb: Workbook, sheets: dict[str, str] | None = None) -> Outcome:
    """Read, parse, check and order: everything short of computing numbers."""
    book, problems = read_book(wb, sheets) if sheets else read_book(wb)
    outcome = Outcome(ok=False, problems=list(problems), book=book)
    if book is None:
        return outcome
    rules, parse_problems = parse_rules(book.rules)
    outcome.problems += parse_problems
    outcome.problems += check(rules, names_from_book(book), book.rules)
    plan, order_problems = order(rules, book.pools)
    outcome.problems += order_problems
    outcome.plan = plan
    outcome.ok = not has_errors(outcome.problems)
    return outcome


def billed_period(book: Book, requested: str | None) -> str | None:
    """--period, else Settings Period, else the latest period in Usage."""
    if requested:
        return requested
    if book.settings.period:
        return book.settings.period
    periods = sorted(set(book.usage["Period"]))
    return periods[-1] if periods else None


def new_run_log(wb_label: str, book: Book | None, period: str | None) -> RunLog:
    log = RunLog()
    log.add("Run ID", uuid.uuid4().hex[:12])
    log.add("Run Time (UTC)", dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S"))
    log.add("costloop Version", __version__)
    log.add("Workbook", wb_label)
    if book is not None:
        log.add("Input Fingerprint", book.fingerprint)
        log.add("Organization", book.settings.organization)
        log.add("Currency", book.settings.currency)
    log.add("Period", period or "")
    if book is not None:
        for sheet, frame in (
            ("Departments", book.departments),
            ("Budget", book.budget),
            ("Actuals", book.actuals),
            ("Usage", book.usage),
            ("Rates", book.rates),
        ):
            log.add(f"Rows {sheet}", len(frame))
        enabled = sum(1 for c in book.rules if c.enabled)
        log.add("Rules Enabled", enabled)
        log.add("Rules Disabled", len(book.rules) - enabled)
    return log


def finish_log(log: RunLog, problems: list[Problem], reason: str = "") -> None:
    errors = [p for p in problems if p.is_error]
    log.add("Errors", len(errors))
    log.add("Warnings", len(problems) - len(errors))
    log.add("Status", "FAILED" if errors else "OK")
    if errors:
        log.add("Failure", reason or f"{len(errors)} error(s); first: {errors[0].headline()}")


def write_failure(
    wb: Workbook,
    outcome: Outcome,
    names: dict[str, str],
    output: Path | None,
    reason: str = "",
) -> None:
    """Rule Check and Run Log only; nothing at all with --output (SPEC §5)."""
    finish_log(outcome.run_log, outcome.problems, reason)
    if output is not None:
        return
    cells = outcome.book.rules if outcome.book else []
    amounts = getattr(outcome.result, "rule_amounts", None)
    sheets = [
        rule_check_sheet(cells, outcome.problems, amounts, name=names[RULE_CHECK]),
        outcome.run_log.sheet(names[RUN_LOG]),
    ]
    if _not_owned(wb, [s.name for s in sheets]):
        return  # the user's own sheet has the name; the messages say so
    wb.replace_sheets(sheets)
    outcome.written = [s.name for s in sheets]


def total_billed(bills) -> Decimal:
    return sum((Decimal(a) for a in bills["Amount"]), Decimal(0))


def write_success(wb: Workbook, sheets: list[OutputSheet], output: Path | None) -> list[str]:
    wb.replace_sheets(sheets, output)
    return [s.name for s in sheets]
