"""Every workbook implementation keeps the same contract (`costloop.engine.workbook.host`).

One suite, run against each implementation:

- ``file``: `FileWorkbook` over an .xlsx written by openpyxl;
- ``memory``: `MemoryWorkbook`;
- ``xlwings``: `XlwingsWorkbook` over a real ``xlwings.Book``, xlwings' remote
  engine (PRO, used here under the noncommercial key: see ``addin_remote.py``,
  which also says how Excel's side of the remote Book is played on a machine
  without Excel). Its client sends worksheets only, so the chartsheet checks
  do not apply to it; everything else does;
- ``excel-desktop``: `XlwingsWorkbook` over desktop Excel through xlwings' BSD
  engine, on a Windows or macOS computer with Excel (skipped elsewhere).

"Reopen" reads the workbook afresh after a write: a new `FileWorkbook` on the
file; the same `MemoryWorkbook`; for xlwings, the queued actions carried out
and a new Book opened on the result, as the next ribbon click would see it.
"""

from __future__ import annotations

import datetime as dt
import sys
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from openpyxl.chart import BarChart, Reference

from costloop.engine.workbook.cells import ExcelError
from costloop.engine.workbook.host import NotOwnedError, OutputSheet
from costloop.engine.workbook.memory import MemoryWorkbook
from costloop.engine.xlsx.file_workbook import FileWorkbook

HEADER = ["Account", "Amount", "Rate", "Posted", "Stamp", "At", "Billable", "Note", "Check"]
ROWS = [
    [
        6400,
        1234.5,
        0.25,
        dt.date(2026, 3, 31),
        dt.datetime(2026, 3, 31, 10, 30),
        dt.time(10, 30),
        True,
        "00123",
        "#N/A",
    ],
    [6401.0, -2.0, None, None, None, None, False, "", "#DIV/0!"],
]
EXPECTED = [
    HEADER,
    [
        6400,
        1234.5,
        0.25,
        dt.date(2026, 3, 31),
        dt.datetime(2026, 3, 31, 10, 30),
        dt.time(10, 30),
        True,
        "00123",
        ExcelError("#N/A"),
    ],
    [6401, -2, None, None, None, None, False, None, ExcelError("#DIV/0!")],
]


def user_sheets() -> dict[str, list[list[object]]]:
    """The user's own sheets: typed data, a sheet whose only cell is C4, and notes."""
    return {
        "Data": [list(HEADER), *(list(row) for row in ROWS)],
        "Offset": [[None] * 3, [None] * 3, [None] * 3, [None, None, "only C4"]],
        "Notes": [["Keep me", 1]],
    }


# -- one maker per implementation ------------------------------------------------------


class FileMaker:
    lists_chartsheets = True
    reports_hidden_rows = True

    def __init__(self, tmp_path: Path):
        self.path = tmp_path / "book.xlsx"

    def make(self, with_chart: bool = False):
        book = openpyxl.Workbook()
        book.remove(book.active)
        for name, rows in user_sheets().items():
            sheet = book.create_sheet(name)
            for r, row in enumerate(rows, start=1):
                for c, value in enumerate(row, start=1):
                    if value is not None:
                        sheet.cell(r, c, value)  # "#N/A" is stored as an error value
            if name == "Data":
                sheet.row_dimensions[3].hidden = True  # the second data row
        if with_chart:
            chart_sheet = book.create_chartsheet("Chart", 1)
            chart = BarChart()
            chart.add_data(Reference(book["Data"], min_col=2, min_row=1, max_row=3))
            chart_sheet.add_chart(chart)
        book.save(self.path)
        return FileWorkbook(self.path)

    def reopen(self, wb):
        return FileWorkbook(self.path)


class MemoryMaker:
    lists_chartsheets = True
    reports_hidden_rows = True

    def __init__(self, tmp_path: Path):
        pass

    def make(self, with_chart: bool = False):
        sheets = user_sheets()
        data = sheets["Data"]
        for row in data[1:]:
            row[-1] = ExcelError(row[-1])  # memory holds cells in the engine's shape
        wb = MemoryWorkbook()
        for number, (name, rows) in enumerate(sheets.items()):
            if with_chart and number == 1:
                wb.add_chartsheet("Chart")
            wb.add_sheet(name, rows, hidden_rows={3} if name == "Data" else ())
        return wb

    def reopen(self, wb):
        return wb


class XlwingsMaker:
    lists_chartsheets = False  # the remote client sends worksheets only
    reports_hidden_rows = False  # only desktop Excel on Windows reports them

    def __init__(self, tmp_path: Path):
        self.file = FileMaker(tmp_path)
        self.excel = None

    def make(self, with_chart: bool = False):
        from addin_remote import Excel, payload_of

        from costloop.addin.xlwings_book import XlwingsWorkbook

        self.excel = Excel(payload_of(self.file.make(with_chart), "book.xlsx"))
        return XlwingsWorkbook(self.excel.open())

    def reopen(self, wb):
        from costloop.addin.xlwings_book import XlwingsWorkbook

        self.excel.carry_out(wb.book)
        return XlwingsWorkbook(self.excel.open())


