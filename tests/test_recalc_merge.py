"""Copying recalculated formula values back into the original workbook, without LibreOffice.

The recalculated copy here is written by hand the way LibreOffice writes its
files (explicit ``t="n"``, shared strings, ``aca`` attributes), so every rule
of the merge is pinned: what counts as a change, what is stored, what is kept
with a located warning, and that nothing but the changed sheet parts and the
recalculate-on-open flag differs. The command-line tests at the end need no
LibreOffice either: they are about it being missing.
"""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from lxml import etree

from costloop.cli import main
from costloop.engine.recalc import command as recalc
from costloop.engine.recalc import libreoffice as recalc_libreoffice
from costloop.engine.recalc.merge import formula_cells, has_formulas, merge_values
from costloop.engine.workbook.host import OutputSheet
from costloop.engine.xlsx import parts
from costloop.engine.xlsx.file_workbook import _atomic_write, write_owned_sheets
from costloop.problems import Reason
from costloop.workbooks import demo_path

NS = parts.NS_MAIN

# -- building workbooks ------------------------------------------------------------------


def cell_xml(ref: str, formula: str | None, cached=None, extra: str = "") -> str:
    """One ``<c>``: a formula with its cached value, or a plain value (text is inline)."""
    if formula is None:
        if isinstance(cached, str):
            return f'<c r="{ref}" t="inlineStr"{extra}><is><t>{escape(cached)}</t></is></c>'
        return f'<c r="{ref}"{extra}><v>{cached}</v></c>'
    f = f"<f>{escape(formula)}</f>"
    if cached is None:
        return f'<c r="{ref}"{extra}>{f}</c>'
    if isinstance(cached, str) and cached.startswith("#"):
        return f'<c r="{ref}" t="e"{extra}>{f}<v>{escape(cached)}</v></c>'
    if isinstance(cached, str):
        return f'<c r="{ref}" t="str"{extra}>{f}<v>{escape(cached)}</v></c>'
    return f'<c r="{ref}"{extra}>{f}<v>{cached}</v></c>'


def sheet_xml(cells: list[str]) -> bytes:
    """A worksheet part holding ``cells`` (each a ``<c>``), grouped into rows."""
    rows: dict[int, list[str]] = {}
    for cell in cells:
        number = int("".join(ch for ch in cell.split('r="')[1].split('"')[0] if ch.isdigit()))
        rows.setdefault(number, []).append(cell)
    body = "".join(f'<row r="{n}">{"".join(rows[n])}</row>' for n in sorted(rows))
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<worksheet xmlns="{NS}" xmlns:r="{parts.NS_R}">'
        f'<sheetViews><sheetView workbookViewId="0"/></sheetViews>'
        f"<sheetData>{body}</sheetData>"
        '<pageMargins left="0.7" right="0.7" top="0.75" bottom="0.75" header="0.3" footer="0.3"/>'
        "</worksheet>"
    ).encode()


