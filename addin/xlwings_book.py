"""The workbook interface over a live `xlwings.Book`: the workbook open in Excel.

Only xlwings' BSD-licensed API is used (desktop Excel through COM on Windows
and AppleScript on macOS), so the add-in needs no xlwings PRO licence. The
tests drive this same class with xlwings' remote ``Book(json=...)``, which is
PRO (see ``tests/test_addin_xlwings_book.py``).

Reading. A sheet is read in one call from A1 to the last cell of its used
range, with xlwings' ``err_to_str`` so an error cell arrives as ``#REF!`` and
not as a blank; every value then goes through `costloop.engine.workbook.cells`, the
contract the file implementation keeps too. Excel's used range often runs past
the data (a cell once formatted), so trailing empty rows and columns are cut.

Ownership. A sheet is costloop's when it carries the sheet-scoped defined name
``costloop_owned``, the same marker the file implementation writes (see
`costloop.engine.xlsx.file_workbook`), so a workbook run from the command line and then
from the ribbon, or the other way round, agrees on which sheets are costloop's.
On desktop Excel the name is made hidden, as in the file; the remote engine
the tests use cannot hide names, so there it stays visible.

Writing, all or nothing. Every output sheet is first built on a new hidden
staging sheet: values, number formats, bold header. Only when all of them are
built does the swap start, and it uses only operations that do not depend on
the data: an output sheet that is new becomes the staging sheet (renamed,
marked, shown); one that exists is cleared and gets the staging block copied
in, then the staging sheet goes. Clearing and copying, rather than deleting the
old sheet, keeps the sheet itself, so a user's formula such as
``=SUM(Bills!H:H)`` on their own summary sheet keeps working, exactly as it does
when the file implementation rewrites the sheet's part. If building fails, the
staging sheets are deleted and nothing else has changed. If Excel refuses a step
of the swap itself (an output sheet the user protected), the sheets already
swapped keep their new content, the others their old, and the staging sheets
left are deleted: a live book has no rename-into-place as a file does.

Text is written with Excel's leading apostrophe: a value set through COM is
parsed as if typed, so ``2026-03`` would become a date, ``=x`` a formula and
``00123`` a number. The apostrophe keeps exactly the text, and is not part of
the value read back.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from costloop.engine.workbook import cells
from costloop.engine.workbook.cells import CellValue, ExcelError
from costloop.engine.workbook.host import NotOwnedError, OutputSheet, check_sheet_names

OWNED_NAME = "costloop_owned"
OWNED_VALUE = '="v1"'
"""The marker's definition, the same as the file implementation writes."""

STAGING_PREFIX = "~costloop "

Progress = Callable[[str], None]


