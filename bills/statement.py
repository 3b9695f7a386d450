"""What one department's bill contains, taken from the engine's result.

A `Statement` holds only that department's own rows: its bill lines (with their
rule lineage), its usage rows of the billed period, its charges in each month
of the fiscal year, and its own code, name and email. Nothing in it names
another department, so whatever is made from it (workbook, PDF, email) cannot.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

import pandas as pd

from costloop.bills.lineage import describe
from costloop.bills.source import BilledYear, RunStamp, department_totals
from costloop.engine.model.disputes import OPEN, Dispute
from costloop.engine.model.issued import CHARGE, CORRECTION, CREDIT_MEMO, REVERSAL
from costloop.engine.model.periods import add_months, fiscal_periods, fiscal_periods_to_date
from costloop.engine.model.sheets import BILL_COLUMNS, ISSUED
from costloop.engine.pipeline.bands import tier_lines
from costloop.engine.pipeline.budget import budget_by_department
from costloop.rules.ast import name_key

LINE_COLUMNS = [*BILL_COLUMNS, "Pool Total", "Share", "Band", "Rate Date", "Rule Cell", "How"]
"""The main workbook's Bills columns, then for an allocated line the pool's total spread and
the department's share of it, for a tier line its band and (a Rates-sheet card) its rate
date, then the lineage: the rule's cell and what it did."""
CHANGES = (REVERSAL, CORRECTION)


@dataclass(frozen=True)
class WhyChanged:
    """One row of the "why it changed" table: a pool, last period against this.

    For a pool charged at a rate: ``volume`` = (quantity now − then) × the rate then,
    ``rate`` = the rest (the price moved). For an allocated pool: ``rate`` = (the pool's
    total now − then) × the share then (the service cost more or less), ``share`` = the
    rest (the department's share moved). The three add up to ``change`` exactly.
    """

    pool: str
    last: Decimal
    this: Decimal
    volume: Decimal
    rate: Decimal
    share: Decimal

    @property
    def change(self) -> Decimal:
        return self.this - self.last


@dataclass(frozen=True)
class PoolCharge:
    """One row of the Summary's "by pool" table."""

    pool: str
    metric: str
    quantity: Decimal | None
    """Total quantity when the pool's lines share one metric, else None."""
    rate: Decimal | None
    """The unit rate when every line has the same one; None for allocations and mixed bands."""
    amount: Decimal
    basis: str
    """``allocated share``, ``rate``, ``graduated`` (one rule's bands), ``several rates``
    (several rules) or ``rate and allocated share``."""


