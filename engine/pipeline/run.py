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

import pandas as pd

from costloop import __version__
from costloop.engine.chargeback.corrections import Recognised

# bills/ re-runs the year through the pipeline, never the chargeback internals.
from costloop.engine.chargeback.execute import bills_by_period as bills_by_period
from costloop.engine.chargeback.execute import execute
from costloop.engine.chargeback.tieouts import TIE_OUTS
from costloop.engine.chargeback.unbilled import no_usage_in_period, unbilled_usage
from costloop.engine.model.book import Book
from costloop.engine.model.disputes import Dispute
from costloop.engine.model.formats import money_format, row_formats, sheet_formats
from costloop.engine.model.issued import Issued
from costloop.engine.model.periods import parse_period
from costloop.engine.model.result import Result
from costloop.engine.model.sheets import (
    ACTUALS,
    BILL_COLUMNS,
    BILLS,
    BUDGET,
    DEPARTMENTS,
    JOURNAL,
    JOURNAL_COLUMNS,
    OUTPUT_SHEETS,
    RATES,
    RECOVERY,
    RECOVERY_COLUMNS,
    RULE_CHECK,
    RUN_LOG,
    USAGE,
    RunLogKey,
)
from costloop.engine.pipeline.history import (
    current_user,
    history_entry,
    read_history,
    with_history,
)
from costloop.engine.pipeline.itfm_sheets import ItfmSheets, itfm_sheets
from costloop.engine.pipeline.ledger import against_issued, closed_figures
from costloop.engine.pipeline.outputs import frame_to_sheet
from costloop.engine.pipeline.report import RunLog, rule_check_sheet
from costloop.engine.pipeline.scenario import output_sheet_names, resolve_scenario
from costloop.engine.read.disputes import disputes_fingerprint, read_disputes
from costloop.engine.read.issued import read_issued
from costloop.engine.read.names import names_from_book
from costloop.engine.read.reader import read_book
from costloop.engine.workbook.host import Workbook
from costloop.problems import Problem, Reason, Reported, Severity, has_errors
from costloop.rules import check, order, parse_rules, set_aside
from costloop.rules.plan import Plan


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
    not_written: str = ""
    """Why a check wrote nothing though it could report (the workbook is open in Excel)."""
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
    rules, parse_problems = parse_rules(book.rules)
    outcome.problems += parse_problems
    names = names_from_book(book)
    outcome.problems += check(rules, names, book.rules)
    # A FORECAST rule with a mistake in it is a warning and is not run: the Forecast
    # sheet marks it NOT COMPUTED, and the bills go out (docs/contract.md#errors).
    plan, order_problems = order(rules, book.pools, set_aside(rules, names))
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


def period_origin(book: Book, requested: str | None) -> tuple[str, str]:
    """Where the billed period came from, as (cell for a message, words): see `billed_period`."""
    if requested:
        return "--period", "from --period"
    if book.settings.period:
        cell = book.settings.cells.get("period", "Settings")
        return cell, f"from Settings Period, {cell}"
    periods = book.usage["Period"].to_numpy(dtype=object)
    latest = max(pd.unique(periods).tolist()) if len(periods) else None
    rows = book.usage["_row"].to_numpy()[periods == latest] if latest else []
    if not len(rows) or not rows.max():
        return "Usage", "the latest period in Usage"
    cell = book.cell("Usage", "Period", int(rows.max()))
    return cell, f"the latest period in Usage, {cell}"


def usage_problems(
    book: Book, plan: Plan, period: str | None, requested: str | None
) -> list[Problem]:
    """Usage the rules leave unbilled, or a billed period with none (engine/chargeback/unbilled)."""
    if period is None or parse_period(period) != period:
        return []  # `_period_problem` says what is wrong with the period
    missing = no_usage_in_period(book, plan, period, lambda: period_origin(book, requested))
    if missing is not None:
        return [missing]
    return unbilled_usage(book, plan, period)


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
    key = RunLogKey
    log = RunLog()
    run_id, run_time = stamp or new_stamp()
    log.add(key.RUN_ID, run_id)
    log.add(key.RUN_TIME, run_time)
    log.add(key.VERSION, __version__)
    log.add(key.WORKBOOK, wb_label)
    if book is not None:
        log.add(key.FINGERPRINT, book.fingerprint)
        log.add(key.ORGANIZATION, book.settings.organization)
        log.add(key.CURRENCY, book.settings.currency)
    log.add(key.PERIOD, period or "")
    if scenario:
        log.add(key.SCENARIO, scenario)
    if book is not None:
        for sheet, frame in (
            (DEPARTMENTS, book.departments),
            (BUDGET, book.budget),
            (ACTUALS, book.actuals),
            (USAGE, book.usage),
            (RATES, book.rates),
        ):
            log.add(f"{key.ROWS}{sheet}", len(frame))
        enabled = sum(1 for c in book.rules if c.enabled)
        log.add(key.RULES_ENABLED, enabled)
        log.add(key.RULES_DISABLED, len(book.rules) - enabled)
    return log


