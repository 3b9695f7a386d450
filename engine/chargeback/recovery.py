"""Recovery: what each pool cost and what it recovered, period by period (docs/outputs.md).

For each period of the fiscal year to date and each pool:

- Cost = the pool's cost to recover from departments: its direct cost (per
  CostBasis) + what it received from other pools − what it allocated onward
  to other pools;
- Recovered = what it billed to departments (ALLOCATE lines and CHARGE lines);
- Unallocated = what it kept: IF NO USAGE KEEP, a failed driver, or cost no
  rule reaches;
- OverUnder = Recovered − Cost (positive: over-recovered, negative: under);
- RecoveryPct = Recovered ÷ Cost as a ratio (1 = 100%, four decimals), blank
  when Cost is 0.

A pool spread by ALLOCATE recovers its cost exactly, less what it kept
(OverUnder = −Unallocated); a pool billed by CHARGE recovers usage × rate, and
OverUnder shows how far the rate is from break-even.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pandas as pd

from costloop.engine.chargeback.drivers import Drivers
from costloop.engine.model.money import cents_to_money, round_to_places
from costloop.engine.model.result import POOL_FLOW_COLUMNS, PeriodRun
from costloop.engine.model.sheets import RECOVERY_COLUMNS

_PCT_PLACES = 4


def build_pool_flows(drivers: Drivers, runs: list[PeriodRun]) -> pd.DataFrame:
    """Per period and pool, in Decimal money: the flows that Recovery and the forecast use."""
    minor = drivers.minor_unit
    rows = []
    for run in runs:
        for pool in sorted(run.flows):
            f = run.flows[pool]
            cost = f["direct"] + f["received"] - f["onward"]
            values = {
                "Direct": f["direct"],
                "Received": f["received"],
                "AllocatedOnward": f["onward"],
                "Billed": f["billed"],
                "Unallocated": f["unallocated"],
                "Cost": cost,
                "Recovered": f["billed"],
                "Charged": f["charged"],
            }
            rows.append(
                {"Period": run.period, "Pool": drivers.pool_names.get(pool, pool)}
                | {k: cents_to_money(v, minor) for k, v in values.items()}
            )
    return pd.DataFrame(rows, columns=POOL_FLOW_COLUMNS)


def recovery_pct(recovered: Decimal, cost: Decimal) -> Decimal | None:
    """Recovered ÷ Cost to four decimals (half-up); None when there is no cost."""
    if cost == 0:
        return None
    return round_to_places(Fraction(recovered) / Fraction(cost), _PCT_PLACES)


def build_recovery(flows: pd.DataFrame) -> pd.DataFrame:
    """The Recovery sheet from the pool flows."""
    rows = []
    for period, pool, cost, recovered, unallocated in zip(
        flows["Period"],
        flows["Pool"],
        flows["Cost"],
        flows["Recovered"],
        flows["Unallocated"],
        strict=True,
    ):
        rows.append(
            {
                "Period": period,
                "Pool": pool,
                "Cost": cost,
                "Recovered": recovered,
                "OverUnder": recovered - cost,
                "RecoveryPct": recovery_pct(recovered, cost),
                "Unallocated": unallocated,
            }
        )
    return pd.DataFrame(rows, columns=RECOVERY_COLUMNS)
