"""The Excel add-in package (.xlam): an OOXML zip holding a workbook, the ribbon and the VBA.

What Excel needs to load it as a macro-enabled add-in: the workbook part's content type
is the add-in one, the VBA project is related to the workbook, and the ribbon's customUI
part is related to the package. The workbook itself is one hidden-by-nature add-in
sheet that says what the file is. Every zip entry has a fixed time stamp and order, so
the same inputs always give the same bytes.
"""

from __future__ import annotations

import io
import zipfile
from xml.sax.saxutils import escape

ADDIN_CONTENT_TYPE = "application/vnd.ms-excel.addin.macroEnabled.main+xml"
VBA_CONTENT_TYPE = "application/vnd.ms-office.vbaProject"
UI_RELATIONSHIP = "http://schemas.microsoft.com/office/2007/relationships/ui/extensibility"
VBA_RELATIONSHIP = "http://schemas.microsoft.com/office/2006/relationships/vbaProject"
CUSTOM_UI_PART = "customUI/customUI14.xml"

_OFFICE_DOC = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
_SPREADSHEET = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_SML_CT = "application/vnd.openxmlformats-officedocument.spreadsheetml"
_DECLARATION = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_XF = 'numFmtId="0" fontId="0" fillId="0" borderId="0"'


def _content_types() -> str:
    return (
        _DECLARATION
        + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        + '<Default Extension="rels" '
        + 'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        + '<Default Extension="xml" ContentType="application/xml"/>'
        + f'<Default Extension="bin" ContentType="{VBA_CONTENT_TYPE}"/>'
        + f'<Override PartName="/xl/workbook.xml" ContentType="{ADDIN_CONTENT_TYPE}"/>'
        + f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{_SML_CT}.worksheet+xml"/>'
        + f'<Override PartName="/xl/styles.xml" ContentType="{_SML_CT}.styles+xml"/>'
        + '<Override PartName="/docProps/core.xml" '
        + 'ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>'
        + "</Types>"
    )


def _package_rels() -> str:
    return (
        _DECLARATION
        + f'<Relationships xmlns="{_PKG_REL}">'
        + f'<Relationship Id="rId1" Type="{_OFFICE_DOC}/officeDocument" Target="xl/workbook.xml"/>'
        + '<Relationship Id="rId2" '
        + 'Type="http://schemas.openxmlformats.org/package/2006/relationships/metadata/'
        + 'core-properties" Target="docProps/core.xml"/>'
        + f'<Relationship Id="rId3" Type="{UI_RELATIONSHIP}" Target="{CUSTOM_UI_PART}"/>'
        + "</Relationships>"
    )


def _core_properties(title: str) -> str:
    return (
        _DECLARATION
        + '<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/'
        + 'metadata/core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        + f"<dc:title>{escape(title)}</dc:title><dc:creator>costloop</dc:creator>"
        + "</cp:coreProperties>"
    )


def _workbook(sheet_name: str) -> str:
    return (
        _DECLARATION
        + f'<workbook xmlns="{_SPREADSHEET}" xmlns:r="{_OFFICE_DOC}">'
        + '<workbookPr codeName="ThisWorkbook"/>'
        + "<bookViews><workbookView/></bookViews>"
        + f'<sheets><sheet name="{escape(sheet_name)}" sheetId="1" r:id="rId1"/></sheets>'
        + "</workbook>"
    )


def _workbook_rels() -> str:
    return (
        _DECLARATION
        + f'<Relationships xmlns="{_PKG_REL}">'
        + f'<Relationship Id="rId1" Type="{_OFFICE_DOC}/worksheet" Target="worksheets/sheet1.xml"/>'
        + f'<Relationship Id="rId2" Type="{_OFFICE_DOC}/styles" Target="styles.xml"/>'
        + f'<Relationship Id="rId3" Type="{VBA_RELATIONSHIP}" Target="vbaProject.bin"/>'
        + "</Relationships>"
    )


def _worksheet(lines: list[str]) -> str:
    rows = "".join(
        f'<row r="{i}"><c r="A{i}" t="inlineStr"><is><t>{escape(text)}</t></is></c></row>'
        for i, text in enumerate(lines, start=1)
    )
    return (
        _DECLARATION
        + f'<worksheet xmlns="{_SPREADSHEET}" xmlns:r="{_OFFICE_DOC}">'
        + '<sheetPr codeName="Sheet1"/>'
        + f"<sheetData>{rows}</sheetData>"
        + "</worksheet>"
    )


def _styles() -> str:
    # The least a styles part may hold: one font, the two reserved fills, one border,
    # one cell format and the Normal style.
    return (
        _DECLARATION
        + f'<styleSheet xmlns="{_SPREADSHEET}">'
        + '<fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>'
        + '<fills count="2"><fill><patternFill patternType="none"/></fill>'
        + '<fill><patternFill patternType="gray125"/></fill></fills>'
        + '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
        + f'<cellStyleXfs count="1"><xf {_XF}/></cellStyleXfs>'
        + f'<cellXfs count="1"><xf {_XF} xfId="0"/></cellXfs>'
        + '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
        + "</styleSheet>"
    )


def build_xlam(
    *, custom_ui: bytes, vba_project: bytes, title: str, sheet_name: str, sheet_lines: list[str]
) -> bytes:
    """Return the bytes of an .xlam package with this ribbon XML and VBA project."""
    parts = [
        ("[Content_Types].xml", _content_types().encode()),
        ("_rels/.rels", _package_rels().encode()),
        ("docProps/core.xml", _core_properties(title).encode()),
        ("xl/workbook.xml", _workbook(sheet_name).encode()),
        ("xl/_rels/workbook.xml.rels", _workbook_rels().encode()),
        ("xl/worksheets/sheet1.xml", _worksheet(sheet_lines).encode()),
        ("xl/styles.xml", _styles().encode()),
        ("xl/vbaProject.bin", vba_project),
        (CUSTOM_UI_PART, custom_ui),
    ]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in parts:
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data, compresslevel=9)
    return buffer.getvalue()