def make_package(
    sheets: dict[str, bytes], calc_pr: str = '<calcPr calcId="191029"/>', strings: list[str] = ()
) -> parts.Package:
    """A minimal workbook package with these worksheets (and shared strings, if given)."""
    entries = "".join(
        f'<sheet name="{escape(name)}" sheetId="{i}" r:id="rId{i}"/>'
        for i, name in enumerate(sheets, start=1)
    )
    files = {
        "[Content_Types].xml": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            f'<Types xmlns="{parts.NS_CT}">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
            'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-'
            'officedocument.spreadsheetml.sheet.main+xml"/>'
            + "".join(
                f'<Override PartName="/xl/worksheets/sheet{i}.xml" '
                f'ContentType="{parts.CT_WORKSHEET}"/>'
                for i in range(1, len(sheets) + 1)
            )
            + "</Types>"
        ).encode(),
        "_rels/.rels": (
            f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            f'<Relationships xmlns="{parts.NS_PKG_REL}"><Relationship Id="rId1" '
            f'Type="{parts.REL_OFFICE_DOCUMENT}" Target="xl/workbook.xml"/></Relationships>'
        ).encode(),
        "xl/workbook.xml": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            f'<workbook xmlns="{NS}" xmlns:r="{parts.NS_R}"><sheets>{entries}</sheets>'
            f"{calc_pr}</workbook>"
        ).encode(),
        "xl/_rels/workbook.xml.rels": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            f'<Relationships xmlns="{parts.NS_PKG_REL}">'
            + "".join(
                f'<Relationship Id="rId{i}" Type="{parts.REL_WORKSHEET}" '
                f'Target="worksheets/sheet{i}.xml"/>'
                for i in range(1, len(sheets) + 1)
            )
            + (
                f'<Relationship Id="rIdS" Type="{parts.NS_R}/sharedStrings" '
                'Target="sharedStrings.xml"/>'
                if strings
                else ""
            )
            + "</Relationships>"
        ).encode(),
    }
    for i, data in enumerate(sheets.values(), start=1):
        files[f"xl/worksheets/sheet{i}.xml"] = data
    if strings:
        items = "".join(f"<si><t>{escape(s)}</t></si>" for s in strings)
        files["xl/sharedStrings.xml"] = f'<sst xmlns="{NS}">{items}</sst>'.encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return parts.Package.read(buffer.getvalue())


def save(package: parts.Package, path: Path) -> None:
    with path.open("wb") as handle:
        package.write(handle)


def add_user_sheet(path: Path, name: str, xml: bytes) -> None:
    """Append a sheet of the user's own (not costloop's) with exactly this worksheet XML."""
    package = parts.Package.read(path.read_bytes())
    write_owned_sheets(package, [OutputSheet(name, ["placeholder"])], mark_owned=False)
    entry = parts.WorkbookPart(package).sheet(name)
    package.set(entry.part, xml)
    _atomic_write(path, package, mode_from=path)


def cells_of(package: parts.Package, sheet: str) -> dict[str, tuple[str, str | None]]:
    """ref -> (type, cached value text) of every cell of a sheet."""
    part = parts.WorkbookPart(package).sheet(sheet).part
    root = parts.parse_xml(package.parts[part])
    out = {}
    for c in root.iter(f"{{{NS}}}c"):
        v = c.find(f"{{{NS}}}v")
        out[c.get("r")] = (c.get("t", "n"), None if v is None else v.text or "")
    return out


def calc_pr(package: parts.Package) -> etree._Element | None:
    return parts.parse_xml(package.parts["xl/workbook.xml"]).find(f"{{{NS}}}calcPr")


def lo_cell(ref: str, kind: str, value: str, formula: str = "X()") -> str:
    """A cell as LibreOffice writes it: explicit type, aca attribute."""
    return f'<c r="{ref}" s="0" t="{kind}"><f aca="false">{escape(formula)}</f><v>{value}</v></c>'


# -- the merge ---------------------------------------------------------------------------


def test_values_are_copied_into_formula_cells_and_nothing_else_changes():
    data = sheet_xml([cell_xml("A1", None, 5), cell_xml("A2", None, 7)])
    summary = sheet_xml(
        [
            cell_xml("A1", None, "Total"),
            cell_xml("B1", "SUM(Data!A1:A2)", 3),
            cell_xml("B2", 'IF(B1>10,"big","small")', "small"),
            cell_xml("B3", "B1*2", 6),
        ]
    )
    original = make_package({"Data": data, "Summary": summary})
    before = dict(original.parts)
    theirs = make_package(
        {
            "Data": sheet_xml(['<c r="A1" s="0" t="n"><v>5</v></c>']),
            "Summary": sheet_xml(
                [lo_cell("B1", "n", "12"), lo_cell("B2", "str", "big"), lo_cell("B3", "n", "24")]
            ),
        }
    )
    merge = merge_values(original, theirs)
    assert merge.changed_sheets == ["Summary"]
    assert merge.cells_updated == 3
    assert merge.formula_cells == 3
    assert merge.problems == []
    assert cells_of(original, "Summary") == {
        "A1": ("inlineStr", None),
        "B1": ("n", "12"),
        "B2": ("str", "big"),
        "B3": ("n", "24"),
    }
    # The formulas themselves stay exactly as the user wrote them.
    root = parts.parse_xml(original.parts["xl/worksheets/sheet2.xml"])
    assert [f.text for f in root.iter(f"{{{NS}}}f")] == [
        "SUM(Data!A1:A2)",
        'IF(B1>10,"big","small")',
        "B1*2",
    ]
    changed = {n for n in before if original.parts[n] != before[n]}
    assert changed == {"xl/worksheets/sheet2.xml", "xl/workbook.xml"}
    pr = calc_pr(original)
    assert pr.get("fullCalcOnLoad") == "1" and pr.get("calcId") == "191029"


