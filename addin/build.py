"""Build `costloop.xlam` from the text sources in this package and the installed xlwings.

The add-in's VBA project holds:
- `CostloopRibbon` (vba/CostloopRibbon.bas): the ribbon callbacks, with costloop's
  version written in at build time;
- `xlwings`: xlwings' own VBA for custom add-ins (BSD licence), taken from the installed
  xlwings so the VBA always matches the Python package it calls, with its project name
  set to `costloop` (so it reads its settings from `costloop.conf`, not another add-in's)
  and its workbook-level settings taken out (`harden_xlwings`): the add-in is trusted
  code that runs for every workbook the user opens, so nothing in a workbook — a
  `costloop.conf` sheet, a `costloop.conf` file beside it, `.py` sheets, the folder it
  was saved in — may choose the program it starts or the code that program imports;
- `Dictionary`: the Scripting.Dictionary stand-in xlwings' VBA needs on macOS (MIT
  licence, shipped with xlwings);
- the document modules Excel keeps behind the workbook and its one sheet.
"""

from __future__ import annotations

import importlib.util
import os
import re
import tempfile
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from costloop import __version__
from costloop.addin.vbaproject import (
    Module,
    ModuleKind,
    build_vba_project,
    class_module_from_export,
    document_module,
)
from costloop.addin.xlam import build_xlam
from costloop.errors import AddinError

CONFIG_NAME = "costloop"  # xlwings' PROJECT_NAME: the add-in reads costloop.conf
VBA_PROJECT_NAME = "CostloopAddin"
RIBBON_MODULE = "CostloopRibbon"
VERSION_PLACEHOLDER = "@COSTLOOP_VERSION@"
SHEET_NAME = "costloop"

_XLWINGS_PROJECT_LINE = re.compile(r'^Public Const PROJECT_NAME As String = "[^"]*"$', re.M)


class AddinBuildError(AddinError):
    """The add-in cannot be built (xlwings missing, a source file not as expected)."""


@dataclass(frozen=True)
class AddinSources:
    """Everything the add-in is made of, as text, before it is packed."""

    version: str
    custom_ui: str
    modules: tuple[Module, ...]


def _package_text(relative: str) -> str:
    data = resources.files("costloop.addin").joinpath(relative).read_bytes()
    return data.decode("utf-8")


