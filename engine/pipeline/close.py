"""`costloop close BOOK --period P`: record a clean run's bills as issued (docs/audit.md).

Closing is the step after a clean `costloop run` of P that finance has reviewed (and
usually emailed). It computes P again from the same inputs — the Run Log's input
fingerprint and Issued hash must still be those of that run, so what is recorded is
what was reviewed — and appends to the owned sheet `Issued` every bill line and
journal line of P, each pool's cost and recovery, each pool's actuals and each
metric's usage (with any corrections of earlier periods P recognised), sealed with
a hash chained to the previous closed period (`costloop.engine.model.issued`).

Refused, with nothing changed: a workbook with errors, P already closed, P earlier
than the last closed period or with an open period before it, no clean run of P as
the last run, inputs changed since that run, or a scenario run.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from costloop.engine.model.book import Book
from costloop.engine.model.formats import QUANTITY_FORMAT, money_format, rate_format
from costloop.engine.model.issued import (
    ACTUAL,
    BILL,
    CHARGE,
    ISSUED_COLUMNS,
    ISSUED_SHEET,
    JOURNAL,
    RECOVERY,
    USAGE,
    sealed_rows,
)
from costloop.engine.model.money import exact_sums
from costloop.engine.model.periods import parse_period
from costloop.engine.model.sheets import BILL_COLUMNS, OUTPUT_SHEETS
from costloop.engine.pipeline.history import history_entry, read_history, with_history
from costloop.engine.pipeline.run import (
    RUN_LOG,
    Outcome,
    Stamp,
    _log_result,
    _not_owned,
    _python_strings,
    bill_period,
    finish_log,
    log_ledger,
    new_run_log,
    new_stamp,
    prepare,
)
from costloop.engine.workbook.host import OutputSheet, Workbook
from costloop.problems import Problem, Reason, Severity, has_errors
from costloop.rules.ast import name_key

CLOSE_HOW = "docs/audit.md#closing-a-period"


def _refused(outcome: Outcome, where: str, message: str) -> Outcome:
    outcome.problems.append(Problem(Reason.CLOSE_REFUSED, Severity.ERROR, where, message))
    return outcome


def log_lines(wb: Workbook) -> list[tuple[str, object]]:
    """The Key / Value lines of the last run's Run Log ([] when costloop wrote none)."""
    owned = {n.casefold() for n in wb.owned_sheets()}
    name = next((n for n in wb.sheet_names() if n.casefold() == RUN_LOG.casefold()), None)
    if name is None or name.casefold() not in owned:
        return []
    return [
        (row[0], row[1] if len(row) > 1 else None)
        for row in wb.read_sheet(name)[1:]
        if row and isinstance(row[0], str)
    ]


def last_run(wb: Workbook) -> dict[str, object]:
    """The Run Log of the last run, key -> value ({} when there is none costloop wrote)."""
    out: dict[str, object] = {}
    for key, value in log_lines(wb):
        out.setdefault(key, value)
    return out


def _order_problem(outcome: Outcome, period: str) -> str | None:
    issued = outcome.issued
    closed = issued.get(period)
    if closed is not None:
        return (
            f"period {period} is already closed (on {closed.closed_at} UTC, run "
            f"{closed.run_id}); a closed period is closed once — its corrections are billed "
            f"in the next open period"
        )
    if issued.closed and period < issued.closed[-1]:
        return (
            f"period {period} is before {issued.closed[-1]}, the last closed period: periods "
            f"close in order, and what {period} still needs is billed as corrections"
        )
    if not issued.closed:
        return None  # the first close may be any period: costloop's record starts there
    last = issued.closed[-1]
    between = [p for p in outcome.book.periods if last < p < period]
    if between:
        return (
            f"period {between[0]} has data and is not closed: close {between[0]} first "
            f"(periods close in order)"
        )
    return None


