"""The narrow workbook interface (ARCHITECTURE.md).

The engine reads and writes a workbook only through this: read a sheet as a
grid of values, and replace the sheets it owns. Three implementations satisfy
it: a file on disk (`costloop.engine.xlsx.file_workbook.FileWorkbook`: headless, CI,
command line), a live `xlwings.Book` (`costloop.addin.xlwings_book`, behind a
ribbon button) and sheets held in memory
(`costloop.engine.workbook.memory.MemoryWorkbook`). The engine never imports
xlwings. Where a workbook's changes end up (the same file, another file, the
open window) belongs to the implementation, not to this interface.

The values a sheet reads as, whatever the host, are the cell-value contract in
`costloop.engine.workbook.cells`; ``tests/test_workbook_conformance.py`` holds every
implementation to this interface.

Beyond `Workbook`, a host may offer optional parts, each an explicit protocol
checked with ``isinstance`` (never probed by attribute name), so a wrapper that
forwards a host can forward them too:

- `ColumnReads`: ``read_columns`` — a sheet as columns, without a Python step per
  cell (the file host; how a million-row Usage sheet is read in seconds);
- `SavedAsFile`: ``path`` — the file it was opened from (Settings UsageSource
  names files relative to its folder);
- `HiddenRows`: ``hidden_rows`` — which rows are hidden (the reader warns that
  hidden rows with data are counted).

And an `OutputSheet`'s rows may be `ColumnValues`: rows that hand their values
column by column (`costloop.engine.pipeline.outputs.FrameRows`), so the file host
writes a million-row sheet without making a million tuples.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from costloop.engine.workbook.cells import CellValue, ExcelError, column_letter
from costloop.errors import WorkbookError

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "CellValue",
    "ColumnReads",
    "ColumnValues",
    "ExcelError",
    "HiddenRows",
    "NotOwnedError",
    "OutputSheet",
    "SavedAsFile",
    "Workbook",
    "check_sheet_names",
    "column_letter",
    "workbook_folder",
]

MAX_SHEET_NAME = 31


@dataclass
class OutputSheet:
    """An engine-owned sheet's whole content: a header row, then rows of values.

    Values are None, str, int, float, bool, Decimal (money, written as a number)
    or datetime. ``formats`` maps a column name to an Excel number format
    (``#,##0.00`` for money, ``0.0%`` for a ratio). ``cell_formats`` maps a column
    that mixes kinds of number (Forecast's money, quantity and rate rows) to a
    format for each row, top to bottom; a None there keeps the column's format.
    It is meant for short sheets: the file host writes such a column cell by cell.
    """

    name: str
    columns: list[str]
    rows: Sequence[tuple] = field(default_factory=list)
    """The rows below the header; they may also be `ColumnValues`."""
    formats: dict[str, str] = field(default_factory=dict)
    cell_formats: dict[str, Sequence[str | None]] = field(default_factory=dict)

    def number_format(self, column: str, row: int) -> str | None:
        """The format of ``column`` in data row ``row`` (0 = the row below the header)."""
        by_row = self.cell_formats.get(column)
        if by_row is not None and row < len(by_row) and by_row[row] is not None:
            return by_row[row]
        return self.formats.get(column)


class Workbook(Protocol):
    """What the engine needs of a workbook, whatever hosts it."""

    def sheet_names(self) -> list[str]:
        """Every sheet (worksheets and chartsheets), in workbook order."""
        ...

    def read_sheet(self, name: str) -> list[list[CellValue]]:
        """A worksheet's used range from A1, row-major, every row the same length.

        Values follow `costloop.engine.workbook.cells`. A chartsheet reads as ``[]``; a
        sheet that does not exist raises KeyError.
        """
        ...

    def owned_sheets(self) -> set[str]:
        """Names of the sheets the engine created (and so may replace)."""
        ...

    def replace_sheets(self, sheets: list[OutputSheet]) -> None:
        """Replace (or add after the last sheet) each owned sheet, all at once.

        Raises `NotOwnedError`, before changing anything, if a sheet of that
        name exists but the engine did not create it. All or nothing: when it
        raises, the workbook is as it was. Nothing else in the workbook changes.
        """
        ...


@runtime_checkable
class ColumnReads(Protocol):
    """A host that reads a sheet column by column (the file host)."""

    def read_columns(self, name: str) -> list[np.ndarray] | None:
        """The sheet's cells as columns from A, row 1 (the header) first: what
        `Workbook.read_sheet` gives, transposed. None when the host cannot read this
        sheet so (the caller then uses ``read_sheet``); a missing sheet raises KeyError."""
        ...


@runtime_checkable
class SavedAsFile(Protocol):
    """A host opened from a file on disk."""

    @property
    def path(self) -> Path | None:
        """The workbook's file; None when it has never been saved."""
        ...


@runtime_checkable
class HiddenRows(Protocol):
    """A host that knows which rows are hidden."""

    def hidden_rows(self, name: str) -> set[int]:
        """Excel row numbers (1-based) hidden on a worksheet, by hand, by a filter or by a
        collapsed outline; empty where the host cannot tell. The reader counts hidden rows
        and warns about the ones holding data."""
        ...


@runtime_checkable
class ColumnValues(Protocol):
    """Output rows that can hand their values column by column."""

    def by_column(self) -> list[tuple[list[object], set[type]]]:
        """Each column's values top to bottom (None for a blank), and the kinds of value
        it holds (None aside)."""
        ...


def workbook_folder(wb: Workbook) -> Path | None:
    """The folder of the workbook's file (files it names are found there); None if unsaved."""
    if isinstance(wb, SavedAsFile) and wb.path is not None:
        return Path(wb.path).parent
    return None


class NotOwnedError(WorkbookError):
    """A sheet the engine must write exists but belongs to the user."""

    def __init__(self, sheet: str):
        super().__init__(
            f"{sheet}: a sheet named {sheet!r} already exists and was not made by costloop; "
            f"rename or delete it so costloop can write its {sheet!r} output there"
        )
        self.sheet = sheet


_BAD_SHEET_CHARS = re.compile(r"[\[\]:*?/\\]")


def check_sheet_names(names: list[str]) -> None:
    """Raise ValueError unless every name is one Excel accepts for a sheet, each written once."""
    seen: set[str] = set()
    for name in names:
        if not name or len(name) > MAX_SHEET_NAME or _BAD_SHEET_CHARS.search(name):
            raise ValueError(
                f"{name!r}: a sheet name must be 1 to {MAX_SHEET_NAME} characters "
                "without [ ] : * ? / \\"
            )
        if name.startswith("'") or name.endswith("'") or name.casefold() == "history":
            raise ValueError(f"{name!r}: Excel does not allow this sheet name")
        if name.casefold() in seen:
            raise ValueError(f"{name!r}: the same output sheet is written twice")
        seen.add(name.casefold())
