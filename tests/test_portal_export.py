"""`costloop portal export`: one folder per department, nothing of another, links that work.

The demo (one department named with a script tag), run by the engine, exported by the
real command with real PDFs (LibreOffice) and read back file by file: every page, the
bill workbook's XML, the CSVs and the PDF's text (pdftotext).
"""

from __future__ import annotations

import html
import re
import subprocess
import zipfile
from pathlib import Path

import openpyxl
import pytest
from fastapi.testclient import TestClient
from portal_fixtures import PASSWORDS, PERIOD, SCRIPT_NAME, add_users, csrf_of, make_book
from programs import PDFTOTEXT, SOFFICE, needs

from costloop.cli import main
from costloop.portal.app import PortalConfig, create_app
from costloop.portal.export import folder_names
from costloop.portal.store import Store, default_url

WITH_PDF = needs(LibreOffice=SOFFICE, pdftotext=PDFTOTEXT)
HREF = re.compile(r"""(?:href|src|action)=["']([^"']*)["']""")


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> Path:
    return make_book(tmp_path_factory.mktemp("export"))


@pytest.fixture(scope="module")
def site(book, tmp_path_factory) -> Path:
    outdir = tmp_path_factory.mktemp("site") / "site"
    assert main(["portal", "export", str(book), "--outdir", str(outdir)]) == 0
    return outdir


def departments(book: Path) -> dict[str, str]:
    """Code -> name of every billed department."""
    wb = openpyxl.load_workbook(book, read_only=True, data_only=True)
    names = {r[0]: r[1] for r in wb["Departments"].iter_rows(min_row=2, values_only=True) if r[0]}
    billed = {r[1] for r in wb["Bills"].iter_rows(min_row=2, values_only=True) if r[1]}
    wb.close()
    return {code: names[code] for code in billed}


def bill_lines(book: Path, code: str) -> int:
    wb = openpyxl.load_workbook(book, read_only=True, data_only=True)
    n = sum(1 for r in wb["Bills"].iter_rows(min_row=2, values_only=True) if r[1] == code)
    wb.close()
    return n


def text_of(path: Path) -> str:
    """What a file says, as a person or a program opening it would read it."""
    if path.suffix == ".xlsx":
        with zipfile.ZipFile(path) as z:
            xml = " ".join(z.read(n).decode("utf-8") for n in z.namelist() if n.endswith(".xml"))
        return html.unescape(re.sub(r"<[^>]+>", " ", xml))
    if path.suffix == ".pdf":
        return subprocess.run(
            [PDFTOTEXT, str(path), "-"], capture_output=True, text=True, check=True
        ).stdout
    text = path.read_text(encoding="utf-8-sig")
    return html.unescape(text) if path.suffix == ".html" else text


@WITH_PDF
def test_one_folder_per_department_with_its_pages_and_downloads(site, book, capsys):
    codes = departments(book)
    assert len(codes) == 25
    assert sorted(p.name for p in site.iterdir() if p.is_dir()) == sorted([*codes, "static"])
    assert sorted(p.name for p in (site / "static").iterdir()) == ["portal.css"]
    for code in codes:
        bill = site / code / PERIOD
        assert (site / code / "index.html").is_file()
        assert sorted(p.name for p in bill.iterdir()) == [
            "bill.pdf", "bill.xlsx", "budget.svg", "focus.csv", "index.html", "lines",
            "lines.csv", "months.svg",
        ]  # fmt: skip
        lines = sorted(int(p.stem) for p in (bill / "lines").iterdir())
        assert lines == list(range(1, bill_lines(book, code) + 1))
        assert (bill / "bill.pdf").read_bytes().startswith(b"%PDF")


@WITH_PDF
def test_no_file_of_a_folder_names_another_department(site, book):
    codes = departments(book)
    for code in codes:
        others = {c: n for c, n in codes.items() if c != code}
        files = [p for p in (site / code).rglob("*") if p.is_file()]
        assert len(files) > 10
        for path in files:
            text = text_of(path)
            for other, name in others.items():
                assert not re.search(rf"\b{re.escape(other)}\b", text), (path, other)
                assert name not in text, (path, name)
            # Each file is of its own department (a chart's SVG names nobody).
            assert code in text or path.suffix == ".svg" or codes[code] in text, path


@WITH_PDF
def test_every_link_is_relative_and_reaches_a_file(site):
    pages = list(site.rglob("*.html"))
    assert len(pages) > 25 * 3
    for page in pages:
        for link in HREF.findall(page.read_text(encoding="utf-8")):
            assert not link.startswith(("/", "http:", "https:", "//")), (page, link)
            target = (page.parent / link.split("#")[0]).resolve()
            assert target.is_file(), (page, link)
            assert target.is_relative_to(site.resolve())
            folder = target.relative_to(site.resolve()).parts[0]
            assert folder in (page.relative_to(site).parts[0], "static"), (page, link)


@WITH_PDF
def test_no_form_no_script_and_a_script_name_is_text(site):
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert "<form" not in text and "<script" not in text and "hx-" not in text, page
        assert "csrf" not in text, page
    cas = (site / "CAS" / PERIOD / "index.html").read_text(encoding="utf-8")
    assert html.escape(SCRIPT_NAME, quote=False) in cas or "&lt;script&gt;" in cas


