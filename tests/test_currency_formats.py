"""Number formats follow the workbook's currency on every output sheet (issue 15).

A JPY workbook (Settings Currency JPY: no minor unit) is run end to end through
a real file, and the written .xlsx's styles are read back with openpyxl: no
money cell on Bills, Journal, Recovery, Forecast, Variance, Compliance, Rule
Check or Run Log may carry a format that shows decimals on a whole amount
(Compliance, Variance and the failure path used to say ``#,##0.00`` whatever
the currency), nor one with a decimal point at all (Forecast and Variance mix
money with quantities in a column, whose one format showed a whole yen as
"1,234."; their money rows now carry the money format cell by cell). Money
cells are found by the contract's columns, and on the sheets that mix kinds in
a column (Forecast, Variance) by the row's Kind.
"""

from __future__ import annotations

import re
import shutil
from decimal import Decimal

import openpyxl
import pytest

from costloop.engine.model.formats import (
    mixed_format,
    money_format,
    rate_format,
    row_formats,
    sheet_formats,
)
from costloop.engine.model.sheets import OUTPUT_SHEETS
from costloop.engine.pipeline.commands import run_book, summary_lines
from costloop.engine.pipeline.run import run_workbook
from costloop.engine.workbook.host import OutputSheet
from costloop.engine.workbook.memory import MemoryWorkbook
from costloop.engine.xlsx.file_workbook import FileWorkbook
from costloop.problems import Reason
from costloop.workbooks import demo_path

# Sheet -> (money columns, the rows they are money in: None for every row).
MONEY_CELLS = {
    "Bills": (("Amount",), None),
    "Journal": (("Debit", "Credit"), None),
    "Recovery": (("Cost", "Recovered", "OverUnder", "Unallocated"), None),
    "Forecast": (("Plan", "Actual", "Forecast", "Adjustment"), ("Kind", {"COST"})),
    "Variance": (("Plan YTD", "Actual YTD", "Variance"), ("Kind", {"COST", "TOTAL"})),
    "Compliance": (
        ("Cost YTD", "Revenue YTD", "Over/Under YTD", "Annualised Cash Expenses",
         "Excess Over Limit"),
        None,
    ),
    "Rule Check": (("Amount",), None),
    "Run Log": (("Value",), ("Key", {"Total Billed"})),
}  # fmt: skip


def shows_decimals(number_format: str) -> bool:
    """Whether a whole number in this format shows digits after the decimal point."""
    section = re.sub(r'"[^"]*"|\\.', "", number_format.split(";")[0])
    return bool(re.search(r"\.0", section))


def _with_currency(tmp_path, currency: str):
    book = tmp_path / f"demo-{currency}.xlsx"
    shutil.copyfile(demo_path(), book)
    wb = openpyxl.load_workbook(book)
    settings = wb["Settings"]
    row = next(r for r in settings.iter_rows(min_row=2) if r[0].value == "Currency")
    row[1].value = currency
    wb.save(book)
    return book


def _money_cells(path, money: bool = True):
    """(sheet, cell, value, number format) of every filled money cell of every output sheet;
    with ``money=False``, of the other filled cells of the same columns on the sheets that
    mix kinds (Forecast's and Variance's quantity and rate rows)."""
    wb = openpyxl.load_workbook(path)
    found = []
    for sheet, (columns, rows) in MONEY_CELLS.items():
        if not money and (rows is None or sheet == "Run Log"):
            continue
        ws = wb[sheet]
        header = [c.value for c in ws[1]]
        for line in ws.iter_rows(min_row=2):
            if rows is not None and (line[header.index(rows[0])].value in rows[1]) != money:
                continue
            for column in columns:
                cell = line[header.index(column)]
                if cell.value is not None:
                    found.append((sheet, cell.coordinate, cell.value, cell.number_format))
    return found


