"""Cost-recovery compliance for a central service fund: the `Compliance` sheet.

What a federal reviewer of billed central services asks (2 CFR 200 Appendix V,
G.2 and G.4; §200.468 specialized service facilities):

- Does each billed service recover its cost and no more? Year-to-date revenue
  vs cost and the cumulative over/under recovery, which G.4 requires to be
  adjusted (refunded, credited or carried into future rates).
- Is the working-capital reserve reasonable? G.2 accepts up to 60 calendar
  days of cash expenses (Settings `ReserveDays`).
- Is everyone billed the same rate? §200.468(b)(1): the rate schedule must not
  discriminate between users.

Definitions (fiscal year to date = first period of the fiscal year through the
billed period, ``m`` of them):

    reserve                    = cumulative over/under recovery (Recovered − Cost)
    annualised cash expenses   = Cost YTD × 12 ÷ m
    reserve days               = reserve ÷ (annualised cash expenses ÷ 365)
                               = reserve × 365 × m ÷ (Cost YTD × 12)
    excess over limit          = reserve − ReserveDays × annualised cash expenses ÷ 365

Reserve days are negative when the pool is under-recovered (a deficit worth
that many days). Pool cost is taken as cash expense; depreciation in Actuals
is not separated out (see docs/itfm.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pandas as pd

from costloop.engine.chargeback.rates import RateCards
from costloop.engine.model.money import exact_decimal, exact_fraction, round_to_places
from costloop.engine.model.periods import fiscal_periods_to_date
from costloop.engine.model.sheets import BILLS, COMPLIANCE, COMPLIANCE_COLUMNS
from costloop.problems import Problem, Reason, Severity
from costloop.rules.ast import Charge, RateCard, Tiered, name_key

DAYS_PLACES = 1
RATIO_PLACES = 4

RECOVERY_CHECK = "RECOVERY"
FUND_CHECK = "FUND TOTAL"
RATE_CHECK = "SAME RATE"


# --- the reserve ------------------------------------------------------------------


def reserve_days(over_under: Fraction, cost: Fraction, months: int) -> Fraction | None:
    """Reserve in days of cash expenses: OU × 365 × months ÷ (cost × 12); None without cost."""
    if cost <= 0:
        return None
    return over_under * 365 * months / (cost * 12)


def _money(value: Fraction, minor: int) -> Decimal:
    return round_to_places(value, minor)


def _days_text(days: Fraction, limit: int) -> str:
    """Reserve days as a finding states them: one decimal, but never "60.0 days, over the
    60-day limit" — a reserve a cent over the limit shows as just over it."""
    shown = round_to_places(days, DAYS_PLACES)
    if days > limit >= shown:
        return f"just over {limit}"
    return str(shown)


def _recovery_row(label, pool, months, cost, revenue, ou, limit, minor, same_rate) -> dict:
    """One pool's (or the fund's) recovery, reserve and verdict."""
    annualised = cost * 12 / months
    days = reserve_days(ou, cost, months)
    excess = ou - Fraction(limit) * annualised / 365
    ratio = None if cost == 0 else round_to_places(revenue / cost, RATIO_PLACES)
    if days is None:
        status, finding = "NO COST", "no cost recorded this fiscal year to date"
    elif days > limit:  # up to the limit is reasonable (G.2): exactly 60 days passes
        status = "EXCEEDS RESERVE LIMIT"
        finding = (
            f"reserve of {_money(ou, minor):,} is {_days_text(days, limit)} days of "
            f"cash expenses, over the {limit}-day limit (2 CFR 200 App. V G.2): lower rates or "
            f"refund/credit the excess of {_money(excess, minor):,} (G.4)"
        )
    elif ou < 0:
        status = "UNDER-RECOVERED"
        finding = (
            f"under-recovered {_money(-ou, minor):,}: raise rates or carry the deficit into "
            f"future rates (App. V G.4); see the RATE rows of the Forecast sheet"
        )
    else:
        status = "WITHIN LIMIT"
        finding = (
            f"over-recovery of {_money(ou, minor):,} is within the {limit}-day reserve"
            if ou > 0
            else "revenue equals cost"
        )
    return {
        "Check": label,
        "Pool": pool,
        "Months": months,
        "Cost YTD": _money(cost, minor),
        "Revenue YTD": _money(revenue, minor),
        "Over/Under YTD": _money(ou, minor),
        "Recovery %": ratio,
        "Annualised Cash Expenses": _money(annualised, minor),
        "Reserve Days": None if days is None else round_to_places(days, DAYS_PLACES),
        "Limit Days": limit,
        "Excess Over Limit": None if days is None or excess <= 0 else _money(excess, minor),
        "Same Rate": same_rate,
        "Status": status,
        "Finding": finding,
        "days_text": None if days is None else _days_text(days, limit),  # not a column
    }


