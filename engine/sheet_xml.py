"""What calamine does not report about a worksheet, read from its XML part.

calamine gives a sheet's values only. Two more things matter to a bill:

- **Hidden rows** (``<row r="12" hidden="1">``): hidden by hand, by a filter
  or by a collapsed outline. The reader counts them, as Excel's SUM does, and
  warns with their cells, so a hidden row never moves money unseen.
- **Formulas with no calculated value** (``<c><f>B2*2</f></c>``, or openpyxl's
  ``<c><f>B2*2</f><v></v></c>``): written by a script and never opened in a
  spreadsheet, so the file holds no number. calamine reads them as blank; the
  reader must say "formula with no calculated value" instead.

Both scans look at the raw bytes first and parse only a part that can hold
what they look for, so a 100,000-row Usage sheet without either costs one
byte search.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from lxml import etree

_ROW_TAG = re.compile(rb"<(?:\w+:)?row\b([^>]*)>")
_ROW_NUMBER = re.compile(rb"""\br\s*=\s*["'](\d+)["']""")
_HIDDEN = re.compile(rb"""\bhidden\s*=\s*["'](?:1|true)["']""")
# A formula's end followed, with no value in between (or only an empty one), by
# the cell's end. Also true of a formula whose result is the empty string
# (t="str" with <v></v>), which the parse below tells apart.
_FORMULA_WITHOUT_VALUE = re.compile(
    rb"(?:</(?:\w+:)?f>|<(?:\w+:)?f\b[^>]*/>)\s*"
    rb"(?:<(?:\w+:)?v\s*/>|<(?:\w+:)?v>\s*</(?:\w+:)?v>)?\s*</(?:\w+:)?c>"
)
_CELL_REF = re.compile(r"([A-Z]+)(\d+)")
_TEXT_TYPES = {"str", "s", "inlineStr"}
"""Cell types whose empty value is a real result: the formula returned ""."""


@dataclass(frozen=True)
class Uncalculated:
    """The cell value of a formula saved without a calculated value.

    Host-neutral: any workbook implementation may return it from
    ``read_sheet``; a live Excel workbook never does (Excel always calculates).
    """

    formula: str

    def __str__(self) -> str:
        return f"={self.formula}"


def hidden_rows(xml: bytes) -> set[int]:
    """Excel row numbers (1-based) of the rows a worksheet part marks hidden."""
    if b"hidden" not in xml:
        return set()
    found: set[int] = set()
    row = 0
    for match in _ROW_TAG.finditer(xml):
        attributes = match.group(1)
        number = _ROW_NUMBER.search(attributes)
        # r is optional in the schema: a row without it follows the previous one.
        row = int(number.group(1)) if number else row + 1
        if _HIDDEN.search(attributes):
            found.add(row)
    return found


def uncalculated_cells(xml: bytes) -> list[tuple[int, int, str]]:
    """(row, column, formula), 0-based, of every formula cell saved without a value."""
    # A sheet without any formula (the usual Usage sheet) is told by a byte search, far
    # cheaper than the pattern below over tens of megabytes.
    if b"<f" not in xml and b":f" not in xml:
        return []
    if not _FORMULA_WITHOUT_VALUE.search(xml):
        return []
    found = []
    for row, col, cell, ns in _cells(xml):
        formula = cell.find(f"{{{ns}}}f")
        if formula is None:
            continue
        value = cell.find(f"{{{ns}}}v")
        if value is not None and (value.text or cell.get("t") in _TEXT_TYPES):
            continue
        found.append((row, col, formula.text or ""))
    return found


def error_cells(xml: bytes) -> list[tuple[int, int, str]]:
    """(row, column, code), 0-based, of every error cell (``t="e"``) in a worksheet part."""
    if b't="e"' not in xml and b"t='e'" not in xml:
        return []
    found = []
    for row, col, cell, ns in _cells(xml):
        if cell.get("t") == "e":
            value = cell.find(f"{{{ns}}}v")
            code = (value.text or "").strip() if value is not None else ""
            found.append((row, col, code if code else "#N/A"))
    return found


def _cells(xml: bytes) -> Iterator[tuple[int, int, etree._Element, str]]:
    """(row, column, element, namespace) of every ``<c>`` of a worksheet part, 0-based."""
    root = etree.fromstring(xml, etree.XMLParser(huge_tree=True, resolve_entities=False))
    ns = etree.QName(root).namespace
    sheet_data = root.find(f"{{{ns}}}sheetData")
    row = -1
    for row_node in sheet_data if sheet_data is not None else []:
        # r is optional in the schema: a row or cell without it follows the previous one.
        row = int(row_node.get("r")) - 1 if row_node.get("r") else row + 1
        col = -1
        for cell in row_node.iter(f"{{{ns}}}c"):
            ref = _CELL_REF.match(cell.get("r") or "")
            col = _column_index(ref.group(1)) if ref else col + 1
            yield row, col, cell, ns


def _column_index(letters: str) -> int:
    index = 0
    for ch in letters:
        index = index * 26 + ord(ch) - 64
    return index - 1
