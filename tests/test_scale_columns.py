"""The column-wise read (`FileWorkbook.read_columns`) gives exactly what `read_sheet` gives.

A million-row Usage sheet is read column by column; every other host, and every
sheet the columnar path does not take, is read row by row. The two must agree
cell for cell, value and type, on every sheet of every Excel-authored corpus
workbook, the demo, and cells of every kind written here.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import xlsxwriter
from corpus import corpus_files

from costloop.engine.read.reader import read_book
from costloop.engine.xlsx.columns import contract_column
from costloop.engine.xlsx.file_workbook import FileWorkbook
from costloop.workbooks import demo_path


def _same(columns, grid) -> None:
    height = len(grid)
    width = max((len(r) for r in grid), default=0)
    assert len(columns) == width
    for j, column in enumerate(columns):
        assert len(column) == height
        for i, value in enumerate(column):
            expected = grid[i][j]
            assert type(value) is type(expected), (i, j, value, expected)
            assert value == expected or (value != value and expected != expected), (i, j)


def _check_book(path: Path) -> int:
    wb = FileWorkbook(path)
    compared = 0
    for name in wb.sheet_names():
        columns = wb.read_columns(name)
        if columns is None:
            continue
        _same(columns, wb.read_sheet(name))
        compared += 1
    return compared


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.name)
def test_corpus_sheets_read_the_same_by_column(path):
    _check_book(path)


def test_demo_reads_the_same_and_gives_the_same_book(tmp_path):
    assert _check_book(demo_path()) >= 7

    class RowsOnly:
        """The same file seen through the row-wise interface only."""

        def __init__(self, wb):
            self._wb = wb

        def __getattr__(self, name):
            if name == "read_columns":
                raise AttributeError(name)
            return getattr(self._wb, name)

    by_columns, problems_c = read_book(FileWorkbook(demo_path()))
    by_rows, problems_r = read_book(RowsOnly(FileWorkbook(demo_path())))
    assert problems_c == problems_r
    assert by_columns.fingerprint == by_rows.fingerprint
    for frame in ("departments", "budget", "actuals", "usage", "rates"):
        left, right = getattr(by_columns, frame), getattr(by_rows, frame)
        assert left.equals(right), frame


def test_every_kind_of_cell(tmp_path):
    path = tmp_path / "kinds.xlsx"
    book = xlsxwriter.Workbook(str(path))
    dates = book.add_format({"num_format": "yyyy-mm-dd"})
    sheet = book.add_worksheet("Kinds")
    sheet.write_row(0, 0, ["Number", "Text", "Date", "Flag", "Mixed", "Blank"])
    rows = [
        [1, "a", dt.datetime(2025, 7, 1), True, 1, None],
        [2.5, "", dt.datetime(2025, 7, 1, 6, 30), False, "n/a", None],
        [-0.0, "  b ", None, None, True, None],
        [2.0**60, "a", dt.datetime(2025, 8, 1), True, 1.5, None],
        [None, None, None, None, dt.datetime(2026, 1, 1), None],
    ]
    for r, row in enumerate(rows, start=1):
        for c, value in enumerate(row):
            if isinstance(value, dt.datetime):
                sheet.write_datetime(r, c, value, dates)
            elif value == "":
                sheet.write_string(r, c, "")
            elif value is not None:
                sheet.write(r, c, value)
    sheet.write(7, 2, "tail")  # a last row past a blank one
    book.close()
    wb = FileWorkbook(path)
    columns = wb.read_columns("Kinds")
    assert columns is not None
    _same(columns, wb.read_sheet("Kinds"))


def test_text_columns_share_one_string_per_distinct_text():
    import numpy as np

    column = np.array(["Dept " + str(i % 3) for i in range(30)], dtype=object)
    out = contract_column(column)
    assert len({id(v) for v in out}) == 3


def test_error_cells_fall_back_to_the_row_wise_read(tmp_path):
    path = tmp_path / "errors.xlsx"
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet("S")
    sheet.write_row(0, 0, ["A", "B"])
    sheet.write_formula(1, 0, "=NA()", None, "#N/A")
    book.close()
    assert FileWorkbook(path).read_columns("S") is None
