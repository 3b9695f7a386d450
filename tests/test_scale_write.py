"""Writing back copies every untouched zip entry still compressed, byte for byte.

A million-row Usage sheet is 250 MB of XML; writing costloop's sheets must not
inflate and deflate it again. The entries costloop does not change keep their
compressed bytes and CRC, and the file stays a valid zip.
"""

from __future__ import annotations

import shutil
import zipfile

from costloop.engine.workbook.host import OutputSheet
from costloop.engine.xlsx import parts as xlsx_parts
from costloop.engine.xlsx.file_workbook import FileWorkbook
from costloop.workbooks import demo_path


def _raw_entries(path) -> dict[str, tuple[int, bytes]]:
    data = path.read_bytes()
    out = {}
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            start = info.header_offset
            n = int.from_bytes(data[start + 26 : start + 28], "little")
            m = int.from_bytes(data[start + 28 : start + 30], "little")
            begin = start + 30 + n + m
            out[info.filename] = (info.CRC, data[begin : begin + info.compress_size])
    return out


def test_untouched_entries_are_copied_compressed(tmp_path):
    book = tmp_path / "book.xlsx"
    shutil.copyfile(demo_path(), book)
    before = _raw_entries(book)
    FileWorkbook(book).replace_sheets([OutputSheet("Scale Check", ["A"], [(1,), ("x",)])])
    after = _raw_entries(book)
    with zipfile.ZipFile(book) as archive:
        assert archive.testzip() is None
        names = archive.namelist()
    changed = {n for n in before if before[n] != after.get(n)}
    # Only the parts a new sheet must touch changed; every data sheet is as it was.
    assert changed <= {
        "xl/workbook.xml",
        "xl/_rels/workbook.xml.rels",
        "[Content_Types].xml",
        "docProps/app.xml",
        "xl/styles.xml",
    }, changed
    assert set(before) < set(names)
    assert FileWorkbook(book).read_sheet("Scale Check") == [["A"], [1], ["x"]]


def test_a_lazily_read_package_reads_like_a_dict(tmp_path):
    data = demo_path().read_bytes()
    package = xlsx_parts.Package.read(data)
    with zipfile.ZipFile(demo_path()) as archive:
        expected = {i.filename: archive.read(i) for i in archive.infolist()}
    assert dict(package.parts) == expected
    assert list(package.parts) == list(expected)
    package.set("xl/new.xml", b"<x/>")
    package.delete("docProps/app.xml")
    assert "docProps/app.xml" not in package.parts and package.get("xl/new.xml") == b"<x/>"
    out = tmp_path / "out.xlsx"
    with out.open("wb") as handle:
        package.write(handle)
    with zipfile.ZipFile(out) as archive:
        assert archive.testzip() is None
        assert archive.read("xl/new.xml") == b"<x/>"
        assert "docProps/app.xml" not in archive.namelist()
