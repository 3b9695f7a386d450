"""A second, independent spreadsheet program reads what costloop writes.

LibreOffice (headless) opens the workbook after a run and saves it again; the
output sheets it read must carry the same values. This catches XML that
costloop's own reader and openpyxl tolerate but a real spreadsheet would not.
CI installs LibreOffice; elsewhere the test is skipped when it is missing.
"""

from __future__ import annotations

import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
from corpus import corpus_files
from programs import SOFFICE, needs_libreoffice
from test_corpus_run import demo_input_sheets, lay_inputs

from costloop.engine.model.sheets import OUTPUT_SHEETS
from costloop.engine.pipeline.commands import run_book
from costloop.engine.xlsx.file_workbook import FileWorkbook
from costloop.workbooks import demo_path

pytestmark = needs_libreoffice


def resave_with_libreoffice(path: Path, outdir: Path) -> Path:
    """Open ``path`` in LibreOffice and save it as .xlsx into ``outdir``."""
    profile = outdir / "profile"  # a private profile: no clash with another soffice
    subprocess.run(
        [
            SOFFICE,
            f"-env:UserInstallation=file://{profile}",
            "--headless",
            "--convert-to",
            "xlsx:Calc MS Excel 2007 XML",
            "--outdir",
            str(outdir),
            str(path),
        ],
        check=True,
        capture_output=True,
        timeout=240,
    )
    return outdir / (path.stem + ".xlsx")


def test_libreoffice_reads_every_output_sheet_of_the_demo(tmp_path: Path):
    book = tmp_path / "demo.xlsx"
    shutil.copyfile(demo_path(), book)
    assert run_book(book).ok
    resaved = resave_with_libreoffice(book, tmp_path / "lo")
    ours, theirs = FileWorkbook(book), FileWorkbook(resaved)
    assert theirs.sheet_names() == ours.sheet_names()
    for sheet in OUTPUT_SHEETS:
        mine, lo = ours.read_sheet(sheet), theirs.read_sheet(sheet)
        assert len(lo) == len(mine), sheet
        assert lo[0] == mine[0], sheet
    bills = theirs.read_sheet("Bills")
    amount = bills[0].index("Amount")
    total = sum(Decimal(repr(row[amount])) for row in bills[1:])
    log = dict(row[:2] for row in ours.read_sheet("Run Log")[1:])
    assert total == Decimal(repr(log["Total Billed"]))


@pytest.mark.parametrize(
    "name", ["chart_column01.xlsx", "macro01.xlsm", "pivot_TwoPivotTablesWithSingleSource.xlsx"]
)
def test_libreoffice_opens_an_excel_workbook_costloop_wrote_into(name: str, tmp_path: Path):
    source = next(p for p in corpus_files() if p.name == name)
    path = tmp_path / name
    path.write_bytes(source.read_bytes())
    lay_inputs(path, demo_input_sheets())
    assert run_book(path).ok
    resaved = resave_with_libreoffice(path, tmp_path / "lo")
    names = FileWorkbook(resaved).sheet_names()
    assert names[-len(OUTPUT_SHEETS) :] == list(OUTPUT_SHEETS)
    assert FileWorkbook(resaved).read_sheet("Bills")[0][:3] == ["Period", "Department", "Name"]