class DesktopExcelMaker:
    """The real thing: desktop Excel through xlwings' BSD engine (COM or AppleScript).

    Runs only on a Windows or macOS computer with Excel; skipped elsewhere (CI is Linux).
    """

    lists_chartsheets = True
    reports_hidden_rows = sys.platform.startswith("win")

    def __init__(self, tmp_path: Path):
        import xlwings as xw

        self.file = FileMaker(tmp_path)
        self.app = xw.App(visible=False, add_book=False)

    def make(self, with_chart: bool = False):
        from costloop.addin.xlwings_book import XlwingsWorkbook

        book = self.app.books.open(str(self.file.make(with_chart).path))
        return XlwingsWorkbook(book)

    def reopen(self, wb):
        return wb  # the live workbook is what the next click sees

    def close(self) -> None:
        self.app.quit()


def _desktop_param():
    try:
        import xlwings as xw

        ready = "excel" in [e.name for e in xw.engines]
    except ImportError:
        ready = False
    marks = [] if ready else [pytest.mark.skip(reason="no desktop Excel on this computer")]
    return pytest.param(DesktopExcelMaker, id="excel-desktop", marks=marks)


def _xlwings_param():
    try:
        from addin_remote import REMOTE_UNAVAILABLE
    except pytest.skip.Exception as skipped:  # xlwings not installed
        reason = str(skipped)
    else:
        reason = REMOTE_UNAVAILABLE
    marks = [pytest.mark.skip(reason=reason)] if reason else []
    return pytest.param(XlwingsMaker, id="xlwings", marks=marks)


@pytest.fixture(
    params=[
        pytest.param(FileMaker, id="file"),
        pytest.param(MemoryMaker, id="memory"),
        _xlwings_param(),
        _desktop_param(),
    ]
)
def maker(request, tmp_path):
    made = request.param(tmp_path)
    yield made
    if hasattr(made, "close"):
        made.close()


def bills(rows: int = 2, tag: str = "") -> OutputSheet:
    return OutputSheet(
        "Bills",
        ["Period", "Department", "Amount", "Note"],
        [("2026-03", f"ADM{tag}", Decimal("1234.50") + i, "=not a formula") for i in range(rows)],
        {"Amount": "#,##0.00"},
    )


def run_log(status: str = "OK") -> OutputSheet:
    return OutputSheet("Run Log", ["Key", "Value"], [("Status", status)])


# -- reading ---------------------------------------------------------------------------


def test_sheet_names_in_workbook_order(maker):
    wb = maker.make(with_chart=True)
    if maker.lists_chartsheets:
        assert wb.sheet_names() == ["Data", "Chart", "Offset", "Notes"]
        assert wb.read_sheet("Chart") == []  # a chartsheet has no cells
    else:
        assert wb.sheet_names() == ["Data", "Offset", "Notes"]


def test_values_and_their_types(maker):
    grid = maker.make().read_sheet("Data")
    assert grid == EXPECTED
    # == would let 6401.0 pass for 6401 and a datetime for a date: compare types too.
    assert [[type(v) for v in row] for row in grid] == [[type(v) for v in row] for row in EXPECTED]


def test_a_sheet_reads_from_a1_whatever_its_used_range(maker):
    grid = maker.make().read_sheet("Offset")
    assert grid == [[None] * 3, [None] * 3, [None] * 3, [None, None, "only C4"]]


def test_hidden_rows_where_the_host_reports_them(maker):
    wb = maker.make()
    expected = {3} if maker.reports_hidden_rows else set()
    assert wb.hidden_rows("Data") == expected  # Excel row numbers
    assert wb.hidden_rows("Notes") == set()


def test_a_missing_sheet_is_a_key_error(maker):
    with pytest.raises(KeyError):
        maker.make().read_sheet("Nope")


# -- ownership and replacing -----------------------------------------------------------


def test_new_output_sheets_go_after_the_last_sheet_and_are_owned(maker):
    wb = maker.make()
    assert wb.owned_sheets() == set()
    wb.replace_sheets([bills(), run_log()])
    wb = maker.reopen(wb)
    assert wb.sheet_names() == ["Data", "Offset", "Notes", "Bills", "Run Log"]
    assert wb.owned_sheets() == {"Bills", "Run Log"}
    assert wb.read_sheet("Bills") == [
        ["Period", "Department", "Amount", "Note"],
        ["2026-03", "ADM", 1234.5, "=not a formula"],  # text stays text, never a formula
        ["2026-03", "ADM", 1235.5, "=not a formula"],
    ]
    assert wb.read_sheet("Data") == EXPECTED  # the user's sheets are as they were


def test_owned_sheets_are_replaced_in_place(maker):
    wb = maker.make()
    wb.replace_sheets([bills(rows=5), run_log()])
    wb = maker.reopen(wb)
    wb.replace_sheets([bills(rows=1, tag="-2"), run_log("AGAIN")])
    wb = maker.reopen(wb)
    assert wb.sheet_names() == ["Data", "Offset", "Notes", "Bills", "Run Log"]
    assert wb.owned_sheets() == {"Bills", "Run Log"}
    assert wb.read_sheet("Bills") == [  # the five old rows are gone, not left below
        ["Period", "Department", "Amount", "Note"],
        ["2026-03", "ADM-2", 1234.5, "=not a formula"],
    ]
    assert wb.read_sheet("Run Log") == [["Key", "Value"], ["Status", "AGAIN"]]
    assert wb.read_sheet("Notes") == [["Keep me", 1]]