def test_numbers_equal_as_numbers_are_no_change():
    # Excel writes 17 significant digits, LibreOffice the shortest that round-trips.
    summary = sheet_xml(
        [
            '<c r="B1"><f>1/10</f><v>0.10000000000000001</v></c>',
            '<c r="B2" t="b"><f>1=1</f><v>1</v></c>',
        ]
    )
    original = make_package({"Summary": summary})
    before = dict(original.parts)
    theirs = make_package(
        {"Summary": sheet_xml([lo_cell("B1", "n", "0.1"), lo_cell("B2", "b", "true")])}
    )
    merge = merge_values(original, theirs)
    assert not merge.changed and merge.cells_updated == 0 and merge.formula_cells == 2
    assert original.parts == before  # not even the recalculate-on-open flag


def test_a_function_libreoffice_does_not_know_keeps_its_value_with_a_located_warning():
    summary = sheet_xml(
        [
            cell_xml("C4", "_xlfn.XLOOKUP(A4,Bills!B:B,Bills!H:H)", 123.45),
            cell_xml("C5", "_xlfn.LET(_xlpm.x,C4,_xlpm.x*2)", 246.9),
            cell_xml("C6", "C4+_xlfn.XLOOKUP(A6,B:B,H:H)+_xlfn.XMATCH(1,B:B)", 7),
            cell_xml("C7", "C4*2", 246.9),
        ]
    )
    original = make_package({"Summary": summary})
    theirs = make_package(
        {"Summary": sheet_xml([lo_cell(f"C{r}", "e", "#NAME?") for r in (4, 5, 6, 7)])}
    )
    merge = merge_values(original, theirs)
    headlines = [p.headline() for p in merge.problems]
    assert headlines == [
        "Summary!C4: XLOOKUP is not computed headlessly; its value was left as it was",
        "Summary!C5: LET is not computed headlessly; its value was left as it was",
        "Summary!C6: XLOOKUP and XMATCH are not computed headlessly; its value was left as it was",
        "Summary!C7: LibreOffice cannot compute this formula (it gives #NAME?: a function, name "
        "or reference it does not know, or a cell that uses one); its value was left as it was",
    ]
    assert {p.code for p in merge.problems} == {Reason.NOT_RECALCULATED}
    assert all(not p.is_error for p in merge.problems)
    # No error value was stored; Excel is told to recalculate when it opens the file.
    assert cells_of(original, "Summary") == {
        "C4": ("n", "123.45"),
        "C5": ("n", "246.9"),
        "C6": ("n", "7"),
        "C7": ("n", "246.9"),
    }
    assert merge.changed_sheets == [] and merge.changed
    assert calc_pr(original).get("fullCalcOnLoad") == "1"


