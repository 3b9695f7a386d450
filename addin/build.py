"""Build `costloop.xlam` from the text sources in this package and the installed xlwings.

The add-in's VBA project holds:
- `CostloopRibbon` (vba/CostloopRibbon.bas): the ribbon callbacks, with costloop's
  version written in at build time;
- `xlwings`: xlwings' own VBA for custom add-ins (BSD licence), taken from the installed
  xlwings so the VBA always matches the Python package it calls, with its project name
  set to `costloop` (so it reads its settings from `costloop.conf`, not another add-in's);
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
            "run  pip install 'costloop[excel]'  and build again"
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
    """xlwings' VBA module for custom add-ins, with its project name set to costloop."""
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
    return Module("xlwings", text, ModuleKind.STANDARD)


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
