"""End-to-end speed of `costloop run` on a large generated workbook (a script, not a test).

    python benchmarks/bench_engine.py [--usage 100000] [--departments 500] [--rules 60]

Generates a workbook with the given number of usage rows, departments and
rules over 12 periods, then runs the whole loop on it and prints the time of
each stage (read, check, run, write) and the peak memory. Target on a 2-core
machine: under 10 s end to end for 100,000 usage rows, 500 departments,
60 rules and 12 periods.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

from bench_scale import rule_texts
from openpyxl import Workbook

PERIODS = [f"{2025 + (6 + m) // 12}-{(6 + m) % 12 + 1:02d}" for m in range(12)]  # Jul..Jun
FUNDS = ["General", "Grants", "Auxiliary", "IT"]


def generate(path: Path, usage_rows: int, departments: int, rules: int, seed: int = 7) -> None:
    """A synthetic but well-formed workbook: every rule form, consistent names."""
    rng = random.Random(seed)
    wb = Workbook(write_only=True)

    settings = wb.create_sheet("Settings")
    settings.append(["Key", "Value"])
    for row in (("Organization", "Bench U"), ("Period", PERIODS[-1]), ("FiscalYearStart", 7)):
        settings.append(list(row))

    depts = [f"D{i:04d}" for i in range(departments)]
    sheet = wb.create_sheet("Departments")
    sheet.append(["Department", "Fund", "Name", "Billable", "Headcount", "SquareFeet"])
    for i, d in enumerate(depts):
        sheet.append(
            [d, FUNDS[i % 4], f"Department {i}", "Y", rng.randint(1, 400), rng.randint(100, 9000)]
        )

    # Half the rules charge a metered pool, the rest allocate; a few pools step down.
    n_charge = rules // 2
    n_alloc = rules - n_charge
    charged = [f"Service {i:02d}" for i in range(n_charge)]
    allocated = [f"Overhead {i:02d}" for i in range(n_alloc)]
    metrics = [f"Metric {i:02d}" for i in range(n_charge)]

    budget = wb.create_sheet("Budget")
    budget.append(["Period", "Pool", "Amount", "Metric", "Volume"])
    actuals = wb.create_sheet("Actuals")
    actuals.append(["Period", "Pool", "Amount"])
    for p in PERIODS:
        for pool, metric in zip(charged, metrics, strict=True):
            budget.append([p, pool, rng.randint(10_000, 90_000), metric, 50_000])
            actuals.append([p, pool, round(rng.uniform(10_000, 90_000), 2)])
        for pool in allocated:
            budget.append([p, pool, rng.randint(5_000, 50_000), None, None])
            actuals.append([p, pool, round(rng.uniform(5_000, 50_000), 2)])

    usage = wb.create_sheet("Usage")
    usage.append(["Period", "Department", "Metric", "Quantity", "Service"])
    for _ in range(usage_rows):
        usage.append(
            [
                rng.choice(PERIODS),
                rng.choice(depts),
                rng.choice(metrics),
                round(rng.uniform(0, 500), 2),
                rng.choice(["EC2", "S3", "Other"]),
            ]
        )

    rates = wb.create_sheet("Rates")
    rates.append(["Metric", "Rate", "EffectiveFrom"])
    for metric in metrics:
        rates.append([metric, 0.11, PERIODS[0]])
        rates.append([metric, 0.12, PERIODS[6]])

    sheet = wb.create_sheet("Rules")
    sheet.append(["ID", "Rule", "Enabled"])
    # The same rule mix as the scale benchmark: CHARGE flat, rate card and tiered; the first
    # two overhead pools step down into the others, the rest go to departments.
    texts = rule_texts(rng, metrics, charged, allocated)
    for i, text in enumerate(texts, start=1):
        sheet.append([f"R{i:03d}", text, "Y"])
    wb.save(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--usage", type=int, default=100_000)
    parser.add_argument("--departments", type=int, default=500)
    parser.add_argument("--rules", type=int, default=60)
    args = parser.parse_args()

    from costloop.engine.pipeline.commands import run_book

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.xlsx"
        t0 = time.perf_counter()
        generate(path, args.usage, args.departments, args.rules)
        print(
            f"generated {path.stat().st_size / 1e6:.1f} MB workbook "
            f"in {time.perf_counter() - t0:.1f} s"
        )
        t0 = time.perf_counter()
        outcome = run_book(path)
        total = time.perf_counter() - t0
        for problem in outcome.errors[:10]:
            print(problem.render())
        for stage, seconds in outcome.timings.items():
            print(f"  {stage:<8} {seconds:6.2f} s")
        print(
            f"end to end {total:.2f} s  ({'OK' if outcome.ok else 'FAILED'}; "
            f"{args.usage:,} usage rows, {args.departments} departments, "
            f"{args.rules} rules, 12 periods)"
        )
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak memory {peak:.0f} MB")
        return 0 if outcome.ok else 1


if __name__ == "__main__":
    sys.exit(main())
