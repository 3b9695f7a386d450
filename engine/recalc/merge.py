"""Copy recalculated formula values into the original workbook, and nothing else.

LibreOffice's saved copy of a workbook is lossy (measured on Excel-authored
workbooks: chart sheets, images, pivot tables and dynamic-array metadata are
dropped, the VBA project is rewritten, hidden names become visible, and
functions it does not know such as ``XLOOKUP`` become ``#NAME?``). So the
original package stays the file, and only this is taken from the copy: for
every formula cell of the original (and every cell an array formula fills),
the cached value ``<v>`` and its type ``t``. Sheets are matched by name.

- A sheet part is rewritten only if one of its values changed; every other
  part keeps its original bytes.
- Numbers are compared as numbers, so ``0.1`` written two ways is no change.
- When anything changed, or a value had to be left stale, the workbook gets
  ``fullCalcOnLoad="1"`` so Excel recalculates everything when it opens it.
- A formula LibreOffice cannot compute is never stored as an error: its value
  is left as it was and a warning names the cell (and the function, when the
  formula uses one of Excel's newer ``_xlfn.`` functions). An error that is a
  real result (``#DIV/0!`` after the data changed) is stored, with a warning.
- A dynamic array formula is computed over the range it spilled into when
  Excel last saved it; a warning says so, since only Excel can spill further.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field

from lxml import etree

from costloop.engine.workbook.cells import column_index, column_letter
from costloop.engine.xlsx import parts
from costloop.problems import Problem, Reason, Severity

_PREFIXED_FORMULA = re.compile(rb"<[A-Za-z_][\w.-]*:f[\s>/]")
_REF = re.compile(r"\$?([A-Za-z]{1,3})\$?(\d+)")
# Excel writes functions newer than 2007 with a prefix: _xlfn.XLOOKUP, _xlfn._xlws.SORT.
_NEW_FUNCTION = re.compile(r"_xlfn\.(?:_xlws\.)?([A-Za-z][A-Za-z0-9._]*)\s*\(")
# A table column without its table's name ("[Column3]" in a table's totals row):
# Excel resolves it from where the cell is, LibreOffice 7.4 does not.
_BARE_TABLE_COLUMN = re.compile(r"(?:^|[(,;=+\-*/&<>\s])(\[[^\]]+\])")


@dataclass
class FormulaCell:
    """A cell whose value a formula computes: a formula cell or a cell an array fills."""

    element: etree._Element
    ref: str
    position: tuple[int, int]
    formula: str
    """The formula text (of the array or shared formula, for cells that only hold a value)."""
    dynamic: bool = False
    """Part of a dynamic array (Excel 365 spill), which LibreOffice does not spill."""
    anchor: bool = True
    """The cell holds the formula itself (not only a value an array put there)."""


@dataclass
class Merge:
    """What copying the values did to the original package."""

    changed_sheets: list[str] = field(default_factory=list)
    cells_updated: int = 0
    formula_cells: int = 0
    problems: list[Problem] = field(default_factory=list)
    kept_stale: int = 0
    """Values left as they were because LibreOffice could not compute them."""

    @property
    def changed(self) -> bool:
        """True when the package must be written (values or the recalculate-on-open flag)."""
        return bool(self.changed_sheets) or self.kept_stale > 0


def has_formulas(package: parts.Package) -> bool:
    """True when any worksheet of the workbook holds a formula."""
    workbook = parts.WorkbookPart(package)
    return any(
        entry.is_worksheet and entry.part and _has_formula(package.parts[entry.part])
        for entry in workbook.sheets
    )


def _has_formula(data: bytes) -> bool:
    # Plain substring tests run at memory speed over a large sheet; a regular
    # expression trying every "<" does not. A prefixed <x:f> is rare.
    if b"<f>" in data or b"<f " in data:
        return True
    return b":f" in data and _PREFIXED_FORMULA.search(data) is not None


def merge_values(original: parts.Package, recalculated: parts.Package) -> Merge:
    """Copy formula values from LibreOffice's ``recalculated`` copy into ``original`` in place."""
    workbook = parts.WorkbookPart(original)
    theirs = parts.WorkbookPart(recalculated)
    strings = _SharedStrings(recalculated, theirs)
    merge = Merge()
    for entry in workbook.sheets:
        if not entry.is_worksheet or entry.part is None:
            continue
        data = original.parts[entry.part]
        if not _has_formula(data):
            continue
        root = parts.parse_xml(data)
        cells = formula_cells(root)
        if not cells:
            continue
        merge.formula_cells += len(cells)
        other = theirs.sheet(entry.name)
        if other is None or other.part is None or recalculated.get(other.part) is None:
            merge.kept_stale += len(cells)
            merge.problems.append(
                _warning(
                    Reason.NOT_RECALCULATED,
                    f"{entry.name}!{cells[0].ref}",
                    f"LibreOffice lost the sheet {entry.name!r}, so its {len(cells)} formula "
                    "value(s) were left as they were",
                )
            )
            continue
        values = _cell_values(recalculated.parts[other.part], {c.position for c in cells}, strings)
        updated = _merge_sheet(entry.name, etree.QName(root).namespace, cells, values, merge)
        if updated:
            original.set(entry.part, parts.serialize_xml(root))
            merge.changed_sheets.append(entry.name)
            merge.cells_updated += updated
    if merge.changed:
        _recalculate_on_open(workbook)
        workbook.save()
    return merge


