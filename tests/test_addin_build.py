"""The built costloop.xlam, checked by readers that are not ours: olevba (oletools)
extracts every VBA module, olefile lists the project's streams, lxml parses the ribbon,
and the ribbon's callbacks are matched against the VBA's Subs."""

from __future__ import annotations

import ast
import inspect
import io
import re
import struct
import warnings
import zipfile
from pathlib import Path

import olefile
import pytest
from lxml import etree

from costloop import __version__
from costloop.addin import build
from costloop.addin.build import (
    CONFIG_NAME,
    RIBBON_MODULE,
    VBA_PROJECT_NAME,
    AddinBuildError,
    addin_sources,
    build_addin,
    harden_xlwings,
    project_id,
    write_addin,
    xlwings_folder,
)
from costloop.addin.vbaproject import decrypt_property
from costloop.addin.xlam import ADDIN_CONTENT_TYPE, CUSTOM_UI_PART, UI_RELATIONSHIP
from costloop.cli import main

with warnings.catch_warnings():  # oletools uses pyparsing names that now warn on import
    warnings.simplefilter("ignore", DeprecationWarning)
    from oletools.olevba import VBA_Parser, decompress_stream

CUSTOM_UI_NS = "http://schemas.microsoft.com/office/2009/07/customui"
CT_NS = "http://schemas.openxmlformats.org/package/2006/content-types"
REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
BUTTONS = [
    "CheckRules",
    "RunChargeback",
    "UpdateForecast",
    "ClosePeriod",
    "MakeBills",
    "EmailBills",
]
SOURCES = Path(build.__file__).parent


