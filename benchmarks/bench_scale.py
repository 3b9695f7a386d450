"""How `costloop run` scales with usage rows, against the fastest possible read (a script).

    python benchmarks/bench_scale.py [--sizes 100000,300000,1000000] [--shape real]
                                     [--focus 3000000] [--focus-csv 2000000]

For each size it generates (once; cached in ``benchmarks/.cache``) a workbook
with that many usage rows, 2,000 departments, 40 metrics, 40 rules and 12
periods, written row by row by XlsxWriter in constant-memory mode (pandas'
writer in that mode silently drops cells). Then, each in a fresh subprocess so
peak memory is that of one job alone:

- the floor: fastexcel reading the Usage sheet into an Arrow table, nothing else;
- `costloop run` on the workbook (to a temporary ``--output``, so the cached
  file stays clean), with the time of each stage and the peak resident memory.

It prints one line per stage and the ratio of the run to the floor measured in
the same invocation. ``--shape real`` writes the Usage rows as real exports
have them instead: sorted by nothing (each row's period, department and metric
drawn independently, then the rows shuffled), quantities with three decimals,
and a ``Reference`` column of mostly distinct text (an invoice line id).

With ``--focus N`` it also generates a FinOps FOCUS Parquet file of N rows
(DuckDB writes it) and times a workbook whose Settings ``UsageSource`` names it;
``--focus-csv N`` the same as a CSV written as providers export it (every
value text, ``NULL`` for no value, ISO timestamps, the FOCUS columns a WHERE
can name), which costloop reads column by column as text. Numbers depend on
the machine and its load; compare ratios within one invocation.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CACHE = Path(__file__).resolve().parent / ".cache"
PERIODS = [f"{2025 + (6 + m) // 12}-{(6 + m) % 12 + 1:02d}" for m in range(12)]  # Jul..Jun
FUNDS = ["General", "Grants", "Auxiliary", "IT"]
SERVICES = ["EC2", "S3", "Other"]
GENERATOR_VERSION = 1  # bump when the generated content changes, to refresh the cache


def _names(departments: int, metrics: int, rules: int):
    depts = [f"D{i:04d}" for i in range(departments)]
    metric_names = [f"Metric {i:02d}" for i in range(metrics)]
    n_charge = rules // 2
    charged = [f"Service {i:02d}" for i in range(n_charge)]
    allocated = [f"Overhead {i:02d}" for i in range(rules - n_charge)]
    return depts, metric_names, charged, allocated


def rule_texts(rng: random.Random, metrics, charged, allocated) -> list[str]:
    """Half CHARGE (flat, rate card, tiered), half ALLOCATE (step-down, drivers, usage)."""
    texts = []
    for i, pool in enumerate(charged):
        metric = metrics[i]
        form = i % 3
        if form == 0:
            texts.append(f'CHARGE "{pool}" FOR "{metric}" AT 0.{rng.randint(10, 99)}')
        elif form == 1:
            texts.append(f'CHARGE "{pool}" FOR "{metric}" AT RATE CARD')
        else:
            texts.append(
                f'CHARGE "{pool}" FOR "{metric}" TIERED FIRST 1000 AT 0.05, '
                "NEXT 9000 AT 0.04, ABOVE AT 0.03"
            )
    spare = metrics[len(charged) :] or metrics
    for i, pool in enumerate(allocated):
        if i == 0:
            others = ", ".join(f'"{p}"' for p in allocated[2:5])
            texts.append(f'ALLOCATE "{pool}" TO POOLS {others} BY COST')
        elif i == 1:
            texts.append(f'ALLOCATE "{pool}" TO POOLS "{allocated[2]}" AND DEPARTMENTS EVENLY')
        elif i % 3 == 0:
            texts.append(f'ALLOCATE "{pool}" TO DEPARTMENTS BY Headcount')
        elif i % 3 == 1:
            texts.append(
                f'ALLOCATE "{pool}" TO DEPARTMENTS BY USAGE "{spare[i % len(spare)]}" '
                "IF NO USAGE EVENLY"
            )
        else:
            texts.append(f'ALLOCATE "{pool}" TO DEPARTMENTS BY SquareFeet WHERE Fund <> "IT"')
    return texts


def generate(
    path: Path,
    usage_rows: int,
    departments: int = 2000,
    metrics: int = 40,
    rules: int = 40,
    seed: int = 11,
    usage_source: str | None = None,
    shape: str = "plain",
) -> None:
    """A well-formed workbook, streamed row by row (XlsxWriter constant_memory)."""
    import xlsxwriter

    rng = random.Random(seed)
    depts, metric_names, charged, allocated = _names(departments, metrics, rules)
    book = xlsxwriter.Workbook(str(path), {"constant_memory": True})

    def sheet(name: str, header: list[str], rows) -> None:
        ws = book.add_worksheet(name)
        ws.write_row(0, 0, header)
        for r, row in enumerate(rows, start=1):
            ws.write_row(r, 0, row)

    settings = [("Organization", "Scale U"), ("Period", PERIODS[-1]), ("FiscalYearStart", 7)]
    if usage_source:
        settings += [("UsageSource", usage_source), ("UsageDepartmentTag", "department")]
    sheet("Settings", ["Key", "Value"], settings)
    sheet(
        "Departments",
        ["Department", "Fund", "Name", "Billable", "Headcount", "SquareFeet"],
        (
            [d, FUNDS[i % 4], f"Department {i}", "Y", rng.randint(1, 400), rng.randint(100, 9000)]
            for i, d in enumerate(depts)
        ),
    )
    budget, actuals = [], []
    for p in PERIODS:
        for pool, metric in zip(charged, metric_names, strict=False):
            budget.append([p, pool, rng.randint(10_000, 90_000), metric, 50_000])
            actuals.append([p, pool, round(rng.uniform(10_000, 90_000), 2)])
        for pool in allocated:
            budget.append([p, pool, rng.randint(5_000, 50_000)])
            actuals.append([p, pool, round(rng.uniform(5_000, 50_000), 2)])
    sheet("Budget", ["Period", "Pool", "Amount", "Metric", "Volume"], budget)
    sheet("Actuals", ["Period", "Pool", "Amount"], actuals)

    ws = book.add_worksheet("Usage")
    choice, uniform = rng.choice, rng.uniform
    if shape == "real":
        # As an export arrives: three decimals, an invoice line id per row (few repeat),
        # no order at all. Generated as columns and shuffled by one permutation.
        ws.write_row(0, 0, ["Period", "Department", "Metric", "Quantity", "Service", "Reference"])
        n = 0 if usage_source else usage_rows
        order = list(range(n))
        rng.shuffle(order)
        for r, i in enumerate(order, start=1):
            ws.write_row(
                r,
                0,
                (
                    PERIODS[(i * 7) % 12],
                    depts[(i * 2654435761) % len(depts)],
                    metric_names[(i * 40503) % len(metric_names)],
                    round(uniform(0, 500), 3),
                    SERVICES[i % 3],
                    f"INV-{rng.randrange(10 * max(n, 1)):09d}",
                ),
            )
    else:
        ws.write_row(0, 0, ["Period", "Department", "Metric", "Quantity", "Service"])
        for r in range(1, 0 if usage_source else usage_rows + 1):
            ws.write_row(
                r,
                0,
                (
                    choice(PERIODS),
                    choice(depts),
                    choice(metric_names),
                    round(uniform(0, 500), 2),
                    choice(SERVICES),
                ),
            )
    rates = []
    for metric in metric_names:
        rates.append([metric, 0.11, PERIODS[0]])
        rates.append([metric, 0.12, PERIODS[6]])
    sheet("Rates", ["Metric", "Rate", "EffectiveFrom"], rates)
    texts = rule_texts(rng, metric_names, charged, allocated)
    sheet(
        "Rules", ["ID", "Rule", "Enabled"], ([f"R{i:03d}", t, "Y"] for i, t in enumerate(texts, 1))
    )
    book.close()


def generate_focus(path: Path, rows: int, departments: int = 2000, metrics: int = 40) -> None:
    """A FinOps FOCUS Parquet file of ``rows`` charge rows, written by DuckDB itself."""
    import duckdb

    months = ", ".join(f"'{p}-01'" for p in PERIODS)
    con = duckdb.connect()
    con.execute("SET threads TO 2")
    con.execute(
        f"""
        COPY (
          SELECT
            CAST(([{months}])[1 + (i % 12)] AS TIMESTAMP) AS ChargePeriodStart,
            'acct-' || lpad(CAST((i * 7) % {departments} AS VARCHAR), 4, '0') AS SubAccountId,
            '{{"department": "D' || lpad(CAST((i * 7) % {departments} AS VARCHAR), 4, '0')
              || '"}}' AS Tags,
            'Metric ' || lpad(CAST((i * 13) % {metrics} AS VARCHAR), 2, '0') AS ConsumedUnit,
            round(((i * 2654435761) % 50000) / 100.0, 2) AS ConsumedQuantity,
            round(((i * 40503) % 10000) / 100.0, 2) AS EffectiveCost,
            round(((i * 40503) % 10000) / 95.0, 2) AS BilledCost,
            (['EC2', 'S3', 'Other'])[1 + (i % 3)] AS ServiceName
          FROM range({rows}) t(i)
        ) TO '{path}' (FORMAT parquet)
        """
    )
    con.close()


def generate_focus_csv(path: Path, rows: int, departments: int = 2000, metrics: int = 40) -> None:
    """A FOCUS CSV as providers export one: text throughout, NULL for no value, hourly ISO
    timestamps with Z, and the columns a WHERE can name (DuckDB writes it)."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads TO 2")
    con.execute(
        f"""
        COPY (
          SELECT
            strftime(TIMESTAMP '2025-07-01' + INTERVAL (i % 8760) HOUR, '%Y-%m-%dT%H:00:00Z')
              AS ChargePeriodStart,
            strftime(date_trunc('month', TIMESTAMP '2025-07-01' + INTERVAL (i % 8760) HOUR),
                     '%Y-%m-%dT00:00:00Z') AS BillingPeriodStart,
            CASE WHEN i % 997 = 0 THEN 'Correction' ELSE 'NULL' END AS ChargeClass,
            (['Usage', 'Usage', 'Usage', 'Purchase', 'Tax', 'Credit'])[1 + (i % 6)]
              AS ChargeCategory,
            (['Compute', 'Storage', 'Networking', 'Databases'])[1 + (i % 4)] AS ServiceCategory,
            (['US East (N. Virginia)', 'US West (Oregon)', 'EU (Ireland)'])[1 + (i % 3)]
              AS RegionName,
            (['AWS', 'Microsoft', 'Oracle'])[1 + (i % 3)] AS ProviderName,
            'USD' AS BillingCurrency,
            'acct-' || lpad(CAST((i * 7) % {departments} AS VARCHAR), 4, '0') AS SubAccountId,
            '{{"department": "D' || lpad(CAST((i * 7) % {departments} AS VARCHAR), 4, '0')
              || '"}}' AS Tags,
            CASE WHEN i % 6 IN (4, 5) THEN 'NULL'
                 ELSE 'Metric ' || lpad(CAST((i * 13) % {metrics} AS VARCHAR), 2, '0') END
              AS ConsumedUnit,
            CASE WHEN i % 6 IN (4, 5) THEN 'NULL'
                 ELSE CAST(round(((i * 2654435761) % 50000) / 100.0, 2) AS VARCHAR) END
              AS ConsumedQuantity,
            CAST(round(((i * 40503) % 10000) / 100.0, 2) * CASE WHEN i % 6 = 5 THEN -1 ELSE 1 END
              AS VARCHAR) AS EffectiveCost,
            CAST(round(((i * 40503) % 10000) / 95.0, 2) * CASE WHEN i % 6 = 5 THEN -1 ELSE 1 END
              AS VARCHAR) AS BilledCost,
            (['EC2', 'S3', 'Other'])[1 + (i % 3)] AS ServiceName
          FROM range({rows}) t(i)
        ) TO '{path}' (FORMAT csv, HEADER, QUOTE '"')
        """
    )
    con.close()


