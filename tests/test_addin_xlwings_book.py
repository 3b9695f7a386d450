"""`XlwingsWorkbook` over a real `xlwings.Book`: the whole engine, all-or-nothing writes,
ownership shared with the file implementation.

The Book is xlwings' remote engine (PRO, used under ``XLWINGS_LICENSE_KEY=noncommercial``
for these tests only; the add-in itself needs only xlwings' BSD part). There is no
Excel here: ``addin_remote.Excel`` carries out the actions the Book queued, as
xlwings' VBA client does in Excel, so what was written can be read back. See
``addin_remote.py`` for exactly what that covers; what it cannot show (hidden
defined names, chartsheets, COM's own behaviour) is said in docs/excel-addin-admin.md.
"""

from __future__ import annotations

import shutil
from decimal import Decimal

import pytest
from addin_remote import Excel, needs_remote, payload_of, xw

from costloop.addin.xlwings_book import OWNED_NAME, OWNED_VALUE, STAGING_PREFIX, XlwingsWorkbook
from costloop.engine.model.sheets import OUTPUT_SHEETS
from costloop.engine.pipeline.commands import run_book
from costloop.engine.pipeline.run import run_workbook
from costloop.engine.workbook.host import OutputSheet
from costloop.engine.workbook.memory import MemoryWorkbook
from costloop.engine.xlsx import parts as xlsx_parts
from costloop.engine.xlsx.file_workbook import FileWorkbook
from costloop.workbooks import demo_path

pytestmark = needs_remote

RESULT_SHEETS = ["Bills", "Journal", "Recovery", "Forecast", "Variance", "Compliance"]


@pytest.fixture
def demo(tmp_path):
    path = tmp_path / "demo.xlsx"
    shutil.copyfile(demo_path(), path)
    return path


def run_in_excel(excel: Excel, **options):
    """One Run chargeback in the live book, then Excel carries out what it queued."""
    book = excel.open()
    outcome = run_workbook(XlwingsWorkbook(book), label="demo.xlsx", **options)
    excel.carry_out(book)
    return outcome


def test_the_engine_through_xlwings_gives_the_file_runs_results(demo, tmp_path):
    assert run_book(demo, output=tmp_path / "by-file.xlsx").ok
    by_file = FileWorkbook(tmp_path / "by-file.xlsx")
    excel = Excel(payload_of(FileWorkbook(demo), "demo.xlsx"))

    outcome = run_in_excel(excel)
    assert outcome.ok, [p.render() for p in outcome.problems]
    live = XlwingsWorkbook(excel.open())
    assert live.sheet_names() == FileWorkbook(demo).sheet_names() + list(OUTPUT_SHEETS)
    for name in RESULT_SHEETS:
        assert live.read_sheet(name) == by_file.read_sheet(name), name
    assert live.read_sheet("Rule Check") == by_file.read_sheet("Rule Check")

    # A second run replaces the owned sheets in place, with the same results.
    assert run_in_excel(excel).ok
    again = XlwingsWorkbook(excel.open())
    assert again.sheet_names() == live.sheet_names()
    for name in RESULT_SHEETS:
        assert again.read_sheet(name) == by_file.read_sheet(name), name
    amount = again.read_sheet("Bills")[0].index("Amount")
    assert excel.formats[("Bills", 1, amount)] == "#,##0.00"  # money formatted, as in the file


def test_the_file_and_the_live_book_agree_on_which_sheets_are_costloops(demo):
    assert run_book(demo).ok  # the command line marks its sheets in the file
    excel = Excel(payload_of(FileWorkbook(demo), "demo.xlsx"))
    assert XlwingsWorkbook(excel.open()).owned_sheets() == set(OUTPUT_SHEETS)
    sheets_before = excel.sheet_names()

    assert run_in_excel(excel).ok  # so the ribbon replaces them rather than refusing
    assert excel.sheet_names() == sheets_before
    # Each new sheet carries the same marker as in a file: a sheet-scoped costloop_owned.
    markers = [n for n in excel.payload["names"] if n["name"] == OWNED_NAME]
    assert sorted(n["scope_sheet_name"] for n in markers) == sorted(OUTPUT_SHEETS)
    assert {n["refers_to"] for n in markers} == {OWNED_VALUE} == {"=" + xlsx_parts.OWNED_VALUE}


def _user_book() -> Excel:
    wb = MemoryWorkbook({"Data": [["Pool", "Amount"], ["Cloud", 10]], "Notes": [["mine"]]})
    wb.replace_sheets([OutputSheet("Bills", ["Amount"], [(Decimal("1.50"),)])])
    payload = payload_of(wb, "book.xlsx")
    payload["names"].append(  # a user's own defined name, book-scoped
        {
            "name": "Rates",
            "refers_to": "=Data!$A$1:$B$2",
            "sheet_index": 0,
            "address": "A1:B2",
            "book_scope": True,
            "scope_sheet_name": None,
            "scope_sheet_index": None,
        }
    )
    return Excel(payload)


