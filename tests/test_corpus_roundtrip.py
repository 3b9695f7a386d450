"""Writing costloop's sheets into real Excel-authored workbooks loses nothing.

For every Excel-authored workbook in the test corpus (charts, pivots, images, buttons, VBA,
comments, defined names, ...): write three output sheets, then prove that every
original zip part is still there byte-for-byte, except the few parts costloop
must edit, and that those lost nothing either. A rerun must replace, not add.
"""

from __future__ import annotations

import datetime as dt
import shutil
import zipfile
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from corpus import corpus_files
from lxml import etree

from costloop.engine.workbook.host import OutputSheet
from costloop.engine.xlsx import parts as xlsx_parts
from costloop.engine.xlsx.file_workbook import FileWorkbook

BOOKS = corpus_files()  # fails the collection loudly if the vendored corpus is missing
OUTPUT_NAMES = ["Bills", "Journal", "Run Log"]


def outputs(run: int) -> list[OutputSheet]:
    bills = OutputSheet(
        "Bills",
        ["Period", "Department", "Amount"],
        [("2024-01", f"D{i}", Decimal(f"{i}.{run:02d}")) for i in range(1, 6)],
        {"Amount": "#,##0.00"},
    )
    journal = OutputSheet(
        "Journal",
        ["Entry", "Debit", "Credit", "Memo"],
        [(1, Decimal("10.00"), None, "chargeback <IT> & co"), (1, None, Decimal("10.00"), "")],
        {"Debit": "#,##0.00", "Credit": "#,##0.00"},
    )
    log = OutputSheet(
        "Run Log", ["Key", "Value"], [("run", run), ("time", dt.datetime(2024, 2, 1, 9, 30))]
    )
    return [bills, journal, log]


