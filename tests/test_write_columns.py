"""Output sheets are rendered a column at a time (Arrow string kernels), yet every cell's
XML, every column width and every styles.xml index is what rendering the cells one by
one with `_cell_xml` gives: the column path is only faster, never different."""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
from decimal import Decimal

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from costloop.engine.pipeline.outputs import FrameRows, frame_to_sheet
from costloop.engine.workbook.host import OutputSheet, column_letter
from costloop.engine.xlsx import file_workbook as xlsx_file
from costloop.engine.xlsx import parts as xlsx_parts
from costloop.workbooks import demo_path


def fresh_styles() -> tuple[xlsx_parts.Package, xlsx_parts.Styles]:
    package = xlsx_parts.Package.read(demo_path().read_bytes())
    workbook = xlsx_parts.WorkbookPart(package)
    return package, xlsx_parts.Styles(package, workbook, xlsx_parts.ContentTypes(package))


def cell_by_cell(sheet: OutputSheet, styles: xlsx_parts.Styles) -> tuple[str, str]:
    """``<cols>`` and ``<sheetData>`` rows as one `_cell_xml` call per cell would give them,
    block by block and column by column (the order styles.xml entries are made in)."""
    styles.cell_format(None, bold=True)
    rows = list(sheet.rows)
    width = max([len(sheet.columns), *(len(r) for r in rows)]) if rows else len(sheet.columns)
    width = max(width, 1)
    formats = [sheet.formats.get(c) for c in sheet.columns]
    sheet_styles = xlsx_file._SheetStyles(styles, formats)
    lengths = [len(str(c)) + 2 for c in sheet.columns] + [0] * (width - len(sheet.columns))
    grid = [list(r) + [None] * (width - len(r)) for r in rows]
    out = [[""] * width for _ in rows]
    block = xlsx_file._BLOCK_ROWS
    for start in range(0, len(rows), block):
        for j in range(width):
            for i in range(start, min(start + block, len(rows))):
                ref = f"{column_letter(j)}{i + 2}"
                out[i][j], needed = xlsx_file._cell_xml(ref, grid[i][j], j, sheet_styles, False)
                lengths[j] = max(lengths[j], needed)
    cols = "".join(
        f'<col min="{j + 1}" max="{j + 1}" width="{min(max(n + 2, 8), 60)}" customWidth="1"/>'
        for j, n in enumerate(lengths)
    )
    body = "".join(f'<row r="{i + 2}">{"".join(cells)}</row>' for i, cells in enumerate(out))
    return cols, body


def rendered(sheet: OutputSheet, styles: xlsx_parts.Styles) -> tuple[str, str]:
    xml, _ = xlsx_file.render_worksheet(sheet, styles)
    text = xml.decode("utf-8")
    cols = re.search(r"<cols>(.*)</cols>", text).group(1)
    body = text[text.index("</row>", text.index("<sheetData>")) + len("</row>") :]
    return cols, body[: body.index("</sheetData>")]


TRICKY_TEXT = st.sampled_from(
    ["a", "", " lead", "trail ", "x&y<z>", "_x0041_", "_x", "tab\there", "\x01", "é—☃", "a\nb"]
)
DECIMALS = st.sampled_from(
    [
        Decimal("18.70"),
        Decimal("-0.00"),
        Decimal("1E+2"),
        Decimal("1E-7"),
        Decimal("1234567.891"),
        Decimal("NaN"),
        Decimal("Infinity"),
    ]
)
ODD = st.one_of(
    st.none(),
    TRICKY_TEXT,
    DECIMALS,
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.dates(min_value=dt.date(1899, 1, 1), max_value=dt.date(2100, 1, 1)),
)
COLUMN = st.one_of(
    st.lists(st.one_of(st.none(), TRICKY_TEXT), min_size=0, max_size=30),
    st.lists(st.one_of(st.none(), DECIMALS.filter(lambda d: d.is_finite())), max_size=30),
    st.lists(st.one_of(st.none(), DECIMALS), max_size=30),
    st.lists(st.one_of(st.none(), st.integers(), DECIMALS), max_size=30),
    st.lists(ODD, max_size=30),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(COLUMN, min_size=1, max_size=5), st.integers(1, 8))