def cached(name: str, build) -> Path:
    CACHE.mkdir(exist_ok=True)
    path = CACHE / name
    if not path.exists():
        t0 = time.perf_counter()
        temp = path.with_name(".partial-" + path.name)
        build(temp)
        temp.rename(path)
        print(
            f"  generated {path.name} ({path.stat().st_size / 1e6:.0f} MB) "
            f"in {time.perf_counter() - t0:.0f} s",
            flush=True,
        )
    return path


# --- measuring, one job per subprocess ---------------------------------------------------


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu(who: int = resource.RUSAGE_SELF) -> float:
    """CPU seconds of this process (all threads): less swayed than wall time by a busy machine.

    ``RUSAGE_CHILDREN``: of its finished child processes (the read's survey of the
    Usage XML runs in one, beside fastexcel).
    """
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def measure_floor(path: Path) -> dict:
    import fastexcel

    t0, c0 = time.perf_counter(), _cpu()
    reader = fastexcel.read_excel(str(path))
    table = reader.load_sheet("Usage", eager=True)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "cpu": _cpu() - c0, "rows": table.num_rows, "peak_mb": _peak_mb()}


def measure_run(path: Path) -> dict:
    from costloop.engine.pipeline.commands import run_book

    with tempfile.TemporaryDirectory() as tmp:
        t0, c0, k0 = time.perf_counter(), _cpu(), _cpu(resource.RUSAGE_CHILDREN)
        outcome = run_book(path, output=Path(tmp) / "out.xlsx")
        seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "cpu": _cpu() - c0,
        "child_cpu": _cpu(resource.RUSAGE_CHILDREN) - k0,
        "timings": outcome.timings,
        "ok": outcome.ok,
        "errors": [p.render() for p in outcome.errors[:5]],
        "bill_lines": len(outcome.result.bills) if outcome.result is not None else 0,
        "peak_mb": _peak_mb(),
    }


