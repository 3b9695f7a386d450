"""One run of the loop, start to finish, against any `Workbook`.

read -> parse -> check -> order -> execute -> forecast -> tie-outs -> write.

Every stage returns problems as values; this module gathers them and decides
what is written. A clean run replaces every engine-owned sheet at once. A
failed run (any ERROR, including a failed tie-out) writes only `Rule Check` and
`Run Log`, so the user sees what to fix while every other sheet, the previous
run's outputs included, stays as it was; with ``failure_report=False`` (``costloop
run --output``) it writes nothing at all.
"""

from __future__ import annotations

import datetime as dt
import functools
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pandas as pd

from costloop import __version__
from costloop.engine.chargeback.corrections import Recognised

# bills/ re-runs the year through the pipeline, never the chargeback internals.
from costloop.engine.chargeback.execute import bills_by_period as bills_by_period
from costloop.engine.chargeback.execute import execute
from costloop.engine.itfm.compliance import COMPLIANCE_COLUMNS, COMPLIANCE_FORMATS, compliance
from costloop.engine.itfm.forecast import FORECAST_COLUMNS, FORECAST_FORMATS, forecast
from costloop.engine.itfm.variance import VARIANCE_COLUMNS, VARIANCE_FORMATS, variance
from costloop.engine.model.book import OUTPUT_SHEETS, Book
from costloop.engine.model.disputes import Dispute
from costloop.engine.model.issued import Issued
from costloop.engine.model.periods import parse_period
from costloop.engine.model.result import BILL_COLUMNS, JOURNAL_COLUMNS, RECOVERY_COLUMNS, Result
from costloop.engine.pipeline.history import (
    current_user,
    history_entry,
    read_history,
    with_history,
)
from costloop.engine.pipeline.ledger import against_issued, closed_figures
from costloop.engine.pipeline.outputs import (
    PERCENT_FORMAT,
    QUANTITY_FORMAT,
    RATE_FORMAT,
    frame_to_sheet,
    money_format,
)
from costloop.engine.pipeline.report import RunLog, rule_check_sheet
from costloop.engine.pipeline.scenario import output_sheet_names, resolve_scenario
from costloop.engine.read.disputes import disputes_fingerprint, read_disputes
from costloop.engine.read.issued import read_issued
from costloop.engine.read.names import names_from_book
from costloop.engine.read.reader import read_book
from costloop.engine.read.usage_source import attach_usage_source
from costloop.engine.workbook.host import Workbook
from costloop.problems import Problem, Reason, Reported, Severity, has_errors
from costloop.rules import check, order, parse_rules
from costloop.rules.plan import Plan

RULE_CHECK = "Rule Check"
RUN_LOG = "Run Log"


@dataclass
class Outcome(Reported):
    """What a command needs to report back to the user."""

    problems: list[Problem] = field(default_factory=list)
    period: str | None = None
    book: Book | None = None
    plan: Plan | None = None
    result: Result | None = None
    written: list[str] = field(default_factory=list)
    """Sheets written into the workbook (empty when nothing was written)."""
    run_log: RunLog = field(default_factory=RunLog)
    issued: Issued = field(default_factory=Issued)
    """The closed periods (the Issued sheet), as read and checked."""
    corrected: list[str] = field(default_factory=list)
    """Closed periods this run bills corrections for."""
    recognised: list[Recognised] = field(default_factory=list)
    """How far those closed periods' Recovery and Variance figures moved."""
    disputes: list[Dispute] = field(default_factory=list)
    """The Disputes sheet, typed."""
    disputes_fingerprint: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds per stage (read+check, run, forecast, write)."""


def _not_owned(wb: Workbook, names: list[str]) -> list[Problem]:
    """User sheets that carry an output sheet's name: an error, never a casualty."""
    owned = {n.casefold() for n in wb.owned_sheets()}
    wanted = {n.casefold() for n in names}
    problems = []
    for existing in wb.sheet_names():
        folded = existing.casefold()
        if folded in wanted and folded not in owned:
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
    book, problems = read_book(wb, sheets)
    outcome = Outcome(problems=list(problems), book=book)
    if book is None:
        return outcome
    # Settings UsageSource: usage read and summed from CSV/Parquet files beside the workbook.
    path = getattr(wb, "path", None)
    outcome.problems += attach_usage_source(book, Path(path).parent if path else None)
    rules, parse_problems = parse_rules(book.rules)
    outcome.problems += parse_problems
    outcome.problems += check(rules, names_from_book(book), book.rules)
    plan, order_problems = order(rules, book.pools)
    outcome.problems += order_problems
    outcome.plan = plan
    outcome.issued, issued_problems = read_issued(wb, book.settings.minor_unit)
    outcome.problems += issued_problems
    outcome.disputes, dispute_problems = read_disputes(wb, book, outcome.issued)
    outcome.problems += dispute_problems
    outcome.disputes_fingerprint = disputes_fingerprint(wb)
    return outcome


