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

from costloop.engine.workbook.cells import column_index

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
            col = column_index(ref.group(1)) if ref else col + 1
            yield row, col, cell, ns


# --- a quick survey of a big worksheet part, streamed ------------------------------------

_SURVEY_CHUNK = 1 << 22
"""Inflated bytes looked at at a time: a 270 MB Usage part is never held whole."""
_MARKERS = {
    # An error cell. Attributes in single quotes are legal XML but rare: that form is
    # searched only in a chunk holding a single quote at all (a one-byte search).
    "errors": ((b't="e"',), (b"t='e'",)),
    # Every sheet with a formula has an ``f`` element ending in "f>" (``</f>``,
    # ``</x:f>``, ``<f>``); a shared formula's ``<f .../>`` only beside one that does.
    "formulas": ((b"f>",), ()),
    "hidden": ((b"hidden",), ()),
}
_OVERLAP = 8
"""Bytes kept from the end of one chunk for a marker cut in two by the next."""


@dataclass
class Survey:
    """What a worksheet part may hold that a value-only reader does not report.

    Each flag is True when the part contains the bytes such content needs, so
    False is certain and True means "look closer" (with the functions above).
    """

    errors: bool = False
    formulas: bool = False
    hidden: bool = False
    first_row: etree._Element | None = None
    """The part's first ``<row>`` element, parsed (its namespace kept), or None."""


def survey(stream) -> Survey:
    """Read a worksheet part from a binary stream once, in chunks, and say what it holds."""
    found = Survey()
    parser = etree.XMLPullParser(events=("end",), huge_tree=True, resolve_entities=False)
    tail = b""
    while chunk := stream.read(_SURVEY_CHUNK):
        if found.first_row is None:
            found.first_row = _first_row(parser, chunk)
        window = tail + chunk
        quoted = b"'" in window
        for flag, (markers, single_quoted) in _MARKERS.items():
            if getattr(found, flag):
                continue
            if any(m in window for m in markers) or (
                quoted and any(m in window for m in single_quoted)
            ):
                setattr(found, flag, True)
        tail = window[-_OVERLAP:]
    return found


def _first_row(parser: etree.XMLPullParser, chunk: bytes) -> etree._Element | None:
    try:
        parser.feed(chunk)
        for _, element in parser.read_events():
            if etree.QName(element).localname == "row":
                return element
    except etree.XMLSyntaxError:
        return None  # a damaged part: the full read reports it
    return None


def header_texts(row: etree._Element, shared_strings) -> list[str | None] | None:
    """The text of each cell of a sheet's first row (row 1, from A1), None for a blank.

    None when the row is not plain text from A1 on (a number, a date, a boolean, an
    error, a cell before it that is not row 1): the caller then reads the sheet the
    general way. ``shared_strings(index)`` gives the text of a shared string.
    """
    ns = etree.QName(row).namespace
    if row.get("r", "1") != "1":
        return None
    texts: list[str | None] = []
    for cell in row.iter(f"{{{ns}}}c"):
        ref = _CELL_REF.match(cell.get("r") or "")
        col = column_index(ref.group(1)) if ref else len(texts)
        if (ref and ref.group(2) != "1") or col < len(texts):
            return None
        texts.extend([None] * (col - len(texts)))
        kind = cell.get("t", "n")
        value = cell.find(f"{{{ns}}}v")
        if kind == "inlineStr":
            text = _string_item(cell.find(f"{{{ns}}}is"), ns)
        elif value is None:
            text = None  # a styled cell with nothing in it
        elif kind == "s":
            text = shared_strings(int(value.text or 0))
        elif kind == "str":
            text = value.text or ""
        else:
            return None  # a number, boolean, date or error in the header row
        if text is not None and "_x" in text:
            return None  # an OOXML escape (_x000D_): leave decoding to the reader
        texts.append(text or None)
    if not texts or texts[0] is None:
        return None  # the used range may start right of column A
    return texts


def _string_item(item: etree._Element | None, ns: str) -> str | None:
    """The text of an ``<si>`` or ``<is>``: its ``<t>`` and rich-text runs, not phonetics."""
    if item is None:
        return None
    plain = item.find(f"{{{ns}}}t")
    if plain is not None:
        return plain.text or ""
    return "".join(t.text or "" for t in item.iterfind(f"{{{ns}}}r/{{{ns}}}t"))


class SharedStrings:
    """A workbook's shared strings, parsed only as far as the highest index asked for."""

    def __init__(self, stream):
        self._stream = stream
        self._parser = etree.XMLPullParser(events=("end",), huge_tree=True, resolve_entities=False)
        self._items: list[str | None] = []

    def __call__(self, index: int) -> str | None:
        while len(self._items) <= index and self._stream is not None:
            chunk = self._stream.read(1 << 16)
            if not chunk:
                self._stream = None
                break
            self._parser.feed(chunk)
            for _, element in self._parser.read_events():
                if etree.QName(element).localname == "si":
                    ns = etree.QName(element).namespace
                    self._items.append(_string_item(element, ns))
                    element.clear()
        if index >= len(self._items):
            raise IndexError(f"shared string {index} is not in the workbook")
        return self._items[index]