def formula_cells(root: etree._Element) -> list[FormulaCell]:
    """Every cell of a worksheet part whose value a formula computes, in sheet order.

    Cells an array formula fills (without a formula of their own) come last.
    """
    ns = etree.QName(root).namespace
    names = {"m": ns}
    if root.xpath("boolean(m:sheetData/m:row/m:c[not(@r)])", namespaces=names):
        return _formula_cells_in_order(root, ns)
    # Every cell says where it is (Excel always writes r): let libxml2 pick out the
    # formula cells rather than visiting every cell of a large sheet in Python.
    collect = _Collector(ns)
    for cell in root.xpath("m:sheetData/m:row/m:c[m:f]", namespaces=names):
        ref = cell.get("r")
        collect.formula(cell, ref, _position(ref))
    if collect.arrays:
        for cell in root.xpath("m:sheetData/m:row/m:c[not(m:f)]", namespaces=names):
            ref = cell.get("r")
            collect.plain(cell, ref, _position(ref))
    return collect.found


def _formula_cells_in_order(root: etree._Element, ns: str) -> list[FormulaCell]:
    """`formula_cells` for a sheet whose rows or cells leave out their r attribute."""
    collect = _Collector(ns)
    sheet_data = root.find(f"{{{ns}}}sheetData")
    c_tag, f_tag = f"{{{ns}}}c", f"{{{ns}}}f"
    plain = []
    row = 0
    for row_node in [] if sheet_data is None else sheet_data:
        if not isinstance(row_node.tag, str):
            continue
        # r is optional in the schema: a row or cell without it follows the previous one.
        row = int(row_node.get("r")) if row_node.get("r") else row + 1
        col = 0
        for cell in row_node.iter(c_tag):
            match = _REF.fullmatch(cell.get("r") or "")
            col = _column_number(match.group(1)) if match else col + 1
            ref = f"{column_letter(col - 1)}{row}"
            if cell.find(f_tag) is None:
                plain.append((cell, ref, (row, col)))
            else:
                collect.formula(cell, ref, (row, col))
    for cell, ref, position in plain if collect.arrays else []:
        collect.plain(cell, ref, position)
    return collect.found


class _Collector:
    """Formula cells as they are met, with shared-formula texts and array ranges resolved."""

    def __init__(self, ns: str):
        self.f_tag = f"{{{ns}}}f"
        self.shared: dict[str, str] = {}
        self.arrays: dict[tuple[int, int], FormulaCell] = {}
        self.found: list[FormulaCell] = []

    def formula(self, cell: etree._Element, ref: str, position: tuple[int, int]) -> None:
        formula = cell.find(self.f_tag)
        text = formula.text or ""
        kind = formula.get("t")
        index = formula.get("si")
        if kind == "shared" and index is not None:
            # The first cell of a shared formula holds its text; the others refer to it.
            text = self.shared.setdefault(index, text) if text else self.shared.get(index, "")
        item = FormulaCell(cell, ref, position, text)
        if kind == "array" and formula.get("ref"):
            item.dynamic = cell.get("cm") is not None
            for covered in _positions(formula.get("ref")):
                self.arrays.setdefault(covered, item)
        self.found.append(item)

    def plain(self, cell: etree._Element, ref: str, position: tuple[int, int]) -> None:
        """A cell without a formula (met after every formula): an array may fill it."""
        anchor = self.arrays.get(position)
        if anchor is not None:
            self.found.append(
                FormulaCell(cell, ref, position, anchor.formula, anchor.dynamic, anchor=False)
            )