def _recovery_ytd(recovery: pd.DataFrame | None, periods: set[str]):
    """Pool key -> [cost, revenue, over/under] summed over the year to date; and spellings."""
    sums: dict[str, list[Fraction]] = {}
    names: dict[str, str] = {}
    if recovery is None or len(recovery) == 0:
        return sums, names
    for row in recovery.itertuples(index=False):
        if row.Period not in periods:
            continue
        key = name_key(str(row.Pool))
        names.setdefault(key, str(row.Pool))
        cost, revenue, ou = (
            exact_fraction(v) or Fraction(0) for v in (row.Cost, row.Recovered, row.OverUnder)
        )
        total = sums.setdefault(key, [Fraction(0)] * 3)
        total[0] += cost
        total[1] += revenue
        total[2] += ou
    return sums, names


# --- same rate for the same service ------------------------------------------------


def tiered_rules(charges: Iterable[Charge]) -> set[str]:
    """IDs of CHARGE rules priced by graduated tiers in every period: ``TIERED``."""
    return {c.rule_id for c in charges if isinstance(c.pricing, Tiered)}


def tiered_card_periods(
    charges: Iterable[Charge], rates: pd.DataFrame | None, periods: Iterable[str]
) -> dict[str, set[str]]:
    """Rule ID -> the periods in which its RATE CARD's schedule in force is tiered.

    Resolved as the charge billed it (`costloop.engine.chargeback.rates`): a card
    tiered last year and flat now is held to the same-rate test now.
    """
    cards = RateCards(rates)
    periods = list(periods)
    found = {}
    for charge in charges:
        if isinstance(charge.pricing, RateCard):
            tiered = cards.tiered_periods(charge.pool.key, charge.metric.key, periods)
            if tiered:
                found[charge.rule_id] = tiered
    return found


