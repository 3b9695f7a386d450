"""The Book is final when `read_book` returns it: UsageSource usage is in it, nothing replaces it.

`attach_usage_source` used to replace ``usage``, ``columns`` and ``fingerprint``
on a Book the pipeline had already read; any other caller of `read_book` (the
bills, a script) got the Usage sheet's empty rows instead.
"""

from __future__ import annotations

import csv
import dataclasses
import shutil
from pathlib import Path

import openpyxl
import pytest

from costloop.engine.read.reader import read_book
from costloop.engine.workbook.memory import MemoryWorkbook
from costloop.engine.xlsx.file_workbook import FileWorkbook
from costloop.problems import Reason
from costloop.workbooks import demo_path


def _demo_with_usage_in(folder: Path) -> tuple[Path, list[list[object]]]:
    """The demo with its Usage rows moved to usage.csv beside it (UsageSource usage.csv)."""
    book = folder / "book.xlsx"
    shutil.copyfile(demo_path(), book)
    wb = openpyxl.load_workbook(book)
    usage = wb["Usage"]
    rows = [[c.value for c in r] for r in usage.iter_rows()]
    usage.delete_rows(2, usage.max_row)
    wb["Settings"].append(["UsageSource", "usage.csv"])
    wb.save(book)
    with (folder / "usage.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return book, rows


def test_read_book_returns_the_usage_of_the_usage_source(tmp_path):
    path, rows = _demo_with_usage_in(tmp_path)
    book, problems = read_book(FileWorkbook(path))
    assert [p for p in problems if p.is_error] == []
    demo, _ = read_book(FileWorkbook(demo_path()))
    # Summed by DuckDB per period, department, metric and service: the same quantities.
    by_key = ["Period", "_key", "Metric"]
    assert book.usage.groupby(by_key)["Quantity"].sum().to_dict() == (
        demo.usage.groupby(by_key)["Quantity"].sum().to_dict()
    )
    assert len(book.usage) > 0 and len(rows) > 1
    # The fingerprint follows the file too: a changed usage.csv is a changed input.
    before = book.fingerprint
    with (tmp_path / "usage.csv").open("a", newline="") as handle:
        csv.writer(handle).writerow(rows[1])
    again, _ = read_book(FileWorkbook(path))
    assert again.fingerprint != before


def test_a_usage_source_of_a_workbook_never_saved_is_an_error_from_read_book():
    demo = FileWorkbook(demo_path())
    sheets = {name: demo.read_sheet(name) for name in demo.sheet_names()}
    sheets["Settings"] = [*sheets["Settings"], ["UsageSource", "usage.csv"]]
    sheets["Usage"] = sheets["Usage"][:1]
    book, problems = read_book(MemoryWorkbook(sheets))
    [problem] = [p for p in problems if p.code is Reason.BAD_SETTING]
    assert problem.message.startswith(
        "UsageSource names files relative to the workbook, which has not been saved"
    )
    assert len(book.usage) == 0


def test_the_book_cannot_be_changed_after_it_is_read():
    book, _ = read_book(FileWorkbook(demo_path()))
    with pytest.raises(dataclasses.FrozenInstanceError):
        book.usage = book.usage.head(0)  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        book.fingerprint = ""  # type: ignore[misc]
