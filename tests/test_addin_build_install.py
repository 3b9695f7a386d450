"""`costloop addin install`: the add-in goes to Excel's startup folder and the add-in's
settings file names this Python. Windows and macOS are exercised through the platform,
home and environment parameters (they only decide paths); on Linux it refuses clearly."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from costloop.addin.build import build_addin
from costloop.addin.install import (
    ADDIN_FILE,
    ExcelNotHere,
    config_file,
    install_addin,
    startup_folder,
    xlwings_applescript,
)
from costloop.cli import main


def test_windows_goes_to_xlstart_and_sets_interpreter_win(tmp_path):
    env = {"APPDATA": str(tmp_path / "Roaming"), "USERPROFILE": str(tmp_path / "me")}
    python = r"C:\Users\me\AppData\Local\Programs\Python\Python311\python.exe"
    done = install_addin(platform="win32", home=tmp_path, env=env, interpreter=python)
    assert done.addin == tmp_path / "Roaming" / "Microsoft" / "Excel" / "XLSTART" / ADDIN_FILE
    assert done.addin.read_bytes() == build_addin()
    # Where xlwings' VBA looks with PROJECT_NAME "costloop": %USERPROFILE%\.costloop\
    assert done.config == tmp_path / "me" / ".costloop" / "costloop.conf"
    assert done.applescript is None
    assert done.config.read_bytes() == f'"INTERPRETER_WIN","{python}"\r\n'.encode("cp1252")


def test_macos_goes_to_the_office_startup_folder_and_sets_interpreter_mac(tmp_path):
    python = "/Users/me/.venvs/costloop/bin/python"
    done = install_addin(platform="darwin", home=tmp_path, env={}, interpreter=python)
    startup = "Library/Group Containers/UBF8T346G9.Office/User Content/Startup/Excel"
    assert done.addin == tmp_path / startup / ADDIN_FILE
    assert done.addin.read_bytes() == build_addin()
    # Excel is sandboxed on macOS; xlwings' VBA reads $HOME inside the container.
    assert done.config == tmp_path / "Library/Containers/com.microsoft.Excel/Data/costloop.conf"
    assert done.config.read_text() == f'"INTERPRETER_MAC","{python}"\n'
    # xlwings' VBA runs Python through its AppleScript, from Excel's own scripts folder.
    script = xlwings_applescript()
    assert done.applescript == tmp_path / "Library/Application Scripts/com.microsoft.Excel" / (
        script.name
    )
    assert done.applescript.read_bytes() == script.read_bytes()


def test_reinstalling_keeps_other_settings_and_replaces_the_interpreter(tmp_path):
    config = config_file("darwin", tmp_path, {})
    config.parent.mkdir(parents=True)
    config.write_text('"INTERPRETER_MAC","/old/python"\n"SHOW CONSOLE","True"\n')
    install_addin(platform="darwin", home=tmp_path, env={}, interpreter="/new/python")
    assert config.read_text() == '"SHOW CONSOLE","True"\n"INTERPRETER_MAC","/new/python"\n'


def test_an_explicit_folder_wins(tmp_path):
    done = install_addin(
        platform="win32", home=tmp_path, env={}, interpreter="python", folder=tmp_path / "addins"
    )
    assert done.addin == tmp_path / "addins" / ADDIN_FILE
    assert done.config == tmp_path / ".costloop" / "costloop.conf"  # no USERPROFILE: home


def test_windows_without_appdata_uses_the_roaming_folder_under_home(tmp_path):
    folder = startup_folder("win32", tmp_path, {})
    assert folder == tmp_path / "AppData" / "Roaming" / "Microsoft" / "Excel" / "XLSTART"


def test_linux_says_where_it_would_go_and_writes_nothing(tmp_path):
    with pytest.raises(ExcelNotHere) as caught:
        install_addin(platform="linux", home=tmp_path, env={}, interpreter="python")
    message = str(caught.value)
    assert "Excel does not run on this system" in message
    assert r"%APPDATA%\Microsoft\Excel\XLSTART" in message
    assert "UBF8T346G9.Office/User Content/Startup/Excel" in message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(sys.platform != "linux", reason="the command's Linux answer")
def test_cli_install_on_linux_exits_1_with_the_explanation(capsys):
    assert main(["addin", "install"]) == 1
    assert "Excel does not run on this system" in capsys.readouterr().err


def test_a_quote_in_the_interpreter_path_is_refused(tmp_path):
    with pytest.raises(ValueError, match="double quote"):
        install_addin(platform="darwin", home=tmp_path, env={}, interpreter='/a"b/python')
    assert list(tmp_path.iterdir()) == []  # refused before anything was written


def test_cli_build_writes_the_same_bytes_as_the_library(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["addin", "build"]) == 0
    assert (tmp_path / "costloop.xlam").read_bytes() == build_addin()
    assert "costloop.xlam" in capsys.readouterr().out