def _run_problem(outcome: Outcome, run: dict[str, object], period: str) -> str | None:
    """Whether the last run is a clean run of ``period`` on exactly these inputs."""
    book = outcome.book
    how = f"run costloop run --period {period}, check its bills, then close"
    if not run:
        return f"there is no Run Log: {how}"
    if run.get("Scenario"):
        return f"the last run was the scenario {run['Scenario']!r}, not the bills: {how}"
    if str(run.get("Period") or "") != period:
        return f"the last run billed {run.get('Period') or 'no period'}, not {period}: {how}"
    if run.get("Status") != "OK":
        return f"the last run of {period} failed, so there is nothing to issue: fix it, {how}"
    if run.get("Input Fingerprint") != book.fingerprint:
        return f"the inputs changed since the last run of {period}: {how}"
    if run.get("Issued Hash") != outcome.issued.last_hash:
        return f"the Issued sheet changed since the last run of {period}: {how}"
    if (run.get("Disputes Fingerprint") or "") != outcome.disputes_fingerprint:
        return f"the Disputes sheet changed since the last run of {period}: {how}"
    return None


def _named_sums(frame, name_col: str, value_col: str, period: str) -> list[tuple[str, Fraction]]:
    names: dict[str, str] = {}
    if len(frame) and name_col in frame:
        for name in frame.loc[frame["Period"] == period, name_col].dropna().unique():
            if str(name).strip():
                names.setdefault(name_key(str(name)), str(name).strip())
    sums = exact_sums(frame, name_col, value_col)
    return [(names[k], sums[k][period]) for k in sorted(names) if period in sums.get(k, {})]


def _decimal(value: Fraction) -> Decimal:
    return Decimal(value.numerator) / Decimal(value.denominator)


def issued_records(book: Book, outcome: Outcome, period: str) -> list[dict[str, object]]:
    """Every record P issues: bill lines, journal lines, recovery, actuals, usage."""
    result = outcome.result
    minor = book.settings.minor_unit
    records: list[dict[str, object]] = []
    for line in result.bills[BILL_COLUMNS].to_dict("records"):
        records.append({"Record": BILL} | {c: line[c] for c in BILL_COLUMNS if c != "Period"})
    journal = result.journal
    for line in journal.to_dict("records"):
        records.append(
            {
                "Record": JOURNAL,
                "Line Type": line.get("Line Type") or CHARGE,
                "Charge Period": line.get("Charge Period") or period,
            }
            | {
                c: line[c]
                for c in ("Entry", "Fund", "Account", "Department", "Pool", "Debit", "Credit")
            }
            | {"Memo": line["Memo"], "Rule": line["Rule"]}
        )
    flows = result.pool_flows
    own = flows[flows["Period"] == period]
    for pool, cost, billed, kept in zip(
        own["Pool"], own["Cost"], own["Billed"], own["Unallocated"], strict=True
    ):
        records.append(
            {"Record": RECOVERY, "Line Type": CHARGE, "Charge Period": period, "Pool": pool,
             "Cost": cost, "Amount": billed, "Unallocated": kept}
        )  # fmt: skip
    for name, cents in _named_sums(book.actuals, "Pool", "Cents", period):
        amount = Decimal(int(cents)).scaleb(-minor)
        records.append(
            {"Record": ACTUAL, "Line Type": CHARGE, "Charge Period": period, "Pool": name,
             "Amount": amount}
        )  # fmt: skip
    for name, quantity in _named_sums(book.usage, "Metric", "Quantity", period):
        records.append(
            {"Record": USAGE, "Line Type": CHARGE, "Charge Period": period, "Metric": name,
             "Quantity": _decimal(quantity)}
        )  # fmt: skip
    for change in outcome.recognised:
        record = {"Record": change.record, "Line Type": change.line_type,
                  "Charge Period": change.charge_period}  # fmt: skip
        if change.record == RECOVERY:
            record |= {"Pool": change.name, "Cost": change.cost, "Amount": change.amount}
        elif change.record == ACTUAL:
            record |= {"Pool": change.name, "Amount": change.amount}
        else:
            record |= {"Metric": change.name, "Quantity": change.quantity}
        records.append(record)
    return records


