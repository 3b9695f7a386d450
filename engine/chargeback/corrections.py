"""Corrections to closed periods, billed in the open one (docs/audit.md#corrections).

A closed period's bills are never rewritten (FOCUS 1.3's correction handling). When a
run of an open period finds that a closed period's inputs changed (late or corrected
usage, corrected actuals, a rate row dated into it), the closed period is run again;
for each department and pool whose amount differs from what stands for it in `Issued`,
the open period bills, accounting-style:

- a **Reversal** of every line that stands (its quantity and amount negated), and
- the **Correction**: every line of the fresh run of that department and pool,

each with the closed period as its Charge Period, and journal entries of their own
(``CB-2026-04-0007-R2026-02`` reverses, ``CB-2026-04-0007-C2026-02`` corrects) whose
memo names the entry they correct. Each balances per fund as any entry does.

Pure: given the issued records and the book, it returns lines and entries; the
pipeline adds them to the billed period and re-runs the journal tie-outs over all.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal
from fractions import Fraction

import pandas as pd

from costloop.engine.chargeback.drivers import Drivers
from costloop.engine.chargeback.execute import bills_frame, run_period
from costloop.engine.chargeback.journal import build_journal
from costloop.engine.chargeback.recovery import build_pool_flows
from costloop.engine.model.book import Book
from costloop.engine.model.issued import (
    ACTUAL,
    CORRECTION,
    RECOVERY,
    REVERSAL,
    USAGE,
    Issued,
)
from costloop.engine.model.money import exact_sums
from costloop.engine.model.sheets import BILL_COLUMNS, JOURNAL_COLUMNS
from costloop.problems import Problem, Severity
from costloop.rules.ast import name_key
from costloop.rules.plan import Plan


@dataclass
class Recognised:
    """A change to a closed period's figures recognised in the billed period."""

    charge_period: str
    record: str
    """`RECOVERY` (Cost and Amount = recovered), `ACTUAL` (Amount) or `USAGE` (Quantity)."""
    name: str
    """The pool (Recovery, Actual) or metric (Usage), as spelled."""
    cost: Decimal = Decimal(0)
    amount: Decimal = Decimal(0)
    quantity: Decimal = Decimal(0)
    line_type: str = CORRECTION
    """`CORRECTION`, or `CREDIT_MEMO` for the credit of a dispute (not a change of inputs)."""


@dataclass
class Corrections:
    """What the billed period adds for the closed periods."""

    bills: pd.DataFrame
    journal: pd.DataFrame
    """With helper columns ``Charge Period`` and ``Line Type`` (not on the Journal sheet)."""
    recognised: list[Recognised] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    periods: list[str] = field(default_factory=list)
    """The closed periods that were corrected."""


def _key(department: object, pool: object) -> tuple[str, str]:
    return name_key(str(department)), name_key(str(pool))


def _sums(frame: pd.DataFrame) -> dict[tuple[str, str], Decimal]:
    out: dict[tuple[str, str], Decimal] = {}
    for dep, pool, amount in zip(frame["Department"], frame["Pool"], frame["Amount"], strict=True):
        k = _key(dep, pool)
        out[k] = out.get(k, Decimal(0)) + amount
    return out


def _restate(frame: pd.DataFrame, billed: str, charge: str, kind: str) -> pd.DataFrame:
    out = frame.copy()
    out["Period"] = billed
    out["Charge Period"] = charge
    out["Line Type"] = kind
    if kind == REVERSAL:
        out["Amount"] = [-a for a in out["Amount"]]
        out["Quantity"] = [None if q is None or q != q else -q for q in out["Quantity"]]
    return out


def _entries(
    drivers: Drivers,
    lines: pd.DataFrame,
    billed: str,
    charge: str,
    kind: str,
    issued: Issued,
) -> pd.DataFrame:
    """The journal of reversal or correction lines: entries named for what they correct."""
    journal = build_journal(drivers, lines, billed)
    if journal.empty:
        journal["Charge Period"] = []
        journal["Line Type"] = []
        return journal
    mark = "R" if kind == REVERSAL else "C"
    verb = "Reversal of" if kind == REVERSAL else "Correction of"
    entries, memos = [], []
    for entry, dep, pool, memo in zip(
        journal["Entry"], journal["Department"], journal["Pool"], journal["Memo"], strict=True
    ):
        number = str(entry).rsplit("-", 1)[-1]
        original = issued.entry_of(charge, str(dep), str(pool)) or f"CB-{charge}-{number}"
        entries.append(f"{entry}-{mark}{charge}")
        detail = str(memo).split(" — ", 1)[-1]
        memos.append(f"{verb} {original} ({charge} {pool}) — {detail}")
    journal["Entry"] = entries
    journal["Memo"] = memos
    journal["Charge Period"] = charge
    journal["Line Type"] = kind
    return journal


