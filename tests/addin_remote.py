"""Real `xlwings.Book` objects on a machine without Excel, for the add-in's tests.

Licence. xlwings' remote engine, ``xw.Book(json=...)``, is part of xlwings PRO
(PolyForm Noncommercial 1.0.0; commercial use needs a paid key). These tests
use it under ``XLWINGS_LICENSE_KEY=noncommercial``, set here before xlwings is
imported, purely to test costloop; the add-in itself uses only xlwings' BSD
part (desktop Excel through COM or AppleScript). Without the remote engine
the tests skip and say why.

How the remote engine works, and what this module adds. A remote Book is
built from the JSON payload Excel's client sends (worksheets with their
values, defined names, the active sheet); reads come from that snapshot. Most
writes do not change the snapshot: they are queued as *actions* (``addSheet``,
``setValues``, ``namesAdd``, ...) in ``book.json()`` for the client to carry
out in Excel. Structure changes (sheets added, renamed, hidden, deleted, names
added) are also mirrored in the snapshot; cell values are not.

With no Excel here, `carry_out` plays Excel's part: it applies the queued
actions to the payload the way xlwings' own VBA client (``Remote.bas`` in the
xlwings wheel) applies them in Excel, and `Excel.open` then opens a fresh remote
Book from the result, as the next button click would see the workbook. It is
strict where Excel would silently change data: a text written without Excel's
leading apostrophe that Excel would read as a number, date or formula is an
error here, and so is any action it does not know.

`payload_of` makes the first payload from any costloop workbook (the demo file,
an in-memory one), in the shape of xlwings' Office.js client: dates as ISO
text, error values as their text, empty cells as ``""``.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import re
from typing import Any

import pytest

from costloop.engine.workbook.cells import ERROR_CODES, ExcelError

os.environ.setdefault("XLWINGS_LICENSE_KEY", "noncommercial")

xw = pytest.importorskip("xlwings", reason="xlwings is not installed (pip install -e '.[test]')")


def _remote_engine_ready() -> str | None:
    """None when ``xw.Book(json=...)`` works, else the reason it does not."""
    if "remote" in [e.name for e in xw.engines]:
        return None
    try:
        # xlwings was imported before the key was set: register the engine now.
        from xlwings.main import Engine
        from xlwings.pro import _xlremote
    except Exception as exc:  # LicenseError, ImportError
        return f"xlwings' remote engine (PRO, noncommercial key) is unavailable: {exc}"
    xw.engines.add(Engine(impl=_xlremote.engine))
    return None


REMOTE_UNAVAILABLE = _remote_engine_ready()
needs_remote = pytest.mark.skipif(
    REMOTE_UNAVAILABLE is not None, reason=REMOTE_UNAVAILABLE or "remote engine ready"
)


def _sheet_payload(name: str, values: list[list[Any]], visible: bool = True) -> dict:
    return {
        "name": name,
        "visibility": "Visible" if visible else "Hidden",
        "values": values or [[]],
        "pictures": [],
        "shapes": [],
        "charts": [],
        "notes": [],
        "tables": [],
        "print_area": None,
    }


def _encode(value: Any) -> Any:
    """A cell as xlwings' Office.js client sends it."""
    if value is None:
        return ""
    if isinstance(value, ExcelError):
        return value.code
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None).isoformat(timespec="seconds") + ".000Z"
    if isinstance(value, dt.date):
        return value.isoformat() + "T00:00:00.000Z"
    if isinstance(value, dt.time):
        return "1899-12-30T" + value.isoformat(timespec="seconds") + ".000Z"
    if isinstance(value, bool | int | float | str):
        return value
    return ""  # a formula saved without a value: Excel would calculate it; no value here


def payload_of(workbook, name: str = "Book1.xlsx") -> dict:
    """The JSON payload of a costloop `Workbook` (worksheets only: the client sends no
    chartsheets), with a ``costloop_owned`` name on each sheet the workbook owns."""
    sheets, names = [], []
    owned = {n.casefold() for n in workbook.owned_sheets()}
    for sheet_name in workbook.sheet_names():
        grid = workbook.read_sheet(sheet_name)
        if not grid and _is_chartsheet(workbook, sheet_name):
            continue
        values = [[_encode(v) for v in row] for row in grid]
        if sheet_name.casefold() in owned:
            names.append(_name_entry("costloop_owned", '="v1"', sheet_name, len(sheets)))
        sheets.append(_sheet_payload(sheet_name, values))
    payload = {
        "client": "Office.js",
        "version": xw.__version__,
        "book": {"name": name, "active_sheet_index": 0, "selection": "A1"},
        "names": names,
        "sheets": sheets,
    }
    return json.loads(json.dumps(payload))  # numbers exactly as a JSON client delivers them