def issued_sheet(wb: Workbook, outcome: Outcome, rows: list[tuple]) -> OutputSheet:
    """The whole Issued sheet: the closed periods as read, then the new one."""
    existing: list[tuple] = []
    name = next((n for n in wb.sheet_names() if n.casefold() == ISSUED_SHEET.casefold()), None)
    if outcome.issued.closed and name is not None:
        grid = wb.read_sheet(name)[1 : outcome.issued.end_row - 1]
        existing = [tuple(r[: len(ISSUED_COLUMNS)]) for r in grid if any(v is not None for v in r)]
    money = money_format(outcome.book.settings.minor_unit)
    formats = {c: money for c in ("Amount", "Debit", "Credit", "Cost", "Unallocated")}
    formats |= {"Quantity": QUANTITY_FORMAT, "Rate": rate_format(outcome.book.settings.minor_unit)}
    return OutputSheet(
        name=name or ISSUED_SHEET, columns=ISSUED_COLUMNS, rows=existing + rows, formats=formats
    )


def _closed_log(wb: Workbook, outcome: Outcome, closed_at: str, seal: str) -> OutputSheet:
    """The Run Log: still the reviewed run's lines (bills and email read them), now saying
    when it was closed and its seal, and the history with the close added."""
    lines = [(k, v) for k, v in log_lines(wb) if k not in ("Closed (UTC)", "Closed Hash")]
    lines += [("Closed (UTC)", closed_at), ("Closed Hash", seal)]
    values = dict(outcome.run_log.entries)
    history = read_history(wb, RUN_LOG)
    history.append(history_entry(values, "close", values.get("Total Billed")))
    money = money_format(outcome.book.settings.minor_unit)
    return with_history(lines, history, RUN_LOG, money)


@_python_strings
def close_workbook(
    wb: Workbook, period: str | None, label: str = "", stamp: Stamp | None = None
) -> Outcome:
    """Close ``period``: append its records to Issued, sealed; refuse with a reason if not.

    ``stamp`` (the close's id and time) only for a reproducible build of a workbook.
    """
    outcome = prepare(wb)
    book = outcome.book
    if book is None or has_errors(outcome.problems):
        return _refused(
            outcome, "--period", "the workbook has errors (listed above): nothing can be closed"
        )
    # The period to close is the one just run and reviewed, unless said otherwise.
    period = period or str(last_run(wb).get("Period") or "") or book.settings.period
    if not period or parse_period(period) != period:
        return _refused(outcome, "--period", f"give the period to close as YYYY-MM, got {period!r}")
    why = _order_problem(outcome, period) or _run_problem(outcome, last_run(wb), period)
    if why is None and _not_owned(wb, [ISSUED_SHEET]):
        outcome.problems += _not_owned(wb, [ISSUED_SHEET])
        return outcome
    if why is not None:
        return _refused(outcome, "--period", f"cannot close {period}: {why} ({CLOSE_HOW})")

    outcome.period = period
    stamp = stamp or new_stamp()
    outcome.run_log = new_run_log(label, book, period, stamp=stamp)
    outcome.run_log.add("Command", "close")
    bill_period(outcome, period, {sheet: sheet for sheet in OUTPUT_SHEETS})
    _log_result(outcome.run_log, outcome.result)
    log_ledger(outcome.run_log, outcome)
    if has_errors(outcome.problems) or not outcome.result.ok:
        return _refused(
            outcome, "--period", f"cannot close {period}: its run does not come out clean now"
        )
    run = last_run(wb)
    closed_at = stamp[1]
    rows, seal = sealed_rows(
        outcome.issued.last_hash,
        period,
        issued_records(book, outcome, period),
        str(run.get("Run ID") or ""),
        book.fingerprint,
        closed_at,
    )
    finish_log(outcome.run_log, outcome.problems)
    log = outcome.run_log
    log.add("Closed Period", period)
    log.add("Issued Rows", len(rows))
    log.add("Closed Hash", seal)
    sheets = [issued_sheet(wb, outcome, rows), _closed_log(wb, outcome, closed_at, seal)]
    wb.replace_sheets(sheets)
    outcome.written = [s.name for s in sheets]
    return outcome