def _flow_sums(drivers: Drivers, run) -> dict[str, tuple[str, Decimal, Decimal]]:
    flows = build_pool_flows(drivers, [run])
    return {
        name_key(str(pool)): (str(pool), cost, recovered)
        for pool, cost, recovered in zip(
            flows["Pool"], flows["Cost"], flows["Recovered"], strict=True
        )
    }


def _period_sums(frame: pd.DataFrame, name_col: str, value_col: str, period: str):
    names: dict[str, str] = {}
    if name_col in frame:
        for name in frame.loc[frame["Period"] == period, name_col].dropna().unique():
            if str(name).strip():
                names.setdefault(name_key(str(name)), str(name).strip())
    sums = {k: v[period] for k, v in exact_sums(frame, name_col, value_col).items() if period in v}
    return sums, names


def _recognise(drivers, run, issued: Issued, charge: str, minor: int) -> list[Recognised]:
    """How far the closed period's Recovery and Variance figures moved since it was issued."""
    out: list[Recognised] = []
    fresh = _flow_sums(drivers, run)
    cost = issued.recognised(RECOVERY, charge, "Pool", "Cost")
    recovered = issued.recognised(RECOVERY, charge, "Pool", "Amount")
    for key in sorted(set(fresh) | set(cost)):
        name, new_cost, new_recovered = fresh.get(key, (key, Decimal(0), Decimal(0)))
        d_cost = new_cost - cost.get(key, Decimal(0))
        d_recovered = new_recovered - recovered.get(key, Decimal(0))
        if d_cost or d_recovered:
            out.append(Recognised(charge, RECOVERY, name, cost=d_cost, amount=d_recovered))
    book = drivers.book
    actual, names = _period_sums(book.actuals, "Pool", "Cents", charge)
    was = issued.recognised(ACTUAL, charge, "Pool", "Amount")
    for key in sorted(set(actual) | set(was)):
        now = Decimal(int(actual.get(key, 0))).scaleb(-minor)
        delta = now - was.get(key, Decimal(0))
        if delta:
            out.append(Recognised(charge, ACTUAL, names.get(key, key), amount=delta))
    used, metrics = _period_sums(book.usage, "Metric", "Quantity", charge)
    was = issued.recognised(USAGE, charge, "Metric", "Quantity")
    for key in sorted(set(used) | set(was)):
        now = used.get(key, Fraction(0))
        now_dec = Decimal(now.numerator) / Decimal(now.denominator)
        delta = now_dec - was.get(key, Decimal(0))
        if delta:
            out.append(Recognised(charge, USAGE, metrics.get(key, key), quantity=delta))
    return out


def _only(frame: pd.DataFrame, keys: set[tuple[str, str]]) -> pd.DataFrame:
    """The lines of ``frame`` for the (department, pool) keys given."""
    at = [_key(d, p) in keys for d, p in zip(frame["Department"], frame["Pool"], strict=True)]
    return frame[at]


def _later(problem: Problem, period: str) -> Problem:
    """A closed period's problem on its rerun: reported, never blocking the open period."""
    return replace(
        problem,
        severity=Severity.WARNING,
        message=f"in closed period {period} (rerun for corrections): {problem.message}",
    )


def correct_closed(book: Book, plan: Plan, billed: str, issued: Issued) -> Corrections:
    """Reversal and correction lines, in ``billed``, for every closed period that changed."""
    drivers = Drivers(book)
    minor = drivers.minor_unit
    bills: list[pd.DataFrame] = []
    journals: list[pd.DataFrame] = []
    recognised: list[Recognised] = []
    problems: list[Problem] = []
    corrected: list[str] = []
    for charge in issued.closed:
        if charge >= billed:
            continue
        run = run_period(drivers, plan, charge)
        problems += [_later(p, charge) for p in run.problems if p.is_error]
        fresh = bills_frame(drivers, run)
        standing = issued.bill_frame(issued.standing_lines(charge), BILL_COLUMNS)
        was, now = _sums(standing), _sums(fresh)
        changed = {k for k in set(was) | set(now) if was.get(k, 0) != now.get(k, 0)}
        recognised += _recognise(drivers, run, issued, charge, minor)
        if not changed:
            continue
        corrected.append(charge)

        reversal = _restate(_only(standing, changed), billed, charge, REVERSAL)
        correction = _restate(_only(fresh, changed), billed, charge, CORRECTION)
        for kind, lines in ((REVERSAL, reversal), (CORRECTION, correction)):
            if len(lines):
                bills.append(lines)
                journals.append(_entries(drivers, lines, billed, charge, kind, issued))
    bill_frame = (
        pd.concat(bills, ignore_index=True) if bills else pd.DataFrame([], columns=BILL_COLUMNS)
    )
    journal = (
        pd.concat(journals, ignore_index=True)
        if journals
        else pd.DataFrame([], columns=[*JOURNAL_COLUMNS, "Charge Period", "Line Type"])
    )
    return Corrections(bill_frame, journal, recognised, problems, corrected)
