"""Recalculating real Excel-authored workbooks loses nothing.

Every workbook of the corpus (charts, chart sheets, pivots, images, VBA,
comments, tables, dynamic arrays, ...) gets a sheet of numbers and a sheet of
formulas over it whose cached values are stale. All of them are recalculated
in one batch with the real LibreOffice. Then, for each: the formulas show the
right values to a reader that does not calculate, and every part of the file
is byte-identical except the sheets whose values changed — which differ only in
the cached values and types of their formula cells — and ``workbook.xml``,
which differs only by ``fullCalcOnLoad``. A workbook LibreOffice cannot finish
(one corpus file hangs it while saving) is reported and left byte-identical.

CI installs LibreOffice; there these tests fail rather than skip without it.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
import python_calamine
from corpus import corpus_files
from programs import needs_libreoffice
from test_corpus_roundtrip import same_tree
from test_recalc_merge import add_user_sheet, cell_xml, sheet_xml

from costloop.engine.recalc.command import recalc_books
from costloop.engine.recalc.merge import formula_cells
from costloop.engine.xlsx import parts
from costloop.problems import Reason

pytestmark = needs_libreoffice

BOOKS = corpus_files()
TIMEOUT = 60  # seconds per LibreOffice start; the hanging workbook costs this once

DATA = sheet_xml(
    [cell_xml(f"A{row}", None, row * 10) for row in range(1, 6)]
    + [cell_xml("B1", None, "north"), cell_xml("B2", None, "south")]
)
SUMMARY = sheet_xml(
    [
        cell_xml("A1", "SUM('Recalc Data'!A1:A5)", -1),
        cell_xml("A2", "'Recalc Data'!A3*2", -1),
        cell_xml("A3", "'Recalc Data'!B1&\"-\"&'Recalc Data'!B2", "stale"),
        cell_xml("A4", "AVERAGE('Recalc Data'!A:A)>20", 0).replace(
            '<c r="A4">', '<c r="A4" t="b">'
        ),
        cell_xml("A5", "COUNTIF('Recalc Data'!A1:A5,\">25\")", -1),
    ]
)
EXPECTED = [[150.0], [60.0], ["north-south"], [True], [3.0]]


@pytest.fixture(scope="module")
def recalculated(tmp_path_factory) -> dict[str, tuple[Path, dict[str, bytes], object]]:
    """name -> (the recalculated copy, its parts before, its outcome), all in one batch."""
    folder = tmp_path_factory.mktemp("corpus-recalc")
    copies, before = [], {}
    for source in BOOKS:
        path = folder / source.name
        shutil.copyfile(source, path)
        add_user_sheet(path, "Recalc Data", DATA)
        add_user_sheet(path, "Recalc Summary", SUMMARY)
        before[source.name] = dict(parts.Package.read(path.read_bytes()).parts)
        copies.append(path)
    outcomes, _ = recalc_books(copies, timeout=TIMEOUT)
    return {
        path.name: (path, before[path.name], outcome)
        for path, outcome in zip(copies, outcomes, strict=True)
    }


def without_values(root, cells) -> object:
    """A copy of a worksheet tree with the formula cells' cached values and types taken out."""
    root = copy.deepcopy(root)
    wanted = {c.ref for c in cells}
    for cell in formula_cells(root):
        if cell.ref in wanted:
            cell.element.attrib.pop("t", None)
            for value in cell.element.findall(f"{{{parts.NS_MAIN}}}v"):
                cell.element.remove(value)
    return root


def without_full_calc(data: bytes):
    root = parts.parse_xml(data)
    calc = root.find(f"{{{parts.NS_MAIN}}}calcPr")
    if calc is not None:
        calc.attrib.pop("fullCalcOnLoad", None)
        if not calc.attrib and not len(calc):
            root.remove(calc)  # made by recalc when the workbook had none
    return root


@pytest.mark.parametrize("name", [p.name for p in BOOKS])
def test_recalculating_loses_nothing(recalculated, name):
    path, before, outcome = recalculated[name]
    after = dict(parts.Package.read(path.read_bytes()).parts)
    if not outcome.ok:
        # Only a LibreOffice that did not finish is an acceptable failure, and it changes nothing.
        assert [p.code for p in outcome.errors] == [Reason.RECALC_FAILED]
        assert "did not finish this workbook within" in outcome.errors[0].message
        assert after == before
        return
    assert outcome.written and "Recalc Summary" in outcome.changed_sheets
    assert set(after) == set(before), "a part was added or dropped"
    workbook = parts.WorkbookPart(parts.Package.read(path.read_bytes()))
    changed_parts = {workbook.sheet(s).part for s in outcome.changed_sheets}
    for part, data in before.items():
        if part in changed_parts:
            old, new = parts.parse_xml(data), parts.parse_xml(after[part])
            cells = formula_cells(old)
            assert [c.ref for c in cells] == [c.ref for c in formula_cells(new)]
            assert same_tree(without_values(old, cells), without_values(new, cells)), part
        elif part == workbook.part:
            assert same_tree(without_full_calc(data), without_full_calc(after[part]))
            assert workbook.root.find(f"{{{parts.NS_MAIN}}}calcPr").get("fullCalcOnLoad") == "1"
        else:
            assert after[part] == data, f"{part} changed"
    with python_calamine.CalamineWorkbook.from_path(str(path)) as reader:
        summary = reader.get_sheet_by_name("Recalc Summary").to_python(skip_empty_area=False)
    assert summary == EXPECTED
    # Warnings are only ever about formulas LibreOffice cannot compute, at a cell.
    for problem in outcome.warnings:
        assert problem.code in (Reason.NOT_RECALCULATED, Reason.FORMULA_ERROR, Reason.NOT_SPILLED)
        assert "!" in problem.where


def test_most_of_the_corpus_was_recalculated(recalculated):
    done = [name for name, (_, _, outcome) in recalculated.items() if outcome.ok]
    failed = sorted(set(recalculated) - set(done))
    # One workbook (comment03.xlsx) hangs LibreOffice 7.4 in most runs; nothing else may fail.
    assert set(failed) <= {"comment03.xlsx"}, failed