def test_a_table_column_without_its_table_is_named_in_the_warning():
    original = make_package({"Sheet1": sheet_xml([cell_xml("D6", "SUBTOTAL(109,[Column3])", 0)])})
    theirs = make_package({"Sheet1": sheet_xml([lo_cell("D6", "e", "#NAME?")])})
    (problem,) = merge_values(original, theirs).problems
    assert problem.headline() == (
        "Sheet1!D6: the table column [Column3] without its table's name is not computed "
        "headlessly (name the table, as in Table1[Column3]); its value was left as it was"
    )


def test_a_real_error_result_is_stored_and_said():
    original = make_package({"Summary": sheet_xml([cell_xml("B2", "A2/A3", 12.5)])})
    theirs = make_package({"Summary": sheet_xml([lo_cell("B2", "e", "#DIV/0!")])})
    merge = merge_values(original, theirs)
    (problem,) = merge.problems
    assert problem.code == Reason.FORMULA_ERROR and not problem.is_error
    assert problem.headline() == (
        "Summary!B2: the formula now gives #DIV/0! (it showed '12.5' before); "
        "check the cells it uses"
    )
    assert cells_of(original, "Summary") == {"B2": ("e", "#DIV/0!")}


def test_shared_and_array_formulas_and_a_formula_never_calculated():
    cells = [
        '<c r="B1"><f t="shared" ref="B1:B3" si="0">A1*2</f><v>1</v></c>',
        '<c r="B2"><f t="shared" si="0"/><v>1</v></c>',
        '<c r="B3"><f t="shared" si="0"/><v>1</v></c>',
        '<c r="C1"><f t="array" ref="C1:C2">A1:A2*10</f><v>0</v></c>',
        '<c r="C2"><v>0</v></c>',
        '<c r="D1" s="3"><f>SUM(A1:A3)</f></c>',
        '<c r="E1"><v>42</v></c>',  # a plain number: never touched
    ]
    original = make_package({"Sheet1": sheet_xml(cells)})
    root = parts.parse_xml(original.parts["xl/worksheets/sheet1.xml"])
    assert [(c.ref, c.formula, c.anchor) for c in formula_cells(root)] == [
        ("B1", "A1*2", True),
        ("C1", "A1:A2*10", True),
        ("D1", "SUM(A1:A3)", True),
        ("B2", "A1*2", True),
        ("B3", "A1*2", True),
        ("C2", "A1:A2*10", False),  # an array fills it: after the cells with formulas
    ]
    theirs = make_package(
        {
            "Sheet1": sheet_xml(
                [
                    lo_cell("B1", "n", "2"),
                    lo_cell("B2", "n", "4"),
                    lo_cell("B3", "n", "6"),
                    lo_cell("C1", "n", "10"),
                    '<c r="C2" s="0" t="n"><v>20</v></c>',
                    lo_cell("D1", "n", "6"),
                    '<c r="E1" s="0" t="n"><v>99</v></c>',
                ]
            )
        }
    )
    merge = merge_values(original, theirs)
    assert merge.cells_updated == 6 and merge.problems == []
    assert cells_of(original, "Sheet1") == {
        "B1": ("n", "2"),
        "B2": ("n", "4"),
        "B3": ("n", "6"),
        "C1": ("n", "10"),
        "C2": ("n", "20"),
        "D1": ("n", "6"),
        "E1": ("n", "42"),
    }
    d1 = next(
        c
        for c in parts.parse_xml(original.parts["xl/worksheets/sheet1.xml"]).iter(f"{{{NS}}}c")
        if c.get("r") == "D1"
    )
    assert [etree.QName(x).localname for x in d1] == ["f", "v"]  # schema order
    assert d1.get("s") == "3"


def test_a_dynamic_array_is_recalculated_where_it_spilled_with_a_warning():
    cells = [
        '<c r="A1" cm="1"><f t="array" ref="A1:A2">_xlfn.SEQUENCE(2)</f><v>1</v></c>',
        '<c r="A2"><v>2</v></c>',
    ]
    original = make_package({"Sheet1": sheet_xml(cells)})
    theirs = make_package(
        {"Sheet1": sheet_xml([lo_cell("A1", "n", "1"), '<c r="A2" t="n"><v>2</v></c>'])}
    )
    merge = merge_values(original, theirs)
    (problem,) = merge.problems
    assert problem.code == Reason.NOT_SPILLED and problem.where == "Sheet1!A1"


