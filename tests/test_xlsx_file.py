"""FileWorkbook: reads padded to A1, Excel errors, lossless and atomic write-back."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
import zipfile
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from costloop.engine.workbook.host import ExcelError, NotOwnedError, OutputSheet
from costloop.engine.xlsx import file_workbook as xlsx_file
from costloop.engine.xlsx import parts as xlsx_parts
from costloop.engine.xlsx.file_workbook import FileWorkbook, WorkbookFormatError, excel_serial

MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"


def user_workbook(path: Path, sheets=("Costs", "Usage"), date1904: bool = False) -> Path:
    """A workbook as a user would have it: their own sheets, nothing of costloop's."""
    wb = openpyxl.Workbook()
    if date1904:
        wb.epoch = openpyxl.utils.datetime.CALENDAR_MAC_1904
    wb.active.title = sheets[0]
    for name in sheets[1:]:
        wb.create_sheet(name)
    wb[sheets[0]]["A1"] = "user data"
    wb.save(path)
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def part(path: Path, name: str) -> bytes:
    with zipfile.ZipFile(path) as archive:
        return archive.read(name)


def bills(rows=None) -> OutputSheet:
    rows = rows or [
        ("2024-01", "D100", Decimal("0.10"), 0.25, dt.date(2024, 1, 31), True),
        ("2024-01", "D200", Decimal("1234567.89"), 1.0, dt.date(2024, 2, 29), False),
    ]
    return OutputSheet(
        "Bills",
        ["Period", "Department", "Amount", "Share", "Posted", "Final"],
        rows,
        formats={"Amount": "#,##0.00", "Share": "0.0%"},
    )


def test_new_sheet_is_appended_after_the_last_sheet_and_marked_owned(tmp_path):
    book = FileWorkbook(user_workbook(tmp_path / "b.xlsx"))
    assert book.owned_sheets() == set()
    book.replace_sheets([bills(), OutputSheet("Run Log", ["Key", "Value"], [("status", "OK")])])
    assert book.sheet_names() == ["Costs", "Usage", "Bills", "Run Log"]
    assert book.owned_sheets() == {"Bills", "Run Log"}
    # The marker is a hidden sheet-scoped name, so the user never sees it.
    wb = etree.fromstring(part(tmp_path / "b.xlsx", "xl/workbook.xml"))
    marks = [n for n in wb.iter(f"{MAIN}definedName") if n.get("name") == "costloop_owned"]
    assert sorted(m.get("localSheetId") for m in marks) == ["2", "3"]
    assert all(m.get("hidden") == "1" for m in marks)


def test_replacing_an_owned_sheet_twice_keeps_one_sheet_and_styles_stop_growing(tmp_path):
    path = user_workbook(tmp_path / "b.xlsx")
    book = FileWorkbook(path)
    book.replace_sheets([bills()])
    styles_first = part(path, "xl/styles.xml")
    names_first = sorted(zipfile.ZipFile(path).namelist())
    book.replace_sheets(
        [bills([("2024-02", "D300", Decimal("5.00"), 0.5, dt.date(2024, 3, 1), True)])]
    )
    assert book.sheet_names() == ["Costs", "Usage", "Bills"]
    assert part(path, "xl/styles.xml") == styles_first
    assert sorted(zipfile.ZipFile(path).namelist()) == names_first
    grid = book.read_sheet("Bills")
    assert len(grid) == 2
    assert grid[1][:3] == ["2024-02", "D300", 5]


def test_a_user_sheet_with_an_output_name_is_refused_and_the_file_is_untouched(tmp_path):
    path = user_workbook(tmp_path / "b.xlsx", sheets=("Costs", "bills"))
    before = digest(path)
    book = FileWorkbook(path)
    with pytest.raises(NotOwnedError) as caught:
        book.replace_sheets([OutputSheet("Run Log", ["Key"], []), bills()])
    assert "bills" in str(caught.value)
    assert digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.xlsx"]