def log_tieouts(log: RunLog, result: Result | None) -> None:
    """A `Tie-out: <name>` line per check: PASS or FAIL with its figures, or NOT RUN.

    A run that stopped at an error before its bills were checked says NOT RUN,
    never PASS: a pass would vouch for bills that were never issued.
    """
    ran = {t.name: t for t in result.tieouts} if result is not None else {}
    for name in TIE_OUTS:
        tieout = ran.get(name)
        if tieout is None:
            value = "NOT RUN: the run stopped at an error before the bills were checked"
        else:
            value = ("PASS " if tieout.passed else "FAIL ") + tieout.detail
        log.add(f"{RunLogKey.TIE_OUT}{name}", value)


def finish_log(log: RunLog, problems: list[Problem], reason: str = "") -> None:
    errors = [p for p in problems if p.is_error]
    log.add(RunLogKey.ERRORS, len(errors))
    log.add(RunLogKey.WARNINGS, len(problems) - len(errors))
    log.add(RunLogKey.STATUS, "FAILED" if errors else "OK")
    if errors:
        log.add(
            RunLogKey.FAILURE, reason or f"{len(errors)} error(s); first: {errors[0].headline()}"
        )


def _money_format(book: Book | None) -> str:
    """The workbook's money format; cents when the Book could not be read (no amounts then)."""
    return money_format(book.settings.minor_unit if book is not None else 2)


def run_log_sheet(wb: Workbook, outcome: Outcome, name: str, command: str = "run"):
    """This run's Key / Value lines, and the history of every run with this one added."""
    log = outcome.run_log
    values = dict(log.entries)
    history = read_history(wb, name)
    history.append(history_entry(values, command, values.get(RunLogKey.TOTAL_BILLED)))
    rows = [(k, "" if v is None else v) for k, v in log.entries]
    return with_history(rows, history, name, _money_format(outcome.book))