def xlwings_folder() -> Path:
    """The installed xlwings package folder (found without importing xlwings)."""
    spec = importlib.util.find_spec("xlwings")
    if spec is None or not spec.submodule_search_locations:
        raise AddinBuildError(
            "xlwings is not installed, and the add-in's VBA comes from it: "
            'run  pip install "costloop[excel]"  and build again'
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("cp1252")
    except FileNotFoundError:
        raise AddinBuildError(
            f"{path} is missing from the installed xlwings; reinstall it "
            "(pip install --force-reinstall xlwings)"
        ) from None


def xlwings_module(folder: Path) -> Module:
    """xlwings' VBA module for custom add-ins, with its project name set to costloop and
    no setting read from a workbook."""
    path = folder / "xlwings_custom_addin.bas"
    text = _read_text(path)
    text, count = _XLWINGS_PROJECT_LINE.subn(
        f'Public Const PROJECT_NAME As String = "{CONFIG_NAME}"', text.replace("\r\n", "\n")
    )
    if count != 1:
        raise AddinBuildError(
            f"{path}: expected one 'Public Const PROJECT_NAME' line, found {count}; "
            "this xlwings version is not supported by the add-in build"
        )
    return Module("xlwings", harden_xlwings(text, path), ModuleKind.STANDARD)


# xlwings' GetConfig looks in the active workbook's "costloop.conf" sheet, then the add-in's
# own, then a costloop.conf file beside the active workbook, then the user's file. Only
# the user's file (written by `costloop addin install`) and the defaults are kept.
_GET_CONFIG = re.compile(
    r"^Function GetConfig\(configKey As String, .*?^End Function\n", re.M | re.S
)
TRUSTED_GET_CONFIG = (
    (
        'Function GetConfig(configKey As String, Optional default As String = "", '
        'Optional source As String = "") As Variant\n'
    )
    + """\
    ' costloop: settings come only from the user's own costloop.conf (written by
    ' `costloop addin install`) and the defaults. xlwings also reads a "costloop.conf"
    ' sheet of the active workbook and a costloop.conf file beside it: a workbook
    ' received by email could point the add-in at another program. Not here.
    Dim configValue As String

    If source = "" Or source = "user" Then
        If FileExists(GetConfigFilePath()) = True Then
            If GetConfigFromFile(GetConfigFilePath(), configKey, configValue) Then
                GetConfig = configValue
                GetConfig = ExpandEnvironmentStrings(GetConfig)
                Exit Function
            End If
        End If
    End If

    GetConfig = default
    GetConfig = ExpandEnvironmentStrings(GetConfig)

End Function
"""
)
# The readers of a workbook's settings, left without callers: removed whole.
_SHEET_CONFIG = re.compile(
    r'^#If App = "Microsoft Excel" Then\nFunction GetConfigFromSheet\(wb As Workbook\)\n'
    r".*?^End Function\n#End If\n\n?",
    re.M | re.S,
)
_DIRECTORY_CONFIG = re.compile(
    r"^Function GetDirectoryConfigFilePath\(\) As String\n.*?^End Function\n\n?", re.M | re.S
)
# RunPython runs the code of a workbook's ".py" sheets (xlwings PRO's embedded code) and
# puts the workbook's folder first on Python's path, where a costloop.py beside a
# downloaded workbook would be imported instead of costloop.
_EMBEDDED_CODE = re.compile(
    r"^    ' Check for embedded Python code\n    uses_embedded_code = False\n"
    r"    For i = 1 To 2\n.*?^    Next i\n",
    re.M | re.S,
)
# ImportPythonUDFs likewise takes a workbook's ".py" sheets as modules to import.
_EMBEDDED_UDFS = re.compile(
    r"^    ' Automatically add embedded code sheets\n    For Each sht In wb.Worksheets\n"
    r".*?^    Next\n",
    re.M | re.S,
)
NO_EMBEDDED_UDFS = "    ' costloop: a workbook's \".py\" sheets are never imported\n"
NO_EMBEDDED_CODE = (
    "    ' costloop: a workbook's \".py\" sheets are never run by the add-in\n"
    "    uses_embedded_code = False\n"
)
_WORKBOOK_ON_PATH = re.compile(r'GetConfig\("ADD_WORKBOOK_TO_PYTHONPATH", "true"\)')
NOT_ON_PATH = "\"false\" ' costloop: the workbook's folder is never on Python's path"


def harden_xlwings(text: str, source: Path | str = "xlwings_custom_addin.bas") -> str:
    """xlwings' VBA with every setting a workbook could give taken out (see the module
    docstring); an xlwings whose VBA does not read as expected fails the build rather
    than ship an add-in a workbook could redirect."""
    for pattern, replacement, what in (
        (_GET_CONFIG, TRUSTED_GET_CONFIG, "Function GetConfig"),
        (_SHEET_CONFIG, "", "Function GetConfigFromSheet"),
        (_DIRECTORY_CONFIG, "", "Function GetDirectoryConfigFilePath"),
        (_EMBEDDED_CODE, NO_EMBEDDED_CODE, "RunPython's embedded-code check"),
        (_EMBEDDED_UDFS, NO_EMBEDDED_UDFS, "GetUdfModules' embedded-code sheets"),
    ):
        text, count = pattern.subn(lambda _m, r=replacement: r, text)
        if count != 1:
            raise AddinBuildError(
                f"{source}: expected one {what}, found {count}; this xlwings version is "
                "not supported by the add-in build"
            )
    text, count = _WORKBOOK_ON_PATH.subn(NOT_ON_PATH, text)
    if count == 0:
        raise AddinBuildError(
            f"{source}: no ADD_WORKBOOK_TO_PYTHONPATH setting found; this xlwings version "
            "is not supported by the add-in build"
        )
    return text


def ribbon_module(version: str) -> Module:
    """The ribbon callbacks, with `version` written into COSTLOOP_VERSION."""
    if not re.fullmatch(r"[0-9A-Za-z.+!_-]+", version):
        raise AddinBuildError(f"version {version!r} cannot be written into VBA")
    text = _package_text(f"vba/{RIBBON_MODULE}.bas")
    if text.count(VERSION_PLACEHOLDER) != 1:
        raise AddinBuildError(f"vba/{RIBBON_MODULE}.bas must hold {VERSION_PLACEHOLDER} once")
    return Module(RIBBON_MODULE, text.replace(VERSION_PLACEHOLDER, version), ModuleKind.STANDARD)


def addin_sources(version: str = __version__) -> AddinSources:
    """Gather the ribbon XML and every VBA module of the add-in."""
    folder = xlwings_folder()
    modules = (
        document_module("ThisWorkbook", ModuleKind.WORKBOOK),
        document_module("Sheet1", ModuleKind.WORKSHEET),
        ribbon_module(version),
        xlwings_module(folder),
        class_module_from_export(_read_text(folder / "addin" / "Dictionary.cls")),
    )
    return AddinSources(version, _package_text("ribbon/customUI.xml"), modules)


def project_id(version: str) -> str:
    """A project GUID fixed per costloop version, so a build is reproducible."""
    guid = uuid.uuid5(uuid.NAMESPACE_URL, f"urn:costloop:addin:{version}")
    return "{" + str(guid).upper() + "}"


def build_addin(version: str = __version__) -> bytes:
    """Return the bytes of costloop.xlam for this costloop version."""
    sources = addin_sources(version)
    vba = build_vba_project(VBA_PROJECT_NAME, project_id(version), list(sources.modules))
    return build_xlam(
        custom_ui=sources.custom_ui.encode("utf-8"),
        vba_project=vba,
        title=f"costloop {version} Excel add-in",
        sheet_name=SHEET_NAME,
        sheet_lines=[
            f"costloop {version} Excel add-in: the Chargeback ribbon tab.",
            "Built by `costloop addin build`; installed by `costloop addin install`.",
        ],
    )


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_addin(output: Path, version: str = __version__) -> Path:
    """Build the add-in and write it to `output` whole or not at all."""
    data = build_addin(version)
    output = Path(output)
    folder = output.parent if str(output.parent) else Path(".")
    if not folder.is_dir():
        raise AddinBuildError(f"{folder}: no such folder for the add-in")
    # Write beside the target, then rename: an interrupted build leaves the old file.
    handle, temp = tempfile.mkstemp(prefix=".costloop-addin-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.chmod(temp, 0o666 & ~_umask())  # mkstemp makes it owner-only; use the usual mode
        os.replace(temp, output)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return output