def test_output_leaves_the_source_byte_identical(tmp_path):
    path = user_workbook(tmp_path / "b.xlsx")
    before = digest(path)
    FileWorkbook(path, output=tmp_path / "out.xlsx").replace_sheets([bills()])
    assert digest(path) == before
    assert FileWorkbook(tmp_path / "out.xlsx").owned_sheets() == {"Bills"}


def test_values_read_back_exactly_with_calamine_and_openpyxl(tmp_path):
    path = user_workbook(tmp_path / "b.xlsx")
    text = 'tricky <&> "quoted" ünïcødé 中文 💶'
    rows = [
        ("2024-01", text, Decimal("0.10"), 3, dt.date(2024, 1, 31), True),
        (None, "  padded  ", Decimal("1234567.89"), -2.5, dt.datetime(2024, 1, 31, 12, 30), False),
        ("", None, Decimal("-0.01"), None, None, None),
    ]
    sheet = OutputSheet("Bills", ["Period", "Text", "Amount", "Qty", "When", "Flag"], rows)
    sheet.formats = {"Amount": "#,##0.00"}
    FileWorkbook(path).replace_sheets([sheet])

    grid = FileWorkbook(path).read_sheet("Bills")
    assert grid[0] == sheet.columns
    assert grid[1] == ["2024-01", text, 0.1, 3, dt.date(2024, 1, 31), True]
    assert grid[2] == [
        None,
        "  padded  ",
        1234567.89,
        -2.5,
        dt.datetime(2024, 1, 31, 12, 30),
        False,
    ]
    assert grid[3] == [None, None, -0.01, None, None, None]
    # Money goes into the file as its exact decimal digits, never a binary float.
    xml = part(path, "xl/worksheets/sheet3.xml").decode()
    assert "<v>0.10</v>" in xml and "<v>1234567.89</v>" in xml and "<v>-0.01</v>" in xml
    assert Decimal(repr(grid[2][2])) == Decimal("1234567.89")

    ws = openpyxl.load_workbook(path)["Bills"]
    assert [c.value for c in ws[2]] == ["2024-01", text, 0.1, 3, dt.datetime(2024, 1, 31), True]
    assert ws["B3"].value == "  padded  "
    assert ws["C3"].value == 1234567.89 and ws["E3"].value == dt.datetime(2024, 1, 31, 12, 30)
    assert ws["A4"].value is None and ws["D4"].value is None


def test_number_formats_header_pane_and_filter(tmp_path):
    path = user_workbook(tmp_path / "b.xlsx")
    FileWorkbook(path).replace_sheets([bills()])
    ws = openpyxl.load_workbook(path)["Bills"]
    assert ws["C2"].number_format == "#,##0.00"
    assert ws["D2"].number_format == "0.0%"
    assert ws["E2"].number_format == "yyyy-mm-dd"
    assert ws["A2"].number_format == "General"
    assert ws["A1"].font.b and not ws["A2"].font.b
    assert ws.freeze_panes == "A2"
    assert ws.auto_filter.ref == "A1:F3"
    assert ws.column_dimensions["B"].width >= len("Department")


def test_worksheet_children_follow_the_schema_order(tmp_path):
    path = user_workbook(tmp_path / "b.xlsx")
    FileWorkbook(path).replace_sheets([bills()])
    root = etree.fromstring(part(path, "xl/worksheets/sheet3.xml"))
    order = [
        "sheetPr", "dimension", "sheetViews", "sheetFormatPr", "cols", "sheetData",
        "autoFilter", "pageMargins",
    ]  # fmt: skip
    children = [etree.QName(c).localname for c in root]
    assert children == sorted(children, key=order.index)
    assert part(path, "xl/worksheets/sheet3.xml").startswith(
        b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    )


def test_reading_pads_the_grid_to_a1(tmp_path):
    path = tmp_path / "c3.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Usage"
    ws["C3"], ws["D3"], ws["C5"] = "Department", "Quantity", "D100"
    wb.save(path)
    grid = FileWorkbook(path).read_sheet("Usage")
    assert grid[2][2] == "Department" and grid[2][3] == "Quantity"
    assert grid[4][2] == "D100"
    assert grid[0] == [None, None, None, None]
    assert len(grid) == 5