class XlwingsWorkbook:
    """A live `xlwings.Book` satisfying the `costloop.engine.workbook.host.Workbook` protocol.

    ``progress`` is told, in a few words, what is being read or written (the
    ribbon shows it in Excel's status bar).
    """

    def __init__(self, book: Any, progress: Progress | None = None):
        self.book = book
        self.progress = progress or (lambda _message: None)

    @property
    def path(self) -> Path | None:
        """The workbook's file when it is saved on this computer, as a file workbook has
        one: Settings UsageSource names files beside it. None for a workbook never saved
        or open only online (OneDrive, SharePoint)."""
        return local_file(self.book)

    # -- reading ------------------------------------------------------------------------

    def sheet_names(self) -> list[str]:
        """Every sheet in workbook order; chartsheets too where the host lists them."""
        return _all_sheet_names(self.book)

    def read_sheet(self, name: str) -> list[list[CellValue]]:
        sheet = self._worksheet(name)
        if sheet is None:
            if any(n.casefold() == name.casefold() for n in self.sheet_names()):
                return []  # a chartsheet has no cells
            raise KeyError(f"{self.book.name}: there is no sheet named {name!r}")
        self.progress(f"Reading {sheet.name}…")
        last = sheet.used_range.last_cell
        values = sheet.range((1, 1), (last.row, last.column)).options(ndim=2, err_to_str=True).value
        self.progress("Working…")  # what the status bar says while the engine computes
        return _trim(cells.grid(values or [], errors_as_text=True))

    def owned_sheets(self) -> set[str]:
        owned = set()
        for sheet in self.book.sheets:
            if any(_is_marker(n.name) for n in sheet.names):
                owned.add(sheet.name)
        return owned

    def hidden_rows(self, name: str) -> set[int]:
        """Excel row numbers of the sheet's hidden rows (desktop Excel on Windows only)."""
        sheet = self._worksheet(name)
        if sheet is None or _host(self.book) != "windows":
            return set()
        used = sheet.used_range
        first, count = used.row, used.api.Rows.Count
        every = set(range(first, first + count))
        # One COM call per row is slow on a big sheet; Excel's visible-cells view gives the
        # shown rows as a few areas (its Address text would be cut at 255 characters).
        try:
            visible = used.api.SpecialCells(12)  # xlCellTypeVisible
        except Exception:  # no visible cell at all raises in Excel
            return every
        shown: set[int] = set()
        for area in visible.Areas:
            shown.update(range(area.Row, area.Row + area.Rows.Count))
        return every - shown

    # -- writing ------------------------------------------------------------------------

    def replace_sheets(self, sheets: list[OutputSheet]) -> None:
        check_sheet_names([s.name for s in sheets])
        owned = {n.casefold() for n in self.owned_sheets()}
        every = {n.casefold(): n for n in self.sheet_names()}
        for sheet in sheets:
            existing = every.get(sheet.name.casefold())
            if existing is not None and existing.casefold() not in owned:
                raise NotOwnedError(existing)
        values = [_host_rows(s) for s in sheets]  # a value Excel cannot hold fails here
        app = self.book.app
        active = _active_sheet(self.book)
        with _screen_updating_off(app):
            staged = self._build(sheets, values, set(every))
            self._swap(sheets, staged, values)
            if active is not None:
                with contextlib.suppress(Exception):  # the user's sheet is back in front
                    active.activate()

    def _build(self, sheets: list[OutputSheet], values: list, taken: set[str]) -> list:
        staged: list = []
        try:
            for number, (sheet, rows) in enumerate(zip(sheets, values, strict=True), start=1):
                self.progress(f"Writing {sheet.name}…")
                name = _free_name(f"{STAGING_PREFIX}{number}", taken)
                new = self.book.sheets.add(name=name, after=self.book.sheets[-1])
                staged.append(new)
                new.visible = False
                _write(new, sheet, rows)
        except BaseException:
            for new in reversed(staged):
                with contextlib.suppress(Exception):  # keep the first error, not a cleanup one
                    new.delete()
            raise
        return staged

    def _swap(self, sheets: list[OutputSheet], staged: list, values: list) -> None:
        for done, (sheet, new, rows) in enumerate(zip(sheets, staged, values, strict=True)):
            try:
                self._swap_one(sheet, new, rows)
            except BaseException:
                # Excel refused (a protected sheet, say): the sheets not yet swapped keep
                # their content, and no hidden staging sheet is left in the user's book.
                for left in staged[done:]:
                    with contextlib.suppress(Exception):  # keep the first error
                        left.delete()
                raise

    def _swap_one(self, sheet: OutputSheet, new: Any, rows: list) -> None:
        old = self._worksheet(sheet.name)
        if old is None:
            new.name = sheet.name
            # Qualified with the sheet, so Excel makes it sheet-scoped on every host.
            marker = new.names.add(f"{_quoted(sheet.name)}!{OWNED_NAME}", OWNED_VALUE)
            with contextlib.suppress(Exception):  # cosmetic: never fail the swap for it
                _hide_name(marker, _host(self.book))
            new.visible = True
            return
        width = max(len(r) for r in rows)
        old.clear()
        new.range((1, 1), (len(rows), width)).copy(old.range((1, 1)))
        old.autofit("columns")
        new.delete()

    # -- helpers ------------------------------------------------------------------------

    def _worksheet(self, name: str) -> Any | None:
        folded = name.casefold()
        for sheet in self.book.sheets:
            if sheet.name.casefold() == folded:
                return sheet
        return None


def online_address(book: Any) -> str | None:
    """The workbook's web address when it is open from OneDrive or SharePoint without a
    synced local copy (Excel then gives its URL as the full name)."""
    fullname = str(book.fullname)
    return fullname if fullname.lower().startswith(("http://", "https://")) else None


def local_file(book: Any) -> Path | None:
    """The workbook's file on this computer; None if it was never saved or is online only."""
    if online_address(book) is not None:
        return None
    path = Path(str(book.fullname))  # a new workbook's full name is just "Book1"
    return path if path.is_absolute() and path.exists() else None


def _quoted(sheet: str) -> str:
    return "'" + sheet.replace("'", "''") + "'"