def test_a_text_result_libreoffice_put_in_its_string_table_is_stored_as_text():
    original = make_package({"Sheet1": sheet_xml([cell_xml("A1", '"x"&"y"', "old")])})
    theirs = make_package(
        {"Sheet1": sheet_xml([lo_cell("A1", "s", "1")])}, strings=["unused", "xy"]
    )
    merge_values(original, theirs)
    assert cells_of(original, "Sheet1") == {"A1": ("str", "xy")}


def test_a_boolean_is_stored_as_excel_spells_it_and_an_empty_number_is_not_copied():
    original = make_package(
        {"Sheet1": sheet_xml([cell_xml("A1", "1=1", 0), cell_xml("A2", "A1*1", 5)])}
    )
    theirs = make_package(
        {"Sheet1": sheet_xml([lo_cell("A1", "b", "true"), '<c r="A2" t="n"><f>A1*1</f><v/></c>'])}
    )
    merge = merge_values(original, theirs)
    assert merge.cells_updated == 1
    assert cells_of(original, "Sheet1") == {"A1": ("b", "1"), "A2": ("n", "5")}


def test_cells_and_rows_without_addresses_are_placed_by_order():
    # r is optional in the schema; some writers leave it out.
    xml = sheet_xml([]).replace(
        b"<sheetData></sheetData>",
        b"<sheetData><row><c><v>1</v></c><c><f>A1+1</f><v>0</v></c></row>"
        b"<row><c/><c><f>B1+1</f><v>0</v></c></row></sheetData>",
    )
    original = make_package({"Sheet1": xml})
    theirs = make_package({"Sheet1": sheet_xml([lo_cell("B1", "n", "2"), lo_cell("B2", "n", "3")])})
    merge = merge_values(original, theirs)
    assert merge.cells_updated == 2
    values = [v.text for v in original_root(original).iter(f"{{{NS}}}v")]
    assert values == ["1", "2", "3"]


def original_root(package: parts.Package) -> etree._Element:
    return parts.parse_xml(package.parts["xl/worksheets/sheet1.xml"])


def test_a_sheet_libreoffice_lost_keeps_its_values_with_a_warning():
    original = make_package({"Odd Name": sheet_xml([cell_xml("A1", "1+1", 2)])})
    theirs = make_package({"Sheet1": sheet_xml([lo_cell("A1", "n", "2")])})
    merge = merge_values(original, theirs)
    (problem,) = merge.problems
    assert problem.code == Reason.NOT_RECALCULATED and problem.where == "Odd Name!A1"
    assert cells_of(original, "Odd Name") == {"A1": ("n", "2")}


def test_the_recalculate_on_open_flag_is_added_in_schema_order():
    original = make_package({"S": sheet_xml([cell_xml("A1", "1+1", 3)])}, calc_pr="")
    workbook = original.parts["xl/workbook.xml"].replace(
        b"</sheets>",
        b'</sheets><definedNames><definedName name="x">S!$A$1</definedName></definedNames>',
    )
    original.set("xl/workbook.xml", workbook)
    merge_values(original, make_package({"S": sheet_xml([lo_cell("A1", "n", "2")])}))
    root = parts.parse_xml(original.parts["xl/workbook.xml"])
    assert [etree.QName(x).localname for x in root] == ["sheets", "definedNames", "calcPr"]
    assert root[2].attrib == {"fullCalcOnLoad": "1"}


def test_has_formulas():
    assert has_formulas(make_package({"S": sheet_xml([cell_xml("A1", "1+1", 2)])}))
    # A filter column or a font is not a formula.
    plain = sheet_xml([cell_xml("A1", None, 2)]).replace(
        b"</sheetData>", b"</sheetData><autoFilter ref='A1'><filterColumn colId='0'/></autoFilter>"
    )
    assert not has_formulas(make_package({"S": plain}))


