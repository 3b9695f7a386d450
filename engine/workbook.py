"""The narrow workbook interface (ARCHITECTURE.md).

The engine reads and writes a workbook only through this: read a sheet as a
grid of values, and replace the sheets it owns. Two implementations satisfy
it: a file on disk (`costloop.engine.xlsx_file.FileWorkbook`: headless,
CI, command line) and a live `xlwings.Book` (in `costloop.addin`, behind a
ribbon button). The engine never imports xlwings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

CellValue = Any
"""None, str, float, int, bool, datetime.date/datetime, or an `ExcelError`."""


def column_letter(index: int) -> str:
    """Grid column index to Excel's letters: 0 -> ``A``, 25 -> ``Z``, 26 -> ``AA``."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


@dataclass(frozen=True)
class ExcelError:
    """An Excel error value in a cell, such as ``#REF!`` or ``#DIV/0!``."""

    code: str

    def __str__(self) -> str:
        return self.code


@dataclass
class OutputSheet:
    """An engine-owned sheet's whole content: a header row, then rows of values.

    Values are None, str, int, float, bool, Decimal (money, written as a number)
    or datetime. ``formats`` maps a column name to an Excel number format
    (``#,##0.00`` for money, ``0.0%`` for a ratio).
    """

    name: str
    columns: list[str]
    rows: list[tuple] = field(default_factory=list)
    formats: dict[str, str] = field(default_factory=dict)


class Workbook(Protocol):
    """What the engine needs of a workbook, whatever hosts it."""

    def sheet_names(self) -> list[str]:
        """Every sheet (worksheets and chartsheets), in workbook order."""
        ...

    def read_sheet(self, name: str) -> list[list[CellValue]]:
        """A worksheet's used range from A1, row-major; short rows may be ragged."""
        ...

    def owned_sheets(self) -> set[str]:
        """Names of the sheets the engine created (and so may replace)."""
        ...

    def replace_sheets(self, sheets: list[OutputSheet], output: Path | None = None) -> None:
        """Replace (or add after the last sheet) each owned sheet, all at once.

        Raises `NotOwnedError` if a sheet of that name exists but the engine
        did not create it. Nothing else in the workbook changes. For a file,
        the write is atomic; with ``output`` the result goes there instead and
        the original is untouched.
        """
        ...


class NotOwnedError(Exception):
    """A sheet the engine must write exists but belongs to the user."""

    def __init__(self, sheet: str):
        super().__init__(
            f"{sheet}: a sheet named {sheet!r} already exists and was not made by costloop; "
            f"rename or delete it so costloop can write its {sheet!r} output there"
        )
        self.sheet = sheet