def _merge_sheet(
    sheet: str,
    ns: str,
    cells: list[FormulaCell],
    values: dict[tuple[int, int], tuple[str, str]],
    merge: Merge,
) -> int:
    updated = 0
    for cell in cells:
        new = values.get(cell.position)
        if cell.dynamic and cell.anchor:
            merge.problems.append(
                _warning(
                    Reason.NOT_SPILLED,
                    f"{sheet}!{cell.ref}",
                    "a dynamic array formula: it was recalculated only over the cells it "
                    "filled when Excel last saved the workbook (Excel spills it further on open)",
                )
            )
        if new is None:
            continue  # LibreOffice wrote no cell there: nothing to copy
        old = _cached(cell.element, ns)
        if _same(old, new):
            continue
        new_type, new_value = new
        if new_type == "e":
            functions = _new_functions(cell.formula)
            if new_value == "#NAME?" or functions:
                merge.kept_stale += 1
                merge.problems.append(
                    _warning(
                        Reason.NOT_RECALCULATED,
                        f"{sheet}!{cell.ref}",
                        _why(functions, cell.formula),
                    )
                )
                continue
            if old is None or old[0] != "e":
                shown = "no value" if old is None else repr(old[1])
                merge.problems.append(
                    _warning(
                        Reason.FORMULA_ERROR,
                        f"{sheet}!{cell.ref}",
                        f"the formula now gives {new_value} (it showed {shown} before); "
                        "check the cells it uses",
                    )
                )
        _store(cell.element, ns, new_type, new_value)
        updated += 1
    return updated


def _why(functions: list[str], formula: str) -> str:
    if functions:
        names = " and ".join(
            [", ".join(functions[:-1]), functions[-1]] if len(functions) > 1 else functions
        )
        verb = "is" if len(functions) == 1 else "are"
        return f"{names} {verb} not computed headlessly; its value was left as it was"
    column = _BARE_TABLE_COLUMN.search(formula)
    if column:
        return (
            f"the table column {column.group(1)} without its table's name is not computed "
            f"headlessly (name the table, as in Table1{column.group(1)}); its value was left "
            "as it was"
        )
    return (
        "LibreOffice cannot compute this formula (it gives #NAME?: a function, name or "
        "reference it does not know, or a cell that uses one); its value was left as it was"
    )


def _new_functions(formula: str) -> list[str]:
    seen: list[str] = []
    for name in _NEW_FUNCTION.findall(formula):
        if name.upper() not in seen:
            seen.append(name.upper())
    return seen


def _cached(cell: etree._Element, ns: str) -> tuple[str, str] | None:
    """(type, value text) the cell holds now; None when it has no cached value."""
    value = cell.find(f"{{{ns}}}v")
    if value is None:
        return None
    return cell.get("t", "n"), value.text or ""


def _same(old: tuple[str, str] | None, new: tuple[str, str]) -> bool:
    if old is None:
        return False
    old_type, old_text = old
    new_type, new_text = new
    if old_type == "n" and new_type == "n":
        try:
            return float(old_text) == float(new_text)
        except ValueError:
            return old_text == new_text
    if old_type == "b" and new_type == "b":
        return _truth(old_text) == _truth(new_text)
    # A shared-string index ("s") never equals LibreOffice's text ("str"): rewritten as text.
    return old_type == new_type and old_text == new_text


def _truth(text: str) -> bool:
    return text.strip().lower() in ("1", "true")


def _store(cell: etree._Element, ns: str, value_type: str, text: str) -> None:
    if value_type == "n":
        cell.attrib.pop("t", None)  # a number is the default type
    else:
        cell.set("t", value_type)
    if value_type == "b":
        text = "1" if _truth(text) else "0"  # Excel reads only 1 and 0
    for inline in cell.findall(f"{{{ns}}}is"):
        cell.remove(inline)
    value = cell.find(f"{{{ns}}}v")
    if value is None:
        value = etree.Element(f"{{{ns}}}v")
        formula = cell.find(f"{{{ns}}}f")
        # Schema order: <f>, then <v>.
        cell.insert(0 if formula is None else cell.index(formula) + 1, value)
    value.text = text