@pytest.fixture(scope="module")
def xlam(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("addin") / "costloop.xlam"
    assert main(["addin", "build", "--output", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def package(xlam) -> zipfile.ZipFile:
    return zipfile.ZipFile(xlam)


@pytest.fixture(scope="module")
def extracted(xlam) -> dict[str, str]:
    """Module name -> source text, as olevba extracts them from the built file."""
    parser = VBA_Parser(str(xlam))
    try:
        assert parser.detect_vba_macros()
        return {
            stream_path.split("/")[-1]: code for _, stream_path, _, code in parser.extract_macros()
        }
    finally:
        parser.close()


def _crlf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\n", "\r\n")


# --- VBA ----------------------------------------------------------------------------------


def test_olevba_extracts_the_ribbon_module_exactly_as_written(extracted):
    written = (SOURCES / "vba" / f"{RIBBON_MODULE}.bas").read_bytes().decode("cp1252")
    expected = written.replace("@COSTLOOP_VERSION@", __version__)
    assert extracted[RIBBON_MODULE] == expected
    assert f'Private Const COSTLOOP_VERSION As String = "{__version__}"' in expected


def test_olevba_extracts_xlwings_own_module_with_its_project_name_and_settings_changed(
    extracted,
):
    original = (xlwings_folder() / "xlwings_custom_addin.bas").read_bytes().decode("cp1252")
    named = original.replace("\r\n", "\n").replace(
        'Public Const PROJECT_NAME As String = "myaddin"',
        f'Public Const PROJECT_NAME As String = "{CONFIG_NAME}"',
    )
    assert named != original.replace("\r\n", "\n")
    assert extracted["xlwings"] == _crlf(harden_xlwings(named))


def _function(source: str, name: str) -> str:
    """One VBA Function's text, from its first line to its End Function."""
    match = re.search(rf"^(Public )?Function {name}\b.*?^End Function", source, re.M | re.S)
    assert match is not None, f"no Function {name}"
    return match.group(0)


def test_no_setting_of_the_add_in_can_come_from_a_workbook(extracted):
    """A workbook received by email must not point the trusted add-in at another program:
    no "costloop.conf" sheet of the active workbook (or of any workbook), no costloop.conf
    file beside it, no ".py" sheets run or imported, its folder not on Python's path."""
    code = "\n".join(extracted.values())
    for lookup in (
        "GetConfigFromSheet",  # xlwings' reader of a workbook's .conf sheet
        'SheetExists(ActiveWorkbook, PROJECT_NAME & ".conf")',
        'SheetExists(ThisWorkbook, PROJECT_NAME & ".conf")',
        'Sheets(PROJECT_NAME & ".conf")',
        "GetDirectoryConfigFilePath",  # costloop.conf beside the active workbook
        "ADD_WORKBOOK_TO_PYTHONPATH",
        'Right$(sht.Name, 3) = ".py"',
        "xlwings.conf",  # the xlwings add-in's settings are not ours either
    ):
        found = [line for line in code.splitlines() if lookup in line and "'" not in line[:5]]
        found = [line for line in found if not line.strip().startswith("'")]
        assert found == [], lookup
    vba = extracted["xlwings"]
    get_config = _function(vba, "GetConfig")
    assert "Workbook" not in get_config and "Sheet" not in get_config
    assert "GetConfigFromFile(GetConfigFilePath(), configKey, configValue)" in get_config
    # The one settings file is the user's own, where `costloop addin install` writes.
    paths = _function(vba, "GetConfigFilePath")
    assert 'Environ("USERPROFILE") & "\\." & PROJECT_NAME & "\\" & PROJECT_NAME & ".conf"' in paths
    assert "ActiveWorkbook" not in paths and "ThisWorkbook" not in paths
    assert ".conf" not in "\n".join(
        line
        for line in vba.splitlines()
        if not line.strip().startswith("'") and "GetConfigFilePath =" not in line
    )
    assert 'AddExcelDir = "false"' in _function(vba, "RunPython")


def test_an_xlwings_whose_settings_code_is_not_as_expected_fails_the_build():
    original = (xlwings_folder() / "xlwings_custom_addin.bas").read_bytes().decode("cp1252")
    changed = original.replace("\r\n", "\n").replace("Function GetConfigFromSheet(", "Function X(")
    with pytest.raises(AddinBuildError) as failed:
        harden_xlwings(changed, "xlwings_custom_addin.bas")
    assert str(failed.value) == (
        "xlwings_custom_addin.bas: expected one Function GetConfigFromSheet, found 0; this "
        "xlwings version is not supported by the add-in build"
    )


def test_olevba_extracts_every_module_with_exactly_its_source_text(extracted):
    expected = {m.name: _crlf(m.source) for m in addin_sources().modules}
    assert (
        set(extracted)
        == set(expected)
        == {
            "ThisWorkbook",
            "Sheet1",
            RIBBON_MODULE,
            "xlwings",
            "Dictionary",
        }
    )
    for name, source in expected.items():
        assert extracted[name] == source, name


def test_dictionary_class_keeps_the_export_body(extracted):
    export = (xlwings_folder() / "addin" / "Dictionary.cls").read_bytes().decode("cp1252")
    body = _crlf(export).split("Attribute VB_Description", 1)[1]
    assert extracted["Dictionary"].endswith(body)
    assert not extracted["Dictionary"].startswith("VERSION 1.0 CLASS")


def test_olefile_lists_the_vba_project_streams(package):
    ole = olefile.OleFileIO(
        io.BytesIO(package.read("xl/vbaProject.bin")), raise_defects=olefile.DEFECT_INCORRECT
    )
    streams = sorted("/".join(p) for p in ole.listdir(streams=True, storages=False))
    assert streams == sorted(
        [
            "PROJECT",
            "PROJECTwm",
            "VBA/_VBA_PROJECT",
            "VBA/dir",
            "VBA/ThisWorkbook",
            "VBA/Sheet1",
            f"VBA/{RIBBON_MODULE}",
            "VBA/xlwings",
            "VBA/Dictionary",
        ]
    )
    # Version 0xFFFF and nothing after the 7-byte header: no performance cache, so
    # Office compiles from source.
    assert ole.openstream("VBA/_VBA_PROJECT").read() == bytes.fromhex("CC61FFFF000000")
    dir_stream = bytes(decompress_stream(bytearray(ole.openstream("VBA/dir").read())))
    offsets = re.findall(rb"\x31\x00\x04\x00\x00\x00(....)", dir_stream, re.S)
    assert offsets == [b"\x00\x00\x00\x00"] * 5  # MODULEOFFSET: source at 0 in every module


def test_project_stream_names_modules_and_carries_valid_protection_fields(package):
    ole = olefile.OleFileIO(io.BytesIO(package.read("xl/vbaProject.bin")))
    text = ole.openstream("PROJECT").read().decode("cp1252")
    fields = dict(re.findall(r'^(\w+)="?([^"\r\n]*)"?\r$', text, re.M))
    assert fields["ID"] == project_id(__version__)
    assert fields["Name"] == VBA_PROJECT_NAME
    assert "Document=ThisWorkbook/&H00000000" in text
    assert "Document=Sheet1/&H00000000" in text
    assert f"Module={RIBBON_MODULE}" in text and "Module=xlwings" in text
    assert "Class=Dictionary" in text
    pid = fields["ID"]
    assert decrypt_property(pid, bytes.fromhex(fields["CMG"])) == b"\x00\x00\x00\x00"
    assert decrypt_property(pid, bytes.fromhex(fields["DPB"])) == b"\x00"  # no password
    assert decrypt_property(pid, bytes.fromhex(fields["GC"])) == b"\xff"  # visible


# --- ribbon -------------------------------------------------------------------------------


def _ribbon(package) -> etree._Element:
    return etree.fromstring(package.read(CUSTOM_UI_PART))  # raises if not well-formed


def _subs(source: str) -> dict[str, tuple[str, str]]:
    """Sub name -> (visibility, parameter list) for every Sub in a module."""
    pattern = r"^(?:(Public|Private)\s+)?Sub\s+(\w+)\s*\(([^)]*)\)"
    return {m[2]: (m[1] or "Public", m[3].strip()) for m in re.finditer(pattern, source, re.M)}


def test_every_on_action_names_a_public_ribbon_callback(package, extracted):
    buttons = _ribbon(package).iter(f"{{{CUSTOM_UI_NS}}}button")
    actions = [b.get("onAction") for b in buttons]
    assert len(actions) == len(BUTTONS)
    for action in actions:
        module, _, sub = action.rpartition(".")
        assert module in extracted, f"{action}: no module {module}"
        subs = _subs(extracted[module])
        assert sub in subs, f"{action}: no Sub {sub} in {module}"
        visibility, params = subs[sub]
        assert visibility == "Public"
        assert re.fullmatch(r"(ByRef\s+)?\w+\s+As\s+IRibbonControl", params), params


def test_ribbon_tab_has_the_five_buttons_with_icons_and_screentips(package):
    root = _ribbon(package)
    assert root.tag == f"{{{CUSTOM_UI_NS}}}customUI"
    tabs = root.findall(f"{{{CUSTOM_UI_NS}}}ribbon/{{{CUSTOM_UI_NS}}}tabs/{{{CUSTOM_UI_NS}}}tab")
    assert [t.get("label") for t in tabs] == ["Chargeback"]
    buttons = list(tabs[0].iter(f"{{{CUSTOM_UI_NS}}}button"))
    assert [b.get("id") for b in buttons] == BUTTONS
    for button in buttons:
        for attribute in ("label", "imageMso", "screentip", "supertip", "onAction"):
            value = button.get(attribute)
            # customUI: strings of 1 to 1024 characters; ids and icon names are NCNames.
            assert value and len(value) <= 1024, (button.get("id"), attribute)
        assert re.fullmatch(r"[A-Za-z_][\w.-]*", button.get("imageMso"))
        assert button.get("size") == "large"


def test_ribbon_uses_only_customui_elements_and_button_attributes(package):
    allowed_attributes = {
        "button": {"id", "label", "size", "imageMso", "screentip", "supertip", "onAction"},
        "group": {"id", "label"},
        "tab": {"id", "label"},
        "customUI": set(),
        "ribbon": set(),
        "tabs": set(),
    }
    ids = []
    for element in _ribbon(package).iter(etree.Element):
        namespace, local = element.tag[1:].split("}")
        assert namespace == CUSTOM_UI_NS
        assert set(element.attrib) <= allowed_attributes[local], local
        if "id" in element.attrib:
            ids.append(element.get("id"))
    assert len(ids) == len(set(ids)), "control ids must be unique"


def test_every_callback_passes_its_button_id_to_the_entry_point(extracted):
    ribbon = extracted[RIBBON_MODULE]
    call = (
        'RunPython "import costloop.addin.entry as e; e.on_button(\'" & control.Id & '
        '"\', \'" & COSTLOOP_VERSION & "\')"'
    )
    assert call in ribbon
    for button in BUTTONS:
        body = re.search(rf"Sub {button}\(.*?\)\r\n(.*?)End Sub", ribbon, re.S)
        assert body and body[1].strip() == "CallCostloop control"
    assert "Public Function RunPython(" in extracted["xlwings"]


# --- package ------------------------------------------------------------------------------


def test_package_is_a_macro_enabled_add_in_with_ribbon_and_vba(package):
    types = etree.fromstring(package.read("[Content_Types].xml"))
    overrides = {
        o.get("PartName"): o.get("ContentType") for o in types.iter(f"{{{CT_NS}}}Override")
    }
    assert overrides["/xl/workbook.xml"] == ADDIN_CONTENT_TYPE
    defaults = {d.get("Extension"): d.get("ContentType") for d in types.iter(f"{{{CT_NS}}}Default")}
    assert defaults["bin"] == "application/vnd.ms-office.vbaProject"
    rels = etree.fromstring(package.read("_rels/.rels"))
    targets = {r.get("Type"): r.get("Target") for r in rels.iter(f"{{{REL_NS}}}Relationship")}
    assert targets[UI_RELATIONSHIP] == CUSTOM_UI_PART
    book_rels = etree.fromstring(package.read("xl/_rels/workbook.xml.rels"))
    book_targets = {r.get("Target") for r in book_rels.iter(f"{{{REL_NS}}}Relationship")}
    assert "vbaProject.bin" in book_targets
    workbook = package.read("xl/workbook.xml").decode()
    assert 'codeName="ThisWorkbook"' in workbook
    for name in package.namelist():
        if name.endswith((".xml", ".rels")):
            etree.fromstring(package.read(name))  # every XML part is well-formed


def test_build_is_deterministic(xlam):
    assert build_addin() == build_addin() == xlam.read_bytes()


def test_another_version_gives_another_project_id_and_constant():
    sources = {m.name: m.source for m in addin_sources("9.9.9").modules}
    assert 'COSTLOOP_VERSION As String = "9.9.9"' in sources[RIBBON_MODULE]
    assert project_id("9.9.9") != project_id(__version__)
    with pytest.raises(AddinBuildError, match="cannot be written into VBA"):
        addin_sources('1" & Shell("x')


def test_a_failed_build_leaves_the_existing_file_untouched(tmp_path, monkeypatch):
    target = tmp_path / "costloop.xlam"
    target.write_bytes(b"the add-in already installed")

    def broken(version):
        raise AddinBuildError("xlwings is not installed")

    monkeypatch.setattr(build, "build_addin", broken)
    with pytest.raises(AddinBuildError):
        write_addin(target)
    assert target.read_bytes() == b"the add-in already installed"
    assert [p.name for p in tmp_path.iterdir()] == ["costloop.xlam"]  # no temp file left


def test_missing_xlwings_is_a_clear_message(monkeypatch):
    monkeypatch.setattr(build.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(AddinBuildError, match=r'pip install "costloop\[excel\]"'):
        build_addin()


def test_cli_build_refuses_other_extensions_and_missing_folders(tmp_path, capsys):
    assert main(["addin", "build", "--output", str(tmp_path / "x.xlsm")]) == 2
    assert main(["addin", "build", "--output", str(tmp_path / "no" / "x.xlam")]) == 1
    err = capsys.readouterr().err
    assert "give a .xlam file name" in err and "no such folder" in err


def test_the_python_command_each_button_sends_is_one_call_to_on_button(extracted):
    """Evaluate the VBA string expression for a button and parse the Python it yields."""
    expression = re.search(r"RunPython (.*)\r\n", extracted[RIBBON_MODULE])[1]
    values = {"control.Id": "'CheckRules'", "COSTLOOP_VERSION": repr(__version__)}
    # A VBA string expression: "literal" & name & "literal" ...; '' stays as is.
    pieces = [p.strip() for p in expression.split("&")]
    text = "".join(p[1:-1] if p.startswith('"') else ast.literal_eval(values[p]) for p in pieces)
    assert text == f"import costloop.addin.entry as e; e.on_button('CheckRules', '{__version__}')"
    tree = ast.parse(text)
    assert [type(node).__name__ for node in tree.body] == ["Import", "Expr"]
    call = tree.body[1].value
    assert ast.unparse(call.func) == "e.on_button"
    assert [ast.literal_eval(a) for a in call.args] == ["CheckRules", __version__]
    entry = pytest.importorskip("costloop.addin.entry")
    inspect.signature(entry.on_button).bind(*[ast.literal_eval(a) for a in call.args])


def _record_ids(dir_stream: bytes) -> list[int]:
    ids, at = [], 0
    while at < len(dir_stream):
        record, size = struct.unpack_from("<HI", dir_stream, at)
        ids.append(record)
        at += 6 + (6 if record == 0x0009 else size)  # PROJECTVERSION's size field says 4
    return ids


def _vba_streams(xlam: Path) -> tuple[bytes, list[int]]:
    ole = olefile.OleFileIO(io.BytesIO(zipfile.ZipFile(xlam).read("xl/vbaProject.bin")))
    header = ole.openstream("VBA/_VBA_PROJECT").read()
    return header, _record_ids(
        bytes(decompress_stream(bytearray(ole.openstream("VBA/dir").read())))
    )


def test_layout_matches_the_add_in_xlwings_saved_with_excel(xlam):
    """xlwings ships quickstart_addin_ribbon.xlam, saved by Excel with the same modules
    (its cache removed the same way): our records come in Excel's order."""
    theirs = xlwings_folder() / "quickstart_addin_ribbon.xlam"
    if not theirs.exists():
        pytest.skip(f"this xlwings does not ship {theirs.name}")
    their_header, their_ids = _vba_streams(theirs)
    our_header, our_ids = _vba_streams(xlam)
    assert len(their_header) == len(our_header) == 7
    assert their_header[:5] == our_header[:5] == bytes.fromhex("CC61FFFF00")
    references = {0x0016, 0x003E, 0x000D, 0x000E, 0x002F, 0x0030, 0x0033}

    def layout(ids: list[int]) -> tuple[list[int], list[tuple[int, ...]]]:
        """Project records (references left out: Excel's project also refers to
        MSForms) and each module's records, modules in name-independent order."""
        modules_at = ids.index(0x000F)
        project = [i for i in ids[:modules_at] if i not in references]
        blocks, block = [], []
        for record in ids[modules_at + 2 : -1]:  # after PROJECTMODULES and the cookie
            block.append(record)
            if record == 0x002B:
                blocks.append(tuple(block))
                block = []
        return project + ids[modules_at : modules_at + 2] + ids[-1:], sorted(blocks)

    assert layout(our_ids) == layout(their_ids)