def test_a_user_sheet_is_never_replaced(maker):
    wb = maker.make()
    wb.replace_sheets([run_log()])
    wb = maker.reopen(wb)
    clash = OutputSheet("notes", ["Key"], [("x",)])  # names match whatever the case
    with pytest.raises(NotOwnedError) as refused:
        wb.replace_sheets([run_log("SECOND"), clash])
    assert refused.value.sheet == "Notes"
    wb = maker.reopen(wb)
    # All or nothing: the owned Run Log was not rewritten either.
    assert wb.sheet_names() == ["Data", "Offset", "Notes", "Run Log"]
    assert wb.read_sheet("Run Log") == [["Key", "Value"], ["Status", "OK"]]
    assert wb.read_sheet("Notes") == [["Keep me", 1]]


def test_a_bad_sheet_name_changes_nothing(maker):
    wb = maker.make()
    with pytest.raises(ValueError, match="sheet name"):
        wb.replace_sheets([run_log(), OutputSheet("Bad/Name", ["A"], [])])
    wb = maker.reopen(wb)
    assert wb.sheet_names() == ["Data", "Offset", "Notes"]
    assert wb.owned_sheets() == set()


def test_written_values_read_back_in_the_contract_shape(maker):
    sheet = OutputSheet(
        "Run Log",
        ["Value"],
        [
            (Decimal("100.00"),),  # a whole amount reads back as int
            (Decimal("0.125"),),
            (7,),
            (2.5,),
            (float("nan"),),  # pandas' "missing": an empty cell
            (None,),
            ("",),
            (True,),
            (dt.date(2026, 3, 31),),
            (dt.datetime(2026, 3, 31, 8, 15),),
            ("2026-03",),  # a period stays text, not a date
            ("00123",),
        ],
    )
    wb = maker.make()
    wb.replace_sheets([sheet])
    grid = maker.reopen(wb).read_sheet("Run Log")
    values = [row[0] for row in grid]
    assert values == [
        "Value",
        100,
        0.125,
        7,
        2.5,
        None,
        None,
        None,
        True,
        dt.date(2026, 3, 31),
        dt.datetime(2026, 3, 31, 8, 15),
        "2026-03",
        "00123",
    ]
    assert type(values[1]) is int and type(values[4]) is float


def test_whole_numbers_past_a_doubles_precision_read_back_as_excel_holds_them(maker):
    # Excel holds every number as a double: 2**60 written reads back as that double
    # (a float, as cells.py says), and the largest exact whole number stays an int.
    sheet = OutputSheet("Run Log", ["Value"], [(2**60,), (-(2**53),), (2**53 - 1,)])
    wb = maker.make()
    wb.replace_sheets([sheet])
    values = [row[0] for row in maker.reopen(wb).read_sheet("Run Log")]
    assert values == ["Value", float(2**60), -float(2**53), 2**53 - 1]
    assert [type(v) for v in values] == [str, float, float, int]


# -- the in-memory workbook as a what-if copy ------------------------------------------


def test_an_in_memory_copy_runs_like_the_file_and_leaves_it_alone(tmp_path):
    from costloop.engine.pipeline.commands import run_book
    from costloop.engine.pipeline.run import run_workbook
    from costloop.workbooks import demo_path

    demo = tmp_path / "demo.xlsx"
    demo.write_bytes(demo_path().read_bytes())
    before = demo.read_bytes()
    copy = MemoryWorkbook.copy_of(FileWorkbook(demo))
    assert copy.sheet_names() == FileWorkbook(demo).sheet_names()
    assert run_workbook(copy, label="demo.xlsx").ok
    assert demo.read_bytes() == before  # the copy is a copy

    assert run_book(demo, output=tmp_path / "by-file.xlsx").ok
    by_file = FileWorkbook(tmp_path / "by-file.xlsx")
    for name in ("Bills", "Journal", "Recovery", "Forecast", "Variance", "Compliance"):
        assert copy.read_sheet(name) == by_file.read_sheet(name), name
    assert copy.number_formats("Bills")["Amount"] == "#,##0.00"


def test_memory_refuses_a_second_sheet_of_the_same_name():
    wb = MemoryWorkbook({"Data": [[1]]})
    with pytest.raises(ValueError, match="already has a sheet"):
        wb.add_sheet("DATA")
    with pytest.raises(ValueError, match="already has a sheet"):
        wb.add_chartsheet("data")


def test_the_engine_never_imports_xlwings():
    import subprocess
    import sys

    code = (
        "import sys, costloop.engine.pipeline.run, costloop.engine.pipeline.commands, "
        "costloop.engine.workbook.memory, costloop.addin.xlwings_book; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'xlwings'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