def _is_chartsheet(workbook, name: str) -> bool:
    path = getattr(workbook, "path", None)
    if path is None:
        return workbook._find(name).grid is None
    entry = workbook._load()[1].sheet(name)
    return entry is not None and not entry.is_worksheet


def _name_entry(name: str, refers_to: str, sheet: str, index: int) -> dict:
    return {
        "name": name,
        "refers_to": refers_to,
        "sheet_index": None,
        "address": None,
        "book_scope": False,
        "scope_sheet_name": sheet,
        "scope_sheet_index": index,
    }


# -- Excel's part: carrying out the queued actions ---------------------------------------


class Excel:
    """What the workbook in Excel holds, as the client would report it next time."""

    def __init__(self, payload: dict):
        self.payload = copy.deepcopy(payload)
        self.alerts: list[list[str]] = []
        self.saved = 0
        self.formats: dict[tuple[str, int, int], str] = {}
        """(sheet, row, column) -> number format, 0-based, of cells given one."""
        self.bold: set[tuple[str, int, int]] = set()

    def open(self):
        """A real remote `xlwings.Book` over what Excel holds now (as a button click sees it)."""
        return xw.Book(json=copy.deepcopy(self.payload))

    def carry_out(self, book) -> Excel:
        """Apply the actions ``book`` queued, in order, as Excel would."""
        for action in book.json()["actions"]:
            handler = getattr(self, "_" + action["func"], None)
            if handler is None:
                raise AssertionError(f"the add-in asked Excel for {action['func']!r}, unknown here")
            handler(action)
        book.json()["actions"] = []  # carried out: a second call must not repeat them
        return self

    @property
    def sheets(self) -> list[dict]:
        return self.payload["sheets"]

    def sheet_names(self) -> list[str]:
        return [s["name"] for s in self.sheets]

    def values(self, name: str) -> list[list[Any]]:
        return next(s for s in self.sheets if s["name"] == name)["values"]

    # Each handler does what the same-named Sub in xlwings' Remote.bas does in Excel.

    def _sheet(self, action: dict) -> dict:
        return self.sheets[action["sheet_position"]]

    def _addSheet(self, action: dict) -> None:
        index, name = action["args"]
        self._shift_names(index, +1)
        self.sheets.insert(index, _sheet_payload(name, [[]]))
        self.payload["book"]["active_sheet_index"] = index  # Excel activates a new sheet

    def _setSheetVisibility(self, action: dict) -> None:
        self._sheet(action)["visibility"] = action["args"][0]

    def _setSheetName(self, action: dict) -> None:
        sheet = self._sheet(action)
        new = action["args"][0]
        if any(s["name"].casefold() == new.casefold() for s in self.sheets if s is not sheet):
            raise AssertionError(f"Excel refuses a second sheet named {new!r}")
        for name in self.payload["names"]:
            if name["scope_sheet_index"] == action["sheet_position"]:
                name["scope_sheet_name"] = new
        sheet["name"] = new

    def _sheetDelete(self, action: dict) -> None:
        index = action["sheet_position"]
        visible = [s for s in self.sheets if s["visibility"] == "Visible"]
        if visible == [self.sheets[index]]:
            raise AssertionError("Excel cannot delete the only visible sheet")
        del self.sheets[index]
        # Sheet-scoped names go with their sheet.
        self.payload["names"] = [
            n for n in self.payload["names"] if n["scope_sheet_index"] != index
        ]
        self._shift_names(index + 1, -1)
        book = self.payload["book"]
        if book["active_sheet_index"] >= len(self.sheets):
            book["active_sheet_index"] = len(self.sheets) - 1

    def _shift_names(self, from_index: int, by: int) -> None:
        for name in self.payload["names"]:
            index = name["scope_sheet_index"]
            if index is not None and index >= from_index:
                name["scope_sheet_index"] = index + by

    def _setValues(self, action: dict) -> None:
        sheet = self._sheet(action)
        for i, row in enumerate(action["values"]):
            for j, value in enumerate(row):
                self._put(sheet, action["start_row"] + i, action["start_column"] + j, value)

    def _put(self, sheet: dict, row: int, col: int, value: Any, typed: bool = True) -> None:
        """Set one cell: ``typed`` as the client sets it (parsed), else as a held value."""
        grid = sheet["values"]
        if grid == [[]]:
            grid.clear()
        while len(grid) <= row:
            grid.append([])
        width = max(len(grid[0]) if grid else 0, col + 1)
        for line in grid:
            line.extend([""] * (width - len(line)))
        grid[row][col] = _as_typed(value) if typed else value

    def _sheetClear(self, action: dict) -> None:
        sheet = self._sheet(action)
        sheet["values"] = [[]]
        for key in [k for k in self.formats if k[0] == sheet["name"]]:
            del self.formats[key]
        self.bold = {k for k in self.bold if k[0] != sheet["name"]}

    def _copyRange(self, action: dict) -> None:
        source = self._sheet(action)
        target = self.sheets[action["args"][0]]
        top, left = _a1(action["args"][1])
        values = source["values"]
        for i in range(action["row_count"]):
            for j in range(action["column_count"]):
                r, c = action["start_row"] + i, action["start_column"] + j
                cell = values[r][c] if r < len(values) and c < len(values[r]) else ""
                self._put(target, top + i, left + j, cell, typed=False)
                key = (source["name"], r, c)
                if key in self.formats:
                    self.formats[(target["name"], top + i, left + j)] = self.formats[key]
                if key in self.bold:
                    self.bold.add((target["name"], top + i, left + j))

    def _namesAdd(self, action: dict) -> None:
        name, refers_to = action["args"]
        index = action["sheet_position"]
        if "!" in name:  # 'Sheet'!name: Excel scopes it to that sheet, which must be this one
            qualifier, name = name.rsplit("!", 1)
            scope = qualifier.removeprefix("'").removesuffix("'").replace("''", "'")
            if index is None or scope != self.sheets[index]["name"]:
                raise AssertionError(f"{qualifier}!{name} added on another sheet")
        entry = _name_entry(name, refers_to, self.sheets[index]["name"], index)
        if index is None:
            entry.update(book_scope=True, scope_sheet_name=None, scope_sheet_index=None)
        self.payload["names"].append(entry)

    def _setNumberFormat(self, action: dict) -> None:
        for key in _cells_of(action, self._sheet(action)["name"]):
            self.formats[key] = action["args"][0]

    def _setFontProperty(self, action: dict) -> None:
        if action["args"][:2] == ["bold", True]:
            self.bold.update(_cells_of(action, self._sheet(action)["name"]))

    def _setSheetAutofit(self, action: dict) -> None:
        pass  # column widths are not part of the payload

    def _setScreenUpdating(self, action: dict) -> None:
        pass

    def _activateSheet(self, action: dict) -> None:
        self.payload["book"]["active_sheet_index"] = action["args"][0]

    def _rangeSelect(self, action: dict) -> None:
        self.payload["book"]["active_sheet_index"] = action["sheet_position"]
        self.payload["book"]["selection"] = _address(action["start_row"], action["start_column"])

    def _alert(self, action: dict) -> None:
        self.alerts.append(action["args"])

    def _save(self, action: dict) -> None:
        self.saved += 1


