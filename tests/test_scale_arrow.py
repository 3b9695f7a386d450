"""The Arrow read of a big sheet (fastexcel) gives exactly what the row-wise read gives.

`FileWorkbook.read_columns` hands a sheet whose XML passes
`FAST_READ_MIN_BYTES` to fastexcel, while a second process surveys the XML for
what fastexcel does not report. These tests lower the threshold to nothing so
every sheet of the corpus and the demo takes that path, and check that each
sheet it takes reads cell for cell, value and type, as `read_sheet` reads it,
and that every case fastexcel could read loosely goes the general way.
"""

from __future__ import annotations

import datetime as dt
import shutil
import zipfile
from pathlib import Path

import pytest
import xlsxwriter
from corpus import corpus_files
from openpyxl import Workbook as OpenpyxlWorkbook
from test_scale_columns import _same

from costloop.engine.read.reader import read_book
from costloop.engine.xlsx import file_workbook as xlsx_file
from costloop.engine.xlsx import survey as sheet_survey
from costloop.engine.xlsx.file_workbook import FileWorkbook
from costloop.workbooks import demo_path


@pytest.fixture
def every_sheet_by_arrow(monkeypatch):
    """Every sheet takes the Arrow path; the survey runs in this process (fast, the same)."""
    monkeypatch.setattr(xlsx_file, "FAST_READ_MIN_BYTES", 0)
    taken: list[str] = []
    real = sheet_survey.survey_beside

    def here(path, part, crc, work):
        done = work()
        taken.append(part)
        return done, sheet_survey.survey_part(path, part, crc)

    monkeypatch.setattr(sheet_survey, "survey_beside", here)
    yield taken
    monkeypatch.setattr(sheet_survey, "survey_beside", real)


def _arrow(wb: FileWorkbook, name: str):
    _, workbook = wb._load()
    return wb._read_columns_arrow(workbook.sheet(name), workbook)


def _check(path: Path) -> int:
    """Sheets read by Arrow, each compared with the row-wise read."""
    wb = FileWorkbook(path)
    taken = 0
    for name in wb.sheet_names():
        if not wb._load()[1].sheet(name).is_worksheet:
            continue
        columns = _arrow(wb, name)
        if columns is None:
            continue
        taken += 1
        _same(columns, wb.read_sheet(name))
        assert wb.hidden_rows(name) == FileWorkbook(path).hidden_rows(name)
    return taken


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.name)
def test_corpus_sheets_read_the_same_by_arrow(path, every_sheet_by_arrow):
    _check(path)


def test_the_arrow_path_is_taken_by_the_corpus_and_the_demo(every_sheet_by_arrow):
    # Not vacuous: most sheets of plain values go the fast way.
    assert sum(_check(p) for p in corpus_files()) >= 25
    assert _check(demo_path()) >= 5


def test_demo_gives_the_same_book_by_arrow(every_sheet_by_arrow):
    by_arrow, problems_a = read_book(FileWorkbook(demo_path()))
    assert every_sheet_by_arrow  # the Arrow path ran
    xlsx_file.FAST_READ_MIN_BYTES = 1 << 62  # (the fixture puts it back)
    by_calamine, problems_c = read_book(FileWorkbook(demo_path()))
    assert problems_a == problems_c
    assert by_arrow.fingerprint == by_calamine.fingerprint
    for frame in ("departments", "budget", "actuals", "usage", "rates"):
        assert getattr(by_arrow, frame).equals(getattr(by_calamine, frame)), frame


def _usage_book(path: Path, quantity_cells: dict[int, object] | None = None, rows: int = 50):
    book = xlsxwriter.Workbook(str(path))
    months = book.add_format({"num_format": "yyyy-mm"})
    sheet = book.add_worksheet("Usage")
    sheet.write_row(0, 0, ["Period", "Department", "Quantity", "When"])
    for r in range(1, rows + 1):
        sheet.write_row(r, 0, ["2026-03", f"D{r % 7}", r * 1.25])
        sheet.write_datetime(r, 3, dt.datetime(2026, 3, 1), months)
    for r, value in (quantity_cells or {}).items():
        sheet.write(r, 2, value)
    return book, sheet


def test_numbers_dates_and_text_come_over_exactly(tmp_path, every_sheet_by_arrow):
    path = tmp_path / "u.xlsx"
    book, _ = _usage_book(path, {3: 2.0**60, 4: -0.0, 5: 7})
    book.close()
    columns = _arrow(FileWorkbook(path), "Usage")
    assert columns is not None
    assert columns[2][3] == 2.0**60 and type(columns[2][3]) is float
    assert columns[2][5] == 7 and type(columns[2][5]) is int
    assert columns[3][1] == dt.date(2026, 3, 1)
    _same(columns, FileWorkbook(path).read_sheet("Usage"))