def test_excel_error_values_come_back_as_excel_errors(tmp_path):
    path = tmp_path / "errors.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    ws["A1"] = 1
    for ref, code in [("B2", "#REF!"), ("C2", "#DIV/0!"), ("D2", "#N/A"), ("E7", "#VALUE!")]:
        ws[ref].value = code
        ws[ref].data_type = "e"
    wb.save(path)
    grid = FileWorkbook(path).read_sheet("Sheet")
    assert grid[1][1:4] == [ExcelError("#REF!"), ExcelError("#DIV/0!"), ExcelError("#N/A")]
    # E7 lies outside the range calamine reports (it sees errors as empty).
    assert grid[6][4] == ExcelError("#VALUE!")
    assert grid[0][0] == 1


def test_a_failure_mid_write_leaves_the_file_unchanged_and_no_temp_file(tmp_path, monkeypatch):
    path = user_workbook(tmp_path / "b.xlsx")
    before = digest(path)
    real_write = xlsx_parts.Package.write

    def broken_write(self, fileobj):
        real_write(self, io.BytesIO())
        fileobj.write(b"PK half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(xlsx_parts.Package, "write", broken_write)
    with pytest.raises(OSError, match="disk full"):
        FileWorkbook(path).replace_sheets([bills()])
    assert digest(path) == before
    assert [p.name for p in tmp_path.iterdir()] == ["b.xlsx"]


def test_a_failure_in_the_rename_leaves_no_temp_file(tmp_path, monkeypatch):
    path = user_workbook(tmp_path / "b.xlsx")
    before = digest(path)

    def locked(src, dst):
        raise PermissionError("the file is open in Excel")

    monkeypatch.setattr(xlsx_file.os, "replace", locked)
    with pytest.raises(PermissionError):
        FileWorkbook(path).replace_sheets([bills()])
    assert digest(path) == before
    assert [p.name for p in tmp_path.iterdir()] == ["b.xlsx"]


def test_reads_see_the_new_file_after_a_write(tmp_path):
    book = FileWorkbook(user_workbook(tmp_path / "b.xlsx"))
    assert "Bills" not in book.sheet_names()
    book.read_sheet("Costs")  # fills the cache
    book.replace_sheets([bills()])
    assert "Bills" in book.sheet_names()
    assert book.read_sheet("Bills")[0][0] == "Period"


def test_ownership_follows_the_sheet_when_the_user_renames_it(tmp_path):
    path = user_workbook(tmp_path / "b.xlsx")
    FileWorkbook(path).replace_sheets([bills()])
    # The user renames costloop's sheet in Excel (only <sheet name> changes).
    package = xlsx_parts.Package.read(path.read_bytes())
    package.set(
        "xl/workbook.xml",
        package.get("xl/workbook.xml").replace(b'name="Bills"', b'name="Bills March"'),
    )
    with path.open("wb") as handle:
        package.write(handle)
    book = FileWorkbook(path)
    assert book.owned_sheets() == {"Bills March"}
    book.replace_sheets([bills()])  # a fresh Bills is added; the renamed one is kept
    assert book.sheet_names() == ["Costs", "Usage", "Bills March", "Bills"]
    assert book.owned_sheets() == {"Bills March", "Bills"}


def test_calc_chain_entries_of_a_replaced_sheet_are_dropped(tmp_path):
    path = user_workbook(tmp_path / "b.xlsx")
    FileWorkbook(path).replace_sheets([bills()])
    package = xlsx_parts.Package.read(path.read_bytes())
    chain = (
        f'<calcChain xmlns="{MAIN[1:-1]}"><c r="B1" i="1"/><c r="A5" i="3"/><c r="A6"/>'
        '<c r="C1" i="1"/></calcChain>'
    )
    package.set("xl/calcChain.xml", chain.encode())
    rels = xlsx_parts.Relationships(package, "xl/workbook.xml")
    rels.add(xlsx_parts.REL_CALC_CHAIN, "xl/calcChain.xml")
    rels.save()
    with path.open("wb") as handle:
        package.write(handle)
    FileWorkbook(path).replace_sheets([bills()])
    kept = etree.fromstring(part(path, "xl/calcChain.xml"))
    assert [(c.get("r"), c.get("i")) for c in kept] == [("B1", "1"), ("C1", "1")]


def test_dates_in_a_1904_workbook(tmp_path):
    path = user_workbook(tmp_path / "mac.xlsx", date1904=True)
    sheet = OutputSheet("Bills", ["Posted"], [(dt.date(2024, 1, 31),)])
    FileWorkbook(path).replace_sheets([sheet])
    assert FileWorkbook(path).read_sheet("Bills")[1][0] == dt.date(2024, 1, 31)
    assert excel_serial(dt.date(2024, 1, 31), date1904=True) == 45322 - 1462


def test_excel_serial_numbers():
    assert excel_serial(dt.date(1900, 1, 1)) == 1
    assert excel_serial(dt.date(1900, 3, 1)) == 61
    assert excel_serial(dt.datetime(2024, 1, 31, 18)) == 45322.75
    assert excel_serial(dt.date(1899, 1, 1)) is None


def test_xml_forbidden_characters_are_escaped_not_lost(tmp_path):
    path = user_workbook(tmp_path / "b.xlsx")
    texts = ["bell\x07", "cr\r\nlf", "_x0041_ stays literal", "tab\there"]
    FileWorkbook(path).replace_sheets([OutputSheet("Run Log", ["Value"], [(t,) for t in texts])])
    grid = FileWorkbook(path).read_sheet("Run Log")
    assert [row[0] for row in grid[1:]] == texts
    etree.fromstring(part(path, "xl/worksheets/sheet3.xml"))  # still well-formed


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    text=st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\ufffe\uffff"),
        min_size=1,
        max_size=40,
    )
)
def test_any_text_round_trips(tmp_path, text):
    path = tmp_path / "h.xlsx"
    if not path.exists():
        user_workbook(path)
    FileWorkbook(path).replace_sheets([OutputSheet("Run Log", ["Value"], [(text,)])])
    assert FileWorkbook(path).read_sheet("Run Log")[1][0] == text