def test_new_sheets_are_built_hidden_and_swapped_in_only_when_all_are_built():
    excel = _user_book()
    book = excel.open()
    XlwingsWorkbook(book).replace_sheets(
        [
            OutputSheet("Bills", ["Amount"], [(Decimal("2.50"),)]),
            OutputSheet("Journal", ["Account", "Debit"], [("6400", Decimal(3))]),
        ]
    )
    actions = book.json()["actions"]
    funcs = [a["func"] for a in actions]
    swap_starts = min(funcs.index(f) for f in ("sheetClear", "copyRange", "setSheetName"))
    # Building: add a sheet, hide it, then write; nothing data-dependent after the swap starts.
    assert funcs.count("addSheet") == 2
    for number, index in enumerate(i for i, f in enumerate(funcs) if f == "addSheet"):
        assert actions[index]["args"][1] == f"{STAGING_PREFIX}{number + 1}"
        assert actions[index + 1]["func"] == "setSheetVisibility"
        assert actions[index + 1]["args"] == ["Hidden"]
    assert all(i < swap_starts for i, f in enumerate(funcs) if f == "setValues")
    assert set(funcs[swap_starts:]) <= {
        "sheetClear",
        "copyRange",
        "setSheetAutofit",
        "sheetDelete",
        "setSheetName",
        "namesAdd",
        "setSheetVisibility",
        "activateSheet",
        "setScreenUpdating",
    }

    excel.carry_out(book)
    live = XlwingsWorkbook(excel.open())
    assert live.sheet_names() == ["Data", "Notes", "Bills", "Journal"]  # no staging sheet left
    assert all(s["visibility"] == "Visible" for s in excel.sheets)
    assert live.read_sheet("Bills") == [["Amount"], [2.5]]
    assert live.read_sheet("Journal") == [["Account", "Debit"], ["6400", 3]]
    assert live.read_sheet("Data") == [["Pool", "Amount"], ["Cloud", 10]]
    assert live.owned_sheets() == {"Bills", "Journal"}
    rates = [n for n in excel.payload["names"] if n["name"] == "Rates"]
    assert rates and rates[0]["refers_to"] == "=Data!$A$1:$B$2"  # the user's name is kept
    assert not [k for k in excel.formats if k[0] in ("Data", "Notes")]  # and their formatting
    # The old Bills sheet was cleared and refilled, not deleted: formulas pointing at it live.
    deleted = [a["sheet_position"] for a in actions if a["func"] == "sheetDelete"]
    assert len(deleted) == 1
    cleared = [a for a in actions if a["func"] == "sheetClear"]
    assert [a["sheet_position"] for a in cleared] == [2]  # Bills, where it always was


def test_a_failure_while_building_leaves_the_workbook_as_it_was():
    excel = _user_book()
    before = excel.sheet_names(), excel.values("Bills"), list(excel.payload["names"])
    book = excel.open()
    seen = []

    def cancel_on_the_second_sheet(message: str) -> None:
        seen.append(message)
        if message.startswith("Writing Journal"):
            raise KeyboardInterrupt("the user pressed Esc")

    with pytest.raises(KeyboardInterrupt):
        XlwingsWorkbook(book, progress=cancel_on_the_second_sheet).replace_sheets(
            [
                OutputSheet("Bills", ["Amount"], [(Decimal("2.50"),)]),
                OutputSheet("Journal", ["Account"], [("6400",)]),
            ]
        )
    assert seen == ["Writing Bills…", "Writing Journal…"]
    excel.carry_out(book)
    assert (excel.sheet_names(), excel.values("Bills"), excel.payload["names"]) == before


def test_progress_names_each_sheet_read_and_written(demo):
    seen: list[str] = []
    book = Excel(payload_of(FileWorkbook(demo), "demo.xlsx")).open()
    assert run_workbook(XlwingsWorkbook(book, progress=seen.append)).ok
    assert "Reading Usage…" in seen and "Reading Rules…" in seen
    assert seen[-len(OUTPUT_SHEETS) :] == [f"Writing {name}…" for name in OUTPUT_SHEETS]


def test_a_failure_while_swapping_leaves_no_staging_sheet_behind(monkeypatch):
    # Excel refuses to clear a sheet the user protected: the swap stops there. The sheets
    # not yet swapped in keep their old content, and no hidden staging sheet is left over.
    excel = _user_book()
    book = excel.open()

    def protected(sheet) -> None:
        raise RuntimeError(f"{sheet.name}: the sheet is protected")

    monkeypatch.setattr(xw.Sheet, "clear", protected)
    with pytest.raises(RuntimeError, match="protected"):
        XlwingsWorkbook(book).replace_sheets(
            [
                OutputSheet("Journal", ["Account"], [("6400",)]),
                OutputSheet("Bills", ["Amount"], [(Decimal("2.50"),)]),
            ]
        )
    excel.carry_out(book)
    assert not [n for n in excel.sheet_names() if n.startswith(STAGING_PREFIX)]
    assert XlwingsWorkbook(excel.open()).read_sheet("Bills") == [["Amount"], [1.5]]


def test_a_jpy_book_in_excel_formats_its_money_rows_as_the_file_does(demo, tmp_path):
    # Forecast and Variance mix yen with quantities in a column: the money rows carry "#,##0"
    # cell by cell, the quantity rows keep the column's format, in Excel as in the file.
    import openpyxl

    wb = openpyxl.load_workbook(demo)
    currency = next(r for r in wb["Settings"].iter_rows(min_row=2) if r[0].value == "Currency")
    currency[1].value = "JPY"
    wb.save(demo)
    assert run_book(demo, output=tmp_path / "by-file.xlsx").ok
    by_file = openpyxl.load_workbook(tmp_path / "by-file.xlsx")
    excel = Excel(payload_of(FileWorkbook(demo), "demo.xlsx"))
    assert run_in_excel(excel).ok
    assert run_in_excel(excel).ok  # the second run writes into the sheets the first made
    for name in ("Forecast", "Variance"):
        expected, seen = {}, {}
        for line in by_file[name].iter_rows(min_row=2):
            for cell in line:
                if isinstance(cell.value, int | float):
                    at = (name, cell.row - 1, cell.column - 1)
                    expected[at] = cell.number_format
                    seen[at] = excel.formats.get(at, "General")
        assert seen == expected, name
        quantities = "#,##0.######" if name == "Forecast" else "#,##0.####"
        assert {"#,##0", quantities} <= set(expected.values()), name
