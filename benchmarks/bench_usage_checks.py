"""What the Usage checks of issue 16 cost per run: repeated rows and usage no rule bills.

Run: ``python benchmarks/bench_usage_checks.py [--rows 1000000]``. A typed Usage
frame as the reader returns it (2,000 departments, 40 metrics, 12 periods, three
services, quantities with three decimals) is checked three ways, and the CPU
seconds of each are printed (CPU, not wall: the machine is shared):

- repeated rows with a Reference column (one per row, as a meter export has);
- repeated rows with no Reference column (every column compared);
- usage no rule bills, for 30 CHARGE rules with ``WHERE Service IN ("EC2", "S3")``.

For scale: ``costloop run`` of a million-row workbook takes about 6.8 s
(docs/scale.md). A script, not a test: the numbers vary with the machine.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from costloop.engine.chargeback.unbilled import unbilled_usage
from costloop.engine.model.book import Book, Settings
from costloop.engine.read.usage_checks import repeated_usage
from costloop.rules import order, parse_rules
from costloop.rules.ast import RuleCell


def usage_frame(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(16)

    def pick(values: list[str]) -> pd.Series:
        return pd.Series(np.array(values, dtype=object)[rng.integers(0, len(values), rows)])

    frame = pd.DataFrame(
        {
            "Period": pick([f"2025-{m:02d}" for m in range(1, 13)]),
            "Department": pick([f"D{i:04d}" for i in range(2000)]),
            "Metric": pick([f"Metric {i:02d}" for i in range(40)]),
            "Quantity": np.round(rng.random(rows) * 1000, 3),
            "Service": pick(["EC2", "S3", "Other"]),
            "Reference": pd.Series(np.array([f"R{i}" for i in range(rows)], dtype=object)),
            "_row": np.arange(rows) + 2,
        }
    )
    frame["_key"] = frame["Department"].str.casefold()
    return frame


def book_and_plan(usage: pd.DataFrame):
    cells = [
        RuleCell(
            f"R{i}",
            f"Rules!B{i + 2}",
            f'CHARGE "P{i}" FOR "Metric {i:02d}" AT 1 WHERE Service IN ("EC2", "S3")',
        )
        for i in range(30)
    ]
    rules, _ = parse_rules(cells)
    plan, _ = order(rules, {f"p{i}": f"P{i}" for i in range(30)})
    empty = pd.DataFrame({c: [] for c in ("Period", "Pool", "Cents", "Metric", "_row", "_key")})
    book = Book(
        settings=Settings(),
        departments=pd.DataFrame({"Department": []}),
        budget=empty,
        actuals=empty,
        usage=usage,
        rates=pd.DataFrame({"Metric": []}),
        rules=cells,
        columns={"Usage": {"metric": ("Metric", "C"), "service": ("Service", "E")}},
    )
    return book, plan


def cpu(label: str, call) -> None:
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        found = call()
        best = min(best, time.process_time() - start)
    print(f"  {label:<40} {best:6.3f} s CPU  ({len(found)} problem(s))")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    rows = parser.parse_args().rows
    usage = usage_frame(rows)
    print(f"Usage checks at {rows:,} rows (best of three)")
    cpu("repeated rows, Reference column", lambda: repeated_usage(usage, "Usage", True))
    whole = usage.assign(Reference="")
    cpu("repeated rows, no Reference column", lambda: repeated_usage(whole, "Usage", False))
    book, plan = book_and_plan(usage)
    cpu("usage no rule bills (30 rules)", lambda: unbilled_usage(book, plan, "2025-03"))


if __name__ == "__main__":
    main()