@pytest.mark.parametrize(
    "cell",
    ["n/a", "NA", "nan", "", True, "12"],
    ids=["n/a", "NA", "nan", "empty-string", "boolean", "numeric-text"],
)
def test_a_number_column_fastexcel_could_misread_goes_the_general_way(
    tmp_path, every_sheet_by_arrow, cell
):
    # fastexcel reads "n/a" in a column of numbers as empty, "nan" as NaN: not exact.
    path = tmp_path / "u.xlsx"
    book, sheet = _usage_book(path)
    if cell == "":
        sheet.write_string(30, 2, "")
    else:
        sheet.write(30, 2, cell)
    book.close()
    wb = FileWorkbook(path)
    assert _arrow(wb, "Usage") is None
    xlsx_file.FAST_READ_MIN_BYTES = 0
    # The general path still reads it, cell for cell.
    columns = FileWorkbook(path).read_columns("Usage")
    assert columns is None or _same(columns, wb.read_sheet("Usage")) is None


def test_errors_uncalculated_formulas_and_hidden_rows(tmp_path, every_sheet_by_arrow):
    errors = tmp_path / "errors.xlsx"
    book, sheet = _usage_book(errors)
    sheet.write_formula(9, 1, "=NA()", None, "#N/A")
    book.close()
    assert _arrow(FileWorkbook(errors), "Usage") is None

    uncalculated = tmp_path / "uncalculated.xlsx"
    wb = OpenpyxlWorkbook()
    ws = wb.active
    ws.title = "Usage"
    ws.append(["Period", "Department", "Quantity"])
    ws.append(["2026-03", "D1", 4])
    ws.append(["2026-03", "D2", "=C2*2"])  # openpyxl saves no value
    wb.save(uncalculated)
    assert _arrow(FileWorkbook(uncalculated), "Usage") is None

    calculated = tmp_path / "calculated.xlsx"
    book, sheet = _usage_book(calculated)
    sheet.write_formula(5, 2, "=C2*2", None, 2.5)
    sheet.set_row(7, None, None, {"hidden": True})
    sheet.set_row(12, None, None, {"hidden": True})
    book.close()
    wb = FileWorkbook(calculated)
    columns = _arrow(wb, "Usage")
    assert columns is not None and columns[2][5] == 2.5
    assert wb.hidden_rows("Usage") == {8, 13}


def test_a_header_that_is_not_plain_text_from_a1_goes_the_general_way(
    tmp_path, every_sheet_by_arrow
):
    numbered = tmp_path / "numbered.xlsx"
    book, sheet = _usage_book(numbered)
    sheet.write(0, 3, 2026)
    book.close()
    assert _arrow(FileWorkbook(numbered), "Usage") is None

    shifted = tmp_path / "shifted.xlsx"
    book = xlsxwriter.Workbook(str(shifted))
    sheet = book.add_worksheet("Usage")
    sheet.write_row(1, 1, ["Period", "Department", "Quantity"])
    sheet.write_row(2, 1, ["2026-03", "D1", 4])
    book.close()
    assert _arrow(FileWorkbook(shifted), "Usage") is None


def test_shared_strings_and_rich_text_in_the_header(tmp_path, every_sheet_by_arrow):
    path = tmp_path / "shared.xlsx"
    book = xlsxwriter.Workbook(str(path))  # not constant_memory: shared strings
    bold = book.add_format({"bold": True})
    sheet = book.add_worksheet("Usage")
    sheet.write_rich_string(0, 0, bold, "Per", "iod")
    sheet.write_row(0, 1, ["Department", "Quantity"])
    for r in range(1, 20):
        sheet.write_row(r, 0, ["2026-03", f"D{r}", r])
    book.close()
    columns = _arrow(FileWorkbook(path), "Usage")
    assert [c[0] for c in columns] == ["Period", "Department", "Quantity"]
    _same(columns, FileWorkbook(path).read_sheet("Usage"))


def test_the_survey_runs_in_a_second_process_and_agrees(tmp_path):
    path = tmp_path / "u.xlsx"
    book, sheet = _usage_book(path, rows=200)
    sheet.set_row(7, None, None, {"hidden": True})
    book.close()
    with zipfile.ZipFile(path) as archive:
        crc = archive.getinfo("xl/worksheets/sheet1.xml").CRC
    ran: list[bool] = []
    done, found = sheet_survey.survey_beside(
        path, "xl/worksheets/sheet1.xml", crc, lambda: ran.append(True) or "read"
    )
    assert done == "read" and ran == [True]
    assert found == sheet_survey.survey_part(path, "xl/worksheets/sheet1.xml", crc)
    assert found.hidden == {8} and found.first_row and not found.errors


