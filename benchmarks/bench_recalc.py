"""Speed of `costloop recalc` with the real LibreOffice (a script, not a test).

    python benchmarks/bench_recalc.py [--usage 100000] [--departments 500] [--skip-demo]

Two workbooks, each first run by the engine and then given a user sheet of
formulas over the output and input sheets, with stale cached values:

- the demo workbook, with a Summary of SUMIFS / SUMPRODUCT / VLOOKUP /
  INDEX-MATCH per billed department;
- a generated workbook with 100,000 usage rows (the one `bench_engine.py`
  builds), with a SUMIFS over Usage and over Bills per department, and a
  "Usage Check" sheet holding one formula per usage row.

For each it prints the seconds LibreOffice took (start, load, recalculate,
save), the seconds to copy the values back and write the file, the total, and
how many formula values changed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from xml.sax.saxutils import escape

from costloop.engine.pipeline.commands import run_book
from costloop.engine.recalc.command import recalc_books
from costloop.engine.workbook.host import OutputSheet, column_letter
from costloop.engine.xlsx import parts
from costloop.engine.xlsx.file_workbook import FileWorkbook, _atomic_write, write_owned_sheets
from costloop.workbooks import demo_path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import generate  # a sibling script, not a package


def sheet_xml(rows: list[list[tuple[str | None, object]]]) -> bytes:
    """A worksheet from rows of (formula or None, value); formula values are cached stale (-1)."""
    out = []
    for number, row in enumerate(rows, start=1):
        cells = []
        for col, (formula, value) in enumerate(row):
            ref = f"{column_letter(col)}{number}"
            if formula is not None:
                cells.append(f'<c r="{ref}"><f>{escape(formula)}</f><v>-1</v></c>')
            elif isinstance(value, str):
                cells.append(f'<c r="{ref}" t="inlineStr"><is><t>{escape(value)}</t></is></c>')
            else:
                cells.append(f'<c r="{ref}"><v>{value}</v></c>')
        out.append(f'<row r="{number}">{"".join(cells)}</row>')
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<worksheet xmlns="{parts.NS_MAIN}"><sheetData>{"".join(out)}</sheetData></worksheet>'
    ).encode()


def add_user_sheet(path: Path, name: str, xml: bytes) -> None:
    package = parts.Package.read(path.read_bytes())
    write_owned_sheets(package, [OutputSheet(name, ["placeholder"])], mark_owned=False)
    package.set(parts.WorkbookPart(package).sheet(name).part, xml)
    _atomic_write(path, package, mode_from=path)


def billed_departments(path: Path) -> list[str]:
    bills = FileWorkbook(path).read_sheet("Bills")
    column = bills[0].index("Department")
    return list(dict.fromkeys(row[column] for row in bills[1:]))


def demo_summary(departments: list[str]) -> bytes:
    rows = [[(None, "Department"), (None, "SUMIFS"), (None, "SUMPRODUCT"), (None, "First line")]]
    for r, department in enumerate(departments, start=2):
        rows.append(
            [
                (None, department),
                (f"SUMIFS(Bills!$H:$H,Bills!$B:$B,$A{r})", None),
                (f"SUMPRODUCT((Bills!$B$2:$B$5000=$A{r})*Bills!$H$2:$H$5000)", None),
                (f"INDEX(Bills!$H:$H,MATCH($A{r},Bills!$B:$B,0))", None),
            ]
        )
    rows.append([(None, "Total"), ("SUM(Bills!H:H)", None)])
    return sheet_xml(rows)


def large_summary(departments: list[str]) -> bytes:
    rows = [[(None, "Department"), (None, "Usage quantity"), (None, "Billed")]]
    for r, department in enumerate(departments, start=2):
        rows.append(
            [
                (None, department),
                (f"SUMIFS(Usage!$D:$D,Usage!$B:$B,$A{r})", None),
                (f"SUMIFS(Bills!$H:$H,Bills!$B:$B,$A{r})", None),
            ]
        )
    return sheet_xml(rows)


def usage_check(rows: int) -> bytes:
    return sheet_xml([[(f"Usage!D{r}*2", None)] for r in range(2, rows + 2)])


def measure(label: str, path: Path) -> None:
    size = path.stat().st_size / 1e6
    started = time.perf_counter()
    (outcome,), libreoffice = recalc_books([path], timeout=3600)
    total = time.perf_counter() - started
    for problem in outcome.errors:
        print("  " + problem.render())
    print(
        f"{label}: {size:.1f} MB, {outcome.formula_cells:,} formula cells, "
        f"{outcome.cells_updated:,} values updated, {len(outcome.warnings)} warning(s)"
    )
    print(
        f"  LibreOffice {libreoffice:6.2f} s   copy values back and write "
        f"{total - libreoffice:5.2f} s   total {total:6.2f} s" + ("" if outcome.ok else "   FAILED")
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--usage", type=int, default=100_000)
    parser.add_argument("--departments", type=int, default=500)
    parser.add_argument("--rules", type=int, default=60)
    parser.add_argument("--skip-demo", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_demo:
            demo = Path(tmp) / "demo.xlsx"
            shutil.copyfile(demo_path(), demo)
            assert run_book(demo).ok
            add_user_sheet(demo, "Summary", demo_summary(billed_departments(demo)))
            measure("demo", demo)

        large = Path(tmp) / "large.xlsx"
        generate(large, args.usage, args.departments, args.rules)
        outcome = run_book(large)
        if not outcome.ok:
            print("the generated workbook did not run:", outcome.errors[0].render())
            return 1
        add_user_sheet(large, "Summary", large_summary(billed_departments(large)))
        add_user_sheet(large, "Usage Check", usage_check(args.usage))
        measure(f"{args.usage:,} usage rows", large)
    return 0


if __name__ == "__main__":
    sys.exit(main())
