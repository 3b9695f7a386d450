"""The chargeback journal: one balanced entry per department per period (docs/contract.md#journal).

Entry ``CB-2026-03-0007`` is the seventh department in name order (numbered
over every department, so a department keeps its number whether or not others
are billed). Each pool on the department's bill gives the entry its lines:

- department in another fund: in its fund debit ExpenseAccount and credit
  DueToAccount; in the IT fund debit DueFromAccount and credit RevenueAccount;
- department in the IT fund (Settings ITFund, any case): debit ExpenseAccount,
  credit ReimbursementAccount.

So every entry balances within each fund. A net credit (a negative amount,
e.g. a refund in Actuals) swaps the debit and credit sides. Pool-to-pool
allocations never reach Bills, so they post nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pandas as pd

from costloop.engine.chargeback.allocate import SHARE_METRIC
from costloop.engine.chargeback.drivers import Drivers, name_keys
from costloop.engine.model.money import format_quantity, object_array
from costloop.engine.model.sheets import JOURNAL_COLUMNS
from costloop.rules.ast import name_key


def _describe(
    metric: object, quantity: object, rate: object, format_quantity=format_quantity
) -> str:
    """One bill line in a memo: ``vCPU-Hours 1,234 @ 0.05``, ``60% share``, ``evenly``."""
    has_metric = isinstance(metric, str) and metric
    has_quantity = quantity is not None and not (
        isinstance(quantity, float) and quantity != quantity
    )
    has_rate = rate is not None and not (isinstance(rate, float) and rate != rate)
    if has_metric and metric == SHARE_METRIC and has_quantity:
        return f"{format_quantity(quantity)}% share"
    if has_metric and has_quantity and has_rate:
        return f"{metric} {format_quantity(quantity)} @ {format_quantity(rate)}"
    if has_metric and has_quantity:
        return f"by {metric} {format_quantity(quantity)}"
    return "split evenly"


def _descriptions(metrics: list, quantities: list, rates: list) -> list[str]:
    """`_describe` of every bill line, each distinct quantity and rate formatted once.

    A Departments column driver repeats a department's quantity in every rule
    using it, and a rate is the same for thousands of lines.
    """
    shown: dict = {}

    def formatted(q: object) -> str:
        if type(q) is not Decimal or q.is_snan():
            return format_quantity(q)
        key = (q, q.is_signed())  # 0 and -0 are equal but do not show alike
        text = shown.get(key)
        if text is None:
            text = shown[key] = format_quantity(q)
        return text

    return [
        _describe(m, q, r, formatted) for m, q, r in zip(metrics, quantities, rates, strict=True)
    ]


def _places(keys: list[str]) -> np.ndarray:
    """Each key's place in sorted order."""
    place = {k: i for i, k in enumerate(sorted(set(keys)))}
    return np.array([place[k] for k in keys], dtype=np.int64)


@dataclass
class _Entries:
    """One row per (department, pool) of the bills: what its journal lines post."""

    entry: list[str]
    fund: list[str]
    department: list[str]
    pool: list[str]
    amount: list[Decimal]
    memo: list[str]
    rule: list[str]
    in_it_fund: list[bool]


def _group_totals(amounts: list, starts: list[int], ends: list[int]) -> list:
    """Σ of each group's amounts from Decimal(0), in bill order, as a running sum makes it."""
    zero = Decimal(0)
    totals = []
    for a, b in zip(starts, ends, strict=True):
        total = zero + amounts[a]  # 0 + x, not x: the sum shows as a running sum shows it
        for x in amounts[a + 1 : b]:
            total += x
        totals.append(total)
    return totals


