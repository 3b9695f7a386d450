"""What the bill page's additions cost: the budget pass, the year's statements, the charts.

`python benchmarks/bench_portal_pages.py --rows R --departments D` generates a workbook
(benchmarks/bench_scale.py's generator), runs it, and prints the seconds of:

- the bills' re-run of the year (`load_billed_year`, what the portal did already);
- the statements of the billed period alone, and of the billed and closed periods;
- the departments' budget (the rules over the year to date at CostBasis BUDGET);
- rendering one department's two charts, cold (the first in the process) and warm.

The portal does the first three in its worker process when it reads a run, and the
charts once per department and run (docs/portal.md).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scale import generate

from costloop.bills.source import load_billed_year
from costloop.bills.statement import build_statements, build_year_statements
from costloop.engine.model.periods import fiscal_periods_to_date
from costloop.engine.pipeline.budget import budget_by_department
from costloop.engine.pipeline.commands import run_book
from costloop.portal.charts import render_svg


def _timed(label: str, work):
    t0 = time.perf_counter()
    out = work()
    print(f"{label}: {time.perf_counter() - t0:.3f} s")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="usage rows")
    parser.add_argument("--departments", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="costloop-bench-pages-") as tmp:
        book = Path(tmp) / "book.xlsx"
        generate(book, args.rows, departments=args.departments)
        assert run_book(book).ok
        print(f"workbook: {args.rows:,} usage rows, {args.departments:,} departments")
        year, problems = _timed(
            "re-run of the year (load_billed_year)", lambda: load_billed_year(book)
        )
        assert year is not None, problems
        _timed("statements of the billed period", lambda: build_statements(year))
        months = fiscal_periods_to_date(year.period, year.book.settings.fiscal_year_start)
        _timed(
            f"budget of every department ({len(months)} months at CostBasis BUDGET)",
            lambda: budget_by_department(year.book, year.plan, months),
        )
        statements = _timed(
            "statements of the billed and closed periods, with budgets",
            lambda: build_year_statements(year),
        )
        s = statements[0]
        for run in ("cold", "warm"):
            _timed(
                f"two charts of one bill, {run}",
                lambda: [render_svg(s, k) for k in ("months", "budget")],
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
