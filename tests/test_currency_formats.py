"""Number formats follow the workbook's currency on every output sheet (issue 15).

A JPY workbook (Settings Currency JPY: no minor unit) is run end to end through
a real file, and the written .xlsx's styles are read back with openpyxl: no
money cell on Bills, Journal, Recovery, Forecast, Variance, Compliance, Rule
Check or Run Log may carry a format that shows decimals on a whole amount
(Compliance, Variance and the failure path used to say ``#,##0.00`` whatever
the currency). Money cells are found by the contract's columns, and on the
sheets that mix kinds in a column (Forecast, Variance) by the row's Kind.
"""

from __future__ import annotations

import re
import shutil
from decimal import Decimal

import openpyxl
import pytest

from costloop.engine.model.formats import mixed_format, money_format, rate_format, sheet_formats
from costloop.engine.model.sheets import OUTPUT_SHEETS
from costloop.engine.pipeline.commands import run_book, summary_lines
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


def _money_cells(path):
    """(sheet, cell, value, number format) of every filled money cell of every output sheet."""
    wb = openpyxl.load_workbook(path)
    found = []
    for sheet, (columns, rows) in MONEY_CELLS.items():
        ws = wb[sheet]
        header = [c.value for c in ws[1]]
        for line in ws.iter_rows(min_row=2):
            if rows is not None and line[header.index(rows[0])].value not in rows[1]:
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
    # The amounts are whole yen, so nothing is hidden by the format.
    assert all(Decimal(str(v)) == Decimal(str(v)).to_integral_value() for _, _, v, _ in cells)
    # Sheets of money alone carry the yen format exactly.
    for sheet, coordinate, _, number_format in cells:
        if sheet in ("Bills", "Journal", "Recovery", "Compliance", "Rule Check"):
            assert number_format == "#,##0", (sheet, coordinate)
        elif sheet in ("Forecast", "Variance"):
            assert number_format in ("#,##0.######", "#,##0.####"), (sheet, coordinate)
    # The terminal's summary says yen too.
    summary = summary_lines(outcome)
    assert re.fullmatch(r"Period 2026-03: billed [\d,]+ to \d+ department\(s\) .*", summary[0])
    assert all(not re.search(r"\d\.\d\d ", line) for line in summary[2:-1]), summary


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