@dataclass
class Statement:
    """One department's bill for one period."""

    organization: str
    currency: str
    minor_unit: int
    period: str
    department: str
    """The department's code as written in Departments."""
    name: str
    email: str
    email_cell: str
    """Where the Email is (``Departments!F5``), for messages."""
    department_cell: str
    """Where the department's code is (``Departments!A5``), for messages about its bill."""
    run: RunStamp
    lines: pd.DataFrame
    usage: pd.DataFrame
    by_pool: list[PoolCharge]
    months: list[tuple[str, Decimal | None]]
    """Every period of the fiscal year and this department's charges (None: not billed yet)."""
    previous_period: str
    previous: Decimal | None
    """Charges of the period before (None when the workbook does not reach back that far)."""
    fiscal_year: str
    """``FY 2025-07 to 2026-06``."""
    file_stem: str
    """``ENG 2026-03``: the department and period, safe as a file name, unique in the run."""
    why: list[WhyChanged] = field(default_factory=list)
    """Last period against this, by pool (charges only: corrections are shown apart)."""
    open_disputes: list[Dispute] = field(default_factory=list)
    """The department's disputes still Open."""
    closed_at: str = ""
    """When the period was closed (``Issued!Closed (UTC)``); blank: the open period's bill."""
    corrected_in: list[str] = field(default_factory=list)
    """Later bills of the fiscal year carrying reversals and corrections of this one."""
    credited: dict[str, Dispute] = field(default_factory=dict)
    """The accepted disputes the bill's credit memos settle, by the Dispute id on the line."""
    charged: list[tuple[str, Decimal | None]] = field(default_factory=list)
    """Every month of the fiscal year and what was billed for its services up to this bill
    (by Charge Period: a month with the corrections and credits billed for it later; None
    after this bill's period)."""
    budget: list[tuple[str, Decimal | None]] = field(default_factory=list)
    """Every month of the fiscal year and the department's budget for it: its bill at
    CostBasis BUDGET (`costloop.engine.pipeline.budget`); None where there is none, and
    empty unless asked for (`build_year_statements`)."""

    @property
    def charges(self) -> pd.DataFrame:
        return self.lines[self.lines["Line Type"] == CHARGE]

    @property
    def corrections(self) -> pd.DataFrame:
        """Reversals and corrections of earlier (closed) periods billed now."""
        return self.lines[self.lines["Line Type"].isin(CHANGES)]

    @property
    def credits(self) -> pd.DataFrame:
        """Credit memos of accepted disputes."""
        return self.lines[self.lines["Line Type"] == CREDIT_MEMO]

    @property
    def issued(self) -> bool:
        """A closed period's bill, as it was issued (never recomputed)."""
        return bool(self.closed_at)

    @property
    def total(self) -> Decimal:
        return sum((Decimal(a) for a in self.lines["Amount"]), Decimal(0))

    @property
    def year_to_date(self) -> Decimal:
        return sum((m for _, m in self.months if m is not None), Decimal(0))

    @property
    def change(self) -> Decimal | None:
        return None if self.previous is None else self.total - self.previous

    @property
    def display_name(self) -> str:
        return self.name or self.department

    def money(self, amount: Decimal) -> str:
        """``USD 12,345.67``."""
        return f"{self.currency} {amount:,.{self.minor_unit}f}"

    def content_hash(self) -> str:
        """A hash of what the bill says (not of a file): the same bill hashes the same.

        The run ID and time are left out, so re-running an unchanged workbook does
        not make a bill look changed to the send log.
        """
        content = {
            "organization": self.organization,
            "period": self.period,
            "department": self.department,
            "name": self.name,
            "lines": [[str(v) for v in row] for row in self.lines.itertuples(index=False)],
            "usage": [[str(v) for v in row] for row in self.usage.itertuples(index=False)],
            "months": [[p, str(m)] for p, m in self.months],
            "previous": str(self.previous),
        }
        text = json.dumps(content, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_stems(codes: list[str], period: str) -> list[str]:
    """``ENG 2026-03`` for each code: safe as a file name anywhere, and never the same twice.

    Making a code safe can make two the same ("R&D" and "R/D" are both "R_D"), and
    Windows and macOS ignore case; the later one gets " (2)", so no department's
    file overwrites, or is attached in place of, another's.
    """
    stems, taken = [], set()
    for code in codes:
        safe = "".join(c if c.isalnum() or c in "-_ " else "_" for c in code).strip()
        stem, n = f"{safe or 'department'} {period}", 1
        while stem.casefold() in taken:
            n += 1
            stem = f"{safe or 'department'} ({n}) {period}"
        taken.add(stem.casefold())
        stems.append(stem)
    return stems


def _blank(value) -> bool:
    return value is None or pd.isna(value)


def _pool_charge(pool, rows: list[tuple]) -> PoolCharge:
    """One "by pool" row from the pool's Charge lines as (metric, quantity, rate, rule, amount)."""
    metrics = [m for m in dict.fromkeys(r[0] for r in rows) if isinstance(m, str) and m]
    quantities = [r[1] for r in rows if not _blank(r[1])]
    rated = [(r[2], r[3]) for r in rows if not _blank(r[2])]
    rates = list(dict.fromkeys(r for r, _ in rated))
    amount = sum((Decimal(r[4]) for r in rows), Decimal(0))
    one_metric = len(metrics) == 1 and len(quantities) == len(rows)
    quantity = sum((Decimal(q) for q in quantities), Decimal(0)) if one_metric else None
    if not rated:
        rate, basis = None, "allocated share"
    elif len(rated) < len(rows):
        rate, basis = None, "rate and allocated share"
    elif len(rates) == 1:
        rate, basis = Decimal(rates[0]), "rate"
    elif len({rule for _, rule in rated}) == 1:
        rate, basis = None, "graduated"  # one rule's price bands
    else:
        rate, basis = None, "several rates"
    return PoolCharge(str(pool), ", ".join(metrics), quantity, rate, amount, basis)


def _pool_charges_by_department(lines: pd.DataFrame) -> dict[object, list[PoolCharge]]:
    """Department -> its "by pool" rows, in one pass over a period's lines (a few thousand
    departments' small frames grouped one by one cost seconds)."""
    grouped: dict[object, dict[object, list[tuple]]] = {}
    columns = ("Department", "Pool", "Metric", "Quantity", "Rate", "Rule", "Amount")
    for department, pool, *row in zip(*(lines[c] for c in columns), strict=True):
        if _blank(pool):
            continue
        grouped.setdefault(department, {}).setdefault(pool, []).append(tuple(row))
    return {
        department: [_pool_charge(pool, rows) for pool, rows in pools.items()]
        for department, pools in grouped.items()
    }


def pool_charges(lines: pd.DataFrame) -> list[PoolCharge]:
    """The Summary's "by pool" rows of one department's Charge lines, in the order the pools
    first appear; a rate only where every line of the pool obeys it."""
    if lines.empty:
        return []
    return _pool_charges_by_department(lines.assign(Department=0)).get(0, [])


PoolSums = dict[str, tuple[Decimal, Decimal, bool]]
"""Pool key -> (Σ amount, Σ quantity, charged at a rate) of Charge lines."""


def _add_to(sums: PoolSums, pool, amount, quantity, rate) -> None:
    key = name_key(str(pool))
    a, q, rated = sums.get(key, (Decimal(0), Decimal(0), False))
    has_q, has_rate = not _blank(quantity), not _blank(rate)
    sums[key] = (a + Decimal(amount), q + (Decimal(quantity) if has_q else 0), rated or has_rate)


def _charge_columns(frame: pd.DataFrame):
    charges = frame[frame["Line Type"] == CHARGE] if "Line Type" in frame else frame
    return charges["Pool"], charges["Amount"], charges["Quantity"], charges["Rate"]


def _pool_sums(frame: pd.DataFrame) -> PoolSums:
    """Every department's pool totals of a frame's Charge lines."""
    out: PoolSums = {}
    for row in zip(*_charge_columns(frame), strict=True):
        _add_to(out, *row)
    return out


@dataclass
class _Mine:
    """One department's pools in one period: its Charge lines' sums, and each pool's
    spelling (of any line, the last written) for the table."""

    sums: PoolSums = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)


