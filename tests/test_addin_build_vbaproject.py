"""The VBA project writer on its own: the PROJECT properties' obfuscation against bytes
Excel wrote, a small project read back by olevba, and the refusals."""

from __future__ import annotations

import io
import warnings

import olefile
import pytest

from costloop.addin.vbaproject import (
    Module,
    ModuleKind,
    VbaProjectError,
    build_vba_project,
    class_module_from_export,
    decrypt_property,
    document_module,
    encrypt_property,
)

with warnings.catch_warnings():  # oletools uses pyparsing names that now warn on import
    warnings.simplefilter("ignore", DeprecationWarning)
    from oletools.olevba import VBA_Parser

PID = "{318BEE36-5BE1-492A-826D-473DB19B0F30}"


def test_decrypts_the_protection_fields_excel_wrote():
    # CMG / DPB / GC of an unprotected, visible project saved by Excel (xlwings'
    # quickstart add-in), with the project id above.
    assert decrypt_property(PID, bytes.fromhex("5D5F8AADDAA8DEA8DEA8DEA8DE")) == bytes(4)
    assert decrypt_property(PID, bytes.fromhex("5D5F8AADDAADDBADDBAD")) == b"\x00"
    assert decrypt_property(PID, bytes.fromhex("5D5F8AADDAADDBADDB52")) == b"\xff"


@pytest.mark.parametrize("seed", [0x00, 0x02, 0x04, 0x06, 0x5D, 0xFF])
def test_encryption_round_trips_for_every_ignored_length(seed):
    for data in (b"\x00", b"\xff", bytes(4), b"secret\x00"):
        blob = encrypt_property(PID, data, seed)
        assert len(blob) == 3 + (seed & 6) // 2 + 4 + len(data)
        assert decrypt_property(PID, blob) == data


def test_a_wrong_project_id_is_detected():
    blob = encrypt_property(PID, b"\xff", 0x33)
    with pytest.raises(VbaProjectError, match="key does not match"):
        decrypt_property("{00000000-0000-0000-0000-000000000000}", blob)


def _module(name: str, body: str = "") -> Module:
    return Module(name, f'Attribute VB_Name = "{name}"\n{body}')


def test_a_small_project_reads_back_through_olevba(tmp_path):
    modules = [
        _module("Billing", 'Public Sub Bill()\n    MsgBox "é ok in cp1252"\nEnd Sub\n'),
        class_module_from_export(
            'VERSION 1.0 CLASS\nBEGIN\n  MultiUse = -1  \'True\nEND\nAttribute VB_Name = "Ledger"\n'
            "Attribute VB_GlobalNameSpace = False\nAttribute VB_Creatable = False\n"
            "Attribute VB_PredeclaredId = False\nAttribute VB_Exposed = False\n"
            "Public Total As Currency\n"
        ),
    ]
    data = build_vba_project("Books", "{11111111-2222-3333-4444-555555555555}", modules)
    path = tmp_path / "vbaProject.bin"
    path.write_bytes(data)
    parser = VBA_Parser(str(path))
    try:
        found = {p.split("/")[-1]: code for _, p, _, code in parser.extract_macros()}
    finally:
        parser.close()
    assert found["Billing"] == (
        'Attribute VB_Name = "Billing"\r\nPublic Sub Bill()\r\n'
        '    MsgBox "é ok in cp1252"\r\nEnd Sub\r\n'
    )
    assert found["Ledger"].startswith(
        'Attribute VB_Name = "Ledger"\r\n'
        'Attribute VB_Base = "0{FCFB3D2A-A0FA-1068-A738-08002B3371B5}"\r\n'
    )
    assert (
        "Attribute VB_TemplateDerived = False\r\nAttribute VB_Customizable = False"
        in (found["Ledger"])
    )
    project = olefile.OleFileIO(io.BytesIO(data)).openstream("PROJECT").read().decode("cp1252")
    assert "Module=Billing\r\nClass=Ledger\r\n" in project


@pytest.mark.parametrize(
    ("modules", "message"),
    [
        ([_module("Bad Name")], "not a valid VBA name"),
        ([_module("A"), _module("a")], "two modules are named"),
        ([Module("A", "Option Explicit\n")], 'must start with\nAttribute VB_Name = "A"'),
        ([_module("A", "' 日本\n")], "outside code page 1252"),
    ],
)
def test_refusals(modules, message):
    with pytest.raises(VbaProjectError) as caught:
        build_vba_project("Books", "{11111111-2222-3333-4444-555555555555}", modules)
    assert message.replace("\n", " ") in str(caught.value)


def test_kinds_of_document_modules_are_listed_as_documents():
    data = build_vba_project(
        "Books",
        "{11111111-2222-3333-4444-555555555555}",
        [document_module("ThisWorkbook", ModuleKind.WORKBOOK)],
    )
    project = olefile.OleFileIO(io.BytesIO(data)).openstream("PROJECT").read()
    assert b"Document=ThisWorkbook/&H00000000\r\n" in project


@pytest.mark.parametrize(
    ("export", "message"),
    [
        ('VERSION 1.0 CLASS\nBEGIN\nAttribute VB_Name = "C"\n', "no END"),
        ('Attribute VB_Name = "C"\nPublic X\n', "no Attribute VB_Exposed"),
        ("Public X\n", "no Attribute VB_Name"),
    ],
)
def test_a_class_export_not_as_the_vbe_writes_it_is_refused_by_name(export, message):
    # Dictionary.cls comes from the installed xlwings: a changed file must be a build
    # error the command line reports, not a StopIteration traceback.
    with pytest.raises(VbaProjectError, match=message):
        class_module_from_export(export)
