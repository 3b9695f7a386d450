"""Generate the template and demo workbooks: ``python -m costloop.workbooks.generate``.

Both files are committed in `workbooks/`; regenerating gives byte-identical files
(fixed document properties and zip timestamps), so a diff means a real change.
"""

from __future__ import annotations

import io
import re
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from openpyxl import Workbook
from openpyxl.comments import Comment
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.workbook.defined_name import DefinedName
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.worksheet import Worksheet

from costloop.engine.model.disputes import REASONS, STATUSES
from costloop.engine.xlsx.parts import OWNED_NAME, OWNED_VALUE
from costloop.workbooks import demo_data, instructions, layout
from costloop.workbooks.layout import TEXT, WHOLE, Col, SheetLayout

HERE = Path(__file__).resolve().parent
FIXED_TIME = datetime(2025, 7, 1, 0, 0, 0)
AUTHOR = "costloop"
NUMERIC_SETTINGS = ("FiscalYearStart", "ReserveDays")
VALIDATED_ROWS = 5000
"""Data validation covers this many rows: room to grow without bloating the file."""

HEADER_FONT = Font(bold=True, color="FFFFFF")
HEADER_FILL = PatternFill("solid", fgColor="1F4E78")
TITLE_FONT = Font(bold=True, size=14, color="1F4E78")
HEADING_FONT = Font(bold=True, size=12, color="1F4E78")
EXAMPLE_FONT = Font(name="Consolas", size=10)
WRAP = Alignment(wrap_text=True, vertical="top")


# --- sheets -----------------------------------------------------------------


def _input_sheet(wb: Workbook, sheet: SheetLayout, rows: Iterable[Sequence] = ()) -> Worksheet:
    """An input sheet: bold frozen header with help comments, widths, formats, rows."""
    ws = wb.create_sheet(sheet.name)
    for i, col in enumerate(sheet.columns, start=1):
        cell = ws.cell(row=1, column=i, value=col.header)
        cell.font = HEADER_FONT
        cell.fill = HEADER_FILL
        cell.comment = Comment(col.help, AUTHOR, width=260, height=80)
        dim = ws.column_dimensions[get_column_letter(i)]
        dim.width = col.width
        if col.number_format:
            # A column style, so rows the user types later get the format too.
            dim.number_format = col.number_format
    ws.freeze_panes = "A2"
    n = 1
    for n, row in enumerate(rows, start=2):
        for i, (col, value) in enumerate(zip(sheet.columns, row, strict=True), start=1):
            if value is None:
                continue
            cell = ws.cell(row=n, column=i, value=value)
            if col.number_format:
                cell.number_format = col.number_format
    ws.auto_filter.ref = f"A1:{get_column_letter(len(sheet.columns))}{max(n, 2)}"
    return ws


def _validate(ws: Worksheet, dv: DataValidation, cells: str) -> None:
    dv.add(cells)
    ws.add_data_validation(dv)


def _yes_no(ws: Worksheet, sheet: SheetLayout, header: str) -> None:
    col = sheet.letter(header)
    dv = DataValidation(type="list", formula1='"Y,N"', allow_blank=True)
    dv.error, dv.errorTitle = f"{header} is Y or N (blank means Y).", f"{sheet.name}!{header}"
    dv.showErrorMessage = True
    _validate(ws, dv, f"{col}2:{col}{VALIDATED_ROWS}")


def _non_negative(ws: Worksheet, sheet: SheetLayout, header: str) -> None:
    col = sheet.letter(header)
    dv = DataValidation(
        type="decimal", operator="greaterThanOrEqual", formula1="0", allow_blank=True
    )
    dv.error, dv.errorTitle = f"{header} must be a number of 0 or more.", f"{sheet.name}!{header}"
    dv.showErrorMessage = True
    _validate(ws, dv, f"{col}2:{col}{VALIDATED_ROWS}")


def _one_of(ws: Worksheet, sheet: SheetLayout, header: str, choices: Sequence[str]) -> None:
    col = sheet.letter(header)
    dv = DataValidation(type="list", formula1=f'"{",".join(choices)}"', allow_blank=True)
    dv.error, dv.errorTitle = f"{header} is one of {', '.join(choices)}.", f"{sheet.name}!{header}"
    dv.showErrorMessage = True
    _validate(ws, dv, f"{col}2:{col}{VALIDATED_ROWS}")