def _is_marker(defined_name: str) -> bool:
    # Sheet-scoped names come back as "Bills!costloop_owned" (or "'Run Log'!costloop_owned").
    return defined_name.rsplit("!", 1)[-1].casefold() == OWNED_NAME


def _all_sheet_names(book: Any) -> list[str]:
    """Worksheets and chartsheets in tab order. xlwings lists worksheets only, so on
    desktop Excel the host's own Sheets collection is asked for chartsheets too."""
    host = _host(book)
    try:
        if host == "windows":
            every = book.api.Sheets  # COM: worksheets and chartsheets
            return [every(i).Name for i in range(1, every.Count + 1)]
        if host == "mac":
            return list(book.api.sheets.name.get())
    except Exception:  # an unexpected host object model: the worksheets are what matters
        pass
    return [s.name for s in book.sheets]


def _active_sheet(book: Any) -> Any | None:
    try:
        return book.sheets.active
    except Exception:  # a chartsheet is active: nothing to restore
        return None


def _free_name(base: str, taken: set[str]) -> str:
    name, suffix = base, 1
    folded = {t.casefold() for t in taken}
    while name.casefold() in folded:
        suffix += 1
        name = f"{base}.{suffix}"
    taken.add(name)
    return name


def _host_rows(sheet: OutputSheet) -> list[list[object]]:
    """Header and rows as values Excel holds exactly (see `cells.stored_value`)."""
    width = max([len(sheet.columns), *(len(r) for r in sheet.rows), 1])
    header = [_host_value(cells.stored_value(c)) for c in sheet.columns]
    rows = [header + [None] * (width - len(header))]
    for row in sheet.rows:
        line = [_host_value(cells.stored_value(v)) for v in row]
        rows.append(line + [None] * (width - len(line)))
    return rows


def _host_value(value: CellValue) -> object:
    if type(value) is str:
        return "'" + value  # kept as typed text: no date, number or formula parsing
    if isinstance(value, ExcelError):
        return value.code  # Excel turns an error's text into the error value
    if isinstance(value, dt.time):
        # Excel has no time-only type: a time is a fraction of day zero.
        return dt.datetime.combine(dt.date(1899, 12, 30), value)
    return value


def _write(target: Any, sheet: OutputSheet, rows: list[list[object]]) -> None:
    width = max(len(r) for r in rows)
    target.range((1, 1), (len(rows), width)).value = rows
    target.range((1, 1), (1, len(sheet.columns) or 1)).font.bold = True
    for index, column in enumerate(sheet.columns, start=1):
        fmt = sheet.formats.get(column)
        if fmt and len(rows) > 1:
            target.range((2, index), (len(rows), index)).number_format = fmt
        # A column mixing kinds (Forecast's money rows beside its quantities): each run of
        # rows whose format differs from the column's, one range each.
        for first, last, row_format in _runs(list(sheet.cell_formats.get(column, ()))):
            if row_format is not None and row_format != fmt:
                target.range((first + 2, index), (last + 2, index)).number_format = row_format
    target.autofit("columns")


def _runs(values: list) -> Iterator[tuple[int, int, object]]:
    """(first, last, value) of each run of equal neighbouring values (0-based, inclusive)."""
    start = 0
    for i in range(1, len(values) + 1):
        if i == len(values) or values[i] != values[start]:
            yield start, i - 1, values[start]
            start = i


def _host(book: Any) -> str:
    """``windows`` (COM), ``mac`` (AppleScript) or the engine's own name (``remote``)."""
    engine = book.app.engine.name
    if engine != "excel":
        return engine
    return "windows" if sys.platform.startswith("win") else "mac"


def _hide_name(name: Any, host: str) -> None:
    """Make the marker invisible in Name Manager, where the host allows it (the remote
    engine has no way to hide a name)."""
    if host == "windows":
        name.api.Visible = False
    elif host == "mac":
        name.api.visible.set(False)


@contextlib.contextmanager
def _screen_updating_off(app: Any) -> Iterator[None]:
    """Excel repaints after every sheet added or written unless told not to."""
    try:
        before = app.screen_updating
    except Exception:  # the remote engine cannot read it
        before = True
    with contextlib.suppress(Exception):
        app.screen_updating = False
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            app.screen_updating = before


def _trim(grid: list[list[CellValue]]) -> list[list[CellValue]]:
    """Drop trailing empty rows and columns that Excel's used range may include."""
    while grid and all(v is None for v in grid[-1]):
        grid.pop()
    width = max((i + 1 for row in grid for i, v in enumerate(row) if v is not None), default=0)
    return [row[:width] for row in grid]