def billed_period(book: Book, requested: str | None) -> str | None:
    """--period, else Settings Period, else the latest period in Usage."""
    if requested:
        return requested
    if book.settings.period:
        return book.settings.period
    periods = sorted(set(book.usage["Period"].unique()))
    return periods[-1] if periods else None


Stamp = tuple[str, str]
"""(run id, ``YYYY-MM-DD HH:MM:SS`` UTC): given only to build a workbook reproducibly (the
demo ships with a closed month); every real run gets a fresh id and the time."""


def new_stamp() -> Stamp:
    return uuid.uuid4().hex[:12], dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def new_run_log(
    wb_label: str,
    book: Book | None,
    period: str | None,
    scenario: str | None = None,
    stamp: Stamp | None = None,
) -> RunLog:
    log = RunLog()
    run_id, run_time = stamp or new_stamp()
    log.add("Run ID", run_id)
    log.add("Run Time (UTC)", run_time)
    log.add("costloop Version", __version__)
    log.add("Workbook", wb_label)
    if book is not None:
        log.add("Input Fingerprint", book.fingerprint)
        log.add("Organization", book.settings.organization)
        log.add("Currency", book.settings.currency)
    log.add("Period", period or "")
    if scenario:
        log.add("Scenario", scenario)
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


def run_log_sheet(wb: Workbook, outcome: Outcome, name: str, command: str = "run"):
    """This run's Key / Value lines, and the history of every run with this one added."""
    log = outcome.run_log
    values = dict(log.entries)
    minor = outcome.book.settings.minor_unit if outcome.book else 2
    history = read_history(wb, name)
    history.append(history_entry(values, command, values.get("Total Billed")))
    rows = [(k, "" if v is None else v) for k, v in log.entries]
    return with_history(rows, history, name, money_format(minor))


def write_failure(
    wb: Workbook,
    outcome: Outcome,
    names: dict[str, str],
    failure_report: bool = True,
    reason: str = "",
) -> None:
    """Rule Check and Run Log only; nothing at all without ``failure_report`` (--output)."""
    finish_log(outcome.run_log, outcome.problems, reason)
    if not failure_report:
        return
    cells = outcome.book.rules if outcome.book else []
    amounts = outcome.result.rule_amounts if outcome.result else None
    sheets = [
        rule_check_sheet(cells, outcome.problems, amounts, name=names[RULE_CHECK]),
        run_log_sheet(wb, outcome, names[RUN_LOG]),
    ]
    if _not_owned(wb, [s.name for s in sheets]):
        return  # the user's own sheet has the name; the messages say so
    wb.replace_sheets(sheets)
    outcome.written = [s.name for s in sheets]


def total_billed(bills) -> Decimal:
    return sum((Decimal(a) for a in bills["Amount"]), Decimal(0))