def write_failure(
    wb: Workbook,
    outcome: Outcome,
    names: dict[str, str],
    failure_report: bool = True,
    reason: str = "",
) -> None:
    """Rule Check and Run Log only; nothing at all without ``failure_report`` (--output).

    The Run Log of a failed run has no bill lines, departments or Total Billed:
    nothing was billed.
    """
    log_tieouts(outcome.run_log, outcome.result)
    finish_log(outcome.run_log, outcome.problems, reason)
    if not failure_report:
        return
    cells = outcome.book.rules if outcome.book else []
    amounts = outcome.result.rule_amounts if outcome.result else None
    sheets = [
        rule_check_sheet(
            cells,
            outcome.problems,
            amounts,
            money_format=_money_format(outcome.book),
            name=names[RULE_CHECK],
        ),
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
def check_workbook(wb: Workbook, label: str = "", write: bool = True) -> Outcome:
    """`costloop check`: every problem in rules and data; writes only `Rule Check`.

    ``write=False`` reports without writing (a workbook open in Excel or
    read-only is still checked: engine/pipeline/commands.py).
    """
    outcome = prepare(wb)
    if outcome.book is not None and not has_errors(outcome.problems):
        period = billed_period(outcome.book, None)
        outcome.problems += usage_problems(outcome.book, outcome.plan, period, None)
    outcome.problems += _not_owned(wb, [RULE_CHECK])
    if write and not any(p.code is Reason.SHEET_NOT_OWNED for p in outcome.problems):
        cells = outcome.book.rules if outcome.book else []
        sheet = rule_check_sheet(cells, outcome.problems, money_format=_money_format(outcome.book))
        wb.replace_sheets([sheet])
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


def _output_sheets(book: Book, frames: dict[str, tuple], names: dict[str, str]):
    """Each output frame as its sheet, in the workbook's currency's formats."""
    formats = sheet_formats(book.settings.minor_unit)
    by_row = row_formats(book.settings.minor_unit)
    return [
        frame_to_sheet(names[base], frame, columns, formats[base], by_row.get(base))
        for base, (frame, columns) in frames.items()
    ]


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
    target, refused = _run_target(wb, scenario)
    if refused is not None:
        refused.timings = timings
        return refused

    outcome = prepare(wb, target.inputs)
    outcome.timings = timings
    clock.lap("read+check")
    outcome.problems += target.problems + _not_owned(wb, list(target.names.values()))
    book = outcome.book
    chosen = billed_period(book, period) if book else period
    outcome.period = chosen
    outcome.run_log = new_run_log(label, book, chosen, target.scenario, stamp)
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
        else:
            outcome.problems += usage_problems(book, outcome.plan, chosen, period)
    if has_errors(outcome.problems):
        write_failure(wb, outcome, target.names, failure_report)
        return outcome

    itfm = bill_period(outcome, chosen, target.names, clock)
    result = outcome.result

    if has_errors(outcome.problems):
        # A failed tie-out is already an ERROR problem (engine/chargeback/tieouts.py).
        failed = [t for t in result.tieouts if not t.passed]
        reason = "a tie-out failed" if failed else ""
        write_failure(wb, outcome, target.names, failure_report, reason)
        return outcome

    _log_result(outcome.run_log, result)
    log_ledger(outcome.run_log, outcome)
    finish_log(outcome.run_log, outcome.problems)
    _write_outputs(wb, outcome, itfm.sheets, target.names)
    clock.lap("write")
    return outcome


def bill_period(
    outcome: Outcome, chosen: str, names: dict[str, str], clock: _Clock | None = None
) -> ItfmSheets:
    """Execute the billed period, bill the corrections and credits of what was issued, then
    the ITFM sheets; the result and problems go into ``outcome``. `costloop close` does the
    same to issue exactly what the reviewed run billed."""
    book = outcome.book
    result = execute(book, outcome.plan, chosen, names)
    outcome.result = result
    corrections = against_issued(
        book, outcome.plan, result, outcome.issued, outcome.disputes, names
    )
    outcome.corrected = corrections.periods
    outcome.recognised = corrections.recognised
    outcome.problems += result.problems
    if clock is not None:
        clock.lap("run")
    # Forecast, Variance and Compliance only warn: they never hold back the bills.
    closed = closed_figures(book, chosen, outcome.issued, corrections.recognised)
    itfm = itfm_sheets(book, outcome.plan, result, chosen, names, closed)
    outcome.problems += itfm.problems
    if clock is not None:
        clock.lap("forecast")
    return itfm


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


@dataclass(frozen=True)
class _RunTarget:
    """Which input sheets a run reads and which output sheets it writes (a scenario's own)."""

    inputs: dict[str, str]
    """Logical input sheet -> the sheet to read instead (``Budget`` -> ``Budget@cloud10``)."""
    names: dict[str, str]
    """Output sheet -> the name it is written under (``Bills`` -> ``Bills@cloud10``)."""
    scenario: str | None
    problems: list[Problem]


def _run_target(wb: Workbook, scenario: str | None) -> tuple[_RunTarget, Outcome | None]:
    """The sheets a run reads and writes; an Outcome instead when the scenario is unusable."""
    resolved, scenario_problems = resolve_scenario(wb.sheet_names(), scenario)
    if has_errors(scenario_problems):
        # Without a valid scenario there is no sheet to report into: say it on the console.
        return _RunTarget({}, {}, None, []), Outcome(problems=scenario_problems)
    inputs = dict(resolved.inputs) if resolved else {}
    # Outputs take the scenario's spelling from its sheets (Budget@cloud10 -> Bills@cloud10),
    # whatever case --scenario was typed in.
    scenario = resolved.name if resolved else None
    names, name_problems = output_sheet_names(list(OUTPUT_SHEETS), scenario)
    if has_errors(name_problems):
        return _RunTarget({}, {}, None, []), Outcome(problems=scenario_problems + name_problems)
    return _RunTarget(inputs, names, scenario, scenario_problems), None


def _log_result(log: RunLog, result: Result) -> None:
    """The tie-outs and totals of a clean run, in the Run Log (a failed run has no totals:
    `write_failure`)."""
    key = RunLogKey
    log_tieouts(log, result)
    log.add(key.BILL_LINES, len(result.bills))
    log.add(key.DEPARTMENTS_BILLED, int(result.bills["Department"].nunique()))
    log.add(key.TOTAL_BILLED, total_billed(result.bills))
    log.add(key.JOURNAL_LINES, len(result.journal))


def _write_outputs(
    wb: Workbook, outcome: Outcome, itfm_frames: dict[str, tuple], names: dict[str, str]
) -> None:
    """A clean run: every owned sheet at once, Rule Check and Run Log last."""
    book, result = outcome.book, outcome.result
    frames = {
        BILLS: (result.bills, BILL_COLUMNS),
        JOURNAL: (result.journal, JOURNAL_COLUMNS),
        RECOVERY: (result.recovery, RECOVERY_COLUMNS),
        **itfm_frames,
    }
    sheets = _output_sheets(book, frames, names)
    sheets.append(
        rule_check_sheet(
            book.rules,
            outcome.problems,
            result.rule_amounts,
            money_format=_money_format(book),
            name=names[RULE_CHECK],
        )
    )
    sheets.append(run_log_sheet(wb, outcome, names[RUN_LOG]))
    wb.replace_sheets(sheets)
    outcome.written = [s.name for s in sheets]