def _recalculate_on_open(workbook: parts.WorkbookPart) -> None:
    """Set ``calcPr/@fullCalcOnLoad``: Excel recomputes every formula when it opens the file."""
    calc = workbook.root.find(f"{{{workbook.ns}}}calcPr")
    if calc is None:
        calc = etree.Element(f"{{{workbook.ns}}}calcPr")
        parts._insert_in_order(workbook.root, calc, parts.WORKBOOK_ORDER)
    if calc.get("fullCalcOnLoad") != "1":
        calc.set("fullCalcOnLoad", "1")
        workbook.dirty = True


class _SharedStrings:
    """LibreOffice's shared strings, read only if a formula value needs them."""

    def __init__(self, package: parts.Package, workbook: parts.WorkbookPart):
        self.package = package
        self.workbook = workbook
        self._strings: list[str] | None = None

    def __getitem__(self, index: int) -> str:
        if self._strings is None:
            self._strings = []
            part = next(
                (
                    target
                    for _, rel_type, target, _ in self.package.rels(self.workbook.part)
                    if rel_type.endswith("/sharedStrings")
                ),
                None,
            )
            data = self.package.get(part) if part else None
            if data:
                root = parts.parse_xml(data)
                ns = etree.QName(root).namespace
                for item in root.iter(f"{{{ns}}}si"):
                    # Rich text runs make up the string; phonetic guides (rPh) do not.
                    texts = [
                        t.text or ""
                        for t in item.iter(f"{{{ns}}}t")
                        if etree.QName(t.getparent()).localname != "rPh"
                    ]
                    self._strings.append("".join(texts))
        return self._strings[index]


def _cell_values(
    data: bytes, wanted: set[tuple[int, int]], strings: _SharedStrings
) -> dict[tuple[int, int], tuple[str, str]]:
    """(type, value text) of the wanted cells of one of LibreOffice's worksheet parts."""
    found: dict[tuple[int, int], tuple[str, str]] = {}
    ns = None
    # LibreOffice writes every cell with its r attribute, so no position tracking here.
    for _, cell in etree.iterparse(io.BytesIO(data), events=("end",), tag="{*}c", huge_tree=True):
        ref = cell.get("r")
        if ref:
            position = _position(ref)
            if position in wanted:
                ns = ns or etree.QName(cell).namespace
                value = _value_of(cell, ns, strings)
                if value is not None:
                    found[position] = value
        cell.clear(keep_tail=True)
    return found


def _value_of(cell: etree._Element, ns: str, strings: _SharedStrings) -> tuple[str, str] | None:
    """(type, value text) of one of LibreOffice's cells; None when it holds no value."""
    kind = cell.get("t", "n")
    value = cell.find(f"{{{ns}}}v")
    text = "" if value is None else value.text or ""
    if kind in ("n", "b", "e") and not text.strip():
        return None  # nothing to copy (an empty <v/> would not be a number)
    if kind == "s":  # a formula's text result belongs in the cell, not the string table
        return "str", strings[int(text)]
    if kind == "inlineStr":
        inline = cell.find(f"{{{ns}}}is")
        pieces = [] if inline is None else [t.text or "" for t in inline.iter(f"{{{ns}}}t")]
        return "str", "".join(pieces)
    return kind, text


def _warning(code: Reason, where: str, message: str) -> Problem:
    return Problem(code, Severity.WARNING, where, message)


def _position(ref: str) -> tuple[int, int]:
    """(row, column), 1-based, of a cell address such as ``AB12``; (0, 0) if it is not one."""
    match = _REF.fullmatch(ref)
    if match is None:
        return (0, 0)
    return int(match.group(2)), _column_number(match.group(1))


def _column_number(letters: str) -> int:
    """Excel's letters as a 1-based column number (``A`` -> 1), as cell references count."""
    return column_index(letters) + 1


def _positions(ref: str) -> list[tuple[int, int]]:
    """Every (row, column) of a range such as ``A1:C3`` (or a single cell)."""
    corners = [_REF.fullmatch(part) for part in ref.split(":")]
    if not all(corners):
        return []
    rows = [int(m.group(2)) for m in corners]
    cols = [_column_number(m.group(1)) for m in corners]
    return [
        (r, c) for r in range(min(rows), max(rows) + 1) for c in range(min(cols), max(cols) + 1)
    ]