def test_bad_sheet_names_are_refused_before_writing(tmp_path):
    path = user_workbook(tmp_path / "b.xlsx")
    before = digest(path)
    for name in ["x" * 32, "a/b", "", "'quoted'", "History"]:
        with pytest.raises(ValueError):
            FileWorkbook(path).replace_sheets([OutputSheet(name, ["A"], [])])
    with pytest.raises(ValueError, match="twice"):
        FileWorkbook(path).replace_sheets([bills(), bills()])
    assert digest(path) == before


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100, "old-style .xls"),
        (b"Department,Amount\nD100,12.50\n", "text file (CSV?)"),
        (b"", "not an .xlsx workbook"),
    ],
)
def test_files_that_are_not_workbooks_get_a_clear_error(tmp_path, content, words):
    path = tmp_path / "book.xlsx"
    path.write_bytes(content)
    assert not FileWorkbook.is_xlsx(path)
    with pytest.raises(WorkbookFormatError, match="Save As"):
        FileWorkbook(path)
    with pytest.raises(WorkbookFormatError, match=re.escape(words)):
        FileWorkbook(path)


def test_a_zip_that_is_not_a_workbook_and_a_missing_file(tmp_path):
    path = tmp_path / "photos.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("cat.jpg", b"meow")
    with pytest.raises(WorkbookFormatError, match="not an Excel workbook"):
        FileWorkbook(path)
    with pytest.raises(WorkbookFormatError, match="no such file"):
        FileWorkbook(tmp_path / "missing.xlsx")
    assert FileWorkbook.is_xlsx(user_workbook(tmp_path / "ok.xlsx"))