def _pools_by_department(frame: pd.DataFrame | None) -> dict[object, _Mine]:
    """Department -> its `_Mine`, in one pass over a period's lines."""
    out: dict[object, _Mine] = {}
    if frame is None:
        return out
    for department, pool in zip(frame["Department"], frame["Pool"], strict=True):
        out.setdefault(department, _Mine()).names[name_key(str(pool))] = str(pool)
    charges = frame[frame["Line Type"] == CHARGE] if "Line Type" in frame else frame
    for department, *row in zip(charges["Department"], *_charge_columns(charges), strict=True):
        _add_to(out[department].sums, *row)
    return out


def why_changed(
    last: _Mine | None,
    this: _Mine,
    pools_last: PoolSums,
    pools_this: PoolSums,
    minor_unit: int,
) -> list[WhyChanged]:
    """The "why it changed" rows of one department (its pools ``last`` and ``this``), with
    every department's pool totals (``pools_*``) for the share of an allocated pool."""
    if last is None:
        return []
    cent = Decimal(1).scaleb(-minor_unit)
    mine_last, mine_this = last.sums, this.sums
    names = {**last.names, **this.names}
    rows = []
    for key in sorted(set(mine_last) | set(mine_this), key=lambda k: names[k].casefold()):
        a0, q0, rated0 = mine_last.get(key, (Decimal(0), Decimal(0), False))
        a1, q1, rated1 = mine_this.get(key, (Decimal(0), Decimal(0), False))
        change = a1 - a0
        volume = rate = share = Decimal(0)
        if rated0 or rated1:
            price = a0 / q0 if q0 else (a1 / q1 if q1 else Decimal(0))
            volume = ((q1 - q0) * price).quantize(cent, ROUND_HALF_UP)
            rate = change - volume
        else:
            t0 = pools_last.get(key, (Decimal(0),))[0]
            t1 = pools_this.get(key, (Decimal(0),))[0]
            rate = ((t1 - t0) * (a0 / t0 if t0 else Decimal(0))).quantize(cent, ROUND_HALF_UP)
            share = change - rate
        rows.append(WhyChanged(names[key], a0, a1, volume, rate, share))
    return rows


