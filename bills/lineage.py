"""How a bill line came about, in words that name no other department.

A bill line's rule text may name other departments (``BY 40% "FIN", 25% "HRO"``,
``WHERE Department <> "PRES"``), and a department's bill must never show
another department's code or name. So the lineage is rebuilt from the parsed
rule: its ID, its cell, and what it did to this department, with fixed shares
reduced to this department's own share and any WHERE value naming another
department replaced by "another department".
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from costloop.rules.ast import (
    Allocate,
    Charge,
    ColumnDriver,
    Condition,
    EvenDriver,
    FixedRate,
    RateCard,
    SharesDriver,
    Statement,
    Tiered,
    UsageDriver,
    name_key,
)

OTHER = "another department"


def _number(value: Decimal) -> str:
    if value == value.to_integral_value():
        return f"{int(value):,}"
    return _plain(value)


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _as_number(text: str) -> Decimal | None:
    try:
        number = Decimal(text.replace(",", ""))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None  # a department named "NaN" is a name


def _value(value: str | Decimal, private: frozenset[str], equality: bool) -> str:
    if isinstance(value, Decimal):
        if not equality:
            return _number(value)  # a threshold (Headcount >= 1,000) names no one
        # Compared for equality a number may be a department's code (cost centre 1010,
        # or "01010", which the engine reads as the same number).
        return OTHER if any(_as_number(k) == value for k in private) else _plain(value)
    return OTHER if name_key(value) in private else f'"{value}"'


def _conditions(conds: tuple[Condition, ...], private: frozenset[str]) -> str:
    parts = []
    for cond in conds:
        equality = cond.op in ("=", "<>", "IN")
        if cond.op == "IN":
            values = ", ".join(_value(v, private, equality) for v in cond.values)
            parts.append(f"{cond.column.text} IN ({values})")
        else:
            value = _value(cond.values[0], private, equality)
            parts.append(f"{cond.column.text} {cond.op} {value}")
    return f" where {' and '.join(parts)}" if parts else ""


def _allocation(rule: Allocate, own: frozenset[str], private: frozenset[str]) -> str:
    pool = f'"{rule.pool.text}"'
    driver = rule.driver
    if isinstance(driver, UsageDriver):
        how = f'share of {pool} by usage of "{driver.metric.text}"'
    elif isinstance(driver, ColumnDriver):
        how = f"share of {pool} by the Departments column {driver.column.text}"
    elif isinstance(driver, SharesDriver):
        mine = [s.percent for s in driver.shares if s.name.key in own]
        pct = f"{_number(mine[0])}%" if mine else "a fixed share"
        how = f"fixed share {pct} of {pool}"
    elif isinstance(driver, EvenDriver):
        how = f"equal share of {pool}"
    else:
        how = f"share of {pool}"
    how += _conditions(rule.where_clause, private)
    if rule.reciprocal:
        how += " (support pools solved together, reciprocal method)"
    return how


def _charge(rule: Charge, private: frozenset[str]) -> str:
    metric = f'"{rule.metric.text}"'
    pricing = rule.pricing
    if isinstance(pricing, FixedRate):
        how = f"{metric} at {pricing.rate} a unit"
    elif isinstance(pricing, RateCard):
        how = f"{metric} at the rate card (Rates sheet)"
    elif isinstance(pricing, Tiered):
        bands = []
        for n, tier in enumerate(pricing.tiers):
            if tier.width is None:
                bands.append(f"above at {tier.rate}")
            else:
                word = "first" if n == 0 else "next"
                bands.append(f"{word} {_number(tier.width)} at {tier.rate}")
        how = f"{metric} graduated: {', '.join(bands)}"
    else:
        how = metric
    return f'charge for {how} by "{rule.pool.text}"' + _conditions(rule.where_clause, private)


def describe(rule: Statement | None, own: frozenset[str], private: frozenset[str]) -> str:
    """One line of lineage for a bill line of the department whose name keys are ``own``."""
    if isinstance(rule, Allocate):
        return _allocation(rule, own, private)
    if isinstance(rule, Charge):
        return _charge(rule, private)
    return ""
