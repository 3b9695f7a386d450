"""The closed demo (workbooks/demo-closed.xlsx: February closed, March billed with a
correction and a credit memo), copied, optionally edited as a user would in Excel, and run."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import openpyxl

from costloop.engine.pipeline.commands import run_book
from costloop.workbooks import closed_demo_path

PERIOD = "2026-03"


def set_text(cell, text: str) -> None:
    """Type ``text`` into a cell as text, even when it starts with ``=`` (openpyxl would
    otherwise store it as a formula)."""
    cell.value = text
    cell.data_type = "s"


def make_closed_book(folder: Path, edit: Callable[[openpyxl.Workbook], None] | None = None) -> Path:
    book = folder / "closed.xlsx"
    shutil.copyfile(closed_demo_path(), book)
    if edit is not None:
        wb = openpyxl.load_workbook(book)
        edit(wb)
        wb.save(book)
    assert run_book(book).ok
    return book