def _shares(lines: pd.DataFrame, rule_totals: dict[str, Decimal]) -> tuple[list, list]:
    """Pool Total and Share of each allocated Charge line (blank for the others)."""
    totals, shares = [], []
    for rule, rate, kind, amount in zip(
        lines["Rule"], lines["Rate"], lines["Line Type"], lines["Amount"], strict=True
    ):
        total = rule_totals.get(rule)
        allocated = kind == CHARGE and (rate is None or pd.isna(rate)) and total
        if not allocated:
            totals.append(None)
            shares.append(None)
            continue
        totals.append(total)
        shares.append((Decimal(amount) / total).quantize(Decimal("0.0001"), ROUND_HALF_UP))
    return totals, shares


def _usage_by_key(year: BilledYear, period: str) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """The period's usage rows, split by department key once (not filtered per department)."""
    usage = year.book.usage
    columns = [c for c in usage.columns if not str(c).startswith("_")]
    rows = usage[usage["Period"] == period].sort_values("_row")
    groups = {k: g[columns].reset_index(drop=True) for k, g in rows.groupby("_key", sort=False)}
    return groups, usage.iloc[:0][columns].reset_index(drop=True)


def _corrected_in(year: BilledYear, period: str) -> dict[str, list[str]]:
    """Department key -> the later bills of the year that correct its bill of ``period``
    (Reversal and Correction lines whose Charge Period is ``period``)."""
    out: dict[str, list[str]] = {}
    for later, frame in year.by_period.items():
        if later <= period or "Line Type" not in frame:
            continue
        changed = frame[frame["Line Type"].isin(CHANGES) & (frame["Charge Period"] == period)]
        for code in dict.fromkeys(changed["Department"]):
            out.setdefault(name_key(str(code)), []).append(later)
    return out


def _charged_by_month(year: BilledYear, period: str) -> dict[str, dict[str, Decimal]]:
    """Department key -> {charge period: Σ amount} of every bill of the year up to
    ``period``: a month's services with the corrections and credits billed for it later."""
    out: dict[str, dict[str, Decimal]] = {}
    for billed, frame in year.by_period.items():
        if billed > period:
            continue
        charge = frame["Charge Period"] if "Charge Period" in frame else [billed] * len(frame)
        for code, month, amount in zip(frame["Department"], charge, frame["Amount"], strict=True):
            months = out.setdefault(name_key(str(code)), {})
            months[month] = months.get(month, Decimal(0)) + Decimal(amount)
    return out


