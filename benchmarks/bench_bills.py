"""Benchmark `costloop bills`: bills and PDFs per second, and that every bill got its PDF.

    python benchmarks/bench_bills.py                      # the demo (25 departments)
    python benchmarks/bench_bills.py --departments 2000   # a generated workbook

With ``--departments N`` it generates (once; cached in ``benchmarks/.cache``) the
scale benchmark's workbook with N departments and ``--rows`` usage rows, runs it,
then makes every department's bill the way `costloop bills` does. It prints the
time to re-run the year and build the statements, the workbooks per second, the
PDFs per second with the LibreOffice starts and retries they took, and how many
bills are left without a PDF (0, or the command would exit 1).
A script, not a test: numbers vary with the machine (and LibreOffice's first
start on a machine is slower than later ones).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from costloop.bills.commands import write_bills
from costloop.bills.pdf import find_soffice
from costloop.bills.source import load_billed_year
from costloop.bills.statement import build_statements
from costloop.engine.pipeline.commands import run_book
from costloop.workbooks import demo_path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scale import cached, generate  # a script beside this one


def workbook(departments: int | None, rows: int) -> Path:
    if departments is None:
        return demo_path()
    return cached(
        f"bills-{departments}d-{rows}r.xlsx",
        lambda path: generate(path, rows, departments=departments),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--departments", type=int, help="generate this many (default: the demo)")
    parser.add_argument("--rows", type=int, default=20_000, help="usage rows when generating")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        book = folder / "book.xlsx"
        shutil.copyfile(workbook(args.departments, args.rows), book)
        assert run_book(book).ok

        started = time.perf_counter()
        year, problems = load_billed_year(book)
        assert year is not None, problems
        statements = build_statements(year)
        load = time.perf_counter() - started
        print(f"{len(statements)} departments; year re-run + statements: {load:.2f} s")

        started = time.perf_counter()
        workbooks = write_bills(statements, folder / "workbooks", pdf=False)
        written = time.perf_counter() - started
        n = len(workbooks.bills)
        print(f"workbooks: {n} in {written:.1f} s, {n / written:.1f} bills a second")

        if find_soffice() is None:
            print("LibreOffice not installed: no PDF figures")
            return 0
        started = time.perf_counter()
        report = write_bills(statements, folder / "bills")
        both = time.perf_counter() - started
        pdfs = sum(1 for b in report.bills if b.pdf is not None)
        print(
            f"PDFs: {pdfs} of {n} in {report.pdf_seconds:.1f} s, "
            f"{pdfs / report.pdf_seconds:.1f} PDFs a second "
            f"({report.pdf_starts} LibreOffice start(s), {report.pdf_retried} retried)"
        )
        print(
            f"bills with workbook and PDF: {pdfs} in {both:.1f} s, "
            f"{pdfs / both:.1f} bills a second; without a PDF: {len(report.without_pdf)}"
        )
        return 0 if not report.without_pdf else 1


if __name__ == "__main__":
    raise SystemExit(main())