def test_the_format_rule():
    assert shows_decimals("#,##0.00") and shows_decimals("#,##0.00####")
    assert not shows_decimals("#,##0") and not shows_decimals("#,##0.######")
    assert not shows_decimals("General") and not shows_decimals('#,##0" .0"')
    # USD keeps the formats it always had; JPY drops the cents.
    assert money_format(2) == "#,##0.00" and rate_format(2) == "#,##0.00####"
    assert mixed_format(2, 4) == "#,##0.00##" and mixed_format(0, 4) == "#,##0.####"
    usd, jpy = sheet_formats(2), sheet_formats(0)
    assert usd["Compliance"]["Cost YTD"] == "#,##0.00" and jpy["Compliance"]["Cost YTD"] == "#,##0"
    assert usd["Forecast"]["Plan"] == "#,##0.00####" and jpy["Forecast"]["Plan"] == "#,##0.######"
    assert usd["Variance"]["Variance"] == "#,##0.00##"
    assert jpy["Variance"]["Variance"] == "#,##0.####"
    assert money_format(3) == "#,##0.000"


def test_a_jpy_workbook_shows_no_cents_on_any_sheet(tmp_path):
    book = _with_currency(tmp_path, "JPY")
    outcome = run_book(book)
    assert outcome.ok, [p.render() for p in outcome.errors]
    assert sorted(outcome.written) == sorted(OUTPUT_SHEETS)
    cells = _money_cells(book)
    assert {sheet for sheet, *_ in cells} == set(MONEY_CELLS)  # every sheet has money to check
    with_decimals = [c for c in cells if shows_decimals(c[3])]
    assert with_decimals == []
    # Nor a decimal point: a whole yen in "#,##0.####" reads "1,234." in Excel.
    with_point = [c for c in cells if "." in c[3]]
    assert with_point == []
    # The amounts are whole yen, so nothing is hidden by the format.
    assert all(Decimal(str(v)) == Decimal(str(v)).to_integral_value() for _, _, v, _ in cells)
    # Every money cell carries the yen format exactly, on the mixed sheets too.
    for sheet, coordinate, _, number_format in cells:
        if sheet != "Run Log":
            assert number_format == "#,##0", (sheet, coordinate)
    # Quantities and rates beside them keep their places (a forecast of 501.6667 tickets).
    others = _money_cells(book, money=False)
    assert {s for s, *_ in others} == {"Forecast", "Variance"}
    assert {(s, f) for s, _, _, f in others} == {
        ("Forecast", "#,##0.######"),
        ("Variance", "#,##0.####"),
    }
    assert any(Decimal(str(v)) != Decimal(str(v)).to_integral_value() for *_, v, _ in others)
    # The terminal's summary says yen too.
    summary = summary_lines(outcome)
    assert re.fullmatch(r"Period 2026-03: billed [\d,]+ to \d+ department\(s\) .*", summary[0])
    assert all(not re.search(r"\d\.\d\d ", line) for line in summary[2:-1]), summary


def test_the_money_rows_of_mixed_sheets_take_the_money_format_only_without_a_minor_unit():
    # With cents, "#,##0.00####" shows an amount of cents exactly as "#,##0.00": no change.
    assert row_formats(2) == {} and row_formats(3) == {}
    assert row_formats(0) == {
        "Forecast": ("Kind", {"COST": dict.fromkeys(("Plan", "Actual", "Forecast", "Adjustment"),
                                                    "#,##0")}),
        "Variance": ("Kind", dict.fromkeys(("COST", "TOTAL"),
                                           dict.fromkeys(("Plan YTD", "Actual YTD", "Variance"),
                                                         "#,##0"))),
    }  # fmt: skip


def _yen_sheet() -> OutputSheet:
    return OutputSheet(
        name="Forecast",
        columns=["Kind", "Plan"],
        rows=[("COST", Decimal("41000")), ("USAGE", Decimal("501.6667")), ("COST", 7)],
        formats={"Plan": "#,##0.######"},
        cell_formats={"Plan": ["#,##0", None, "#,##0"]},
    )