def rate_exceptions(
    bills: pd.DataFrame | None,
    periods: set[str],
    exempt_rules: set[str],
    exempt_periods: Mapping[str, set[str]] | None = None,
):
    """Bill lines priced differently from the standard rate of their period, pool and metric.

    The standard rate is the one billed to the most departments (ties: the lower
    rate). Tiered CHARGE rules are exempt: one graduated schedule applied to
    everyone is the same rate schedule even though lines show different tier rates.
    ``exempt_rules`` are exempt in every period, ``exempt_periods`` (rule ID ->
    periods) only in the periods given (a RATE CARD tiered then).
    Returns (exceptions, pools checked) — exceptions as dicts for the sheet.
    """
    if bills is None or len(bills) == 0:
        return [], set()
    # Column-wise: a year of bill lines for thousands of departments is hundreds of
    # thousands of rows; only the exceptions found become Python dicts.
    rates = _map_values(bills["Rate"].to_numpy(dtype=object), exact_decimal)
    metrics = bills["Metric"].to_numpy(dtype=object)
    named = _map_values(metrics, lambda m: isinstance(m, str) and bool(m.strip()))
    rules = bills["Rule"].astype(str).to_numpy(dtype=object)
    exempt = pd.Series(rules).isin(exempt_rules).to_numpy(copy=True)
    for rule, tiered in (exempt_periods or {}).items():
        exempt |= (rules == rule) & bills["Period"].isin(tiered).to_numpy()
    keep = bills["Period"].isin(periods).to_numpy() & pd.notna(rates) & ~exempt & named.astype(bool)
    if not keep.any():
        return [], set()
    # Every text column as integer codes: the grouping and merging below then hash
    # numbers, not hundreds of thousands of strings; only exceptions map back.
    pools = bills["Pool"].astype(str).to_numpy(dtype=object)[keep]
    pool_keys = _map_values(pools, name_key)
    metric_keys = _map_values(metrics[keep], name_key)
    coded = {
        "period": bills["Period"].to_numpy(dtype=object)[keep],
        "pool_key": pool_keys,
        "metric_key": metric_keys,
        "department": bills["Department"].astype(str).to_numpy(dtype=object)[keep],
        "rule": rules[keep],
        "pool": pools,
        "metric": metrics[keep],
    }
    texts: dict[str, np.ndarray] = {}
    columns: dict[str, np.ndarray] = {}
    for name, values in coded.items():
        columns[name], uniques = pd.factorize(values)
        texts[name] = np.asarray(uniques, dtype=object)
    lines = pd.DataFrame(columns)
    # Equal rates (0.1 and 0.10) are one rate; its rank orders rates by value.
    codes, uniques = pd.factorize(rates[keep])
    order = sorted(range(len(uniques)), key=lambda i: uniques[i])
    rank = np.empty(len(uniques), dtype=np.int64)
    rank[order] = np.arange(len(uniques))
    lines["rate"] = rank[codes]
    group = ["period", "pool_key", "metric_key"]
    first = lines.drop_duplicates(group)[[*group, "pool", "metric"]]
    # Each department counts once per (rate, rule) it was billed at, as before.
    triples = lines.drop_duplicates([*group, "department", "rate", "rule"])
    counts = triples.groupby([*group, "rate"], sort=False).size().rename("n").reset_index()
    # Standard: the rate billed to most departments; a tie goes to the lower rate.
    counts = counts.sort_values([*group, "n", "rate"], ascending=[True, True, True, False, True])
    standard = counts.drop_duplicates(group)[[*group, "rate"]].rename(columns={"rate": "std"})
    odd = triples.merge(standard, on=group)
    odd = odd[odd["rate"] != odd["std"]].merge(first, on=group, suffixes=("_line", ""))
    by_rank = np.empty(len(uniques), dtype=object)
    by_rank[rank] = list(uniques)
    exceptions = [
        {
            "period": texts["period"][row.period],
            "pool": texts["pool"][row.pool],
            "metric": texts["metric"][row.metric],
            "department": texts["department"][row.department],
            "rate": by_rank[row.rate],
            "standard": by_rank[row.std],
            "rule": texts["rule"][row.rule],
        }
        for row in odd.itertuples(index=False)
    ]
    exceptions.sort(
        key=lambda e: (
            e["period"],
            name_key(e["pool"]),
            name_key(e["metric"]),
            name_key(e["department"]),
            e["department"],
            e["rate"],
            e["rule"],
        )
    )
    return exceptions, {texts["pool_key"][code] for code in pd.unique(lines["pool_key"])}