def build_statements(year: BilledYear, period: str | None = None) -> list[Statement]:
    """A statement for every department billed in ``period`` (default: the billed period),
    in department order. A closed period's statement is its bill as issued (its lines from
    the Issued sheet), with the fiscal year as it stood then: no later month."""
    period = period or year.period
    book = year.book
    settings = book.settings
    deps = book.departments
    by_key = {k: i for i, k in enumerate(deps["_key"])}
    # Every department's code and name, as name keys: what a bill must not show of others.
    everyone = {
        k: {k, name_key(str(n))} - {""}
        for k, n in zip(deps["_key"], deps["Name"].fillna(""), strict=True)
    }
    all_names = set().union(*everyone.values())
    closed = year.issued.get(period)
    run = year.stamp
    if closed is not None:
        # The run that was closed, not today's: accepting or disputing it names that run.
        run = RunStamp(closed.run_id, period, closed.closed_at, closed.fingerprint)
    # Band and rate date for the whole period at once: the Rates sheet is resolved once,
    # not once per department.
    bills = year.by_period[period].copy()
    bills["Band"], bills["Rate Date"] = tier_lines(book.rates, year.rules, bills)
    periods = fiscal_periods(period, settings.fiscal_year_start)
    previous_period = add_months(period, -1)
    # Each period's totals and the period's lines and usage split once, not once per
    # department: a few thousand departments would otherwise rescan every frame each.
    totals = {p: department_totals(f) for p, f in year.by_period.items() if p <= period}
    charges = bills[bills["Line Type"] == CHARGE]
    rule_totals: dict[str, Decimal] = {}
    for rule, amount in zip(charges["Rule"], charges["Amount"], strict=True):
        rule_totals[rule] = rule_totals.get(rule, Decimal(0)) + Decimal(amount)
    # The lineage columns for the whole period at once; only "How" is the department's
    # own (the rule in words, reduced to its share).
    bills["Pool Total"], bills["Share"] = _shares(bills, rule_totals)
    bills["Rule Cell"] = [getattr(year.rules.get(r), "where", "") for r in bills["Rule"]]
    described: dict[tuple[str, object], str] = {}
    how = []
    for code, rule in zip(bills["Department"], bills["Rule"], strict=True):
        key = name_key(code)
        if (key, rule) not in described:
            own = frozenset(everyone.get(key, {key}))
            described[key, rule] = describe(year.rules.get(rule), own, frozenset(all_names - own))
        how.append(described[key, rule])
    bills["How"] = how
    lines_of = {
        code: frame.reset_index(drop=True)
        for code, frame in bills[LINE_COLUMNS].groupby("Department", sort=False)
    }
    by_pool_of = _pool_charges_by_department(charges)
    memos_of: dict[object, list] = {}
    memos = bills[bills["Line Type"] == CREDIT_MEMO]
    for code, rule in zip(memos["Department"], memos["Rule"], strict=True):
        memos_of.setdefault(code, []).append(rule)
    last_frame = year.by_period.get(previous_period)
    last_of = _pools_by_department(last_frame)
    this_of = _pools_by_department(bills)
    pools_last = _pool_sums(last_frame) if last_frame is not None else {}
    pools_this = _pool_sums(bills)
    disputes_of: dict[str, list[Dispute]] = {}
    for dispute in year.disputes:
        if dispute.status == OPEN:
            disputes_of.setdefault(name_key(dispute.department), []).append(dispute)
    dispute_of = {name_key(d.dispute): d for d in year.disputes}
    corrected_in = _corrected_in(year, period)
    charged = _charged_by_month(year, period)
    usage_of, no_usage = _usage_by_key(year, period)
    statements = []
    codes = list(dict.fromkeys(bills["Department"]))
    for code, stem in zip(codes, file_stems([str(c) for c in codes], period), strict=True):
        key = name_key(code)
        # A closed period's department may have left the Departments sheet since: its bill
        # is still shown as issued, with the name it was issued under and no email.
        row = deps.iloc[by_key[key]] if key in by_key else None
        lines = lines_of[code]
        months = [(p, totals[p].get(key, Decimal(0)) if p in totals else None) for p in periods]
        before = totals.get(previous_period)
        name = row["Name"] if row is not None else lines["Name"].iloc[0]
        email = row["Email"] if row is not None and "Email" in deps else None
        memos = memos_of.get(code, [])
        mine = charged.get(key, {})
        statements.append(
            Statement(
                organization=settings.organization,
                currency=settings.currency,
                minor_unit=settings.minor_unit,
                period=period,
                department=str(code),
                name="" if pd.isna(name) else str(name),
                email="" if email is None or pd.isna(email) else str(email).strip(),
                email_cell=""
                if row is None
                else book.cell("Departments", "Email", int(row["_row"])),
                department_cell=(
                    f"{ISSUED}!A1"
                    if row is None
                    else book.cell("Departments", "Department", int(row["_row"]))
                ),
                run=run,
                lines=lines,
                usage=usage_of.get(key, no_usage),
                by_pool=by_pool_of.get(code, []),
                months=months,
                previous_period=previous_period,
                previous=None if before is None else before.get(key, Decimal(0)),
                fiscal_year=f"FY {periods[0]} to {periods[-1]}",
                file_stem=stem,
                why=why_changed(
                    None if last_frame is None else last_of.get(code, _Mine()),
                    this_of[code],
                    pools_last,
                    pools_this,
                    settings.minor_unit,
                ),
                open_disputes=disputes_of.get(key, []),
                closed_at="" if closed is None else closed.closed_at,
                corrected_in=corrected_in.get(key, []),
                credited={
                    str(m): dispute_of[name_key(str(m))]
                    for m in memos
                    if name_key(str(m)) in dispute_of
                },
                charged=[(p, mine.get(p) if p in totals else None) for p in periods],
            )
        )
    return statements


def build_year_statements(year: BilledYear) -> list[Statement]:
    """The billed period's statements and every closed period's of the fiscal year, as
    issued (the periods a department can look back on in the portal), each with the
    department's budget by month."""
    shown = [p for p in year.by_period if p == year.period or year.issued.is_closed(p)]
    months = fiscal_periods_to_date(year.period, year.book.settings.fiscal_year_start)
    budgets = budget_by_department(year.book, year.plan, months) if year.plan else {}
    out = []
    for period in shown:
        for statement in build_statements(year, period):
            planned = budgets.get(name_key(statement.department), {})
            statement.budget = [
                (p, planned.get(p) if p <= period else None) for p, _ in statement.months
            ]
            out.append(statement)
    return out