RUN_STAGES = ("read+check", "run", "forecast", "write")
"""The stages of a run, in order, as `Outcome.timings` and a progress callback name them."""

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: ``stage`` is starting ("" once all are done) and
``done`` of ``total`` stages are finished. The command line draws it; the engine only calls."""


class _Clock:
    """Wall time per stage, for the Run Log and the benchmark; tells ``progress`` as it goes."""

    def __init__(self, timings: dict[str, float], progress: Progress | None = None):
        self.timings = timings
        self.progress = progress
        self._last = time.perf_counter()
        if progress is not None:
            progress(RUN_STAGES[0], 0, len(RUN_STAGES))

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings[stage] = self.timings.get(stage, 0.0) + now - self._last
        self._last = now
        if self.progress is not None and stage in RUN_STAGES:
            done = RUN_STAGES.index(stage) + 1
            following = RUN_STAGES[done] if done < len(RUN_STAGES) else ""
            self.progress(following, done, len(RUN_STAGES))


def _python_strings(command):
    """Run ``command`` with pandas' text columns held as Python strings.

    With pyarrow installed, pandas stores text in Arrow, and the engine, which
    hands names back to Python at every step, spent a quarter of a million-row
    run converting between the two. The same run is the same whether or not
    pyarrow is installed (frames made outside keep their own storage).
    """

    @functools.wraps(command)
    def run(*args, **kwargs):
        with pd.option_context("mode.string_storage", "python"):
            return command(*args, **kwargs)

    return run


@_python_strings
def check_workbook(wb: Workbook, label: str = "") -> Outcome:
    """`costloop check`: every problem in rules and data; writes only `Rule Check`."""
    outcome = prepare(wb)
    outcome.problems += _not_owned(wb, [RULE_CHECK])
    if not any(p.code is Reason.SHEET_NOT_OWNED for p in outcome.problems):
        cells = outcome.book.rules if outcome.book else []
        wb.replace_sheets([rule_check_sheet(cells, outcome.problems)])
        outcome.written = [RULE_CHECK]
    return outcome


def _period_problem(book: Book, period: str | None, requested: str | None) -> Problem | None:
    where = "--period" if requested else book.settings.cells.get("period", "Settings!B1")
    if period is None:
        return Problem(
            Reason.NO_DATA,
            Severity.ERROR,
            "Usage!A2",
            "there is no usage to bill: add Usage rows or set the Settings key Period",
        )
    if parse_period(period) != period:
        return Problem(
            Reason.BAD_PERIOD, Severity.ERROR, where, f"period must be YYYY-MM, got {period!r}"
        )
    if period not in book.periods:
        known = book.periods
        span = f"{known[0]} to {known[-1]}" if known else "none"
        return Problem(
            Reason.BAD_PERIOD,
            Severity.ERROR,
            where,
            f"no Usage, Budget or Actuals rows for period {period} (the workbook has {span})",
        )
    return None


def closed_problem(outcome: Outcome, chosen: str | None, requested: str | None) -> Problem | None:
    """The billed period is closed: a run of it is refused, with how corrections work."""
    closed = outcome.issued.get(chosen) if chosen else None
    if closed is None:
        return None
    book = outcome.book
    where = "--period"
    if not requested and book is not None:
        where = book.settings.cells.get("period", where)
    later = [p for p in (book.periods if book else []) if p > outcome.issued.closed[-1]]
    then = f"run the next open period ({later[0]})" if later else "run the next open period"
    return Problem(
        Reason.PERIOD_CLOSED,
        Severity.ERROR,
        where,
        f"period {chosen} is closed (issued {closed.closed_at} UTC, run {closed.run_id}): its "
        f"bills are never rewritten, so nothing was changed. To correct it, change its inputs "
        f"and {then}: it bills a Reversal of each changed line and the Correction, each with "
        f"Charge Period {chosen} (docs/audit.md)",
    )


def log_ledger(log: RunLog, outcome: Outcome) -> None:
    """What the run stood on: the closed periods and the seal of the last one."""
    issued = outcome.issued
    log.add("Closed Periods", ", ".join(issued.closed))
    log.add("Issued Hash", issued.last_hash)
    log.add("Disputes Fingerprint", outcome.disputes_fingerprint)
    log.add("Open Disputes", sum(1 for d in outcome.disputes if d.status == "Open"))
    log.add("Corrected Periods", ", ".join(outcome.corrected))
    if outcome.result is not None:
        kinds = outcome.result.bills["Line Type"].value_counts()
        for kind in ("Reversal", "Correction", "Credit memo"):
            log.add(f"{kind} Lines", int(kinds.get(kind, 0)))


def _output_sheets(book: Book, result, extra: dict[str, tuple], names: dict[str, str]):
    money = money_format(book.settings.minor_unit)
    sheets = [
        frame_to_sheet(
            names["Bills"],
            result.bills,
            BILL_COLUMNS,
            {"Quantity": QUANTITY_FORMAT, "Rate": RATE_FORMAT, "Amount": money},
        ),
        frame_to_sheet(
            names["Journal"], result.journal, JOURNAL_COLUMNS, {"Debit": money, "Credit": money}
        ),
        frame_to_sheet(
            names["Recovery"],
            result.recovery,
            RECOVERY_COLUMNS,
            {c: money for c in ("Cost", "Recovered", "OverUnder", "Unallocated")}
            | {"RecoveryPct": PERCENT_FORMAT},
        ),
    ]
    for base, (frame, columns, formats) in extra.items():
        sheets.append(frame_to_sheet(names[base], frame, columns, formats))
    return sheets


def bill_period(outcome: Outcome, chosen: str, clock: _Clock) -> dict[str, tuple]:
    """Execute, correct closed periods, forecast, variance, compliance; log the totals.

    The outputs go into ``outcome`` (result, problems, Run Log); the ITFM sheets come
    back as {sheet: (frame, columns, formats)}. `costloop close` computes the same.
    """
    book = outcome.book
    plan = outcome.plan
    result = execute(book, plan, chosen)
    outcome.result = result
    corrections = against_issued(book, plan, result, outcome.issued, outcome.disputes)
    outcome.corrected = corrections.periods
    outcome.recognised = corrections.recognised
    outcome.problems += result.problems
    clock.lap("run")
    forecast_frame, problems = forecast(
        book,
        plan.forecasts,
        plan.charges,
        result.recovery,
        chosen,
        bills=result.bills,
        flows=result.pool_flows,
        year_charges=result.year_charges,
    )
    outcome.problems += problems
    variance_frame, problems = variance(
        book, chosen, closed_figures(book, chosen, outcome.issued, corrections.recognised)
    )
    outcome.problems += problems
    compliance_frame, problems = compliance(
        book, result.recovery, result.year_charges, chosen, plan.charges
    )
    outcome.problems += problems
    clock.lap("forecast")

    for tieout in result.tieouts:
        outcome.run_log.add(
            f"Tie-out: {tieout.name}", ("PASS " if tieout.passed else "FAIL ") + tieout.detail
        )
    outcome.run_log.add("Bill Lines", len(result.bills))
    outcome.run_log.add("Departments Billed", int(result.bills["Department"].nunique()))
    outcome.run_log.add("Total Billed", total_billed(result.bills))
    outcome.run_log.add("Journal Lines", len(result.journal))
    log_ledger(outcome.run_log, outcome)
    return {
        "Forecast": (forecast_frame, FORECAST_COLUMNS, FORECAST_FORMATS),
        "Variance": (variance_frame, VARIANCE_COLUMNS, VARIANCE_FORMATS),
        "Compliance": (compliance_frame, COMPLIANCE_COLUMNS, COMPLIANCE_FORMATS),
    }


@_python_strings
def run_workbook(
    wb: Workbook,
    label: str = "",
    period: str | None = None,
    scenario: str | None = None,
    failure_report: bool = True,
    progress: Progress | None = None,
    stamp: Stamp | None = None,
) -> Outcome:
    """`costloop run`: the whole loop; every owned sheet on success, Rule Check + Run Log if not.

    ``failure_report=False`` writes nothing when the run fails (``--output``: a
    failed run leaves no file behind) instead of `Rule Check` and `Run Log`.
    """
    timings: dict[str, float] = {}
    clock = _Clock(timings, progress)
    resolved, scenario_problems = resolve_scenario(wb.sheet_names(), scenario)
    if has_errors(scenario_problems):
        # Without a valid scenario there is no sheet to report into: say it on the console.
        return Outcome(problems=scenario_problems, timings=timings)
    inputs = dict(resolved.inputs) if resolved else {}
    # Outputs take the scenario's spelling from its sheets (Budget@cloud10 -> Bills@cloud10),
    # whatever case --scenario was typed in.
    scenario = resolved.name if resolved else None
    names, name_problems = output_sheet_names(list(OUTPUT_SHEETS), scenario)
    if has_errors(name_problems):
        return Outcome(problems=scenario_problems + name_problems, timings=timings)

    outcome = prepare(wb, inputs)
    outcome.timings = timings
    clock.lap("read+check")
    outcome.problems += scenario_problems + _not_owned(wb, list(names.values()))
    book = outcome.book
    chosen = billed_period(book, period) if book else period
    outcome.period = chosen
    outcome.run_log = new_run_log(label, book, chosen, scenario, stamp)
    outcome.run_log.add("Command", "run")
    outcome.run_log.add("User", current_user())
    closed = closed_problem(outcome, chosen, period)
    if closed is not None:
        # Never rewritten: not even Rule Check or Run Log change (the file stays as it was).
        outcome.problems.append(closed)
        return outcome
    if book is not None and not has_errors(outcome.problems):
        bad_period = _period_problem(book, chosen, period)
        if bad_period:
            outcome.problems.append(bad_period)
    if has_errors(outcome.problems):
        write_failure(wb, outcome, names, failure_report)
        return outcome

    extra = bill_period(outcome, chosen, clock)
    result = outcome.result
    # A failed tie-out is already an ERROR problem (engine/chargeback/tieouts.py).
    failed = [t for t in result.tieouts if not t.passed]
    if has_errors(outcome.problems):
        write_failure(wb, outcome, names, failure_report, "a tie-out failed" if failed else "")
        return outcome

    finish_log(outcome.run_log, outcome.problems)
    sheets = _output_sheets(book, result, extra, names)
    sheets.append(
        rule_check_sheet(
            book.rules,
            outcome.problems,
            result.rule_amounts,
            money_format(book.settings.minor_unit),
            names[RULE_CHECK],
        )
    )
    sheets.append(run_log_sheet(wb, outcome, names[RUN_LOG]))
    wb.replace_sheets(sheets)
    outcome.written = [s.name for s in sheets]
    clock.lap("write")
    return outcome
