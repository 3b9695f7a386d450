"""Failures the user can act on are `CostloopError`s, explained and exit-coded by type."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from costloop.cli import main
from costloop.engine.pipeline.commands import exit_code, explain_exception
from costloop.engine.xlsx.parts import PackageError
from costloop.engine.xlsx.write_guard import WriteRefused
from costloop.errors import CostloopError, UsageError, WorkbookError
from costloop.workbooks import demo_path


def _damage_entry(path: Path, entry: str) -> None:
    """Break the local header of one zip entry: the central directory still lists it, so
    the workbook reads, but copying that entry into the written file fails."""
    with zipfile.ZipFile(path) as archive:
        offset = archive.getinfo(entry).header_offset
    data = bytearray(path.read_bytes())
    assert data[offset : offset + 4] == b"PK\x03\x04"
    data[offset : offset + 4] = b"XXXX"
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("command", ["run", "check"])
def test_a_package_error_during_the_write_shows_its_own_message(tmp_path, capsys, command):
    book = tmp_path / "book.xlsx"
    shutil.copyfile(demo_path(), book)
    _damage_entry(book, "xl/theme/theme1.xml")  # never read; copied as it is when written
    before = book.read_bytes()
    code = main([command, str(book)])
    err = capsys.readouterr().err
    assert code == 1
    assert err == (
        f"costloop {command}: the workbook file is damaged (xl/theme/theme1.xml: the zip "
        f"entry's header is damaged); open it in Excel, save it, and run again — nothing was "
        f"changed\n"
    )
    assert "unexpected" not in err
    assert book.read_bytes() == before


def test_failures_are_explained_by_type_not_by_class_name():
    class LockedByAnotherTool(WriteRefused):  # a subclass, by any name: still a refusal
        pass

    class LookAlike(Exception):  # named like a refusal, but not one
        pass

    LookAlike.__name__ = "WriteRefused"
    assert explain_exception(LockedByAnotherTool("book.xlsx: open in Excel")) == (
        "book.xlsx: open in Excel"
    )
    assert explain_exception(LookAlike("no")) is None
    assert explain_exception(PackageError("x.xml: broken")) == (
        "the workbook file is damaged (x.xml: broken); open it in Excel, save it, and run "
        "again — nothing was changed"
    )
    assert explain_exception(KeyError("Bills")) is None  # a bug: "unexpected error"
    assert isinstance(PackageError("x"), WorkbookError)


def test_exit_codes_come_from_the_error_type():
    assert exit_code(UsageError("--period 13")) == 2
    assert exit_code(WriteRefused("locked")) == 1
    assert exit_code(CostloopError("anything we expected")) == 1
    assert exit_code(RuntimeError("a bug")) == 1


def test_a_usage_error_exits_2_with_its_message(tmp_path, capsys):
    missing = tmp_path / "nowhere.xlsx"
    assert main(["run", str(missing)]) == 2
    assert capsys.readouterr().err == f"costloop run: {missing}: no such file\n"
