"""A workbook file on disk: fast reads with calamine, lossless write-back of owned sheets.

Reading goes through python-calamine (a Rust reader, many times faster than
openpyxl cell loops). Writing never loads the workbook into a model: the zip
package is copied part by part and only the parts listed in
`costloop.engine.xlsx.parts` change, so charts, images, shapes, buttons,
pivots, comments, VBA and everything else survive byte-for-byte.

Ownership marker. A sheet is costloop's when the workbook has a hidden,
sheet-scoped defined name ``costloop_owned`` on it::

    <definedName name="costloop_owned" localSheetId="5" hidden="1">"v1"</definedName>

A defined name was chosen over a document property listing sheet names because
it is bound to the sheet itself, not to its name: Excel keeps ``localSheetId``
right when sheets are moved, deletes the name with the sheet, and carries it
through Save, Save As and copy. If a user renames costloop's ``Bills`` to
``Bills March`` and then makes a sheet of their own called ``Bills``, a
name-list property would claim the user's new sheet and overwrite it; the
defined name still points at the renamed sheet, so the new ``Bills`` is the
user's and costloop refuses to touch it. Hidden names do not appear in the
Name Manager, so the marker is invisible. New sheets are only ever appended
after the last sheet, so existing ``localSheetId`` values never shift.

Values read back: None for an empty cell, str, int (a whole number, so codes
such as account ``6400`` do not turn into ``6400.0``), float, bool,
``datetime.date``/``datetime``/``time``, and `ExcelError` for ``#REF!`` and
friends. calamine reports an error cell as empty, so a sheet whose XML holds
error cells (``t="e"``) is scanned once more for them. A formula saved with no
calculated value (written by a script, never opened in a spreadsheet) reads as
`costloop.engine.xlsx.sheet_xml.Uncalculated`, not as blank; `hidden_rows` reads the
rows' ``hidden`` attribute, which calamine does not report either. An empty
string and an empty cell both read as None (calamine does not tell them apart).

A write refuses a destination that is read-only or open in Excel or LibreOffice
(`costloop.engine.xlsx.write_guard`) before the rename that would replace it.

Values written: str as an inline string (``sharedStrings.xml`` stays
untouched), Decimal/int/float as numbers (a Decimal's exact digits go into the
file), bool as a boolean, date/datetime as a serial number with a date format,
None, "" and NaN as no cell, infinity as ``#NUM!``. Strings over Excel's 32,767
characters are cut (Excel cannot open a longer cell); characters XML 1.0
forbids are escaped the OOXML way (``_x0001_``).

``docProps/app.xml`` gets the new sheet names when its layout is the usual one;
``xl/calcChain.xml`` loses only entries of replaced sheets (and goes, with its
relationship and content type, if nothing is left: Excel rebuilds it).
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import functools
import io
import itertools
import logging
import math
import numbers
import os
import re
import stat
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import python_calamine
from lxml import etree

from costloop.engine.workbook import cells
from costloop.engine.workbook.cells import ERROR_CODES, MAX_CELL_CHARS, CellValue, ExcelError
from costloop.engine.workbook.host import (
    MAX_SHEET_NAME,
    ColumnValues,
    NotOwnedError,
    OutputSheet,
    check_sheet_names,
    column_letter,
)
from costloop.engine.xlsx import columns as sheet_columns
from costloop.engine.xlsx import parts, sheet_xml
from costloop.engine.xlsx import survey as sheet_survey
from costloop.engine.xlsx.typed_rows import type_rows
from costloop.engine.xlsx.write_guard import refuse_unwritable
from costloop.errors import WorkbookError

MAX_ROWS = 1_048_576
MAX_COLUMNS = 16_384
DEFAULT_DATE_FORMAT = "yyyy-mm-dd"
DEFAULT_DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
DEFAULT_TIME_FORMAT = "hh:mm:ss"
__all__ = ["ERROR_CODES", "MAX_CELL_CHARS", "MAX_SHEET_NAME", "FileWorkbook"]


class WorkbookProtectedError(WorkbookError, ValueError):
    """The workbook's structure is protected, so costloop may not add its sheets."""


class WorkbookFormatError(WorkbookError, ValueError):
    """The file is not an .xlsx/.xlsm workbook costloop can read and write."""