@WITH_PDF
def test_the_pages_are_the_live_portals_templates(site, book):
    """The bill's charges table is the live page's, with the links made relative."""
    add_users(book)
    store = Store(default_url(book))
    client = TestClient(create_app(PortalConfig(book=book), store), follow_redirects=False)
    token = csrf_of(client.get("/login").text)
    client.post("/login", data={"username": "ada", "password": PASSWORDS["ada"],
                                "csrf_token": token})  # fmt: skip
    live = client.get(f"/d/ADM/{PERIOD}").text
    store.close()

    def table(page: str) -> str:
        return page[
            page.index('<table class="lines charges">') : page.index(
                "</table>", page.index('<table class="lines charges">')
            )
        ]

    static = (site / "ADM" / PERIOD / "index.html").read_text(encoding="utf-8")
    relinked = re.sub(
        r'<a href="/d/ADM/2026-03/lines/(\d+)" hx-get="[^"]+" hx-target="#line-detail" '
        r'hx-push-url="true">',
        r'<a href="../2026-03/lines/\1.html">',
        table(live),
    )
    assert relinked == table(static)
    line = (site / "ADM" / PERIOD / "lines" / "2.html").read_text(encoding="utf-8")
    assert line.count('<a href="../index.html">') == 1  # the crumb back to the bill
    assert "Usage rows behind this line" in line or "not made from usage rows" in line


def test_no_pdf_makes_no_pdf_and_links_none_and_a_second_export_replaces_the_first(
    book, tmp_path, capsys
):
    outdir = tmp_path / "site"
    assert main(["portal", "export", str(book), "--outdir", str(outdir), "--no-pdf"]) == 0
    head = capsys.readouterr().out.splitlines()[0]
    # The stylesheet; per department its periods page, the bill page, three downloads and
    # the two charts; a page per bill line (218 in Bills).
    assert 1 + 25 * 7 + 218 == 394
    assert head == (
        f"Wrote the showback site of 25 department(s) to {outdir}: 394 file(s), one folder "
        "per department (no PDFs: --no-pdf)"
    )
    assert not list(outdir.rglob("*.pdf"))
    assert "bill.pdf" not in (outdir / "ADM" / PERIOD / "index.html").read_text()
    stale = outdir / "ADM" / "2025-01"
    stale.mkdir()
    assert main(["portal", "export", str(book), "--outdir", str(outdir), "--no-pdf"]) == 0
    assert not stale.exists()  # the earlier export's folders were replaced, not added to


def test_a_folder_that_is_not_an_export_is_refused(book, tmp_path, capsys):
    mine = tmp_path / "documents"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    assert main(["portal", "export", str(book), "--outdir", str(mine), "--no-pdf"]) == 1
    out = capsys.readouterr().out
    assert (
        f"{mine}: --outdir is a folder that holds other files, not an earlier export; give a "
        "new or empty folder (nothing was written)"
    ) in out
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


def test_folder_names_are_safe_and_never_the_same_twice():
    assert folder_names(["ENG", "R&D", "R/D", "r_d", "static", "Économie", "..", ""]) == [
        "ENG", "R_D", "R_D-2", "r_d-3", "static-2", "conomie", "department", "department-2",
    ]  # fmt: skip


def test_a_workbook_not_run_is_refused_and_nothing_is_written(tmp_path, capsys):
    import shutil

    from costloop.workbooks import demo_path

    book = tmp_path / "never-run.xlsx"
    shutil.copyfile(demo_path(), book)
    outdir = tmp_path / "site"
    assert main(["portal", "export", str(book), "--outdir", str(outdir)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "Run Log!A1: the workbook has not been run yet: run `costloop run BOOK` first, then "
        "make the bills from its result",
        f"FAILED: no site was written to {outdir}",
    ]
    assert not outdir.exists()


def test_the_closed_demo_exports_its_issued_month_corrections_and_credit(tmp_path, capsys):
    """February closed, March with February's corrections and a credit memo: each month a
    folder, the corrections linking the issued February bill, every link resolving."""
    from closed_books import make_closed_book

    book = make_closed_book(tmp_path)
    site = tmp_path / "site"
    assert main(["portal", "export", str(book), "--outdir", str(site), "--no-pdf"]) == 0
    eng = site / "ENG"
    assert sorted(p.name for p in eng.iterdir() if p.is_dir())[-2:] == ["2026-02", "2026-03"]
    march = (eng / "2026-03" / "index.html").read_text(encoding="utf-8")
    assert '<a href="../2026-02/index.html">Feb 2026</a>' in march  # what it corrects
    assert "D-2026-017" in march  # the credit memo
    home = (eng / "index.html").read_text(encoding="utf-8")
    assert '<span class="state-issued">issued</span>' in home
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert "hx-" not in text and "<form" not in text, page
        for link in HREF.findall(text):
            assert not link.startswith("/"), (page, link)
            assert (page.parent / link).resolve().is_file(), (page, link)
