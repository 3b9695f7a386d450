"""Benchmark the rules language: parse + check + order 1,000 varied rules, and cold import.

Run: ``python benchmarks/bench_rules.py``. Targets on a 2-core machine:
1,000 rules in under 0.5 s; ``import costloop.rules`` in under 0.3 s.
A script, not a test: numbers vary with the machine.
"""

from __future__ import annotations

import random
import statistics
import subprocess
import sys
import time

from costloop.rules import Names, check, order, parse_rules
from costloop.rules.ast import RuleCell, name_key
from costloop.rules.parser import lark_parser

RULES = 1000
REPEATS = 5


def _names(count: int, prefix: str) -> list[str]:
    return [f"{prefix} {i}" for i in range(count)]


POOLS = _names(RULES + 50, "Pool")
DEPARTMENTS = _names(60, "Dept")
METRICS = _names(40, "Metric")


def _rule(i: int, rng: random.Random) -> str:
    pool = POOLS[i]
    metric = rng.choice(METRICS)
    other = POOLS[i + 1 + rng.randrange(49)]  # feeds a later pool: a deep step-down, no cycle
    depts = rng.sample(DEPARTMENTS, 3)
    forms = [
        f'ALLOCATE "{pool}" TO DEPARTMENTS BY Headcount',
        f'ALLOCATE "{pool}" TO DEPARTMENTS BY USAGE "{metric}" IF NO USAGE EVENLY',
        f'ALLOCATE "{pool}" TO DEPARTMENTS EVENLY WHERE Fund = "General" AND Headcount > 5',
        f'ALLOCATE "{pool}" TO DEPARTMENTS BY 50% "{depts[0]}", 30% "{depts[1]}", 20% "{depts[2]}"',
        f'ALLOCATE "{pool}" TO POOLS "{other}" AND DEPARTMENTS BY USAGE "{metric}"',
        f'CHARGE "{pool}" FOR "{metric}" AT 0.{rng.randrange(10, 99)}',
        f'CHARGE "{pool}" FOR "{metric}" TIERED FIRST 1000 AT 0.05, NEXT 9000 AT 0.04,'
        " ABOVE AT 0.03 -- volume discount",
        f'CHARGE "{pool}" FOR "{metric}" AT RATE CARD WHERE Service IN ("EC2", "S3")',
        f'FORECAST USAGE "{metric}" BY TREND OVER 6 PERIODS',
        f'forecast cost "{pool}" by growth 2% per period',
    ]
    return forms[i % len(forms)]


def make_cells(count: int, seed: int = 7) -> list[RuleCell]:
    rng = random.Random(seed)
    return [
        RuleCell(f"R{i}", f"Rules!B{i + 2}", _rule(i, rng), id_where=f"Rules!A{i + 2}")
        for i in range(count)
    ]


def make_names() -> Names:
    def keyed(spellings: list[str]) -> dict[str, str]:
        return {name_key(s): s for s in spellings}

    return Names(
        pools=keyed(POOLS),
        departments=keyed(DEPARTMENTS),
        metrics=keyed(METRICS),
        department_columns=keyed(["Department", "Fund", "Headcount"]),
        numeric_department_columns=frozenset({"headcount"}),
        usage_columns=keyed(["Period", "Department", "Metric", "Quantity", "Service"]),
    )


def cold_import_seconds(runs: int = 5) -> float:
    """Best of several fresh interpreters importing costloop.rules (import cost only)."""
    code = (
        "import time; t = time.perf_counter(); import costloop.rules; "
        "print(time.perf_counter() - t)"
    )
    times = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        times.append(float(out.stdout))
    return min(times)


def first_parse_seconds() -> float:
    """A fresh interpreter's import plus first parse (loads lark and the cached tables)."""
    code = (
        "import time; t = time.perf_counter(); from costloop.rules import parse_rule; "
        "from costloop.rules.ast import RuleCell; "
        "parse_rule(RuleCell('R1', 'Rules!B2', 'CHARGE \"A\" FOR \"m\" AT 1')); "
        "print(time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return float(out.stdout)


def main() -> None:
    cells = make_cells(RULES)
    names = make_names()
    lark_parser()  # built (or loaded from cache) once per process, not per run
    timings = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        rules, problems = parse_rules(cells)
        problems += check(rules, names, cells)
        _plan, ordering = order(rules, names.pools)
        problems += ordering
        timings.append(time.perf_counter() - start)
    assert len(rules) == RULES, len(rules)
    best = min(timings)
    print(f"rules: {RULES} parsed + checked + ordered, {len(problems)} problems")
    print(f"  best {best:.3f} s, median {statistics.median(timings):.3f} s")
    print(f"  {RULES / best:,.0f} rules per second (target: {RULES} in < 0.5 s)")
    print(f"cold `import costloop.rules`: {cold_import_seconds():.3f} s (target < 0.3 s)")
    print(f"cold import + first parse (cached tables): {first_parse_seconds():.3f} s")


if __name__ == "__main__":
    main()
