"""Type rows of values into one of the user's own sheets, as a user would in Excel.

The output sheets are costloop's and are replaced whole (`file_workbook`). An input
sheet is the user's: its styles, column widths, data validation (a Status drop-down),
conditional formats, comments and any column of their own must survive. So rows are
typed into the sheet's XML cell by cell and nothing else of the part is touched:

- a cell written into keeps its own style; a new cell takes the style of the cell
  above it (when that is a data row, not the header), else its column's style — as
  Excel carries a row's formatting down when a row is typed below it;
- a date gets a date number format (the one format added to ``styles.xml``, once);
- a cell that already holds a value or a formula is never overwritten: the write is
  refused before anything changes;
- the sheet's ``<dimension>`` and an Excel table (ListObject) that ends on the row
  above grow to take the new rows, as Excel's own table does when you type below it.

Only the sheet's part (and, for the first date, ``styles.xml``) changes; every other
part keeps its bytes. Knows no engine types: values are str, int, Decimal, float,
bool or date.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from decimal import Decimal

from lxml import etree

from costloop.engine.workbook.cells import column_index, column_letter
from costloop.engine.xlsx import parts
from costloop.errors import WorkbookError

DATE_FORMAT = "yyyy-mm-dd"
_REF = re.compile(r"^([A-Za-z]{1,3})(\d+)$")
_RANGE = re.compile(r"^\$?([A-Za-z]{1,3})\$?(\d+)(?::\$?([A-Za-z]{1,3})\$?(\d+))?$")
_NEEDS_ESCAPE = re.compile(r"[\x00-\x08\x0b\x0c\x0d\x0e-\x1f]|_x[0-9A-Fa-f]{4}_")


class CellTaken(WorkbookError):
    """A cell the rows would be typed into already holds something of the user's."""


def _escape(text: str) -> str:
    # OOXML's escape for characters XML 1.0 cannot hold (and for a literal _xHHHH_).
    def one(match: re.Match) -> str:
        found = match.group(0)
        return "_x005F" + found if len(found) > 1 else f"_x{ord(found):04X}_"

    return _NEEDS_ESCAPE.sub(one, text)


def _serial(value: dt.date, date1904: bool) -> str:
    epoch = dt.date(1904, 1, 1) if date1904 else dt.date(1899, 12, 30)
    return str((value - epoch).days)


def _number(value: int | float | Decimal) -> str:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value.to_integral_value() else str(value)
    return repr(value) if isinstance(value, float) else str(value)


def _holds_something(cell: etree._Element, ns: str) -> bool:
    if cell.find(f"{{{ns}}}f") is not None:
        return True
    value = cell.find(f"{{{ns}}}v")
    if value is not None and (value.text or "") != "":
        return True
    inline = cell.find(f"{{{ns}}}is")
    return inline is not None and "".join(inline.itertext()) != ""


class _Sheet:
    """The worksheet's rows and cells by position, and where new ones go."""

    def __init__(self, root: etree._Element):
        self.root = root
        self.ns = etree.QName(root).namespace or parts.NS_MAIN
        self.data = root.find(self.q("sheetData"))
        if self.data is None:
            raise parts.PackageError("a worksheet without sheetData")
        self.rows: dict[int, etree._Element] = {}
        number = 0
        for row in self.data.findall(self.q("row")):
            number = int(row.get("r") or number + 1)
            row.set("r", str(number))
            self.rows[number] = row
        self.column_styles: list[tuple[int, int, str]] = []
        cols = root.find(self.q("cols"))
        for col in cols.findall(self.q("col")) if cols is not None else []:
            if col.get("style"):
                span = (int(col.get("min")), int(col.get("max")), col.get("style"))
                self.column_styles.append(span)

    def q(self, local: str) -> str:
        return f"{{{self.ns}}}{local}"

    def row(self, number: int) -> etree._Element:
        found = self.rows.get(number)
        if found is not None:
            return found
        new = etree.Element(self.q("row"))
        new.set("r", str(number))
        later = [n for n in self.rows if n > number]
        if later:
            self.rows[min(later)].addprevious(new)
        else:
            self.data.append(new)
        self.rows[number] = new
        return new

    def cell(self, number: int, column: int) -> etree._Element | None:
        row = self.rows.get(number)
        if row is None:
            return None
        ref = f"{column_letter(column)}{number}"
        return next((c for c in row.findall(self.q("c")) if c.get("r") == ref), None)

    def new_cell(self, row: etree._Element, number: int, column: int) -> etree._Element:
        cell = etree.Element(self.q("c"))
        cell.set("r", f"{column_letter(column)}{number}")
        for other in row.findall(self.q("c")):
            match = _REF.match(other.get("r") or "")
            if match and column_index(match.group(1)) > column:
                other.addprevious(cell)
                return cell
        row.append(cell)
        return cell

    def style_for(self, number: int, column: int, data_from: int) -> str | None:
        if number - 1 >= data_from:
            above = self.cell(number - 1, column)
            if above is not None and above.get("s"):
                return above.get("s")
        for low, high, style in self.column_styles:
            if low <= column + 1 <= high:
                return style
        return None


