"""A run against what was issued: closed periods from `Issued`, corrections in the open one.

Called by `run_workbook` and `close_workbook` after the chargeback ran the billed period:

- the corrections of closed periods whose inputs changed are added to the billed
  period's Bills and Journal (`costloop.engine.chargeback.corrections`), and the two
  journal tie-outs are run again over everything the period posts;
- Recovery shows each closed period as it was issued (with the corrections recognised
  when later periods closed), and the billed period recognises the corrections it bills;
- the year's charge lines (Compliance's same-rate test) take closed periods from Issued;
- Variance takes closed periods' actuals and usage from Issued (`closed_figures`).
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pandas as pd

from costloop.engine.chargeback.corrections import Corrections, Recognised, correct_closed
from costloop.engine.chargeback.credits import credit_memos
from costloop.engine.chargeback.drivers import Drivers
from costloop.engine.chargeback.recovery import recovery_pct
from costloop.engine.chargeback.tieouts import (
    JOURNAL_BALANCES,
    REVENUE_EQUALS_BILLS,
    check_journal,
    check_revenue,
)
from costloop.engine.model.book import Book
from costloop.engine.model.disputes import Dispute
from costloop.engine.model.issued import (
    ACTUAL,
    BILL,
    CHARGE,
    CREDIT_MEMO,
    RECOVERY,
    USAGE,
    Issued,
    money_of,
    quantity_of,
)
from costloop.engine.model.money import exact_sums
from costloop.engine.model.periods import fiscal_periods_to_date
from costloop.engine.model.result import Result
from costloop.engine.model.sheets import (
    BILL_COLUMNS,
    BILLS,
    JOURNAL,
    JOURNAL_COLUMNS,
    RECOVERY_COLUMNS,
)
from costloop.problems import Problem, Reason, Severity
from costloop.rules.ast import name_key
from costloop.rules.plan import Plan


def _concat(first: pd.DataFrame, more: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    if more.empty:
        return first
    if first.empty:
        return more[columns].reset_index(drop=True)
    return pd.concat([first, more[columns]], ignore_index=True)


def _recovery(result: Result, issued: Issued, recognised: list[Recognised]) -> pd.DataFrame:
    """Recovery: closed periods as issued; the billed period with what it recognises."""
    if not issued.closed and not recognised:
        return result.recovery
    rows: dict[tuple[str, str], dict] = {}
    names: dict[str, str] = {}
    for r in result.recovery.to_dict("records"):
        if issued.is_closed(r["Period"]):
            continue
        names.setdefault(name_key(str(r["Pool"])), str(r["Pool"]))
        rows[(r["Period"], name_key(str(r["Pool"])))] = dict(r)
    minor = issued.minor_unit
    for period in result.periods:
        closed = issued.get(period)
        if closed is None:
            continue
        for rec in closed.records(RECOVERY):
            key = name_key(str(rec["Pool"]))
            names.setdefault(key, str(rec["Pool"]))
            row = rows.setdefault(
                (period, key),
                {"Period": period, "Pool": names[key], "Cost": Decimal(0),
                 "Recovered": Decimal(0), "Unallocated": Decimal(0)},
            )  # fmt: skip
            row["Cost"] += money_of(rec["Cost"], minor)
            row["Recovered"] += money_of(rec["Amount"], minor)
            row["Unallocated"] += money_of(rec["Unallocated"], minor)
    for change in recognised:
        if change.record != RECOVERY:
            continue
        key = name_key(change.name)
        names.setdefault(key, change.name)
        row = rows.setdefault(
            (result.period, key),
            {"Period": result.period, "Pool": names[key], "Cost": Decimal(0),
             "Recovered": Decimal(0), "Unallocated": Decimal(0)},
        )  # fmt: skip
        row["Cost"] += change.cost
        row["Recovered"] += change.amount
    out = []
    order = {p: i for i, p in enumerate(result.periods)}
    for _, row in sorted(rows.items(), key=lambda kv: (order.get(kv[0][0], -1), kv[0][1])):
        row["OverUnder"] = row["Recovered"] - row["Cost"]
        row["RecoveryPct"] = recovery_pct(row["Recovered"], row["Cost"])
        out.append({c: row[c] for c in RECOVERY_COLUMNS})
    return pd.DataFrame(out, columns=RECOVERY_COLUMNS)


def _year_charges(result: Result, issued: Issued) -> pd.DataFrame | None:
    charges = result.year_charges
    if charges is None or not issued.closed:
        return charges
    open_rows = charges[~charges["Period"].isin(issued.closed)]
    closed = [
        r
        for period in result.periods
        if issued.is_closed(period)
        for r in issued.get(period).records(BILL)
        if r["Line Type"] == CHARGE and r["Rate"] not in (None, "")
    ]
    if not closed:
        return open_rows.reset_index(drop=True)
    frame = issued.bill_frame(closed, BILL_COLUMNS)
    return pd.concat([frame, open_rows], ignore_index=True)


_RETIED = {
    JOURNAL_BALANCES: (Reason.UNBALANCED, JOURNAL),
    REVENUE_EQUALS_BILLS: (Reason.TIE_OUT, BILLS),
}


def _retie(drivers: Drivers, result: Result, names: dict[str, str]) -> list[Problem]:
    """Tie-outs 2 and 3 again, over the charges and the corrections the period posts (and
    Recovery with what it recognises)."""
    fresh = {
        JOURNAL_BALANCES: check_journal(result.journal),
        REVENUE_EQUALS_BILLS: check_revenue(
            drivers, result.bills, result.journal, result.recovery, result.period
        ),
    }
    # Every tie-out failure again, in the checks' own order (the two rerun ones fresh).
    stale = "tie-out failed: "
    kept = {p.message.split(":", 2)[1].strip(): p for p in result.problems
            if p.message.startswith(stale)}  # fmt: skip
    problems = [p for p in result.problems if not p.message.startswith(stale)]
    result.tieouts = [fresh.get(t.name, t) for t in result.tieouts]
    for t in result.tieouts:
        if t.passed:
            continue
        if t.name in _RETIED:
            code, sheet = _RETIED[t.name]
            where = names.get(sheet, sheet)  # a scenario's own sheet (Journal@High)
            problems.append(
                Problem(code, Severity.ERROR, where, f"tie-out failed: {t.name}: {t.detail}")
            )
        elif t.name in kept:
            problems.append(kept[t.name])
    return problems


def against_issued(
    book: Book,
    plan: Plan,
    result: Result,
    issued: Issued,
    disputes: list[Dispute] = (),
    names: dict[str, str] | None = None,
) -> Corrections:
    """Amend the billed period's ``result`` in place for what was issued: corrections of
    closed periods and credit memos of accepted disputes; returns what was added."""
    corrections = correct_closed(book, plan, result.period, issued)
    drivers = Drivers(book)
    credits, credit_journal = credit_memos(drivers, list(disputes), issued, result.period)
    if len(credits):
        corrections.bills = _concat(corrections.bills, credits, BILL_COLUMNS)
        corrections.journal = pd.concat([corrections.journal, credit_journal], ignore_index=True)
        for pool, amount, charge in zip(
            credits["Pool"], credits["Amount"], credits["Charge Period"], strict=True
        ):
            corrections.recognised.append(
                Recognised(charge, RECOVERY, pool, amount=amount, line_type=CREDIT_MEMO)
            )
    result.bills = _concat(result.bills, corrections.bills, BILL_COLUMNS)
    if "Charge Period" not in result.journal:
        result.journal["Charge Period"] = result.period
        result.journal["Line Type"] = CHARGE
    journal_columns = [*JOURNAL_COLUMNS, "Charge Period", "Line Type"]
    result.journal = _concat(result.journal, corrections.journal, journal_columns)
    result.recovery = _recovery(result, issued, corrections.recognised)
    result.year_charges = _year_charges(result, issued)
    result.problems = _retie(drivers, result, names or {}) + corrections.problems
    return corrections


def closed_figures(
    book: Book, period: str, issued: Issued, recognised: list[Recognised]
) -> dict[str, dict[str, dict[str, Fraction]]]:
    """Variance's per-period sums that do not come from the input sheets.

    ``{"actual": {period: {pool key: cents}}, "usage": {period: {metric key: quantity}}}``:
    each closed period of the year as issued, and the billed period with what it recognises.
    """
    minor = issued.minor_unit
    out: dict[str, dict[str, dict[str, Fraction]]] = {"actual": {}, "usage": {}}
    ytd = fiscal_periods_to_date(period, book.settings.fiscal_year_start)
    for p in ytd:
        closed = issued.get(p)
        if closed is None:
            continue
        actual = out["actual"].setdefault(p, {})
        for r in closed.records(ACTUAL):
            key = name_key(str(r["Pool"]))
            cents = Fraction(money_of(r["Amount"], minor)) * 10**minor
            actual[key] = actual.get(key, Fraction(0)) + cents
        usage = out["usage"].setdefault(p, {})
        for r in closed.records(USAGE):
            key = name_key(str(r["Metric"]))
            usage[key] = usage.get(key, Fraction(0)) + Fraction(quantity_of(r["Quantity"]) or 0)
    if not issued.is_closed(period) and recognised:
        actual = _sums_of(book.actuals, "Pool", "Cents", period)
        usage = _sums_of(book.usage, "Metric", "Quantity", period)
        for change in recognised:
            key = name_key(change.name)
            if change.record == ACTUAL:
                cents = Fraction(change.amount) * 10**minor
                actual[key] = actual.get(key, Fraction(0)) + cents
            elif change.record == USAGE:
                usage[key] = usage.get(key, Fraction(0)) + Fraction(change.quantity)
        out["actual"][period] = actual
        out["usage"][period] = usage
    return out


def _sums_of(frame: pd.DataFrame, name_col: str, value_col: str, period: str):
    return {k: v[period] for k, v in exact_sums(frame, name_col, value_col).items() if period in v}


def bills_as_issued(
    book: Book,
    plan: Plan,
    issued: Issued,
    disputes: list[Dispute],
    by_period: dict[str, pd.DataFrame],
    billed: str,
) -> dict[str, pd.DataFrame]:
    """Each period's Bills as the department sees them: a closed period as issued, the
    billed one with the corrections and credit memos it bills (what `costloop bills` shows)."""
    out = {}
    for period, frame in by_period.items():
        closed = issued.get(period)
        if closed is not None:
            out[period] = issued.bill_frame(closed.records(BILL), BILL_COLUMNS)
        elif period == billed:
            corrections = correct_closed(book, plan, billed, issued)
            credits, _ = credit_memos(Drivers(book), list(disputes), issued, billed)
            out[period] = _concat(
                _concat(frame, corrections.bills, BILL_COLUMNS), credits, BILL_COLUMNS
            )
        else:
            out[period] = frame
    return out
