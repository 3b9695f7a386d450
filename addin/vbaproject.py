"""A VBA project (`xl/vbaProject.bin`) built from module source text (MS-OVBA).

The project storage holds: `PROJECT` (the text project properties), `PROJECTwm`
(module names in both encodings), `VBA/dir` (the compressed binary project
information: references and the module list), `VBA/_VBA_PROJECT` and one stream per
module holding its compressed source. `_VBA_PROJECT` carries version 0xFFFF and no
performance cache and every module's source starts at offset 0: there is no compiled
p-code, so Office compiles the project from its source when it first loads it, and the
file works in any Office version and bitness.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from costloop.addin.cfb import write_compound_file
from costloop.addin.ovba_compression import compress
from costloop.errors import AddinError

CODE_PAGE = 1252
ENCODING = "cp1252"
LCID = 0x0409  # English - United States: the locale VBA's own identifiers are in

_WORKBOOK_BASE = "0{00020819-0000-0000-C000-000000000046}"
_WORKSHEET_BASE = "0{00020820-0000-0000-C000-000000000046}"
_CLASS_BASE = "0{FCFB3D2A-A0FA-1068-A738-08002B3371B5}"
_HOST_EXTENDER = "&H00000001={3832D640-CF90-11CF-8E43-00A0C911005A};VBE;&H00000000"


class ModuleKind(Enum):
    STANDARD = "standard"  # a .bas module
    CLASS = "class"  # a .cls module
    WORKBOOK = "workbook"  # the document module behind the workbook (ThisWorkbook)
    WORKSHEET = "worksheet"  # the document module behind a worksheet


@dataclass(frozen=True)
class Module:
    """One VBA module: its name and its stored source text (attribute lines included)."""

    name: str
    source: str
    kind: ModuleKind = ModuleKind.STANDARD


@dataclass(frozen=True)
class Reference:
    """A registered type library the project refers to, by its LibidReference string."""

    name: str
    libid: str


# The references Excel gives every new project besides VBA and Excel themselves:
# OLE Automation, and the Office library, which declares IRibbonControl.
OLE_AUTOMATION = Reference(
    "stdole",
    r"*\G{00020430-0000-0000-C000-000000000046}#2.0#0#C:\Windows\System32\stdole2.tlb"
    "#OLE Automation",
)
OFFICE = Reference(
    "Office",
    r"*\G{2DF8D04C-5BFA-101B-BDE5-00AA0044DE52}#2.0#0"
    r"#C:\Program Files\Common Files\Microsoft Shared\OFFICE16\MSO.DLL"
    "#Microsoft Office 16.0 Object Library",
)


class VbaProjectError(AddinError, ValueError):
    """The modules cannot form a VBA project (bad name, text outside the code page)."""


def _mbcs(text: str, what: str) -> bytes:
    try:
        return text.encode(ENCODING)
    except UnicodeEncodeError as exc:
        raise VbaProjectError(
            f"{what}: character {text[exc.start]!r} is outside code page {CODE_PAGE}"
        ) from exc


def _crlf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n")


def document_module(name: str, kind: ModuleKind) -> Module:
    """The empty document module Excel keeps behind the workbook or a worksheet."""
    base = _WORKBOOK_BASE if kind is ModuleKind.WORKBOOK else _WORKSHEET_BASE
    lines = [
        f'Attribute VB_Name = "{name}"',
        f'Attribute VB_Base = "{base}"',
        "Attribute VB_GlobalNameSpace = False",
        "Attribute VB_Creatable = False",
        "Attribute VB_PredeclaredId = True",
        "Attribute VB_Exposed = True",
        "Attribute VB_TemplateDerived = False",
        "Attribute VB_Customizable = True",
    ]
    return Module(name, "\r\n".join(lines) + "\r\n", kind)


def class_module_from_export(text: str) -> Module:
    """A class module from a VBE export (.cls), stored the way the VBE stores it.

    An export starts with a `VERSION 1.0 CLASS` / `BEGIN` ... `END` header that is not
    part of the stored source; the stored source names the class base and two more
    attributes the export leaves out.
    """
    lines = _crlf(text).split("\r\n")
    if lines and lines[0].startswith("VERSION "):
        if "END" not in lines:
            raise VbaProjectError("a class module export has no END after its VERSION header")
        lines = lines[lines.index("END") + 1 :]
    name_line = _first_line(lines, "Attribute VB_Name")
    name = lines[name_line].split("=", 1)[1].strip().strip('"')
    lines.insert(name_line + 1, f'Attribute VB_Base = "{_CLASS_BASE}"')
    exposed = _first_line(lines, "Attribute VB_Exposed")
    lines[exposed + 1 : exposed + 1] = [
        "Attribute VB_TemplateDerived = False",
        "Attribute VB_Customizable = False",
    ]
    return Module(name, "\r\n".join(lines), ModuleKind.CLASS)


def _first_line(lines: list[str], start: str) -> int:
    for index, line in enumerate(lines):
        if line.startswith(start):
            return index
    raise VbaProjectError(f"a class module export has no {start} line")


# --- the encrypted PROJECT properties (MS-OVBA 2.4.3) ---------------------------------


def encrypt_property(project_id: str, data: bytes, seed: int) -> bytes:
    """Obfuscate `data` as Data Encryption does; `seed` fixed keeps the build reproducible."""
    version = 2
    proj_key = sum(_mbcs(project_id, "project id")) & 0xFF
    out = bytearray([seed, seed ^ version, seed ^ proj_key])
    unencrypted1, encrypted1, encrypted2 = proj_key, out[2], out[1]

    def put(byte: int) -> None:
        nonlocal unencrypted1, encrypted1, encrypted2
        enc = byte ^ ((encrypted2 + unencrypted1) & 0xFF)
        out.append(enc)
        encrypted2, encrypted1, unencrypted1 = encrypted1, enc, byte

    for _ in range((seed & 6) // 2):
        put(0)  # the ignored bytes may be anything; zero keeps the output fixed
    for byte in struct.pack("<I", len(data)) + data:
        put(byte)
    return bytes(out)


def decrypt_property(project_id: str, blob: bytes) -> bytes:
    """The inverse of encrypt_property (used to check the PROJECT stream)."""
    seed, version_enc, proj_key_enc = blob[0], blob[1], blob[2]
    if seed ^ version_enc != 2:
        raise VbaProjectError("encrypted property: version is not 2")
    proj_key = seed ^ proj_key_enc
    if proj_key != sum(_mbcs(project_id, "project id")) & 0xFF:
        raise VbaProjectError("encrypted property: key does not match the project id")
    unencrypted1, encrypted1, encrypted2 = proj_key, proj_key_enc, version_enc
    plain = bytearray()
    for enc in blob[3:]:
        byte = enc ^ ((encrypted2 + unencrypted1) & 0xFF)
        plain.append(byte)
        encrypted2, encrypted1, unencrypted1 = encrypted1, enc, byte
    ignored = (seed & 6) // 2
    length = struct.unpack("<I", plain[ignored : ignored + 4])[0]
    return bytes(plain[ignored + 4 : ignored + 4 + length])


# --- the streams -------------------------------------------------------------------------


def _record(record_id: int, payload: bytes) -> bytes:
    return struct.pack("<HI", record_id, len(payload)) + payload


def _text_record(record_id: int, unicode_id: int, text: str, what: str) -> bytes:
    """A record in MBCS followed by its Unicode twin (name, doc string, help file...)."""
    return _record(record_id, _mbcs(text, what)) + _record(unicode_id, text.encode("utf-16-le"))


def _dir_stream(project_name: str, modules: list[Module], references: list[Reference]) -> bytes:
    out = bytearray()
    out += _record(0x0001, struct.pack("<I", 1))  # PROJECTSYSKIND: 32-bit Windows
    out += _record(0x0002, struct.pack("<I", LCID))  # PROJECTLCID
    out += _record(0x0014, struct.pack("<I", LCID))  # PROJECTLCIDINVOKE
    out += _record(0x0003, struct.pack("<H", CODE_PAGE))  # PROJECTCODEPAGE
    out += _record(0x0004, _mbcs(project_name, "project name"))  # PROJECTNAME
    out += _text_record(0x0005, 0x0040, "", "doc string")  # PROJECTDOCSTRING
    out += _text_record(0x0006, 0x003D, "", "help file")  # PROJECTHELPFILEPATH (twice)
    out += _record(0x0007, struct.pack("<I", 0))  # PROJECTHELPCONTEXT
    out += _record(0x0008, struct.pack("<I", 0))  # PROJECTLIBFLAGS
    # PROJECTVERSION: its size field is the constant 4 although six bytes follow.
    out += struct.pack("<HIIH", 0x0009, 4, 1, 0)
    out += _text_record(0x000C, 0x003C, "", "constants")  # PROJECTCONSTANTS
    for ref in references:
        out += _text_record(0x0016, 0x003E, ref.name, "reference name")  # REFERENCENAME
        libid = _mbcs(ref.libid, f"reference {ref.name}")
        out += _record(0x000D, struct.pack("<I", len(libid)) + libid + b"\x00" * 6)
    out += _record(0x000F, struct.pack("<H", len(modules)))  # PROJECTMODULES
    out += _record(0x0013, struct.pack("<H", 0xFFFF))  # PROJECTCOOKIE
    for module in modules:
        out += _record(0x0019, _mbcs(module.name, "module name"))  # MODULENAME
        out += _record(0x0047, module.name.encode("utf-16-le"))  # MODULENAMEUNICODE
        out += _text_record(0x001A, 0x0032, module.name, "module name")  # MODULESTREAMNAME
        out += _text_record(0x001C, 0x0048, "", "module doc string")  # MODULEDOCSTRING
        out += _record(0x0031, struct.pack("<I", 0))  # MODULEOFFSET: source at 0, no p-code
        out += _record(0x001E, struct.pack("<I", 0))  # MODULEHELPCONTEXT
        out += _record(0x002C, struct.pack("<H", 0xFFFF))  # MODULECOOKIE
        procedural = module.kind is ModuleKind.STANDARD
        out += _record(0x0021 if procedural else 0x0022, b"")  # MODULETYPE
        out += _record(0x002B, b"")  # module terminator
    out += _record(0x0010, b"")  # dir terminator
    return bytes(out)


def _project_stream(project_name: str, project_id: str, modules: list[Module]) -> bytes:
    lines = [f'ID="{project_id}"']
    for module in modules:
        if module.kind in (ModuleKind.WORKBOOK, ModuleKind.WORKSHEET):
            lines.append(f"Document={module.name}/&H00000000")
        elif module.kind is ModuleKind.CLASS:
            lines.append(f"Class={module.name}")
        else:
            lines.append(f"Module={module.name}")
    # Fixed seeds: each property's bytes depend only on the project id.
    cmg = encrypt_property(project_id, b"\x00\x00\x00\x00", seed=0x11)  # not protected
    dpb = encrypt_property(project_id, b"\x00", seed=0x22)  # no password
    gc = encrypt_property(project_id, b"\xff", seed=0x33)  # visible
    lines += [
        f'Name="{project_name}"',
        'HelpContextID="0"',
        'VersionCompatible32="393222000"',
        f'CMG="{cmg.hex().upper()}"',
        f'DPB="{dpb.hex().upper()}"',
        f'GC="{gc.hex().upper()}"',
        "",
        "[Host Extender Info]",
        _HOST_EXTENDER,
        "",
    ]
    return _mbcs("\r\n".join(lines) + "\r\n", "PROJECT stream")


def _projectwm_stream(modules: list[Module]) -> bytes:
    out = bytearray()
    for module in modules:
        out += _mbcs(module.name, "module name") + b"\x00"
        out += module.name.encode("utf-16-le") + b"\x00\x00"
    return bytes(out + b"\x00\x00")


def _check_names(project_name: str, modules: list[Module]) -> None:
    for name in [project_name, *(m.name for m in modules)]:
        if not (name.isidentifier() and name.isascii() and len(name) <= 31):
            raise VbaProjectError(
                f"{name!r} is not a valid VBA name (letters, digits, _; 31 at most)"
            )
    seen: set[str] = set()
    for module in modules:
        if module.name.upper() in seen:
            raise VbaProjectError(f"two modules are named {module.name!r} (names ignore case)")
        seen.add(module.name.upper())
        if f'Attribute VB_Name = "{module.name}"' not in module.source.split("\r\n", 1)[0]:
            raise VbaProjectError(
                f"module {module.name}: its source must start with "
                f'Attribute VB_Name = "{module.name}"'
            )


def build_vba_project(
    project_name: str,
    project_id: str,
    modules: Sequence[Module],
    references: Sequence[Reference] = (OLE_AUTOMATION, OFFICE),
) -> bytes:
    """Return the bytes of a vbaProject.bin holding `modules`, compiled by Office on load."""
    modules = [Module(m.name, _crlf(m.source), m.kind) for m in modules]
    _check_names(project_name, modules)
    streams = {
        "PROJECT": _project_stream(project_name, project_id, modules),
        "PROJECTwm": _projectwm_stream(modules),
        # Reserved1 0x61CC, Version 0xFFFF (no performance cache), Reserved2, Reserved3.
        "VBA/_VBA_PROJECT": struct.pack("<HHBH", 0x61CC, 0xFFFF, 0x00, 0x0000),
        "VBA/dir": compress(_dir_stream(project_name, modules, list(references))),
    }
    for module in modules:
        streams[f"VBA/{module.name}"] = compress(_mbcs(module.source, f"module {module.name}"))
    return write_compound_file(streams)