# -- the command line, when LibreOffice is missing ----------------------------------------


@pytest.fixture
def no_libreoffice(monkeypatch, tmp_path):
    monkeypatch.delenv(recalc_libreoffice.SOFFICE_VARIABLE, raising=False)
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr(recalc_libreoffice, "_USUAL_PLACES", [])


@pytest.fixture
def book_with_formulas(tmp_path) -> Path:
    book = tmp_path / "book.xlsx"
    shutil.copyfile(demo_path(), book)
    add_user_sheet(book, "Summary", sheet_xml([cell_xml("A1", "SUM(Budget!C:C)", -1)]))
    return book


def test_recalc_without_libreoffice_says_how_to_get_it_and_changes_nothing(
    no_libreoffice, book_with_formulas, capsys
):
    before = book_with_formulas.read_bytes()
    assert main(["recalc", str(book_with_formulas)]) == 1
    out = capsys.readouterr().out
    assert "book.xlsx: LibreOffice is not installed (no soffice found)" in out
    assert "apt-get install libreoffice-calc-nogui" in out
    assert "the workbook was not recalculated and is unchanged" in out
    assert book_with_formulas.read_bytes() == before


def test_run_recalc_without_libreoffice_writes_nothing(no_libreoffice, book_with_formulas, capsys):
    before = book_with_formulas.read_bytes()
    assert main(["run", str(book_with_formulas), "--recalc"]) == 1
    err = capsys.readouterr().err
    assert "costloop run --recalc: LibreOffice is not installed" in err
    assert "nothing was written" in err
    assert book_with_formulas.read_bytes() == before


def test_a_workbook_without_formulas_needs_no_libreoffice(no_libreoffice, tmp_path, capsys):
    book = tmp_path / "plain.xlsx"
    shutil.copyfile(demo_path(), book)
    before = book.read_bytes()
    assert main(["recalc", str(book)]) == 0
    assert (
        "plain.xlsx: no formulas to recalculate; the file is unchanged" in capsys.readouterr().out
    )
    assert book.read_bytes() == before


def test_a_soffice_setting_that_is_not_a_program_is_named(monkeypatch, book_with_formulas, capsys):
    monkeypatch.setenv(recalc_libreoffice.SOFFICE_VARIABLE, "/nowhere/soffice")
    assert main(["recalc", str(book_with_formulas)]) == 1
    assert "COSTLOOP_SOFFICE=/nowhere/soffice is not a program" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["recalc", "missing.xlsx"],
        ["recalc", "BOOK", "--timeout", "0"],
        ["run", "BOOK", "--recalc", "--timeout", "-5"],
        ["recalc"],
    ],
)
def test_usage_errors_exit_2(argv, book_with_formulas):
    before = book_with_formulas.read_bytes()
    argv = [str(book_with_formulas) if a == "BOOK" else a for a in argv]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    assert code == 2
    assert book_with_formulas.read_bytes() == before


def test_a_damaged_file_is_an_error_naming_it(tmp_path, capsys):
    book = tmp_path / "broken.xlsx"
    book.write_bytes(b"PK\x03\x04 not really a zip")
    assert main(["recalc", str(book)]) == 1
    assert "broken.xlsx" in capsys.readouterr().out


def test_a_workbook_open_in_excel_is_not_recalculated(book_with_formulas, capsys):
    lock = book_with_formulas.with_name("~$" + book_with_formulas.name)
    lock.write_bytes(b"owner")
    before = book_with_formulas.read_bytes()
    assert main(["recalc", str(book_with_formulas)]) == 1
    out = capsys.readouterr().out
    assert "book.xlsx: " in out and "the workbook is open in Excel" in out
    assert book_with_formulas.read_bytes() == before