def test_write_of_20000_rows_by_9_columns_reads_back(tmp_path):
    path = user_workbook(tmp_path / "big.xlsx")
    rows = [
        (
            "2024-01", f"D{i % 400:03d}", f"Dept {i % 400}", "Cloud", "vCPU-Hours",
            Decimal(i) / 7, Decimal("0.0421"), Decimal(i * 3) / 100, f"R{i % 30}",
        )
        for i in range(20_000)
    ]  # fmt: skip
    columns = [
        "Period",
        "Department",
        "Name",
        "Pool",
        "Metric",
        "Quantity",
        "Rate",
        "Amount",
        "Rule",
    ]
    sheet = OutputSheet("Bills", columns, rows, {"Amount": "#,##0.00", "Rate": "#,##0.0000"})
    # Speed is measured by benchmarks/bench_engine.py, not asserted here (shared machines).
    FileWorkbook(path).replace_sheets([sheet])
    grid = FileWorkbook(path).read_sheet("Bills")
    assert len(grid) == 20_001 and grid[-1][7] == 599.97


def test_parts_only_the_replaced_sheet_used_are_removed(tmp_path):
    path = user_workbook(tmp_path / "b.xlsx")
    FileWorkbook(path).replace_sheets([bills()])
    # The user put a comment on costloop's sheet: a comments part hangs off it.
    package = xlsx_parts.Package.read(path.read_bytes())
    package.set("xl/comments9.xml", f'<comments xmlns="{MAIN[1:-1]}"/>'.encode())
    rels = xlsx_parts.Relationships(package, "xl/worksheets/sheet3.xml")
    rels.add(xlsx_parts.NS_R + "/comments", "xl/comments9.xml")
    rels.save()
    types = xlsx_parts.ContentTypes(package)
    comments_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.comments+xml"
    types.override("xl/comments9.xml", comments_type)
    types.save()
    with path.open("wb") as handle:
        package.write(handle)

    FileWorkbook(path).replace_sheets([bills()])
    names = zipfile.ZipFile(path).namelist()
    assert "xl/comments9.xml" not in names
    assert "xl/worksheets/_rels/sheet3.xml.rels" not in names
    assert b"comments9" not in part(path, "[Content_Types].xml")
    assert "xl/worksheets/sheet1.xml" in names  # the user's sheets stay
    openpyxl.load_workbook(path)


def test_a_selected_owned_tab_stays_selected_after_replacing(tmp_path):
    path = user_workbook(tmp_path / "b.xlsx")
    FileWorkbook(path).replace_sheets([bills()])
    assert b"tabSelected" not in part(path, "xl/worksheets/sheet3.xml")
    package = xlsx_parts.Package.read(path.read_bytes())
    xml = package.get("xl/worksheets/sheet3.xml")
    package.set(
        "xl/worksheets/sheet3.xml", xml.replace(b"<sheetView ", b'<sheetView tabSelected="1" ')
    )
    with path.open("wb") as handle:
        package.write(handle)
    FileWorkbook(path).replace_sheets([bills()])
    assert b'<sheetView tabSelected="1" workbookViewId="0">' in part(
        path, "xl/worksheets/sheet3.xml"
    )


def test_a_calc_chain_left_empty_is_removed_with_its_relationship(tmp_path):
    path = user_workbook(tmp_path / "b.xlsx")
    FileWorkbook(path).replace_sheets([bills()])
    package = xlsx_parts.Package.read(path.read_bytes())
    package.set(
        "xl/calcChain.xml",
        f'<calcChain xmlns="{MAIN[1:-1]}"><c r="A5" i="3"/></calcChain>'.encode(),
    )
    rels = xlsx_parts.Relationships(package, "xl/workbook.xml")
    rels.add(xlsx_parts.REL_CALC_CHAIN, "xl/calcChain.xml")
    rels.save()
    types = xlsx_parts.ContentTypes(package)
    types.override(
        "xl/calcChain.xml",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.calcChain+xml",
    )
    types.save()
    with path.open("wb") as handle:
        package.write(handle)
    FileWorkbook(path).replace_sheets([bills()])
    assert "xl/calcChain.xml" not in zipfile.ZipFile(path).namelist()
    assert b"calcChain" not in part(path, "xl/_rels/workbook.xml.rels")
    assert b"calcChain" not in part(path, "[Content_Types].xml")
    openpyxl.load_workbook(path)