def _child(job: str, path: Path) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--job", job, str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{job} {path.name} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _report_run(label: str, run: dict, floor: dict | None) -> None:
    for stage, seconds in run["timings"].items():
        print(f"    {stage:<12} {seconds:7.2f} s")
    status = "OK" if run["ok"] else "FAILED: " + "; ".join(run["errors"])
    child = f" + {run['child_cpu']:.2f} s in the XML survey" if run["child_cpu"] >= 0.01 else ""
    print(
        f"    {'total':<12} {run['seconds']:7.2f} s  (CPU {run['cpu']:.2f} s{child})  "
        f"peak {run['peak_mb']:,.0f} MB  {run['bill_lines']:,} bill lines  {status}"
    )
    if floor:
        print(
            f"    floor        {floor['seconds']:7.2f} s  (CPU {floor['cpu']:.2f} s; fastexcel "
            f"Usage -> Arrow, {floor['rows']:,} rows, peak {floor['peak_mb']:,.0f} MB; "
            "best of two, before and after the run)"
        )
        print(
            f"  {label}: run / floor = {run['seconds'] / floor['seconds']:.1f}x wall, "
            f"{(run['cpu'] + run['child_cpu']) / floor['cpu']:.1f}x CPU (the survey's included)"
        )


def _focus_run(rows: int, suffix: str, kind: str, make, label: str) -> None:
    """A FOCUS file of ``rows`` (made once, cached) billed through a workbook's UsageSource."""
    focus = cached(f"focus-{rows}-v{GENERATOR_VERSION}.{suffix}", lambda p: make(p, rows))
    book_name = "focus-book" if suffix == "parquet" else f"focus-{suffix}-book"
    book = cached(
        f"{book_name}-{rows}-v{GENERATOR_VERSION}.xlsx",
        lambda p: generate(p, 0, usage_source=focus.name),
    )
    run = _child("run", book)
    print(f"  FOCUS UsageSource: {rows:,} rows ({focus.stat().st_size / 1e6:.0f} MB {kind})")
    _report_run(label, run, None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,300000,1000000")
    parser.add_argument(
        "--shape", choices=["plain", "real"], default="plain", help="Usage rows as generated"
    )
    parser.add_argument("--focus", type=int, default=0, help="FOCUS Parquet rows (0: skip)")
    parser.add_argument("--focus-csv", type=int, default=0, help="FOCUS CSV rows (0: skip)")
    parser.add_argument("--job", choices=["floor", "run"], help=argparse.SUPPRESS)
    parser.add_argument("path", nargs="?", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        result = measure_floor(args.path) if args.job == "floor" else measure_run(args.path)
        print(json.dumps(result))
        return 0

    print("costloop scale benchmark: 2,000 departments, 40 metrics, 40 rules, 12 periods")
    sizes = [int(s) for s in args.sizes.split(",") if s]
    for rows in sizes:
        shaped = "" if args.shape == "plain" else f"-{args.shape}"
        name = f"usage-{rows}{shaped}-v{GENERATOR_VERSION}.xlsx"
        path = cached(name, lambda p, rows=rows: generate(p, rows, shape=args.shape))
        before = _child("floor", path)
        run = _child("run", path)
        after = _child("floor", path)
        floor = min(before, after, key=lambda f: f["seconds"])
        print(
            f"  {rows:,} usage rows, {args.shape} shape "
            f"({path.stat().st_size / 1e6:.0f} MB workbook)"
        )
        _report_run(f"{rows:,} rows", run, floor)
    if args.focus:
        _focus_run(args.focus, "parquet", "Parquet", generate_focus, "FOCUS")
    if args.focus_csv:
        _focus_run(args.focus_csv, "csv", "CSV", generate_focus_csv, "FOCUS CSV")
    return 0


if __name__ == "__main__":
    sys.exit(main())