def check_format(path: Path) -> None:
    """Raise `WorkbookFormatError`, in words a finance user understands, unless ``path`` is an
    .xlsx/.xlsm workbook."""
    path = Path(path)
    if not path.exists():
        raise WorkbookFormatError(f"{path}: no such file")
    if path.is_dir():
        raise WorkbookFormatError(f"{path}: is a folder, not an Excel workbook")
    with path.open("rb") as handle:
        head = handle.read(8)
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise WorkbookFormatError(
            f"{path}: is an old-style .xls workbook or a password-protected file; "
            "open it in Excel, remove any password and use File > Save As > "
            "Excel Workbook (*.xlsx)"
        )
    if not zipfile.is_zipfile(path):
        kind = "a text file (CSV?)" if _looks_like_text(head) else "not an Excel workbook"
        raise WorkbookFormatError(
            f"{path}: is {kind}, not an .xlsx workbook; open it in Excel and use "
            "File > Save As > Excel Workbook (*.xlsx)"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            names = {n.lower() for n in archive.namelist()}
    except zipfile.BadZipFile as exc:
        raise WorkbookFormatError(f"{path}: the file is damaged ({exc})") from exc
    if "[content_types].xml" not in names:
        raise WorkbookFormatError(f"{path}: is a zip file, not an Excel workbook")
    if any(n.endswith("workbook.bin") for n in names):
        raise WorkbookFormatError(
            f"{path}: is a binary .xlsb workbook; use File > Save As > Excel Workbook (*.xlsx)"
        )
    if not any(n.endswith(".xml") and "workbook" in n for n in names):
        raise WorkbookFormatError(f"{path}: is an Office file but not an Excel workbook")


def _looks_like_text(head: bytes) -> bool:
    return bool(head) and all(b in b"\t\r\n" or 32 <= b < 127 or b >= 128 for b in head)


FAST_READ_MIN_BYTES = 4 << 20
"""A sheet whose XML is this big (some 15,000 rows) is read by fastexcel into Arrow."""


class FileWorkbook:
    """An .xlsx/.xlsm file satisfying the `costloop.engine.workbook.host.Workbook` protocol.

    Written sheets go back into ``path`` or, with ``output``, into that file instead,
    leaving ``path`` byte-for-byte untouched (``costloop run --output``).
    """

    def __init__(self, path: Path, output: Path | None = None):
        self.path = Path(path)
        self.output = Path(output) if output is not None else None
        check_format(self.path)
        self._data: bytes | None = None
        self._calamine: python_calamine.CalamineWorkbook | None = None
        self._workbook: parts.WorkbookPart | None = None
        self._hidden: dict[str, set[int]] = {}
        """Hidden rows of sheets read column-wise (their XML is not kept)."""

    @staticmethod
    def is_xlsx(path: Path) -> bool:
        """True when ``path`` is an .xlsx/.xlsm workbook costloop can open."""
        try:
            check_format(Path(path))
        except WorkbookFormatError:
            return False
        return True

    # -- reading ------------------------------------------------------------------------

    def _load(self) -> tuple[bytes, parts.WorkbookPart]:
        # The file is read once; calamine and the XML model both work from these bytes.
        if self._data is None or self._workbook is None:
            self._data = self.path.read_bytes()
            try:
                self._workbook = parts.WorkbookPart(parts.Package.read(self._data))
            except (zipfile.BadZipFile, etree.XMLSyntaxError, parts.PackageError) as exc:
                raise WorkbookFormatError(f"{self.path}: the workbook is damaged ({exc})") from exc
        return self._data, self._workbook

    def _reader(self) -> python_calamine.CalamineWorkbook:
        if self._calamine is None:
            data, _ = self._load()
            self._calamine = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
        return self._calamine

    def _forget(self) -> None:
        if self._calamine is not None:
            self._calamine.close()
        self._data = self._calamine = self._workbook = None
        self._hidden = {}

    def sheet_names(self) -> list[str]:
        return [s.name for s in self._load()[1].sheets]

    def owned_sheets(self) -> set[str]:
        return self._load()[1].owned()

    def read_sheet(self, name: str) -> list[list[CellValue]]:
        """The sheet's cells from A1: ``grid[0][0]`` is A1, ``grid[1041][3]`` is D1042."""
        _, workbook = self._load()
        entry = workbook.sheet(name)
        if entry is None:
            raise KeyError(f"{self.path.name}: there is no sheet named {name!r}")
        if not entry.is_worksheet:
            return []  # a chartsheet has no cells
        sheet = self._reader().get_sheet_by_name(entry.name)
        raw = sheet.to_python(skip_empty_area=True)
        top, left = sheet.start or (0, 0)
        grid = cells.grid(raw, pad_left=left, pad_top=top)
        part = (entry.part and workbook.package.get(entry.part)) or b""
        # calamine reads an error cell as empty and an uncalculated formula as blank:
        # both are laid over the grid from the sheet's XML.
        overlay = [(r, c, ExcelError(code)) for r, c, code in sheet_xml.error_cells(part)]
        overlay += [
            (r, c, sheet_xml.Uncalculated(formula))
            for r, c, formula in sheet_xml.uncalculated_cells(part)
        ]
        for row, col, value in overlay:
            while len(grid) <= row:
                grid.append([])
            line = grid[row]
            line.extend([None] * (col + 1 - len(line)))
            line[col] = value
        width = max((len(r) for r in grid), default=0)
        for line in grid:
            line.extend([None] * (width - len(line)))
        return grid

    def read_columns(self, name: str) -> list[np.ndarray] | None:
        """The sheet's cells as columns from A, row 1 (the header) first: what `read_sheet`
        gives, transposed, without a Python step per cell (a million-row Usage sheet).

        None when the columnar path does not apply (a sheet not starting at row 1, ragged
        rows, error cells or formulas without a value): the caller uses `read_sheet`.
        """
        _, workbook = self._load()
        entry = workbook.sheet(name)
        if entry is None:
            raise KeyError(f"{self.path.name}: there is no sheet named {name!r}")
        if not entry.is_worksheet:
            return []
        if entry.part and workbook.package.size(entry.part) >= FAST_READ_MIN_BYTES:
            columns = self._read_columns_arrow(entry, workbook)
            if columns is not None:
                return columns
        return self._read_columns_calamine(entry, workbook)

    def _read_columns_arrow(
        self, entry: parts.SheetEntry, workbook: parts.WorkbookPart
    ) -> list[np.ndarray] | None:
        """A big sheet read by fastexcel into Arrow, when that read is exact; else None.

        fastexcel does not report error cells, formulas without a value or hidden
        rows, and reads text such as "n/a" in a column of numbers as empty, so the
        sheet's XML is surveyed meanwhile in a second process (streamed, never held
        whole; `sheet_survey`), and a column fastexcel could have read loosely sends
        the sheet down the general path.
        """
        try:
            import fastexcel
        except ImportError:  # pragma: no cover - a dependency; the general path still works
            return None
        package = workbook.package
        data, _ = self._load()

        def read_values():
            # fastexcel logs a warning for every empty column ("falling back to string");
            # an empty column is no news to a finance user, so it is not shown.
            quiet = logging.getLogger("fastexcel")
            level = quiet.level
            quiet.setLevel(logging.ERROR)
            try:
                return fastexcel.read_excel(data).load_sheet(
                    entry.name,
                    header_row=0,
                    dtype_coercion="strict",  # a column of two kinds raises, never coerces
                    schema_sample_rows=None,  # every row decides a column's kind
                    eager=True,
                )
            except fastexcel.FastExcelError:
                return None
            finally:
                quiet.setLevel(level)

        crc = package.crc(entry.part)
        if crc is None:
            return None
        table, found = sheet_survey.survey_beside(self.path, entry.part, crc, read_values)
        if table is None or not found.same_file or found.errors or found.uncalculated:
            return None
        header = found.header(self._shared_strings(workbook))
        if header is None:
            return None
        columns = sheet_columns.arrow_columns(table, header)
        if columns is not None:
            self._hidden[entry.name] = found.hidden
        return columns

    @staticmethod
    def _shared_strings(workbook: parts.WorkbookPart) -> sheet_xml.SharedStrings:
        package = workbook.package
        target = next(
            (
                target
                for _, kind, target, _ in package.rels(workbook.part)
                if kind.endswith("/sharedStrings")
            ),
            None,
        )
        stream = package.open(target) if target else None
        return sheet_xml.SharedStrings(stream if stream is not None else io.BytesIO(b""))

    def _read_columns_calamine(
        self, entry: parts.SheetEntry, workbook: parts.WorkbookPart
    ) -> list[np.ndarray] | None:
        reader = self._reader()
        # calamine parses on a worker thread (it lets go of the GIL) while this one checks
        # the sheet's XML: on two cores the checks cost no time beside the parse.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as worker:
            parsing = worker.submit(reader.get_sheet_by_name, entry.name)
            part = (entry.part and workbook.package.get(entry.part)) or b""
            rare = b't="e"' in part or b"t='e'" in part or sheet_xml.uncalculated_cells(part)
            if not rare:
                self._hidden[entry.name] = sheet_xml.hidden_rows(part)
            # The XML (hundreds of MB for a million rows) is not kept once checked.
            del part
            if entry.part and not rare:
                workbook.package.release(entry.part)
            sheet = parsing.result()
        if rare:
            return None  # error cells or formulas without a value: read_sheet overlays them
        top, left = sheet.start or (0, 0)
        if top:
            return None
        raw = sheet.to_python(skip_empty_area=True)
        return sheet_columns.rows_to_columns(raw, pad_left=left)

    def hidden_rows(self, name: str) -> set[int]:
        """Excel row numbers of the sheet's hidden rows (calamine does not report them)."""
        _, workbook = self._load()
        entry = workbook.sheet(name)
        if entry is None or not entry.is_worksheet or not entry.part:
            return set()
        if entry.name in self._hidden:
            return set(self._hidden[entry.name])
        return sheet_xml.hidden_rows(workbook.package.get(entry.part) or b"")

    # -- writing ------------------------------------------------------------------------

    def replace_sheets(self, sheets: list[OutputSheet]) -> None:
        """Write the owned sheets into the file (or into ``output``), atomically and losslessly."""
        check_sheet_names([s.name for s in sheets])
        # Fresh from disk: the user may have saved the workbook since we read it.
        package = parts.Package.read(self.path.read_bytes())
        updated = write_owned_sheets(package, sheets)
        destination = self.output if self.output is not None else self.path
        _atomic_write(destination, updated, mode_from=self.path)
        if destination.resolve() == self.path.resolve():
            self._forget()

    def type_rows(self, name: str, first_row: int, rows: list[list[object]]) -> None:
        """Type rows into the user's sheet ``name`` from ``first_row`` on, keeping everything
        else of the file (`costloop.engine.xlsx.typed_rows`); atomically, into ``path``."""
        package = parts.Package.read(self.path.read_bytes())
        _atomic_write(self.path, type_rows(package, name, first_row, rows), mode_from=self.path)
        self._forget()

    def add_user_sheet(self, sheet: OutputSheet) -> None:
        """Append a sheet that is the user's, not costloop's (an input sheet costloop lays
        out for them, such as a Disputes sheet with its first rows); atomically."""
        package = parts.Package.read(self.path.read_bytes())
        updated = write_owned_sheets(package, [sheet], mark_owned=False)
        _atomic_write(self.path, updated, mode_from=self.path)
        self._forget()


def write_owned_sheets(
    package: parts.Package, sheets: list[OutputSheet], mark_owned: bool = True
) -> parts.Package:
    """Put each output sheet into the package: replace it if costloop owns it, else append it.

    Raises `NotOwnedError` before changing anything if a user sheet has one of the names.
    ``mark_owned=False`` appends sheets as the user's own (tests use it to lay input
    sheets into a real Excel workbook the same lossless way).
    """
    workbook = parts.WorkbookPart(package)
    owned = {name.casefold() for name in workbook.owned()}
    for sheet in sheets:
        existing = workbook.sheet(sheet.name)
        if existing is not None and existing.name.casefold() not in owned:
            raise NotOwnedError(existing.name)
    missing = [s.name for s in sheets if workbook.sheet(s.name) is None]
    if missing and workbook.structure_locked:
        # Adding a sheet would break the protection the workbook's owner set.
        raise WorkbookProtectedError(
            f"the workbook's structure is protected, so costloop cannot add its "
            f"{', '.join(missing)} sheet(s); unprotect it (Review > Protect Workbook), run "
            f"again, then protect it again — nothing was changed"
        )
    before = package.reachable()
    types = parts.ContentTypes(package)
    styles = parts.Styles(package, workbook, types)
    replaced_ids: set[str] = set()
    added: list[str] = []
    rendering: list[tuple[str, concurrent.futures.Future]] = []
    # A sheet's rows are rendered and compressed on a worker thread while the next sheet's
    # values are prepared here (styles.xml and the package are only touched on this one).
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as renderer:
        for sheet in sheets:
            entry = workbook.sheet(sheet.name)
            if entry is None or entry.part is None or not entry.is_worksheet:
                if entry is not None:  # owned, but its worksheet part is gone: a damaged file
                    raise parts.PackageError(f"{sheet.name}: the sheet's part is missing")
                entry = workbook.add_sheet(
                    sheet.name, _new_sheet_part(package, workbook), owned=mark_owned
                )
                types.override(entry.part, parts.CT_WORKSHEET)
                added.append(sheet.name)
                selected = False
            else:
                replaced_ids.add(entry.sheet_id)
                # Keep the tab selected if it was: Excel's active tab must be a selected one.
                selected = _tab_selected(package, entry.part)
                # The old part's relationships (printer settings, a comment the user
                # added) belong to content that is being replaced.
                package.delete(parts.rels_part_of(entry.part))
            chunks, filter_ref = worksheet_chunks(sheet, styles, workbook.date1904, selected)
            package.set(entry.part, b"")  # the part's name is taken; its bytes come below
            # Compressed block by block as it is rendered: the XML is never held whole.
            rendering.append((entry.part, renderer.submit(parts.deflate_chunks, chunks)))
            workbook.set_filter_range(entry, filter_ref)
        for part, deflated in rendering:
            package.set_deflated(part, deflated.result())
    parts.drop_calc_chain_cells(package, workbook, types, replaced_ids)
    styles.save()
    workbook.save()
    parts.add_sheet_titles(package, added)
    # Parts only the replaced sheets used (e.g. a comments part) would now dangle.
    orphans = before - package.reachable()
    for orphan in orphans:
        package.delete(orphan)
        package.delete(parts.rels_part_of(orphan))
    types.forget(orphans)
    types.save()
    return package


_SELECTED_TAB = re.compile(rb"<(?:\w+:)?sheetView\b[^>]*\btabSelected=[\"'](?:1|true)[\"']")


def _tab_selected(package: parts.Package, part: str) -> bool:
    """Whether the sheet's tab is selected, from its ``<sheetViews>`` near the start of the
    part: a 100 MB Journal from the last run is not inflated just to look."""
    head = package.head(part, 1 << 16)
    if b"sheetData" not in head and b"</worksheet" not in head:
        head = package.get(part) or b""  # views after a long prologue: look at it all
    return _SELECTED_TAB.search(head) is not None


def _new_sheet_part(package: parts.Package, workbook: parts.WorkbookPart) -> str:
    folder = parts.posixpath.join(parts.posixpath.dirname(workbook.part), "worksheets")
    number = 1
    while package.find(f"{folder}/sheet{number}.xml") is not None:
        number += 1
    return f"{folder}/sheet{number}.xml"


def _atomic_write(destination: Path, package: parts.Package, mode_from: Path) -> None:
    """Write to a temp file beside ``destination``, fsync, then rename over it.

    Refuses (`WriteRefused`) a destination that is read-only or open in Excel or
    LibreOffice: the rename would replace it regardless.
    """
    refuse_unwritable(destination)
    destination = destination.resolve()
    temp: Path | None = None
    try:
        with tempfile.NamedTemporaryFile(
            dir=destination.parent, prefix=".~costloop-", suffix=destination.suffix, delete=False
        ) as handle:
            temp = Path(handle.name)
            package.write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        # NamedTemporaryFile is private (0600); the workbook keeps its sharing mode.
        # A new copy (--output) takes the source's, but is its owner's to change even
        # when the source is read-only (check --output is how a read-only book is checked).
        if destination.exists():
            mode = destination.stat().st_mode & 0o7777
        else:
            mode = (mode_from.stat().st_mode & 0o7777) | stat.S_IWUSR
        os.chmod(temp, mode)
        os.replace(temp, destination)
    except BaseException:
        if temp is not None:
            temp.unlink(missing_ok=True)
        raise


# -- writing cells ---------------------------------------------------------------------

# XML 1.0 forbids most C0 controls; a lone surrogate cannot be encoded; a literal
# "_x0041_" must itself be escaped or Excel would decode it. \r is escaped too,
# because XML parsers turn a raw CR into LF.
_NEEDS_ESCAPE = re.compile(
    r"[&<>\x00-\x08\x0b\x0c\x0d\x0e-\x1f\ud800-\udfff\ufffe\uffff]|_x[0-9A-Fa-f]{4}_"
)


def _escape_char(match: re.Match) -> str:
    text = match.group(0)
    if text == "&":
        return "&amp;"
    if text == "<":
        return "&lt;"
    if text == ">":
        return "&gt;"
    if len(text) > 1:  # a literal _xHHHH_: escape its underscore
        return "_x005F" + text
    code = ord(text)
    if 0xD800 <= code <= 0xDFFF or code in (0xFFFE, 0xFFFF):
        return ""  # not representable in XML at all
    return f"_x{code:04X}_"


def _inline(text: str) -> str:
    """``<is>…</is>`` for a string."""
    if len(text) > MAX_CELL_CHARS:
        text = text[: MAX_CELL_CHARS - 1] + "…"
    body = _NEEDS_ESCAPE.sub(_escape_char, text)
    space = ' xml:space="preserve"' if text[:1].isspace() or text[-1:].isspace() else ""
    return f"<is><t{space}>{body}</t></is>"


# Cached: output sheets repeat names and periods.
_inline_text = functools.lru_cache(maxsize=1 << 14)(_inline)


def _text_cell(ref: str, text: str, style: str) -> str:
    return f'<c r="{ref}"{style} t="inlineStr">{_inline_text(text)}</c>'


_EPOCH_1900 = dt.datetime(1899, 12, 30)
_EPOCH_1904 = dt.datetime(1904, 1, 1)


def excel_serial(value: dt.date | dt.datetime, date1904: bool = False) -> float | None:
    """The Excel serial number of a date/datetime, or None before the epoch."""
    when = value if isinstance(value, dt.datetime) else dt.datetime.combine(value, dt.time())
    when = when.replace(tzinfo=None)
    epoch = _EPOCH_1904 if date1904 else _EPOCH_1900
    delta = when - epoch
    serial = delta.days + delta.seconds / 86400 + delta.microseconds / 86_400_000_000
    if not date1904 and when < dt.datetime(1900, 3, 1):
        serial -= 1  # Excel counts a 29 Feb 1900 that never was
    return serial if serial >= (0 if date1904 else 1) else None


def _number(value: float) -> str:
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


class _SheetStyles:
    """Cell-format indices for one sheet, asked of styles.xml only when first used.

    A column may have a format for each row (`OutputSheet.cell_formats`); its cells
    are then rendered one by one (`_OddColumn`), each asking with its row.
    """

    def __init__(
        self,
        styles: parts.Styles,
        formats: list[str | None],
        by_row: list[Sequence[str | None] | None] | None = None,
    ):
        self.styles = styles
        self.formats = formats
        self.by_row = by_row or []
        self._memo: dict[tuple[str | None, str], str] = {}

    def has_row_formats(self, column: int) -> bool:
        return column < len(self.by_row) and self.by_row[column] is not None

    def attr(self, column: int, kind: str, row: int | None = None) -> str:
        fmt = self.formats[column] if column < len(self.formats) else None
        if row is not None and self.has_row_formats(column):
            formats = self.by_row[column]
            if row < len(formats) and formats[row] is not None:
                fmt = formats[row]
        key = (fmt, kind)
        if key not in self._memo:
            if kind == "date":
                fmt = fmt or DEFAULT_DATE_FORMAT
            elif kind == "datetime":
                fmt = fmt or DEFAULT_DATETIME_FORMAT
            elif kind == "time":
                fmt = fmt or DEFAULT_TIME_FORMAT
            index = self.styles.cell_format(fmt) if fmt else 0
            self._memo[key] = f' s="{index}"' if index else ""
        return self._memo[key]


def render_worksheet(
    sheet: OutputSheet, styles: parts.Styles, date1904: bool = False, selected: bool = False
) -> tuple[bytes, str]:
    """The worksheet part for an output sheet, and its autofilter range (``$A$1:$I$20001``)."""
    chunks, filter_range = worksheet_chunks(sheet, styles, date1904, selected)
    return b"".join(map(parts.chunk_bytes, chunks)), filter_range


def worksheet_chunks(
    sheet: OutputSheet, styles: parts.Styles, date1904: bool = False, selected: bool = False
) -> tuple[Iterator[parts.Chunk], str]:
    """`render_worksheet`'s part in chunks (`xlsx_parts.Chunk`), a block of rows each.

    Every styles.xml entry the sheet needs is made before this returns, in the order
    cell by cell writing would make them (so reruns give the same style indices);
    the rows are rendered only as the chunks are taken, so a caller can compress one
    block while the next is rendered, and a 100 MB Journal is never held whole.
    A block's rows come as a function that lays them out with Arrow's string kernels,
    which let go of the GIL: `xlsx_parts.deflate_chunks` calls it on its worker thread.
    """
    rows = sheet.rows
    by_column = _values_by_column(rows)
    width = max(len(sheet.columns), len(by_column))
    if len(rows) + 1 > MAX_ROWS or width > MAX_COLUMNS:
        raise ValueError(
            f"{sheet.name}: {len(rows):,} rows x {width} columns do not fit on an Excel sheet "
            f"({MAX_ROWS - 1:,} rows of data at most)"
        )
    width = max(width, 1)
    letters = [column_letter(j) for j in range(width)]
    sheet_styles = _SheetStyles(
        styles,
        [sheet.formats.get(c) for c in sheet.columns],
        [sheet.cell_formats.get(c) for c in sheet.columns],
    )
    lengths = [len(str(c)) + 2 for c in sheet.columns] + [0] * (width - len(sheet.columns))
    header = f' s="{styles.cell_format(None, bold=True)}"'
    cells = [_text_cell(f"{letters[j]}1", str(c), header) for j, c in enumerate(sheet.columns)]
    header_row = ('<row r="1">' + "".join(cells) + "</row>").encode("utf-8")
    columns = [
        _OddColumn(values)  # a format per row: cell by cell (short sheets: Forecast, Variance)
        if sheet_styles.has_row_formats(j)
        else _prepare_column(values, kinds, j, lengths)
        for j, (values, kinds) in enumerate(by_column)
    ]
    _style_and_render_odd_cells(columns, letters, sheet_styles, date1904, lengths, len(rows))
    last = f"{letters[width - 1]}{len(rows) + 1}"
    cols = "".join(
        f'<col min="{j + 1}" max="{j + 1}" width="{min(max(n + 2, 8), 60)}" customWidth="1"/>'
        for j, n in enumerate(lengths)
    )
    filter_ref = f"A1:{letters[max(len(sheet.columns), 1) - 1]}{len(rows) + 1}"
    tab_selected = ' tabSelected="1"' if selected else ""
    head = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<worksheet xmlns="{parts.NS_MAIN}" xmlns:r="{parts.NS_R}">'
        f'<dimension ref="A1:{last}"/>'
        f'<sheetViews><sheetView{tab_selected} workbookViewId="0">'
        '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
        '<selection pane="bottomLeft" activeCell="A2" sqref="A2"/>'
        "</sheetView></sheetViews>"
        '<sheetFormatPr defaultRowHeight="15"/>'
        f"<cols>{cols}</cols>"
        "<sheetData>"
    )
    tail = (
        "</sheetData>"
        + (f'<autoFilter ref="{filter_ref}"/>' if sheet.columns else "")
        + '<pageMargins left="0.7" right="0.7" top="0.75" bottom="0.75" header="0.3" footer="0.3"/>'
        "</worksheet>"
    )
    absolute = "$" + filter_ref.replace(":", ":$")
    absolute = re.sub(r"([A-Z]+)(\d+)", r"\1$\2", absolute)

    def chunks() -> Iterator[parts.Chunk]:
        yield head.encode("utf-8")
        yield header_row
        for start in range(0, len(rows), _BLOCK_ROWS):
            yield _render_block(columns, letters, start, min(start + _BLOCK_ROWS, len(rows)))
        yield tail.encode("utf-8")

    return chunks(), absolute