def test_a_survey_of_another_version_of_the_file_is_not_used(tmp_path):
    path = tmp_path / "u.xlsx"
    book, _ = _usage_book(path)
    book.close()
    assert not sheet_survey.survey_part(path, "xl/worksheets/sheet1.xml", crc=1).same_file


def test_when_no_second_process_starts_the_survey_runs_here(tmp_path, monkeypatch):
    path = tmp_path / "u.xlsx"
    book, _ = _usage_book(path)
    book.close()
    with zipfile.ZipFile(path) as archive:
        crc = archive.getinfo("xl/worksheets/sheet1.xml").CRC
    monkeypatch.setattr(sheet_survey.sys, "executable", str(tmp_path / "no-python"))
    _, found = sheet_survey.survey_beside(path, "xl/worksheets/sheet1.xml", crc, lambda: None)
    assert found == sheet_survey.survey_part(path, "xl/worksheets/sheet1.xml", crc)
    monkeypatch.setattr(sheet_survey.sys, "executable", "")  # Python embedded elsewhere
    _, found = sheet_survey.survey_beside(path, "xl/worksheets/sheet1.xml", crc, lambda: None)
    assert found == sheet_survey.survey_part(path, "xl/worksheets/sheet1.xml", crc)
    failing = shutil.which("false")
    if failing:  # a second process that starts, then fails
        monkeypatch.setattr(sheet_survey.sys, "executable", failing)
        _, found = sheet_survey.survey_beside(path, "xl/worksheets/sheet1.xml", crc, lambda: None)
        assert found == sheet_survey.survey_part(path, "xl/worksheets/sheet1.xml", crc)


def test_a_big_usage_sheet_reads_by_arrow_without_lowering_anything(tmp_path):
    """The real threshold, the real second process: a sheet of some 60,000 rows."""
    path = tmp_path / "big.xlsx"
    shutil.copy(demo_path(), path)
    book = xlsxwriter.Workbook(str(tmp_path / "usage.xlsx"), {"constant_memory": True})
    sheet = book.add_worksheet("Usage")
    sheet.write_row(0, 0, ["Period", "Department", "Metric", "Quantity"])
    for r in range(1, 60_001):
        sheet.write_row(r, 0, ["2026-03", f"D{r % 50:03d}", "vCPU-Hours", r % 97 + 0.5])
    book.close()
    wb = FileWorkbook(tmp_path / "usage.xlsx")
    _, workbook = wb._load()
    assert workbook.package.size(workbook.sheet("Usage").part) >= xlsx_file.FAST_READ_MIN_BYTES
    columns = wb.read_columns("Usage")
    assert wb._hidden.get("Usage") == set()  # the Arrow path recorded its survey
    _same(columns, FileWorkbook(tmp_path / "usage.xlsx").read_sheet("Usage"))


@pytest.mark.parametrize(
    ("cell", "flag"),
    [
        ('<c r="B2" t="e"><v>#REF!</v></c>', "errors"),
        ("<c r='B2' t='e'><v>#REF!</v></c>", "errors"),
        ('<c r="B2"><f>A2*2</f><v>4</v></c>', "formulas"),
        ('<c r="B2"><x:f>A2*2</x:f><x:v>4</x:v></c>', "formulas"),
        ('<c r="B2"><f t="shared" ref="B2:B3" si="0">A2*2</f><v>4</v></c>', "formulas"),
    ],
)
@pytest.mark.parametrize("chunk", [7, 64, 1 << 22], ids=["tiny", "small", "real"])
def test_the_survey_finds_each_marker_even_across_chunks(monkeypatch, cell, flag, chunk):
    import io

    from costloop.engine.xlsx import sheet_xml

    monkeypatch.setattr(sheet_xml, "_SURVEY_CHUNK", chunk)
    head = (
        '<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/'
        'spreadsheetml/2006/main" xmlns:x="http://schemas.openxmlformats.org/'
        'spreadsheetml/2006/main"><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>Period'
        "</t></is></c></row>"
    )
    rows = "".join(f'<row r="{r}"><c r="A{r}"><v>{r}</v></c></row>' for r in range(2, 40))
    xml = (head + rows + '<row r="40">' + cell + "</row></sheetData></worksheet>").encode()
    found = sheet_xml.survey(io.BytesIO(xml))
    assert getattr(found, flag)
    assert found.first_row is not None and found.first_row.get("r") == "1"
    others = {"errors", "formulas", "hidden"} - {flag}
    assert not any(getattr(found, other) for other in others)
    clean = sheet_xml.survey(io.BytesIO((head + rows + "</sheetData></worksheet>").encode()))
    assert not (clean.errors or clean.formulas or clean.hidden)
