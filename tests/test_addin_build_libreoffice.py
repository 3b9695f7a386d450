"""LibreOffice opens the built costloop.xlam: its sheet, and its VBA project through
LibreOffice's own VBA importer (a reader of MS-CFB and MS-OVBA written by others).

The file is converted headlessly to .ods: LibreOffice turns each VBA module into a
Basic module of a library named after the VBA project, so the .ods shows what it read.
LibreOffice's type detection does not recognise the add-in content type (it refuses
Excel's own .xlam files the same way), so the test names its Excel-with-VBA import
filter. CI installs LibreOffice; elsewhere the test is skipped when it is missing.
"""

from __future__ import annotations

import re
import subprocess
import zipfile

import pytest
from lxml import etree
from programs import SOFFICE, needs_libreoffice

from costloop import __version__
from costloop.addin.build import RIBBON_MODULE, VBA_PROJECT_NAME, write_addin

pytestmark = needs_libreoffice

SCRIPT_NS = "http://openoffice.org/2000/script"
LIBRARY_NS = "http://openoffice.org/2000/library"
TEXT_NS = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"


@pytest.fixture(scope="module")
def ods(tmp_path_factory) -> zipfile.ZipFile:
    folder = tmp_path_factory.mktemp("lo")
    xlam = write_addin(folder / "costloop.xlam")
    subprocess.run(
        [
            SOFFICE,
            f"-env:UserInstallation=file://{folder / 'profile'}",
            "--headless",
            "--infilter=Calc MS Excel 2007 VBA XML",
            "--convert-to",
            "ods",
            "--outdir",
            str(folder / "out"),
            str(xlam),
        ],
        check=True,
        capture_output=True,
        timeout=240,
    )
    converted = folder / "out" / "costloop.ods"
    assert converted.exists(), "LibreOffice could not load the add-in"
    return zipfile.ZipFile(converted)


def _module(ods: zipfile.ZipFile, name: str) -> etree._Element:
    return etree.fromstring(ods.read(f"Basic/{VBA_PROJECT_NAME}/{name}.xml"))


def test_libreoffice_reads_the_add_in_sheet(ods):
    content = etree.fromstring(ods.read("content.xml"))
    texts = ["".join(p.itertext()) for p in content.iter(f"{{{TEXT_NS}}}p")]
    assert f"costloop {__version__} Excel add-in: the Chargeback ribbon tab." in texts


def test_libreoffice_imports_every_vba_module_with_its_kind(ods):
    library = etree.fromstring(ods.read(f"Basic/{VBA_PROJECT_NAME}/script-lb.xml"))
    names = {e.get(f"{{{LIBRARY_NS}}}name") for e in library.iter(f"{{{LIBRARY_NS}}}element")}
    assert names == {"ThisWorkbook", "Sheet1", RIBBON_MODULE, "xlwings", "Dictionary"}
    kinds = {name: _module(ods, name).get(f"{{{SCRIPT_NS}}}moduleType") for name in names}
    assert kinds == {
        "ThisWorkbook": "document",
        "Sheet1": "document",
        RIBBON_MODULE: "normal",
        "xlwings": "normal",
        "Dictionary": "class",
    }


def test_libreoffice_reads_the_source_of_the_callbacks_and_xlwings(ods):
    ribbon = _module(ods, RIBBON_MODULE).text
    for sub in [
        "CheckRules",
        "RunChargeback",
        "UpdateForecast",
        "ClosePeriod",
        "MakeBills",
        "EmailBills",
    ]:
        assert re.search(rf"^Public Sub {sub}\(control As IRibbonControl\)$", ribbon, re.M)
    assert f'Private Const COSTLOOP_VERSION As String = "{__version__}"' in ribbon
    xlwings = _module(ods, "xlwings").text
    assert "Public Function RunPython(PythonCommand As String)" in xlwings
    assert 'Public Const PROJECT_NAME As String = "costloop"' in xlwings
