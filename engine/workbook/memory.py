"""A workbook held in memory: sheets as grids, for tests, scripts and what-if copies.

It keeps the same contract as a file or a live Excel book: values read back
in the shape `costloop.engine.workbook.cells` defines, output sheets are appended
after the last sheet and marked as costloop's, a user sheet is never
replaced, and a failed replace changes nothing. ``MemoryWorkbook.copy_of``
snapshots any other workbook, so the engine can run against a copy and leave
the original alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from costloop.engine.workbook import cells
from costloop.engine.workbook.cells import CellValue
from costloop.engine.workbook.host import (
    HiddenRows,
    NotOwnedError,
    OutputSheet,
    Workbook,
    check_sheet_names,
)


@dataclass
class _Sheet:
    name: str
    grid: list[list[CellValue]] | None  # None: a chartsheet, which has no cells
    owned: bool = False
    hidden_rows: set[int] = field(default_factory=set)
    formats: dict[str, str] = field(default_factory=dict)
    cell_formats: dict[str, list[str | None]] = field(default_factory=dict)


class MemoryWorkbook:
    """Sheets in workbook order; each a grid of rows from A1 (or a chartsheet)."""

    def __init__(
        self,
        sheets: Mapping[str, Sequence[Sequence[object]]] | None = None,
        owned: Iterable[str] = (),
    ):
        self._sheets: list[_Sheet] = []
        owned_names = {n.casefold() for n in owned}
        for name, rows in (sheets or {}).items():
            self.add_sheet(name, rows, owned=name.casefold() in owned_names)

    @classmethod
    def copy_of(cls, other: Workbook) -> MemoryWorkbook:
        """A snapshot of every sheet of ``other``, ownership and hidden rows included."""
        copy = cls()
        owned = {n.casefold() for n in other.owned_sheets()}
        for name in other.sheet_names():
            grid = other.read_sheet(name)
            sheet = copy.add_sheet(name, grid, owned=name.casefold() in owned)
            if isinstance(other, HiddenRows) and grid:
                sheet.hidden_rows = set(other.hidden_rows(name))
        return copy

    # -- building ----------------------------------------------------------------------------

    def add_sheet(
        self,
        name: str,
        rows: Sequence[Sequence[object]] = (),
        owned: bool = False,
        hidden_rows: Iterable[int] = (),
    ) -> _Sheet:
        """Append a worksheet holding ``rows`` (from A1), as a user sheet unless ``owned``."""
        if self._find(name) is not None:
            raise ValueError(f"{name!r}: the workbook already has a sheet of that name")
        check_sheet_names([name])
        sheet = _Sheet(name, cells.grid([list(r) for r in rows]), owned, set(hidden_rows))
        self._sheets.append(sheet)
        return sheet

    def add_chartsheet(self, name: str) -> None:
        """Append a chartsheet: listed among the sheets, with no cells."""
        if self._find(name) is not None:
            raise ValueError(f"{name!r}: the workbook already has a sheet of that name")
        self._sheets.append(_Sheet(name, None))

    def number_formats(self, name: str) -> dict[str, str]:
        """The number format of each column of an output sheet costloop wrote."""
        return dict(self._get(name).formats)

    def number_format(self, name: str, column: str, row: int) -> str | None:
        """The number format of one cell of an output sheet costloop wrote: ``row`` 2 is
        the first below the header, as in Excel; None where the cell has none."""
        sheet = self._get(name)
        by_row = sheet.cell_formats.get(column)
        if by_row is not None and 0 <= row - 2 < len(by_row) and by_row[row - 2] is not None:
            return by_row[row - 2]
        return sheet.formats.get(column)

    # -- the Workbook interface ---------------------------------------------------------

    def sheet_names(self) -> list[str]:
        return [s.name for s in self._sheets]

    def read_sheet(self, name: str) -> list[list[CellValue]]:
        sheet = self._get(name)
        return [] if sheet.grid is None else [list(row) for row in sheet.grid]

    def owned_sheets(self) -> set[str]:
        return {s.name for s in self._sheets if s.owned}

    def hidden_rows(self, name: str) -> set[int]:
        """Excel row numbers (1 = the first row) of the sheet's hidden rows."""
        return set(self._get(name).hidden_rows)

    def replace_sheets(self, sheets: list[OutputSheet]) -> None:
        check_sheet_names([s.name for s in sheets])
        for sheet in sheets:
            existing = self._find(sheet.name)
            if existing is not None and not existing.owned:
                raise NotOwnedError(existing.name)
        # Build every grid before touching the workbook: a bad value fails here.
        built = [(s, _grid_of(s)) for s in sheets]
        for sheet, grid in built:
            existing = self._find(sheet.name)
            if existing is None:
                existing = _Sheet(sheet.name, None, owned=True)
                self._sheets.append(existing)
            existing.grid, existing.hidden_rows = grid, set()
            existing.formats = dict(sheet.formats)
            existing.cell_formats = {c: list(f) for c, f in sheet.cell_formats.items()}

    # -- helpers -------------------------------------------------------------------------

    def _find(self, name: str) -> _Sheet | None:
        folded = name.casefold()  # Excel's sheet names ignore case
        return next((s for s in self._sheets if s.name.casefold() == folded), None)

    def _get(self, name: str) -> _Sheet:
        sheet = self._find(name)
        if sheet is None:
            raise KeyError(f"there is no sheet named {name!r}")
        return sheet


def _grid_of(sheet: OutputSheet) -> list[list[CellValue]]:
    """The output sheet as the cells a host holds after writing it (header row first)."""
    rows = [[cells.stored_value(c) for c in sheet.columns]]
    rows += [[cells.stored_value(v) for v in row] for row in sheet.rows]
    return cells.grid(rows)
