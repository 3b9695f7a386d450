"""The whole engine run inside real Excel-authored workbooks loses nothing.

For every Excel-authored workbook in the test corpus: lay the demo's input sheets into a
copy (as the user's own sheets, the same lossless way), run the loop with
`costloop run`, and prove every part that was there before the run — the
original Excel content and the input sheets — is still there byte-for-byte,
apart from the few parts costloop must edit, which are checked to have lost
nothing. A second run replaces the output sheets rather than adding more.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from corpus import corpus_files
from test_corpus_roundtrip import (
    check_content_types_kept,
    check_rels_kept,
    check_styles_only_appended,
    check_workbook_kept,
    edited_parts,
    read_parts,
)

from costloop.engine.model.sheets import INPUT_SHEETS, OUTPUT_SHEETS
from costloop.engine.pipeline.commands import run_book
from costloop.engine.workbook.host import OutputSheet
from costloop.engine.xlsx import parts as xlsx_parts
from costloop.engine.xlsx.file_workbook import FileWorkbook, _atomic_write, write_owned_sheets
from costloop.workbooks import demo_path

BOOKS = corpus_files()


@functools.cache
def demo_input_sheets() -> list[OutputSheet]:
    """The demo workbook's input sheets, ready to lay into another workbook."""
    demo = FileWorkbook(demo_path())
    sheets = []
    for name in INPUT_SHEETS:
        grid = demo.read_sheet(name)
        sheets.append(OutputSheet(name, list(grid[0]), [tuple(r) for r in grid[1:]]))
    return sheets


@pytest.fixture(scope="module")
def demo_inputs() -> list[OutputSheet]:
    return demo_input_sheets()


def lay_inputs(path: Path, sheets: list[OutputSheet]) -> None:
    package = xlsx_parts.Package.read(path.read_bytes())
    _atomic_write(path, write_owned_sheets(package, sheets, mark_owned=False), mode_from=path)


@pytest.mark.filterwarnings("ignore:Sparkline Group extension")
@pytest.mark.parametrize("source", BOOKS, ids=[p.name for p in BOOKS])
def test_a_run_inside_an_excel_workbook_loses_nothing(source, tmp_path, demo_inputs):
    path = tmp_path / source.name
    path.write_bytes(source.read_bytes())
    original = read_parts(path)
    lay_inputs(path, demo_inputs)
    before = read_parts(path)
    roles = edited_parts(before)
    may_change = set(roles.values())
    for name, data in original.items():
        assert name in may_change or before[name] == data, f"laying inputs changed {name}"
    sheets_before = FileWorkbook(path).sheet_names()
    assert FileWorkbook(path).owned_sheets() == set()

    outcome = run_book(path)
    assert outcome.ok, [p.render() for p in outcome.errors]
    after = read_parts(path)
    for name, data in before.items():
        assert name in after, f"{name} was dropped"
        if name not in may_change:
            assert after[name] == data, f"{name} changed"
    check_workbook_kept(
        before[roles["workbook"]], after[roles["workbook"]], len(sheets_before), list(OUTPUT_SHEETS)
    )
    check_rels_kept(
        before[roles["workbook_rels"]], after[roles["workbook_rels"]], len(OUTPUT_SHEETS)
    )
    check_content_types_kept(before["[Content_Types].xml"], after["[Content_Types].xml"])
    if "styles" in roles:
        check_styles_only_appended(before[roles["styles"]], after[roles["styles"]])
    book = FileWorkbook(path)
    assert book.sheet_names() == sheets_before + list(OUTPUT_SHEETS)
    assert book.owned_sheets() == set(OUTPUT_SHEETS)

    # A rerun replaces the outputs in place: same parts, the inputs untouched.
    assert run_book(path).ok
    again = read_parts(path)
    assert set(again) == set(after)
    for name in before:
        if name not in may_change:
            assert again[name] == before[name], f"{name} changed on the rerun"
    assert FileWorkbook(path).sheet_names() == sheets_before + list(OUTPUT_SHEETS)