_BLOCK_ROWS = 20_000


def _values_by_column(rows) -> list[tuple[list[object], set[type]]]:
    """The rows' values column by column (a short row reads as blanks at its end), and
    the kinds of value in each column, None aside."""
    if isinstance(rows, ColumnValues):  # a result frame's rows (pipeline.outputs.FrameRows)
        return rows.by_column()
    columns = [list(column) for column in itertools.zip_longest(*rows, fillvalue=None)]
    return [(values, set(map(type, values)) - {type(None)}) for values in columns]


class _TextColumn:
    """Text all the way down: what goes in each cell's ``<is>`` element, None for a blank.

    ``wrapped`` when every text goes in as it is (no XML escaping, no edge spaces to
    keep, nothing to cut): then ``texts`` are the values themselves and the ``<is><t>``
    around them is added a block at a time.
    """

    def __init__(self, values: list[object]):
        # Output sheets repeat names, periods and memos: each text is looked at once.
        distinct = [text for text in dict.fromkeys(values) if text]
        self.width = max(map(len, distinct), default=0)
        self.wrapped = self.width <= MAX_CELL_CHARS and _plain(distinct)
        if self.wrapped:
            # An empty string is a blank cell, as when typed in Excel.
            self.texts = [text or None for text in values] if "" in values else values
        else:
            inline = {text: _inline(text) for text in distinct}
            self.texts = list(map(inline.get, values))