def _cells_of(action: dict, sheet: str):
    for i in range(action["row_count"]):
        for j in range(action["column_count"]):
            yield (sheet, action["start_row"] + i, action["start_column"] + j)


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}$")
_LOOKS_TYPED = re.compile(
    r"^\s*([=+@-]|[\d.,$%()\s]+$|\d{1,4}[-/]\d{1,2}([-/]\d{1,4})?\s*$|(true|false)$)", re.I
)


def _as_typed(value: Any) -> Any:
    """The cell Excel keeps when the client sets ``value`` (what it would report back)."""
    if not isinstance(value, str):
        return value
    if value.startswith("'"):
        return value[1:]  # the apostrophe marks text and is not part of the value
    if value in ERROR_CODES:
        return value
    if _ISO_DATE.match(value):  # Remote.bas parses ISO dates into dates
        return value + "T00:00:00.000Z"
    if _ISO_DATETIME.match(value):
        return value.replace(" ", "T") + ".000Z"
    if value and _LOOKS_TYPED.match(value):
        raise AssertionError(
            f"{value!r} written without a leading apostrophe: Excel would not keep it as text"
        )
    return value


def _a1(address: str) -> tuple[int, int]:
    match = re.match(r"\$?([A-Z]+)\$?(\d+)", address)
    letters, row = match.groups()
    col = 0
    for ch in letters:
        col = col * 26 + ord(ch) - 64
    return int(row) - 1, col - 1


def _address(row: int, col: int) -> str:
    letters = ""
    col += 1
    while col:
        col, rest = divmod(col - 1, 26)
        letters = chr(65 + rest) + letters
    return f"{letters}{row + 1}"
