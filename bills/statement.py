"""What one department's bill contains, taken from the engine's result.

A `Statement` holds only that department's own rows: its bill lines (with their
rule lineage), its usage rows of the billed period, its charges in each month
of the fiscal year, and its own code, name and email. Nothing in it names
another department, so whatever is made from it (workbook, PDF, email) cannot.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal

import pandas as pd

from costloop.bills.lineage import describe
from costloop.bills.source import BilledYear, RunStamp, department_totals
from costloop.engine.model.periods import add_months, fiscal_periods
from costloop.engine.model.sheets import BILL_COLUMNS
from costloop.rules.ast import name_key

LINE_COLUMNS = [*BILL_COLUMNS, "Rule Cell", "How"]
"""The main workbook's Bills columns, then the lineage: the rule's cell and what it did."""


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


def pool_charges(lines: pd.DataFrame) -> list[PoolCharge]:
    """The Summary's "by pool" rows; a rate only where every line of the pool obeys it."""
    out = []
    for pool, group in lines.groupby("Pool", sort=False):
        metrics = [m for m in dict.fromkeys(group["Metric"]) if isinstance(m, str) and m]
        quantities = [q for q in group["Quantity"] if q is not None and not pd.isna(q)]
        rated = [
            (r, rule)
            for r, rule in zip(group["Rate"], group["Rule"], strict=True)
            if r is not None and not pd.isna(r)
        ]
        rates = list(dict.fromkeys(r for r, _ in rated))
        amount = sum((Decimal(a) for a in group["Amount"]), Decimal(0))
        one_metric = len(metrics) == 1 and len(quantities) == len(group)
        quantity = sum((Decimal(q) for q in quantities), Decimal(0)) if one_metric else None
        if not rated:
            rate, basis = None, "allocated share"
        elif len(rated) < len(group):
            rate, basis = None, "rate and allocated share"
        elif len(rates) == 1:
            rate, basis = Decimal(rates[0]), "rate"
        elif len({rule for _, rule in rated}) == 1:
            rate, basis = None, "graduated"  # one rule's price bands
        else:
            rate, basis = None, "several rates"
        out.append(PoolCharge(str(pool), ", ".join(metrics), quantity, rate, amount, basis))
    return out


def _usage_by_key(year: BilledYear) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """The period's usage rows, split by department key once (not filtered per department)."""
    usage = year.book.usage
    columns = [c for c in usage.columns if not str(c).startswith("_")]
    period = usage[usage["Period"] == year.period].sort_values("_row")
    groups = {k: g[columns].reset_index(drop=True) for k, g in period.groupby("_key", sort=False)}
    return groups, usage.iloc[:0][columns].reset_index(drop=True)


def build_statements(year: BilledYear) -> list[Statement]:
    """A statement for every department billed in the period, in department order."""
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
    bills = year.bills
    periods = fiscal_periods(year.period, settings.fiscal_year_start)
    previous_period = add_months(year.period, -1)
    # Each period's totals and the period's lines and usage split once, not once per
    # department: a few thousand departments would otherwise rescan every frame each.
    totals = {p: department_totals(frame) for p, frame in year.by_period.items()}
    lines_of = dict(tuple(bills.groupby("Department", sort=False)))
    usage_of, no_usage = _usage_by_key(year)
    statements = []
    codes = list(dict.fromkeys(bills["Department"]))
    for code, stem in zip(codes, file_stems([str(c) for c in codes], year.period), strict=True):
        key = name_key(code)
        row = deps.iloc[by_key[key]]
        own = frozenset(everyone.get(key, {key}))
        private = frozenset(all_names - own)
        lines = lines_of[code].copy()
        lines["Rule Cell"] = [getattr(year.rules.get(r), "where", "") for r in lines["Rule"]]
        lines["How"] = [describe(year.rules.get(r), own, private) for r in lines["Rule"]]
        months = [(p, totals[p].get(key, Decimal(0)) if p in totals else None) for p in periods]
        before = totals.get(previous_period)
        name = row["Name"]
        email = row["Email"] if "Email" in deps else None
        statements.append(
            Statement(
                organization=settings.organization,
                currency=settings.currency,
                minor_unit=settings.minor_unit,
                period=year.period,
                department=str(code),
                name="" if pd.isna(name) else str(name),
                email="" if email is None or pd.isna(email) else str(email).strip(),
                email_cell=book.cell("Departments", "Email", int(row["_row"])),
                department_cell=book.cell("Departments", "Department", int(row["_row"])),
                run=year.stamp,
                lines=lines[LINE_COLUMNS].reset_index(drop=True),
                usage=usage_of.get(key, no_usage),
                by_pool=pool_charges(lines),
                months=months,
                previous_period=previous_period,
                previous=None if before is None else before.get(key, Decimal(0)),
                fiscal_year=f"FY {periods[0]} to {periods[-1]}",
                file_stem=stem,
            )
        )
    return statements
