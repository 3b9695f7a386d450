"""Small Books and rule ASTs for the engine tests, written inline (no workbook needed).

``make_book`` takes rows as tuples/dicts and types them as `costloop.engine.read.reader`
does (Period text, integer ``Cents``, float ``Quantity``, Decimal ``Rate``,
``_row`` and ``_key``). The rule builders make AST nodes with dummy spans, so
the engine tests do not depend on the parser.
"""

from __future__ import annotations

from decimal import Decimal

import pandas as pd

from costloop.engine.model.book import Book, Settings
from costloop.rules.ast import (
    Allocate,
    Charge,
    Column,
    ColumnDriver,
    Condition,
    CostDriver,
    EvenDriver,
    FixedRate,
    Name,
    RateCard,
    Receivers,
    Share,
    SharesDriver,
    Span,
    Tier,
    Tiered,
    UsageDriver,
    name_key,
)
from costloop.rules.plan import Plan, Step

S = Span(0, 1)


def _cents(amount) -> int:
    return int((Decimal(str(amount)) * 100).to_integral_value())


def make_book(
    departments=(),
    budget=(),
    actuals=(),
    usage=(),
    rates=(),
    settings: Settings | None = None,
) -> Book:
    """departments: (code, fund[, {extra columns}]); budget/actuals: (period, pool, amount);
    usage: (period, department, metric, quantity[, {extra}]); rates: dicts of Rates columns."""
    dep_rows = []
    for i, d in enumerate(departments):
        code, fund, *extra = d
        row = {"Department": code, "Fund": fund, "Name": f"{code} Department"}
        row |= extra[0] if extra else {}
        row |= {"_row": i + 2, "_key": name_key(code)}
        dep_rows.append(row)
    deps = pd.DataFrame(
        dep_rows, columns=None if dep_rows else ["Department", "Fund", "_row", "_key"]
    )

    def costs(rows):
        out = [
            {"Period": p, "Pool": pool, "Cents": _cents(a), "_row": i + 2, "_key": name_key(pool)}
            for i, (p, pool, a) in enumerate(rows)
        ]
        frame = pd.DataFrame(out, columns=["Period", "Pool", "Cents", "_row", "_key"])
        frame["Cents"] = frame["Cents"].astype("int64")
        return frame

    use_rows = []
    for i, u in enumerate(usage):
        period, dept, metric, qty, *extra = u
        row = {"Period": period, "Department": dept, "Metric": metric, "Quantity": float(qty)}
        row |= extra[0] if extra else {}
        row |= {"_row": i + 2, "_key": name_key(dept)}
        use_rows.append(row)
    use = pd.DataFrame(
        use_rows,
        columns=None
        if use_rows
        else ["Period", "Department", "Metric", "Quantity", "_row", "_key"],
    )
    use["Quantity"] = use["Quantity"].astype("float64")

    rate_rows = [
        {k: (Decimal(str(v)) if k == "Rate" else v) for k, v in r.items()} | {"_row": i + 2}
        for i, r in enumerate(rates)
    ]
    rate_frame = pd.DataFrame(rate_rows, columns=None if rate_rows else ["Metric", "Rate", "_row"])
    return Book(
        settings=settings or Settings(),
        departments=deps,
        budget=costs(budget),
        actuals=costs(actuals),
        usage=use,
        rates=rate_frame,
        rules=[],
    )


# --- rule AST builders ------------------------------------------------------


def usage(metric: str) -> UsageDriver:
    return UsageDriver(Name(metric, S), S)


def column(col: str) -> ColumnDriver:
    return ColumnDriver(Column(col, S), S)


def shares(*pairs) -> SharesDriver:
    return SharesDriver(tuple(Share(Decimal(str(p)), Name(n, S), S) for p, n in pairs), S)


def cost() -> CostDriver:
    return CostDriver(S)


def evenly() -> EvenDriver:
    return EvenDriver(S)


def cond(col: str, op: str, *values) -> Condition:
    vals = tuple(v if isinstance(v, str) else Decimal(str(v)) for v in values)
    return Condition(Column(col, S), op, vals, S)


def allocate(
    rule_id: str,
    pool: str,
    driver,
    *,
    departments: bool = True,
    pools: tuple[str, ...] | None = None,
    where=(),
    if_no_usage: str = "FAIL",
    reciprocal: bool = False,
    row: int = 2,
) -> Allocate:
    """``pools=None``: no pool receives; ``()``: every other pool; else the named pools."""
    receivers = Receivers(
        departments=departments,
        pools=pools is not None,
        pool_names=tuple(Name(p, S) for p in (pools or ())),
        span=S,
    )
    return Allocate(
        rule_id=rule_id,
        where=f"Rules!B{row}",
        text=f"ALLOCATE {pool!r} ...",
        span=S,
        pool=Name(pool, S),
        receivers=receivers,
        driver=driver,
        where_clause=tuple(where),
        if_no_usage=if_no_usage,
        reciprocal=reciprocal,
    )


def charge(
    rule_id: str,
    pool: str,
    metric: str,
    rate=None,
    *,
    tiers=None,
    card: bool = False,
    where=(),
    row: int = 2,
) -> Charge:
    """A flat ``rate``, ``tiers=[(1000, 0.05), (9000, 0.04), (None, 0.03)]`` or ``card=True``."""
    if card:
        pricing = RateCard(S)
    elif tiers is not None:
        pricing = Tiered(
            tuple(
                Tier(None if w is None else Decimal(str(w)), Decimal(str(r)), S) for w, r in tiers
            ),
            S,
        )
    else:
        pricing = FixedRate(Decimal(str(rate)), S)
    return Charge(
        rule_id=rule_id,
        where=f"Rules!B{row}",
        text=f"CHARGE {pool!r} ...",
        span=S,
        pool=Name(pool, S),
        metric=Name(metric, S),
        pricing=pricing,
        where_clause=tuple(where),
    )


def plan(*steps, charges=()) -> Plan:
    """Steps in order: an Allocate is one step, a tuple of Allocates a reciprocal group."""
    return Plan(
        allocations=tuple(Step(s if isinstance(s, tuple) else (s,)) for s in steps),
        charges=tuple(charges),
    )


def amounts(result, column: str = "Amount") -> dict[tuple[str, str], Decimal]:
    """(Department, Pool) -> summed amount from a Result's Bills."""
    out: dict[tuple[str, str], Decimal] = {}
    for d, p, a in zip(
        result.bills["Department"], result.bills["Pool"], result.bills[column], strict=True
    ):
        out[(d, p)] = out.get((d, p), Decimal(0)) + a
    return out