def _entries(drivers: Drivers, bills: pd.DataFrame, period: str) -> _Entries:
    """The bills grouped by (department, pool) in key order: amount, memo and rules of each."""
    if bills.empty:
        return _Entries([], [], [], [], [], [], [], [])
    columns = ("Department", "Pool", "Metric", "Quantity", "Rate", "Amount", "Rule")
    code, pool, metric, quantity, rate, amount, rule = (bills[c].tolist() for c in columns)
    dep_keys, pool_keys = name_keys(code), name_keys(pool)
    # Sorting the lines by (department key, pool key) groups them in entry order;
    # the stable sort keeps each group's lines in bill order.
    group = _places(dep_keys) * len(bills) + _places(pool_keys)
    order = np.argsort(group, kind="stable").tolist()
    texts = _descriptions(metric, quantity, rate)
    # Everything in sorted order from here: a group is the run of lines from a start to an end.
    amount, texts, rule = ([values[i] for i in order] for values in (amount, texts, rule))
    starts = np.flatnonzero(np.diff(group[order], prepend=-1)).tolist()
    ends = [*starts[1:], len(order)]
    totals = _group_totals(amount, starts, ends)
    # A group adding up to 0 posts nothing (e.g. a band priced at 0).
    posted = [g for g, total in enumerate(totals) if total != 0]
    firsts = [order[starts[g]] for g in posted]

    it_fund_key = name_key(drivers.settings.it_fund)
    number = {key: i + 1 for i, key in enumerate(drivers.department_order)}
    departments = [drivers.departments.get(dep_keys[i]) for i in firsts]
    funds = [dep.fund if dep else "" for dep in departments]
    in_it = {fund: name_key(fund) == it_fund_key for fund in set(funds)}
    pools = [str(pool[i]) for i in firsts]
    return _Entries(
        entry=[f"CB-{period}-{number.get(dep_keys[i], len(number) + 1):04d}" for i in firsts],
        fund=funds,
        department=[
            dep.code if dep else str(code[i]) for dep, i in zip(departments, firsts, strict=True)
        ],
        pool=pools,
        amount=[totals[g] for g in posted],
        memo=[
            f"Chargeback {period} {name} — {'; '.join(texts[starts[g] : ends[g]])}"
            for name, g in zip(pools, posted, strict=True)
        ],
        rule=[", ".join(dict.fromkeys(rule[starts[g] : ends[g]])) for g in posted],
        in_it_fund=[in_it[fund] for fund in funds],
    )


def build_journal(drivers: Drivers, bills: pd.DataFrame, period: str) -> pd.DataFrame:
    """The Journal sheet for the billed period, from its Bills."""
    entries = _entries(drivers, bills, period)
    if not entries.entry:
        return pd.DataFrame([], columns=JOURNAL_COLUMNS)
    s = drivers.settings
    in_it = np.array(entries.in_it_fund)
    # An entry posts 2 lines in the IT fund, 4 elsewhere (2 in its fund, 2 in the IT fund).
    per_entry = np.where(in_it, 2, 4)
    of = np.repeat(np.arange(len(in_it)), per_entry)
    kind = np.arange(len(of)) - np.repeat(np.cumsum(per_entry) - per_entry, per_entry)
    it_accounts = object_array([s.expense_account, s.reimbursement_account, None, None])
    other_accounts = object_array(
        [s.expense_account, s.due_to_account, s.due_from_account, s.revenue_account]
    )
    line_in_it = in_it[of]
    account = np.where(line_in_it, it_accounts[kind], other_accounts[kind])
    fund = np.where(~line_in_it & (kind >= 2), s.it_fund, object_array(entries.fund)[of])
    # Lines alternate debit, credit; a debit of a negative amount is a credit of its opposite.
    amounts = object_array(entries.amount)
    negative = np.array([a < 0 for a in entries.amount])
    amounts[negative] = [-a for a in amounts[negative]]
    debit = (kind % 2 == 0) ^ negative[of]
    amount = amounts[of]
    frame = {
        "Entry": object_array(entries.entry)[of],
        "Period": np.full(len(of), period, dtype=object),
        "Fund": fund,
        "Account": account,
        "Department": object_array(entries.department)[of],
        "Pool": object_array(entries.pool)[of],
        "Debit": np.where(debit, amount, None),
        "Credit": np.where(debit, None, amount),
        "Memo": object_array(entries.memo)[of],
        "Rule": object_array(entries.rule)[of],
    }
    return pd.DataFrame(frame, columns=JOURNAL_COLUMNS)