def test_column_rendering_is_cell_by_cell_rendering(columns, block):
    length = max(len(c) for c in columns)
    rows = [tuple(c[i] if i < len(c) else None for c in columns) for i in range(length)]
    names = [f"C{j}" for j in range(len(columns))]
    # Each column its own format: the order they reach styles.xml shows in the s="" indices.
    formats = {name: f"#,##0.{'0' * (j + 1)}" for j, name in enumerate(names)}
    sheet = OutputSheet("Out", names, rows, formats)
    saved = xlsx_file._BLOCK_ROWS
    xlsx_file._BLOCK_ROWS = block  # several blocks in a small sheet
    try:
        _, expected_styles = fresh_styles()
        expected = cell_by_cell(sheet, expected_styles)
        _, styles = fresh_styles()
        assert rendered(sheet, styles) == expected
    finally:
        xlsx_file._BLOCK_ROWS = saved
    assert xlsx_parts.serialize_xml(styles.root) == xlsx_parts.serialize_xml(expected_styles.root)


def test_a_frame_renders_as_its_rows_do():
    frame = pd.DataFrame(
        {
            "Department": pd.array(["D1", None, "", " D3"], dtype="str"),
            "Amount": [Decimal("1.50"), None, Decimal("NaN"), Decimal("2E+1")],
            "Count": [1, 2, 3, 4],
            "Share": [0.5, float("nan"), 1.0, 0.25],
        }
    )
    columns = ["Department", "Amount", "Count", "Share"]
    sheet = frame_to_sheet("Out", frame, columns, {"Amount": "#,##0.00"})
    assert isinstance(sheet.rows, FrameRows)
    assert len(sheet.rows) == 4
    # Missing values are blanks (None), whatever pandas spelled them as.
    assert sheet.rows == [
        ("D1", Decimal("1.50"), 1, 0.5),
        (None, None, 2, None),
        ("", None, 3, 1.0),
        (" D3", Decimal("2E+1"), 4, 0.25),
    ]
    as_rows = OutputSheet("Out", columns, list(sheet.rows), {"Amount": "#,##0.00"})
    assert rendered(sheet, fresh_styles()[1]) == rendered(as_rows, fresh_styles()[1])


def test_a_written_sheet_reads_back_from_the_package_and_the_zip(tmp_path):
    package = xlsx_parts.Package.read(demo_path().read_bytes())
    rows = [(f"D{i}", Decimal(i) / 100) for i in range(50_000)]
    sheet = OutputSheet("Scale Bills", ["Department", "Amount"], rows, {"Amount": "#,##0.00"})
    xlsx_file.write_owned_sheets(package, [sheet])
    entry = xlsx_parts.WorkbookPart(package).sheet("Scale Bills")
    xml = package.get(entry.part)  # deflated while rendered, inflated when asked for
    assert xml.startswith(b"<?xml") and b'<c r="B50001" s="' in xml
    assert package.size(entry.part) == len(xml)
    with package.open(entry.part) as stream:
        assert stream.read() == xml
    buffer = io.BytesIO()
    package.write(buffer)
    with zipfile.ZipFile(buffer) as archive:
        assert archive.testzip() is None
        assert archive.read(entry.part) == xml
    # Read again and written over: the part's new bytes, not the old zip entry's.
    again = xlsx_parts.Package.read(buffer.getvalue())
    xlsx_file.write_owned_sheets(again, [OutputSheet("Scale Bills", ["Department"], [("Z9",)])])
    new = again.get(entry.part)
    assert b"Z9" in new and again.size(entry.part) == len(new) < len(xml)
    with again.open(entry.part) as stream:
        assert stream.read() == new


def test_deflating_in_pieces_gives_the_bytes_back():
    pieces = [b"<row>%d</row>" % i * 1000 for i in range(20)]
    part = xlsx_parts.deflate_chunks(iter(pieces))
    assert part.inflate() == b"".join(pieces)
    assert part.size == sum(map(len, pieces))


def test_a_failing_renderer_stops_the_deflating():
    def pieces():
        yield b"<row/>"
        raise RuntimeError("broken")

    with pytest.raises(RuntimeError, match="broken"):
        xlsx_parts.deflate_chunks(pieces())
