"""Column-wise rewrites of engine steps that ran a Python step per row give the same answers.

Each test holds the vectorised function to the straightforward per-row version
it replaced (written out here as the reference), on random inputs.
"""

from __future__ import annotations

import random
from collections import Counter
from decimal import Decimal

import pandas as pd
import pytest

from costloop.engine.itfm.compliance import rate_exceptions
from costloop.engine.model.money import exact_decimal
from costloop.rules.ast import name_key


def _reference_rate_exceptions(bills, periods, exempt_rules):
    """The per-row version: the reference the column-wise one must match."""
    checked: set[str] = set()
    groups: dict = {}
    for line in bills.itertuples(index=False):
        rate = exact_decimal(line.Rate)
        if line.Period not in periods or rate is None or str(line.Rule) in exempt_rules:
            continue
        if not isinstance(line.Metric, str) or not line.Metric.strip():
            continue
        pool_key = name_key(str(line.Pool))
        checked.add(pool_key)
        group = groups.setdefault(
            (line.Period, pool_key, name_key(line.Metric)),
            {"pool": str(line.Pool), "metric": line.Metric, "by_dept": {}},
        )
        group["by_dept"].setdefault(str(line.Department), set()).add((rate, str(line.Rule)))
    exceptions = []
    for (period, _pool, _metric), group in sorted(groups.items()):
        count = Counter(rate for rates in group["by_dept"].values() for rate, _ in rates)
        standard = min(count, key=lambda r: (-count[r], r))
        for dept in sorted(group["by_dept"], key=name_key):
            for rate, rule in sorted(group["by_dept"][dept]):
                if rate != standard:
                    exceptions.append(
                        {
                            "period": period,
                            "pool": group["pool"],
                            "metric": group["metric"],
                            "department": dept,
                            "rate": rate,
                            "standard": standard,
                            "rule": rule,
                        }
                    )
    return exceptions, checked


def _random_bills(rng: random.Random, rows: int) -> pd.DataFrame:
    rates = [Decimal("0.10"), Decimal("0.12"), Decimal("0.05"), None, 0.3, Decimal("NaN")]
    lines = []
    for _ in range(rows):
        lines.append(
            {
                "Period": rng.choice(["2025-07", "2025-08", "2025-09"]),
                "Department": rng.choice(["D1", "D2", "D3", "D4", "d5"]),
                "Pool": rng.choice(["Cloud", "cloud ", "Storage"]),
                "Metric": rng.choice(["GB", "vCPU", " ", None, "gb"]),
                "Rate": rng.choice(rates),
                "Rule": rng.choice(["R1", "R2", "R3"]),
            }
        )
    return pd.DataFrame(lines)


@pytest.mark.parametrize("seed", range(25))
def test_rate_exceptions_match_the_per_row_version(seed):
    rng = random.Random(seed)
    bills = _random_bills(rng, rng.randint(1, 300))
    periods = {"2025-07", "2025-08"}
    exempt = {"R3"} if seed % 2 else set()
    got, got_checked = rate_exceptions(bills, periods, exempt)
    want, want_checked = _reference_rate_exceptions(bills, periods, exempt)
    assert got_checked == want_checked
    assert [e | {"rate": str(e["rate"]), "standard": str(e["standard"])} for e in got] == [
        e | {"rate": str(e["rate"]), "standard": str(e["standard"])} for e in want
    ]


def test_rate_exceptions_of_no_lines():
    assert rate_exceptions(None, {"2025-07"}, set()) == ([], set())
    empty = _random_bills(random.Random(1), 3).iloc[:0]
    assert rate_exceptions(empty, {"2025-07"}, set()) == ([], set())


def _reference_check_journal(journal):
    """The group-by version of the journal tie-out: the reference for the one-pass one."""

    def total(values):
        return sum((Decimal(v) for v in values if v is not None and not pd.isna(v)), Decimal(0))

    failures = []
    for (entry, fund), lines in journal.groupby(["Entry", "Fund"], sort=True):
        debit, credit = total(lines["Debit"]), total(lines["Credit"])
        if debit != credit:
            failures.append(f"entry {entry} fund {fund}: debits {debit} ≠ credits {credit}")
    for fund, lines in journal.groupby("Fund", sort=True):
        debit, credit = total(lines["Debit"]), total(lines["Credit"])
        if debit != credit:
            failures.append(f"fund {fund}: debits {debit} ≠ credits {credit}")
    return failures


@pytest.mark.parametrize("seed", range(20))
def test_journal_tie_out_matches_the_group_by_version(seed):
    from costloop.engine.chargeback.tieouts import _SHOWN, check_journal

    rng = random.Random(seed)
    lines = []
    for entry in range(1, rng.randint(2, 30)):
        for fund in rng.sample(["General", "IT", "Grants"], 2):
            amount = Decimal(rng.randint(1, 10_000)) / 100
            odd = Decimal("0.01") if rng.random() < 0.15 else Decimal(0)
            lines.append({"Entry": entry, "Fund": fund, "Debit": amount, "Credit": None})
            lines.append({"Entry": entry, "Fund": fund, "Debit": None, "Credit": amount + odd})
    if seed % 4 == 0:
        lines.append({"Entry": None, "Fund": "IT", "Debit": Decimal(5), "Credit": None})
    if seed % 5 == 0:
        lines.append({"Entry": 1, "Fund": None, "Debit": None, "Credit": Decimal(7)})
    journal = pd.DataFrame(lines, columns=["Entry", "Fund", "Debit", "Credit"])
    want = _reference_check_journal(journal)
    got = check_journal(journal)
    assert got.passed == (not want)
    if want:
        more = f" (and {len(want) - _SHOWN} more)" if len(want) > _SHOWN else ""
        assert got.detail == "; ".join(want[:_SHOWN]) + more