def _map_values(values: np.ndarray, fn) -> np.ndarray:
    """``fn`` of each value, computed once per distinct value."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    mapped = np.empty(len(uniques) + 1, dtype=object)
    mapped[: len(uniques)] = [fn(u) for u in uniques]
    if (codes < 0).any():
        mapped[-1] = fn(None)
    return mapped[codes]


def _exception_row(exc: dict) -> dict:
    rate, standard = exc["rate"], exc["standard"]
    return {
        "Check": RATE_CHECK,
        "Pool": exc["pool"],
        "Metric": exc["metric"],
        "Period": exc["period"],
        "Department": exc["department"],
        "Rate Billed": rate,
        "Standard Rate": standard,
        "Same Rate": "NO",
        "Status": "RATE DIFFERS",
        "Finding": (
            f'{exc["department"]} was billed {rate} per "{exc["metric"]}" (rule {exc["rule"]}); '
            f"the other users paid {standard} — every user must be billed the same rate "
            f"(2 CFR 200.468(b)(1))"
        ),
    }


def _exception_problems(
    exceptions: list[dict], charges: Iterable[Charge], bills_sheet: str = BILLS
) -> list[Problem]:
    """One warning per pool and metric, at the CHARGE rule that priced the odd lines."""
    cells = {c.rule_id: c for c in charges}
    grouped: dict[tuple[str, str], list[dict]] = {}
    for exc in exceptions:
        grouped.setdefault((name_key(exc["pool"]), name_key(exc["metric"])), []).append(exc)
    problems = []
    for found in grouped.values():
        first = found[0]
        rule = cells.get(first["rule"])
        departments = ", ".join(sorted({e["department"] for e in found}, key=name_key))
        periods = ", ".join(sorted({e["period"] for e in found}))
        problems.append(
            Problem(
                Reason.RATE_NOT_UNIFORM,
                Severity.WARNING,
                rule.where if rule else bills_sheet,
                f'pool "{first["pool"]}": {departments} billed {first["rate"]} per '
                f'"{first["metric"]}" in {periods} while other departments paid '
                f"{first['standard']}; a central service must bill every user the same "
                f"rate (2 CFR 200.468(b)(1)) — check the CHARGE rules' WHERE clauses and Rates",
                rule.text if rule else None,
                None,  # the whole rule is in question, not one character of it
                None,
                first["rule"],
            )
        )
    return problems


# --- the sheet ------------------------------------------------------------------------


def compliance(
    book,
    recovery: pd.DataFrame | None,
    bills: pd.DataFrame | None,
    period: str,
    charges: Iterable[Charge] = (),
    sheet: str = COMPLIANCE,
    bills_sheet: str = BILLS,
) -> tuple[pd.DataFrame, list[Problem]]:
    """The `Compliance` sheet: recovery and reserve per billed pool, the fund, rate exceptions.

    ``bills`` may hold every period of the fiscal year to date (the same-rate
    check then covers them all) or only the billed period. ``sheet`` is the name
    the rows are written under (``Compliance@High`` in a ``--scenario`` run):
    a warning about a row points into that sheet; ``bills_sheet`` likewise names
    the run's Bills sheet (``Bills@High``).
    """
    charges = list(charges)
    settings = book.settings
    ytd = fiscal_periods_to_date(period, settings.fiscal_year_start)
    months, periods, limit, minor = len(ytd), set(ytd), settings.reserve_days, settings.minor_unit
    exempt = tiered_rules(charges)
    exempt_periods = tiered_card_periods(charges, book.rates, ytd)
    exceptions, rated = rate_exceptions(bills, periods, exempt, exempt_periods)
    odd_pools = {name_key(e["pool"]) for e in exceptions}
    billed_pools = (
        {name_key(str(p)) for p in bills["Pool"].unique()} if bills is not None else set()
    )

    sums, names = _recovery_ytd(recovery, periods)
    rows = []
    fund = [Fraction(0)] * 3
    for key in sorted(names):
        cost, revenue, ou = sums[key]
        if revenue == 0 and key not in billed_pools:
            continue  # not a billed service this year: nothing to test
        same = "NO" if key in odd_pools else "YES" if key in rated else "N/A"
        rows.append(
            _recovery_row(RECOVERY_CHECK, names[key], months, cost, revenue, ou, limit, minor, same)
        )
        fund = [a + b for a, b in zip(fund, (cost, revenue, ou), strict=True)]
    problems: list[Problem] = []
    if rows:
        same = "NO" if odd_pools else "YES" if rated else "N/A"
        total = _recovery_row(FUND_CHECK, "All billed pools", months, *fund, limit, minor, same)
        rows.append(total)
        if total["Status"] == "EXCEEDS RESERVE LIMIT":
            problems.append(
                Problem(
                    Reason.RESERVE_EXCEEDED,
                    Severity.WARNING,
                    # The FUND TOTAL row just added (row 1 is the header).
                    f"{sheet}!A{len(rows) + 1}",
                    f"the IT fund's reserve from billing ({total['Over/Under YTD']:,}) is "
                    f"{total['days_text']} days of cash expenses, over the {limit}-day limit "
                    f"(Settings ReserveDays; 2 CFR 200 App. V G.2) — lower rates or refund "
                    f"{total['Excess Over Limit']:,}; see the {sheet} sheet",
                )
            )
    rows += [_exception_row(e) for e in exceptions]
    problems += _exception_problems(exceptions, charges, bills_sheet)
    # Every cell explicit (None, not NaN) so blanks stay blank and money stays Decimal.
    table = [{c: row.get(c) for c in COMPLIANCE_COLUMNS} for row in rows]
    return pd.DataFrame(table, columns=COMPLIANCE_COLUMNS, dtype=object), problems
