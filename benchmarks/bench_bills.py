"""Benchmark `costloop bills` on the demo: workbooks, and PDFs through one LibreOffice start.

Run: ``python benchmarks/bench_bills.py``. Prints the time to re-run the year in
memory and build the statements, to write every department's workbook, and the
LibreOffice batch for every Summary PDF against a single bill's (mostly start-up),
so the per-bill cost of a PDF is the difference divided by the extra bills.
A script, not a test: numbers vary with the machine (and LibreOffice's first
start on a machine is slower than later ones).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from costloop.bills.pdf import convert_to_pdf, find_soffice
from costloop.bills.source import load_billed_year
from costloop.bills.statement import build_statements
from costloop.bills.workbook import write_bill
from costloop.engine.pipeline.commands import run_book
from costloop.workbooks import demo_path


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        book = folder / "demo.xlsx"
        shutil.copyfile(demo_path(), book)
        assert run_book(book).ok

        started = time.perf_counter()
        year, problems = load_billed_year(book)
        assert year is not None, problems
        statements = build_statements(year)
        load = time.perf_counter() - started
        print(f"{len(statements)} departments; year re-run + statements: {load:.2f} s")

        started = time.perf_counter()
        sources = []
        for s in statements:
            path = folder / "summary" / f"{s.file_stem}.xlsx"
            path.parent.mkdir(exist_ok=True)
            write_bill(s, folder / f"{s.file_stem}.xlsx")
            write_bill(s, path, summary_only=True)
            sources.append(path)
        written = time.perf_counter() - started
        print(f"workbooks: {written:.2f} s ({written / len(statements) * 1000:.0f} ms a bill)")

        if find_soffice() is None:
            print("LibreOffice not installed: no PDF figures")
            return
        convert_to_pdf(sources[:1], folder / "warm")  # LibreOffice's first start is slower
        one = convert_to_pdf(sources[:1], folder / "one")
        batch = convert_to_pdf(sources, folder / "pdf")
        assert len(batch.pdfs) == len(sources), batch.problems
        per_bill = (batch.seconds - one.seconds) / (len(sources) - 1)
        print(f"PDF, one bill (one LibreOffice start): {one.seconds:.2f} s")
        print(
            f"PDF, {len(sources)} bills in one start: {batch.seconds:.2f} s "
            f"({batch.seconds / len(sources):.2f} s a bill overall, "
            f"{per_bill:.2f} s a bill after the start)"
        )


if __name__ == "__main__":
    main()