def test_a_read_only_workbook_is_not_recalculated(book_with_formulas, capsys):
    before = book_with_formulas.read_bytes()
    book_with_formulas.chmod(0o444)
    try:
        assert main(["recalc", str(book_with_formulas)]) == 1
    finally:
        book_with_formulas.chmod(0o644)
    assert "the file is read-only" in capsys.readouterr().out
    assert book_with_formulas.read_bytes() == before


def test_a_workbook_saved_while_libreoffice_worked_is_not_overwritten(tmp_path, monkeypatch):
    book = tmp_path / "book.xlsx"
    save(make_package({"Summary": sheet_xml([cell_xml("A1", "1+1", 0)])}), book)
    saved_meanwhile = make_package({"Summary": sheet_xml([cell_xml("A1", "1+2", 0)])})

    def libreoffice(sources, outdir, profile, timeout, soffice):
        save(saved_meanwhile, book)  # the user saves in Excel meanwhile
        outdir.mkdir(parents=True)
        result = outdir / sources[0].name
        save(make_package({"Summary": sheet_xml([lo_cell("A1", "n", "2")])}), result)
        return [recalc_libreoffice.Conversion(sources[0], result)]

    monkeypatch.setattr(recalc, "convert", libreoffice)
    (outcome,), _ = recalc.recalc_books([book], soffice="soffice")
    after_save = book.read_bytes()
    (problem,) = outcome.errors
    assert "changed on disk while it was being recalculated" in problem.message
    assert not outcome.written
    assert cells_of(parts.Package.read(after_save), "Summary") == {"A1": ("n", "0")}
    assert (
        parts.parse_xml(parts.Package.read(after_save).parts["xl/worksheets/sheet1.xml"]).findtext(
            f".//{{{NS}}}f"
        )
        == "1+2"
    )


def test_an_unreadable_libreoffice_copy_is_an_error_and_changes_nothing(tmp_path, monkeypatch):
    book = tmp_path / "book.xlsx"
    save(make_package({"Summary": sheet_xml([cell_xml("A1", "1+1", 0)])}), book)
    before = book.read_bytes()

    def libreoffice(sources, outdir, profile, timeout, soffice):
        outdir.mkdir(parents=True)
        result = outdir / sources[0].name
        result.write_bytes(b"PK\x05\x06" + b"\0" * 18)  # an empty zip: no workbook in it
        return [recalc_libreoffice.Conversion(sources[0], result)]

    monkeypatch.setattr(recalc, "convert", libreoffice)
    (outcome,), _ = recalc.recalc_books([book], soffice="soffice")
    (problem,) = outcome.errors
    assert problem.message.startswith("LibreOffice saved an unreadable copy")
    assert book.read_bytes() == before


def test_a_workbook_named_twice_is_recalculated_once(tmp_path, monkeypatch):
    # `costloop recalc book.xlsx ./book.xlsx` (or a glob that repeats it): the second copy
    # must not find "the workbook changed on disk" because the first one was written.
    book = tmp_path / "book.xlsx"
    save(make_package({"Summary": sheet_xml([cell_xml("A1", "1+1", 0)])}), book)
    given = []

    def libreoffice(sources, outdir, profile, timeout, soffice):
        given.extend(sources)
        outdir.mkdir(parents=True)
        done = []
        for source in sources:
            result = outdir / source.name
            save(make_package({"Summary": sheet_xml([lo_cell("A1", "n", "2")])}), result)
            done.append(recalc_libreoffice.Conversion(source, result))
        return done

    monkeypatch.setattr(recalc, "convert", libreoffice)
    monkeypatch.chdir(tmp_path)
    outcomes, _ = recalc.recalc_books([book, Path("book.xlsx")], soffice="soffice")
    assert len(given) == 1
    assert [o.ok for o in outcomes] == [True, True], [
        p.render() for o in outcomes for p in o.errors
    ]
    assert cells_of(parts.Package.read(book.read_bytes()), "Summary") == {"A1": ("n", "2")}