def test_every_host_writes_a_format_per_row(tmp_path):
    sheet = _yen_sheet()
    assert [sheet.number_format("Plan", r) for r in range(3)] == [
        "#,##0", "#,##0.######", "#,##0",
    ]  # fmt: skip
    memory = MemoryWorkbook({"Data": [["x"]]})
    memory.replace_sheets([sheet])
    assert [memory.number_format("Forecast", "Plan", r) for r in (2, 3, 4)] == [
        "#,##0", "#,##0.######", "#,##0",
    ]  # fmt: skip
    assert memory.number_format("Forecast", "Kind", 2) is None
    path = tmp_path / "book.xlsx"
    wb = openpyxl.Workbook()
    wb.active.title = "Data"
    wb.save(path)
    FileWorkbook(path).replace_sheets([sheet])
    ws = openpyxl.load_workbook(path)["Forecast"]
    assert [(ws[f"B{r}"].value, ws[f"B{r}"].number_format) for r in (2, 3, 4)] == [
        (41000, "#,##0"), (501.6667, "#,##0.######"), (7, "#,##0"),
    ]  # fmt: skip


def test_a_jpy_run_in_memory_formats_its_rows_as_the_file_does(tmp_path):
    book = _with_currency(tmp_path, "JPY")
    copy = MemoryWorkbook.copy_of(FileWorkbook(book))
    assert run_workbook(copy, label="demo.xlsx").ok
    assert run_book(book).ok
    written = openpyxl.load_workbook(book)
    for name in ("Forecast", "Variance"):
        ws = written[name]
        header = [c.value for c in ws[1]]
        for line in ws.iter_rows(min_row=2):
            for column in header:
                cell = line[header.index(column)]
                if isinstance(cell.value, int | float):
                    assert copy.number_format(name, column, cell.row) == cell.number_format, (
                        name,
                        cell.coordinate,
                    )


def test_a_failed_jpy_run_writes_its_rule_check_in_yen(tmp_path):
    book = _with_currency(tmp_path, "JPY")
    wb = openpyxl.load_workbook(book)
    wb["Usage"]["D2"] = "lots"  # a Quantity that is not a number: the run fails
    wb.save(book)
    outcome = run_book(book)
    assert not outcome.ok and sorted(outcome.written) == ["Rule Check", "Run Log"]
    ws = openpyxl.load_workbook(book)["Rule Check"]
    header = [c.value for c in ws[1]]
    amount = header.index("Amount")
    formats = {line[amount].number_format for line in ws.iter_rows(min_row=2)}
    assert formats and not any(map(shows_decimals, formats)), formats


@pytest.mark.parametrize("currency, expected", [("USD", "#,##0.00"), ("KWD", "#,##0.000")])
def test_other_currencies_show_their_minor_unit(tmp_path, currency, expected):
    book = _with_currency(tmp_path, currency)
    assert run_book(book).ok
    cells = _money_cells(book)
    assert {f for s, _, _, f in cells if s in ("Bills", "Compliance", "Rule Check")} == {expected}


def test_the_reserve_warning_of_a_scenario_points_into_its_own_compliance_sheet(tmp_path):
    # Rates@High bills ten times the demo's rates: the IT fund over-recovers far past its
    # reserve limit, and the warning must name the sheet the row is on: Compliance@High.
    book = tmp_path / "demo.xlsx"
    shutil.copyfile(demo_path(), book)
    wb = openpyxl.load_workbook(book)
    high = wb.copy_worksheet(wb["Rates"])
    high.title = "Rates@High"
    rate = [c.value for c in high[1]].index("Rate") + 1
    for row in range(2, high.max_row + 1):
        if isinstance(high.cell(row, rate).value, int | float):
            high.cell(row, rate).value *= 10
    wb.save(book)
    outcome = run_book(book, scenario="High")
    assert outcome.ok, [p.render() for p in outcome.errors]
    reserve = [p for p in outcome.problems if p.code is Reason.RESERVE_EXCEEDED]
    assert len(reserve) == 1
    sheet, _, cell = reserve[0].where.partition("!")
    assert sheet == "Compliance@High"
    written = openpyxl.load_workbook(book)
    assert "Compliance" not in written.sheetnames  # the base run's sheet was never made
    assert written[sheet][cell].value == "FUND TOTAL"
    assert reserve[0].message.startswith("the IT fund's reserve from billing (")
    assert reserve[0].message.endswith("; see the Compliance@High sheet")