def _set_value(cell: etree._Element, ns: str, value: object, date1904: bool) -> None:
    for child in list(cell):
        cell.remove(child)
    cell.attrib.pop("t", None)
    if isinstance(value, bool):
        cell.set("t", "b")
        etree.SubElement(cell, f"{{{ns}}}v").text = "1" if value else "0"
    elif isinstance(value, dt.date):
        day = value.date() if isinstance(value, dt.datetime) else value
        etree.SubElement(cell, f"{{{ns}}}v").text = _serial(day, date1904)
    elif isinstance(value, int | float | Decimal):
        etree.SubElement(cell, f"{{{ns}}}v").text = _number(value)
    else:
        text = str(value)
        cell.set("t", "inlineStr")
        inline = etree.SubElement(cell, f"{{{ns}}}is")
        t = etree.SubElement(inline, f"{{{ns}}}t")
        t.text = _escape(text)
        if text[:1].isspace() or text[-1:].isspace():
            t.set("{http://www.w3.org/XML/1998/namespace}space", "preserve")


def _grow(ref: str, last_row: int, last_column: int) -> str:
    match = _RANGE.match(ref or "")
    if not match:
        return f"A1:{column_letter(last_column)}{last_row}"
    first_col, first_row = match.group(1), int(match.group(2))
    end_col = match.group(3) or first_col
    end_row = int(match.group(4) or first_row)
    end_col_index = max(column_index(end_col), last_column)
    return f"{first_col}{first_row}:{column_letter(end_col_index)}{max(end_row, last_row)}"


def _grow_tables(package: parts.Package, sheet_part: str, first_row: int, last_row: int) -> None:
    """An Excel table whose last row is the one above the new rows takes them in."""
    for _, rtype, target, _ in package.rels(sheet_part):
        if not rtype.endswith("/table"):
            continue
        part = package.find(target)
        if part is None:
            continue
        root = parts.parse_xml(package.get(part))
        match = _RANGE.match(root.get("ref") or "")
        if not match or not match.group(3) or int(match.group(4)) != first_row - 1:
            continue
        ns = etree.QName(root).namespace
        root.set("ref", f"{match.group(1)}{match.group(2)}:{match.group(3)}{last_row}")
        autofilter = root.find(f"{{{ns}}}autoFilter")
        if autofilter is not None:
            autofilter.set("ref", root.get("ref"))
        package.set(part, parts.serialize_xml(root))


def type_rows(
    package: parts.Package,
    sheet_name: str,
    first_row: int,
    rows: Sequence[Sequence[object]],
    data_from: int = 2,
) -> parts.Package:
    """Type ``rows`` into ``sheet_name`` from row ``first_row`` (1-based), column A on;
    None or "" leaves a cell as it is. Rows from ``data_from`` on are data (their styles
    carry down). Raises `CellTaken` — the package unchanged — if a cell is not empty."""
    workbook = parts.WorkbookPart(package)
    entry = workbook.sheet(sheet_name)
    if entry is None or entry.part is None or not entry.is_worksheet:
        raise KeyError(f"there is no worksheet named {sheet_name!r}")
    sheet = _Sheet(parts.parse_xml(package.get(entry.part)))
    ns = sheet.ns
    # Every target cell is checked before any is written: all or nothing.
    for offset, values in enumerate(rows):
        number = first_row + offset
        for column, value in enumerate(values):
            if value is None or value == "":
                continue
            found = sheet.cell(number, column)
            if found is not None and _holds_something(found, ns):
                ref = f"{column_letter(column)}{number}"
                raise CellTaken(
                    f"{entry.name}!{ref} already holds something; nothing was written — "
                    "clear the cell or move what is there, then try again"
                )
    types = parts.ContentTypes(package)
    styles = parts.Styles(package, workbook, types)
    last_column = 0
    for offset, values in enumerate(rows):
        number = first_row + offset
        row = sheet.row(number)
        row.attrib.pop("spans", None)  # an optional hint; stale once cells are added
        for column, value in enumerate(values):
            if value is None or value == "":
                continue
            last_column = max(last_column, column)
            cell = sheet.cell(number, column)
            if cell is None:
                cell = sheet.new_cell(row, number, column)
                style = sheet.style_for(number, column, data_from)
                if style is not None:
                    cell.set("s", style)
            if isinstance(value, dt.date):
                cell.set("s", str(styles.cell_format(DATE_FORMAT)))
            _set_value(cell, ns, value, workbook.date1904)
    last_row = first_row + len(rows) - 1
    dimension = sheet.root.find(sheet.q("dimension"))
    if dimension is not None and rows:
        dimension.set("ref", _grow(dimension.get("ref", ""), last_row, last_column))
    package.set(entry.part, parts.serialize_xml(sheet.root))
    if rows:
        _grow_tables(package, entry.part, first_row, last_row)
    styles.save()
    types.save()
    return package
