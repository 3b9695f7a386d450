"""Rows typed into a user's sheet (engine/xlsx/typed_rows.py), as Excel would take them.

A sheet laid out as finance would: a header, a formatted data row, an Excel table over
both, a Status drop-down (data validation) and a column width. Typed rows join the
table, carry the row above's formats down, keep everything else, and LibreOffice opens
the result; a cell that holds something is never overwritten.
"""

from __future__ import annotations

import datetime as dt
import zipfile
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.table import Table
from programs import needs_libreoffice
from test_libreoffice_opens import resave_with_libreoffice

from costloop.engine.xlsx.file_workbook import FileWorkbook
from costloop.engine.xlsx.typed_rows import CellTaken


def _book(path: Path) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Disputes"
    ws.append(["Dispute", "Amount", "Status", "Raised", "Mine"])
    ws.append(["D-1", 12.5, "Open", dt.date(2026, 3, 2), "=B2*2"])
    ws["B2"].number_format = "#,##0.00"
    ws.column_dimensions["A"].width = 30
    status = DataValidation(type="list", formula1='"Open,Accepted,Rejected"')
    status.add("C2:C200")
    ws.add_data_validation(status)
    ws.add_table(Table(displayName="Disputes", ref="A1:E2"))
    other = wb.create_sheet("Other")
    other["A1"] = "untouched"
    wb.save(path)
    return path


def _parts(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


def test_typed_rows_join_the_table_and_take_the_formats_above(tmp_path):
    book = _book(tmp_path / "b.xlsx")
    before = _parts(book)
    FileWorkbook(book).type_rows(
        "Disputes",
        3,
        [
            ["PORTAL-1", Decimal("50.25"), "Open", dt.date(2026, 4, 1)],
            ["PORTAL-2", 7, "Open", dt.date(2026, 4, 2), None],
        ],
    )
    wb = openpyxl.load_workbook(book)
    ws = wb["Disputes"]
    assert [[c.value for c in row] for row in ws.iter_rows(min_row=3)] == [
        ["PORTAL-1", 50.25, "Open", dt.datetime(2026, 4, 1), None],
        ["PORTAL-2", 7, "Open", dt.datetime(2026, 4, 2), None],
    ]
    assert ws["B3"].number_format == "#,##0.00" and ws["B4"].number_format == "#,##0.00"
    assert ws["D3"].number_format == "yyyy-mm-dd"
    assert ws.tables["Disputes"].ref == "A1:E4"
    assert ws.column_dimensions["A"].width == 30
    assert str(ws.data_validations.dataValidation[0].sqref) == "C2:C200"
    assert ws["E2"].value == "=B2*2"
    assert ws.dimensions == "A1:E4"
    after = _parts(book)
    changed = {n for n in before if before[n] != after.get(n)}
    assert changed == {"xl/worksheets/sheet1.xml", "xl/tables/table1.xml", "xl/styles.xml"}
    assert set(after) == set(before)


def test_a_cell_that_holds_something_is_refused_and_the_file_is_unchanged(tmp_path):
    book = _book(tmp_path / "b.xlsx")
    before = book.read_bytes()
    with pytest.raises(CellTaken) as refused:
        FileWorkbook(book).type_rows("Disputes", 2, [[None, None, None, None, "x"]])
    assert str(refused.value) == (
        "Disputes!E2 already holds something; nothing was written — clear the cell or move "
        "what is there, then try again"
    )
    assert book.read_bytes() == before


@needs_libreoffice
def test_libreoffice_reads_the_typed_rows(tmp_path):
    book = _book(tmp_path / "b.xlsx")
    FileWorkbook(book).type_rows("Disputes", 3, [["PORTAL-1", Decimal("50.25"), "Open"]])
    resaved = FileWorkbook(resave_with_libreoffice(book, tmp_path / "lo"))
    assert resaved.read_sheet("Disputes")[2][:3] == ["PORTAL-1", 50.25, "Open"]
    assert resaved.read_sheet("Other") == [["untouched"]]