def read_parts(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def same_tree(a: etree._Element, b: etree._Element) -> bool:
    """Structural equality: tag, attributes, text and children (namespace prefixes aside)."""
    return (
        a.tag == b.tag
        and dict(a.attrib) == dict(b.attrib)
        and (a.text or "") == (b.text or "")
        and (a.tail or "") == (b.tail or "")
        and len(a) == len(b)
        and all(same_tree(x, y) for x, y in zip(a, b, strict=True))
    )


def edited_parts(original: dict[str, bytes]) -> dict[str, str]:
    """The parts costloop may edit, by role, as named in this workbook."""
    package = xlsx_parts.Package(
        [zipfile.ZipInfo(n) for n in original], dict(original)
    )  # a read-only view
    workbook = package.main_part()
    roles = {
        "workbook": workbook,
        "workbook_rels": xlsx_parts.rels_part_of(workbook),
        "content_types": "[Content_Types].xml",
        "app": "docProps/app.xml",
    }
    for _, rel_type, target, _ in package.rels(workbook):
        if rel_type == xlsx_parts.REL_STYLES:
            roles["styles"] = target
    return roles


def check_workbook_kept(
    before: bytes, after: bytes, sheet_count: int, added: list[str] = OUTPUT_NAMES
) -> None:
    old, new = etree.fromstring(before), etree.fromstring(after)
    ns = etree.QName(new).namespace
    sheets = new.find(f"{{{ns}}}sheets")
    appended = list(sheets)[sheet_count:]
    assert [s.get("name") for s in appended] == added
    for sheet in appended:
        sheets.remove(sheet)
    names = new.find(f"{{{ns}}}definedNames")
    for node in list(names):
        local = int(node.get("localSheetId", "-1"))
        if local >= sheet_count:
            assert node.get("name") in (xlsx_parts.OWNED_NAME, xlsx_parts.FILTER_NAME)
            assert node.get("hidden") == "1"
            names.remove(node)
    if len(names) == 0 and old.find(f"{{{ns}}}definedNames") is None:
        new.remove(names)
    assert same_tree(old, new)


def check_rels_kept(before: bytes, after: bytes, count: int = len(OUTPUT_NAMES)) -> None:
    def rels(data):
        return {tuple(sorted(r.attrib.items())) for r in etree.fromstring(data)}

    assert rels(before) <= rels(after)
    added = [dict(r)["Type"] for r in rels(after) - rels(before)]
    assert sorted(added) == [xlsx_parts.REL_WORKSHEET] * count


def check_content_types_kept(before: bytes, after: bytes) -> None:
    def entries(data):
        return {(e.tag, tuple(sorted(e.attrib.items()))) for e in etree.fromstring(data)}

    old, new = entries(before), entries(after)
    assert old <= new
    added = new - old
    assert all(dict(attrs)["ContentType"] == xlsx_parts.CT_WORKSHEET for _, attrs in added)


def check_styles_only_appended(before: bytes, after: bytes) -> None:
    old, new = etree.fromstring(before), etree.fromstring(after)
    new_sections = {child.tag: child for child in new}
    for section in old:
        grown = new_sections.pop(section.tag)
        old_attrs = {k: v for k, v in section.attrib.items() if k != "count"}
        assert {k: v for k, v in grown.attrib.items() if k != "count"} == old_attrs
        assert len(grown) >= len(section)
        assert all(same_tree(a, b) for a, b in zip(section, grown, strict=False))
        if "count" in grown.attrib and len(grown) != len(section):
            assert int(grown.get("count")) == len(grown)
    # Only a numFmts section may be new (a workbook without custom formats).
    assert set(etree.QName(t).localname for t in new_sections) <= {"numFmts"}


def check_app_titles(before: bytes, after: bytes) -> None:
    vt = "{http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes}"
    old_titles = [t.text for t in etree.fromstring(before).iter(f"{vt}lpstr")]
    new_titles = [t.text for t in etree.fromstring(after).iter(f"{vt}lpstr")]
    remaining = iter(new_titles)
    assert all(title in remaining for title in old_titles)  # kept, in order


@pytest.mark.filterwarnings("ignore:Sparkline Group extension")  # openpyxl's, on reading
@pytest.mark.parametrize("source", BOOKS, ids=[p.name for p in BOOKS])
def test_writing_output_sheets_loses_nothing(source: Path, tmp_path: Path):
    path = tmp_path / source.name
    shutil.copyfile(source, path)
    original = read_parts(path)
    roles = edited_parts(original)
    book = FileWorkbook(path)
    names_before = book.sheet_names()

    book.replace_sheets(outputs(run=1))
    first = read_parts(path)

    assert book.sheet_names() == names_before + OUTPUT_NAMES
    assert book.owned_sheets() == set(OUTPUT_NAMES)
    may_change = set(roles.values())
    for name, data in original.items():
        assert name in first, f"{name} was dropped"
        if name not in may_change:
            assert first[name] == data, f"{name} changed"
    check_workbook_kept(original[roles["workbook"]], first[roles["workbook"]], len(names_before))
    check_rels_kept(original[roles["workbook_rels"]], first[roles["workbook_rels"]])
    check_content_types_kept(original["[Content_Types].xml"], first["[Content_Types].xml"])
    if "styles" in roles:
        check_styles_only_appended(original[roles["styles"]], first[roles["styles"]])
    if roles["app"] in original:
        check_app_titles(original[roles["app"]], first[roles["app"]])
    new_parts = set(first) - set(original)
    assert len(new_parts) == len(OUTPUT_NAMES)
    assert all(etree.fromstring(first[p]) is not None for p in new_parts)

    # A rerun replaces the same three sheets in place.
    book.replace_sheets(outputs(run=2))
    second = read_parts(path)
    assert set(second) == set(first)
    assert book.sheet_names() == names_before + OUTPUT_NAMES
    for name, data in first.items():
        if name not in new_parts and name != roles["workbook"]:
            assert second[name] == data, f"{name} changed on the rerun"
    assert book.read_sheet("Bills")[1] == ["2024-01", "D1", 1.02]

    # Another reader agrees.
    opened = openpyxl.load_workbook(path)
    assert opened.sheetnames[-3:] == OUTPUT_NAMES
    journal = opened["Journal"]
    assert [c.value for c in journal[2]] == [1, 10, None, "chargeback <IT> & co"]
    assert journal["B2"].number_format == "#,##0.00"
    assert opened["Run Log"]["B3"].value == dt.datetime(2024, 2, 1, 9, 30)


@pytest.mark.parametrize("source", [p for p in BOOKS if p.suffix == ".xlsm"], ids=lambda p: p.name)
def test_macro_workbooks_keep_their_vba_project(source: Path, tmp_path: Path):
    path = tmp_path / source.name
    shutil.copyfile(source, path)
    original = read_parts(path)
    FileWorkbook(path).replace_sheets(outputs(run=1))
    after = read_parts(path)
    vba = [n for n in original if n.lower().endswith("vbaproject.bin")]
    assert vba and all(after[n] == original[n] for n in vba)
    types = etree.fromstring(after["[Content_Types].xml"])
    workbook_types = [
        e.get("ContentType") for e in types if e.get("PartName", "").endswith("/workbook.xml")
    ]
    assert workbook_types == ["application/vnd.ms-excel.sheet.macroEnabled.main+xml"]
    openpyxl.load_workbook(path, keep_vba=True)


def test_the_corpus_holds_macro_and_pivot_workbooks():
    # The write-back cases that matter most must stay in the corpus, not just its size.
    names = [p.name for p in BOOKS]
    assert any(n.endswith(".xlsm") for n in names)
    assert any(n.startswith("pivot_") for n in names)