def _plain(texts: list[str]) -> bool:
    """True when no text needs XML escaping or ``xml:space`` (as `_inline` would give it)."""
    if any(text[0].isspace() or text[-1].isspace() for text in texts):
        return False
    # One search through them all; a line break cannot make a match that is not there.
    joined = "\n".join(texts)
    if _NEEDS_ESCAPE_CHAR.search(joined):
        return False
    return "_x" not in joined or _NEEDS_ESCAPE.search(joined) is None


# `_NEEDS_ESCAPE` less its _xHHHH_ pattern: a plain character class, several times faster.
_NEEDS_ESCAPE_CHAR = re.compile(r"[&<>\x00-\x08\x0b\x0c\x0d\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


class _NumberColumn:
    """Money (Decimal) or whole numbers: each cell's exact digits, None for a blank."""

    def __init__(self, values: list[object], finite_decimals: bool):
        if finite_decimals:
            # A Decimal's own digits, never through float.
            # str() is format(value, "f") unless it picks an exponent (1E+2): a few times
            # faster, and one search through them all says whether it did.
            self.digits = [None if value is None else str(value) for value in values]
            if "E" in "".join(filter(None, self.digits)):
                self.digits = [None if value is None else format(value, "f") for value in values]
        else:
            self.digits = list(map(_digits, values))
        self.first = next((i for i, text in enumerate(self.digits) if text is not None), None)
        longest = max(map(len, filter(None, self.digits)), default=0)
        # Thousands separators, breathing room.
        self.width = longest + longest // 3 + 1 if longest else 0
        self.style = ""


def _digits(value: Decimal | int | None) -> str | None:
    """A number's exact digits (a Decimal's own, never through float); None for a blank."""
    if value is None:
        return None
    if type(value) is Decimal:
        # NaN is how pandas spells "missing": a blank cell.
        return None if value.is_nan() else format(value, "f")
    return str(value)


class _OddColumn:
    """Any other mix of values: each cell rendered on its own (`_cell_xml`), block by block."""

    def __init__(self, values: list[object]):
        self.values = values
        self.blocks: list[list[str]] = []


def _prepare_column(values: list[object], kinds: set[type], column: int, lengths: list[int]):
    if kinds <= {str}:
        prepared = _TextColumn(values)
    elif kinds == {Decimal} and all(map(Decimal.is_finite, filter(None, values))):
        prepared = _NumberColumn(values, finite_decimals=True)  # money: checked in C
    elif kinds <= {Decimal, int} and all(
        value.is_finite() or value.is_nan() for value in values if type(value) is Decimal
    ):
        prepared = _NumberColumn(values, finite_decimals=False)  # a NaN is a blank
    else:
        return _OddColumn(values)
    lengths[column] = max(lengths[column], prepared.width)
    return prepared


def _style_and_render_odd_cells(
    columns: list, letters: list[str], styles: _SheetStyles, date1904: bool, lengths, count: int
) -> None:
    """Ask styles.xml for each column's formats, and render the odd columns' cells.

    Block by block and column by column, as writing cell by cell would: a new cell
    format gets its index in styles.xml when first asked for, so the order of asking
    decides the ``s="…"`` indices, and a rerun must give the same file.
    """
    for start in range(0, count, _BLOCK_ROWS):
        stop = min(start + _BLOCK_ROWS, count)
        for j, column in enumerate(columns):
            if isinstance(column, _NumberColumn) and column.first is not None:
                if start <= column.first < stop:
                    column.style = styles.attr(j, "num")
            elif isinstance(column, _OddColumn):
                cells, size = [], lengths[j]
                for row, value in enumerate(column.values[start:stop], start=start):
                    ref = f"{letters[j]}{row + 2}"
                    cell, needed = _cell_xml(ref, value, j, styles, date1904, row)
                    cells.append(cell)
                    size = max(size, needed)
                lengths[j] = size
                column.blocks.append(cells)


def _render_block(columns: list, letters: list[str], start: int, stop: int) -> parts.Chunk:
    """The ``<row>`` elements of rows ``start``..``stop`` (0-based, below the header).

    Each column is a run of cells made of the same pieces (``<c r="B``, the row
    number, what comes before the value, the value, what comes after), or, for an odd
    column, its cells already rendered.
    """
    cells: list = []
    for j, column in enumerate(columns):
        if isinstance(column, _OddColumn):
            cells.append(column.blocks[start // _BLOCK_ROWS])
        elif isinstance(column, _TextColumn):
            if column.wrapped:
                middle, end = '" t="inlineStr"><is><t>', "</t></is></c>"
            else:
                middle, end = '" t="inlineStr">', "</c>"
            cells.append((f'<c r="{letters[j]}', middle, column.texts[start:stop], end))
        else:
            middle, end = f'"{column.style}><v>', "</v></c>"
            cells.append((f'<c r="{letters[j]}', middle, column.digits[start:stop], end))
    return _rows_in_arrow(cells, start, stop)


def _rows_in_arrow(cells: list, start: int, stop: int) -> Callable[[], pa.Buffer]:
    """Here, holding the GIL, the block's values become Arrow arrays; the function
    returned lays the rows out with Arrow's string kernels (no Python step per cell,
    and no GIL), so it can run on another thread while the next block is made.
    """
    numbers = pa.array(np.arange(start + 2, stop + 2, dtype=np.int64)).cast(pa.string())
    pieces: list = ['<row r="', numbers, '">']
    for column in cells:
        if not isinstance(column, tuple):
            pieces.append(pa.array(column, pa.string()))  # an odd column's cells
            continue
        ref, middle, values, end = column
        values = pa.array(values, pa.string())
        cell = [ref, numbers, middle, values, end]
        if values.null_count:
            pieces.append(_Cells(cell))  # blanks: each cell whole or nothing
        else:
            pieces += cell
    pieces.append("</row>")
    return functools.partial(_lay_rows, _merge_text(pieces))


class _Cells(list):
    """Pieces of a column's cells, laid out as cells first: null for a blank (no cell)."""


def _lay_rows(pieces: list) -> pa.Buffer:
    """The rows' XML: the pieces laid end to end, row by row, a blank cell as nothing."""
    laid = [
        pc.binary_join_element_wise(*piece, "") if isinstance(piece, _Cells) else piece
        for piece in pieces
    ]
    rows = pc.binary_join_element_wise(*laid, "", null_handling="replace", null_replacement="")
    _, offsets, text = rows.buffers()
    bounds = np.frombuffer(offsets, dtype=np.int32)[rows.offset : rows.offset + len(rows) + 1]
    first, end = int(bounds[0]), int(bounds[-1])
    return text.slice(first, end - first)


def _merge_text(pieces: list) -> list:
    """Neighbouring constant pieces as one (``</c>`` + ``<c r="B``): fewer for Arrow to lay."""
    merged: list = []
    for piece in pieces:
        if isinstance(piece, str) and merged and isinstance(merged[-1], str):
            merged[-1] += piece
        else:
            merged.append(piece)
    return merged


def _cell_xml(
    ref: str,
    value: object,
    column: int,
    styles: _SheetStyles,
    date1904: bool,
    row: int | None = None,
) -> tuple[str, int]:
    """One cell's XML and the width it needs ("" and 0 for a blank cell); ``row`` (0 =
    the first below the header) picks the cell's format where its column has one per row."""
    if value is None:
        return "", 0
    kind = type(value)
    if kind is str:
        if not value:
            return "", 0  # an empty string is a blank cell, as when typed in Excel
        return _text_cell(ref, value, ""), len(value)
    if kind is Decimal or isinstance(value, Decimal):
        if not value.is_finite():
            return _nan_cell(ref, value.is_nan()), 0
        text = format(value, "f")
        # Thousands separators, breathing room.
        return f'<c r="{ref}"{styles.attr(column, "num", row)}><v>{text}</v></c>', (
            len(text) + len(text) // 3 + 1
        )
    if kind is bool or isinstance(value, bool):
        return f'<c r="{ref}" t="b"><v>{int(value)}</v></c>', 5
    if isinstance(value, numbers.Integral):
        text = str(int(value))
        return f'<c r="{ref}"{styles.attr(column, "num", row)}><v>{text}</v></c>', (
            len(text) + len(text) // 3 + 1
        )
    if isinstance(value, numbers.Real):
        if not math.isfinite(value):
            return _nan_cell(ref, math.isnan(value)), 0
        text = _number(value)
        return f'<c r="{ref}"{styles.attr(column, "num", row)}><v>{text}</v></c>', (
            min(len(text), 15) + 3
        )
    if isinstance(value, dt.date | dt.time):
        return _date_cell(ref, value, column, styles, date1904, row)
    text = str(value)
    return _text_cell(ref, text, ""), len(text)


def _nan_cell(ref: str, is_nan: bool) -> str:
    # NaN is how pandas spells "missing": leave the cell empty. Infinity is a real error.
    return "" if is_nan else f'<c r="{ref}" t="e"><v>#NUM!</v></c>'


def _date_cell(
    ref: str,
    value: dt.date | dt.time,
    column: int,
    styles: _SheetStyles,
    date1904: bool,
    row: int | None = None,
) -> tuple[str, int]:
    if isinstance(value, dt.time):
        serial: float | None = (
            value.hour * 3600 + value.minute * 60 + value.second + value.microsecond / 1e6
        ) / 86400
        kind = "time"
    else:
        serial = excel_serial(value, date1904)
        kind = "datetime" if isinstance(value, dt.datetime) else "date"
    if serial is None:  # before Excel's calendar starts: keep it readable as text
        return _text_cell(ref, value.isoformat(), ""), len(value.isoformat())
    return f'<c r="{ref}"{styles.attr(column, kind, row)}><v>{_number(serial)}</v></c>', 19