def _disputes_sheet(wb: Workbook, rows: Iterable[Sequence] = ()) -> Worksheet:
    """The Disputes input sheet, its Reason and Status limited to the contract's lists."""
    ws = _input_sheet(wb, layout.DISPUTES, rows)
    _one_of(ws, layout.DISPUTES, "Reason", REASONS)
    _one_of(ws, layout.DISPUTES, "Status", STATUSES)
    return ws


def _settings_sheet(wb: Workbook, values: dict[str, object]) -> Worksheet:
    """Every key with its value (or the default), its meaning, and per-key validation."""
    rows = []
    for key, default, meaning in layout.SETTING_KEYS:
        value = values.get(key, default)
        rows.append((key, value, meaning))
    ws = _input_sheet(wb, layout.SETTINGS, rows)
    for r, (key, _value, _meaning) in enumerate(rows, start=2):
        cell = f"B{r}"
        ws[cell].alignment = Alignment(horizontal="left")
        if key not in NUMERIC_SETTINGS:
            # Text, so Excel keeps "2026-03" and "4400" as typed instead of a date or number.
            ws[cell].number_format = TEXT
        if key == "CostBasis":
            dv = DataValidation(type="list", formula1='"ACTUAL,BUDGET"', allow_blank=True)
        elif key == "FiscalYearStart":
            dv = DataValidation(
                type="whole", operator="between", formula1="1", formula2="12", allow_blank=True
            )
        elif key == "ReserveDays":
            dv = DataValidation(
                type="whole", operator="greaterThanOrEqual", formula1="0", allow_blank=True
            )
        elif key == "Currency":
            dv = DataValidation(type="textLength", operator="equal", formula1="3", allow_blank=True)
        else:
            continue
        dv.error = f"Settings!{cell} ({key}): see the Meaning column for what is allowed."
        dv.errorTitle, dv.showErrorMessage = key, True
        _validate(ws, dv, cell)
    for r in range(2, len(rows) + 2):
        ws[f"C{r}"].alignment = WRAP
    return ws


def _instructions_sheet(wb: Workbook) -> Worksheet:
    ws = wb.create_sheet("Instructions")
    ws.column_dimensions["A"].width = 78
    ws.column_dimensions["B"].width = 96
    for r, (style, a, b) in enumerate(instructions.sheet_rows(), start=1):
        ca, cb = ws.cell(row=r, column=1, value=a), ws.cell(row=r, column=2, value=b or None)
        ca.alignment = cb.alignment = WRAP
        if style == "title":
            ca.font = TITLE_FONT
        elif style == "heading":
            ca.font = cb.font = HEADING_FONT
        elif style in ("example", "mistake", "command"):
            ca.font = EXAMPLE_FONT
        else:
            ca.font = Font(bold=True)
    return ws


def _workbook(
    settings: dict[str, object],
    departments_layout: SheetLayout,
    data: dict[str, Iterable[Sequence]],
) -> Workbook:
    wb = Workbook()
    wb.remove(wb.active)
    _instructions_sheet(wb)
    _settings_sheet(wb, settings)
    for sheet in (departments_layout, *layout.INPUT_LAYOUTS[2:]):
        ws = _input_sheet(wb, sheet, data.get(sheet.name, ()))
        if sheet.name == "Departments":
            _yes_no(ws, sheet, "Billable")
        elif sheet.name == "Rules":
            _yes_no(ws, sheet, "Enabled")
            for r in range(2, ws.max_row + 1):
                ws[f"B{r}"].font = EXAMPLE_FONT
        elif sheet.name == "Usage":
            _non_negative(ws, sheet, "Quantity")
        elif sheet.name == "Budget":
            _non_negative(ws, sheet, "Volume")
        elif sheet.name == "Rates":
            for header in ("Rate", "TierFrom", "TierTo"):
                _non_negative(ws, sheet, header)
    wb.active = 0
    return wb


# --- deterministic save -------------------------------------------------------

_CORE_TIMES = re.compile(rb"(<dcterms:(created|modified)[^>]*>)[^<]*(</dcterms:\2>)")


def _save(wb: Workbook, path: Path) -> None:
    """Save with fixed properties and zip timestamps, so the bytes depend only on content."""
    wb.properties.creator = AUTHOR
    wb.properties.lastModifiedBy = AUTHOR
    wb.properties.created = FIXED_TIME
    buffer = io.BytesIO()
    wb.save(buffer)  # openpyxl stamps `modified` with the time of saving: fixed below
    stamp = FIXED_TIME.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    out = io.BytesIO()
    with zipfile.ZipFile(buffer) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                data = _CORE_TIMES.sub(rb"\g<1>" + stamp + rb"\g<3>", data)
            fixed = zipfile.ZipInfo(info.filename, date_time=FIXED_TIME.timetuple()[:6])
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = info.external_attr
            dst.writestr(fixed, data)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(out.getvalue())
    tmp.replace(path)


