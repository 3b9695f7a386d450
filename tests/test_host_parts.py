"""A host's optional parts are declared protocols, and a wrapper forwards them.

`costloop.engine.workbook.host` declares `ColumnReads`, `SavedAsFile` and
`HiddenRows`; the reader checks them with ``isinstance``. The add-in's Update
forecast view (`_OnlySheets`) used to re-implement the interface by hand and drop
``read_columns``: a big Usage sheet then went cell by cell through ``read_sheet``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import xlsxwriter

from costloop.addin.entry import FORECAST_SHEETS, _OnlySheets
from costloop.engine.model.sheets import INPUT_SHEETS
from costloop.engine.read.reader import read_book
from costloop.engine.workbook.host import (
    ColumnReads,
    HiddenRows,
    SavedAsFile,
    Workbook,
    workbook_folder,
)
from costloop.engine.workbook.memory import MemoryWorkbook
from costloop.engine.xlsx.file_workbook import FileWorkbook
from costloop.workbooks import demo_path

USAGE_ROWS = 24_000


@pytest.fixture(scope="module")
def big_book(tmp_path_factory) -> Path:
    """The demo's input sheets with its Usage rows repeated to 24,000 rows."""
    demo = FileWorkbook(demo_path())
    path = tmp_path_factory.mktemp("big") / "big.xlsx"
    book = xlsxwriter.Workbook(str(path))
    for name in INPUT_SHEETS:
        header, *rows = demo.read_sheet(name)
        if name == "Usage":
            rows = [rows[i % len(rows)] for i in range(USAGE_ROWS)]
        sheet = book.add_worksheet(name)
        for r, row in enumerate([header, *rows]):
            for c, value in enumerate(row):
                if value is not None:
                    sheet.write(r, c, value)
    book.close()
    return path


class Spy(FileWorkbook):
    """The file host, noting how each sheet was read."""

    def __init__(self, path: Path):
        super().__init__(path)
        self.by_rows: list[str] = []
        self.by_columns: list[str] = []

    def read_sheet(self, name: str):
        self.by_rows.append(name)
        return super().read_sheet(name)

    def read_columns(self, name: str):
        columns = super().read_columns(name)
        if columns is not None:
            self.by_columns.append(name)
        return columns


def test_a_big_usage_sheet_read_through_the_forecast_view_takes_the_column_path(big_book):
    spy = Spy(big_book)
    book, problems = read_book(_OnlySheets(spy, FORECAST_SHEETS))
    assert book is not None, [p.render() for p in problems if p.is_error]
    assert len(book.usage) == USAGE_ROWS
    assert "Usage" in spy.by_columns
    assert "Usage" not in spy.by_rows


def test_the_forecast_view_forwards_the_optional_parts_it_has():
    file_view = _OnlySheets(FileWorkbook(demo_path()), FORECAST_SHEETS)
    assert isinstance(file_view, ColumnReads | SavedAsFile | HiddenRows)
    assert file_view.path == demo_path()
    assert workbook_folder(file_view) == demo_path().parent  # UsageSource files are found there
    memory = MemoryWorkbook({"Usage": [["Period"], ["2026-01"]]}, owned=())
    memory_view = _OnlySheets(memory, FORECAST_SHEETS)
    assert memory_view.path is None and workbook_folder(memory_view) is None
    assert memory_view.read_columns("Usage") is None  # rows only: the reader uses read_sheet
    assert memory_view.hidden_rows("Usage") == set()


def test_which_hosts_have_which_parts():
    memory = MemoryWorkbook()
    file = FileWorkbook(demo_path())
    assert isinstance(file, ColumnReads) and isinstance(file, SavedAsFile)
    assert isinstance(file, HiddenRows) and isinstance(memory, HiddenRows)
    assert not isinstance(memory, ColumnReads) and not isinstance(memory, SavedAsFile)

    class RowsOnly:  # the narrow interface and nothing more
        def __init__(self, wb: Workbook):
            self.wb = wb

        def sheet_names(self):
            return self.wb.sheet_names()

        def read_sheet(self, name):
            return self.wb.read_sheet(name)

        def owned_sheets(self):
            return set()

        def replace_sheets(self, sheets):  # pragma: no cover - never written here
            raise AssertionError("read only")

    plain = RowsOnly(file)
    assert not isinstance(plain, ColumnReads | SavedAsFile | HiddenRows)
    book, problems = read_book(plain)  # every part is optional
    assert book is not None and not [p for p in problems if p.is_error]
    assert book.fingerprint == read_book(file)[0].fingerprint