# --- the two workbooks --------------------------------------------------------


def build_template(path: Path | str) -> Path:
    """The empty template: every input sheet with headers, Settings defaults, Instructions.

    Disputes too, empty: a sheet left empty reads as no disputes, and finance finds the
    columns ready when a department first questions a bill.
    """
    wb = _workbook({}, layout.DEPARTMENTS, {})
    _disputes_sheet(wb)
    _save(wb, Path(path))
    return Path(path)


DEMO_DEPARTMENTS = replace(
    layout.DEPARTMENTS,
    columns=(
        *layout.DEPARTMENTS.columns,
        Col("Students", 11, "A driver: enrolled student FTE.", WHOLE),
        Col("SquareFeet", 12, "A driver: assignable square feet.", WHOLE),
    ),
)


def _demo_workbook(d: demo_data.DemoData, late: bool) -> Workbook:
    usage = [*d.usage, *demo_data.LATE_USAGE] if late else d.usage
    return _workbook(
        dict(d.settings),
        DEMO_DEPARTMENTS,
        {
            "Departments": d.departments,
            "Budget": d.budget,
            "Actuals": d.actuals,
            "Usage": usage,
            "Rates": d.rates,
            "Rules": d.rules,
        },
    )


def _closed_month(path: Path) -> list[list[object]]:
    """Run and close the demo's closed month in ``path``, as finance would: the Issued rows.

    The run and the close get fixed ids and times, so the demo is the same file on every
    build; every real run gets a fresh id and the time.
    """
    from costloop.engine.pipeline.close import close_workbook
    from costloop.engine.pipeline.run import run_workbook
    from costloop.engine.xlsx.file_workbook import FileWorkbook

    month = demo_data.CLOSED_PERIOD
    ran = run_workbook(FileWorkbook(path), "demo.xlsx", month, stamp=demo_data.CLOSED_RUN)
    closed = close_workbook(FileWorkbook(path), month, "demo.xlsx", stamp=demo_data.CLOSE)
    if not (ran.ok and closed.ok):  # pragma: no cover - the demo's own data
        raise RuntimeError(f"the demo's {month} did not run and close cleanly")
    return FileWorkbook(path).read_sheet("Issued")


def _issued_sheet(wb: Workbook, grid: list[list[object]]) -> None:
    """The Issued sheet as costloop wrote it, marked as costloop's own (its owned name)."""
    ws = wb.create_sheet("Issued")
    for row in grid:
        ws.append(row)
    ws.freeze_panes = "A2"
    for cell in ws[1]:
        cell.font = Font(bold=True)
    ws.defined_names[OWNED_NAME] = DefinedName(OWNED_NAME, attr_text=OWNED_VALUE, hidden=True)


def build_demo(path: Path | str) -> Path:
    """State University — Central IT: a fiscal year of plan, usage, actuals and rules."""
    _save(_demo_workbook(demo_data.demo_data(), late=False), Path(path))
    return Path(path)


def build_closed_demo(path: Path | str) -> Path:
    """The demo as `costloop demo` writes it: February 2026 closed (the Issued sheet), a
    meter reading for February that arrived late, and two of its lines disputed (one
    dispute accepted), so billing March shows the correction of February and the credit
    memo (docs/audit.md).
    """
    d = demo_data.demo_data()
    with tempfile.TemporaryDirectory(prefix="costloop-demo-") as tmp:
        first = build_demo(Path(tmp) / "demo.xlsx")
        issued = _closed_month(first)
    wb = _demo_workbook(d, late=True)
    _disputes_sheet(wb, demo_data.DISPUTES)
    _issued_sheet(wb, issued)
    wb.active = 0
    _save(wb, Path(path))
    return Path(path)


def main(argv: list[str] | None = None) -> int:
    """Regenerate `workbooks/template.xlsx` and `workbooks/demo.xlsx` (or into a folder)."""
    argv = sys.argv[1:] if argv is None else argv
    folder = Path(argv[0]) if argv else HERE
    for built in (
        build_template(folder / "template.xlsx"),
        build_demo(folder / "demo.xlsx"),
        build_closed_demo(folder / "demo-closed.xlsx"),
    ):
        print(f"wrote {built}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
