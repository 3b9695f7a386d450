"""Put costloop.xlam where Excel loads add-ins, and tell it which Python to run.

Excel opens every file in its startup folder when it starts; an .xlam there loads as an
add-in for every workbook. The add-in's VBA (xlwings', with project name `costloop`)
reads its settings from `costloop.conf` in the user's folder, so that is where the
interpreter goes: the Python running this command, which has costloop installed.
It is a file of its own, so the user's other xlwings add-ins keep their settings.
On macOS, xlwings' VBA starts Python through an AppleScript that Excel's sandbox only
runs from its own scripts folder, so that script is copied there too (what
`xlwings runpython install` does).

Excel does not run on Linux; there `install_addin` raises ExcelNotHere naming where
the files would go on Windows and macOS. Platform, home folder, environment and target
folder are parameters, so every branch can be exercised on any machine.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from costloop.addin.build import CONFIG_NAME, AddinBuildError, write_addin, xlwings_folder
from costloop.errors import AddinError

ADDIN_FILE = "costloop.xlam"
MAC_STARTUP = "Library/Group Containers/UBF8T346G9.Office/User Content/Startup/Excel"
# Excel on macOS is sandboxed: xlwings' VBA resolves $HOME to the container's data folder.
MAC_CONFIG_FOLDER = "Library/Containers/com.microsoft.Excel/Data"
MAC_SCRIPTS = "Library/Application Scripts/com.microsoft.Excel"


class ExcelNotHere(AddinError):
    """This platform has no desktop Excel to install into."""


@dataclass(frozen=True)
class Installed:
    """Where the add-in and its settings were written."""

    addin: Path
    config: Path
    interpreter: str
    applescript: Path | None = None  # macOS only


def _windows(platform: str) -> bool:
    return platform.startswith("win")


def _mac(platform: str) -> bool:
    return platform == "darwin"


def startup_folder(platform: str, home: Path, env: Mapping[str, str]) -> Path:
    """Excel's per-user startup folder on this platform."""
    if _windows(platform):
        appdata = env.get("APPDATA")
        base = Path(appdata) if appdata else home / "AppData" / "Roaming"
        return base / "Microsoft" / "Excel" / "XLSTART"
    if _mac(platform):
        return home / MAC_STARTUP
    raise ExcelNotHere(
        "Excel does not run on this system, so there is nowhere to install the add-in. "
        "Build it with `costloop addin build` and install it on the Excel machine: "
        r"on Windows it goes to %APPDATA%\Microsoft\Excel\XLSTART, on macOS to "
        f"~/{MAC_STARTUP}; run `costloop addin install` there."
    )


def config_file(platform: str, home: Path, env: Mapping[str, str]) -> Path:
    """The settings file the add-in's VBA reads (xlwings' GetConfigFilePath)."""
    if _windows(platform):
        profile = env.get("USERPROFILE")
        base = Path(profile) if profile else home
        return base / f".{CONFIG_NAME}" / f"{CONFIG_NAME}.conf"
    if _mac(platform):
        return home / MAC_CONFIG_FOLDER / f"{CONFIG_NAME}.conf"
    raise ExcelNotHere("Excel does not run on this system")


def _config_line(key: str, value: str) -> str:
    # xlwings reads the file with VBA's `Input #`: two quoted, comma-separated fields.
    if '"' in value:
        raise ValueError(f"{value!r}: a path with a double quote cannot go in {CONFIG_NAME}.conf")
    return f'"{key}","{value}"'


def xlwings_applescript() -> Path:
    """The AppleScript of the installed xlwings, which its VBA calls on macOS."""
    scripts = sorted(xlwings_folder().glob("xlwings-*.applescript"))
    if len(scripts) != 1:
        raise AddinBuildError(
            f"expected one xlwings-*.applescript in {xlwings_folder()}, found {len(scripts)}; "
            "reinstall xlwings (pip install --force-reinstall xlwings)"
        )
    return scripts[0]


def config_bytes(path: Path, key: str, value: str, newline: str, encoding: str) -> bytes:
    """The config file's new bytes with `key` set to `value`, every other setting kept."""
    kept = []
    if path.exists():
        for line in path.read_text(encoding=encoding, errors="replace").splitlines():
            name = line.split(",", 1)[0].strip().strip('"')
            if line.strip() and name.upper() != key.upper():
                kept.append(line)
    text = newline.join([*kept, _config_line(key, value)]) + newline
    try:
        return text.encode(encoding)
    except UnicodeEncodeError:
        raise ValueError(
            f"{value!r} cannot be written in {path}'s encoding ({encoding}); "
            "install costloop's Python in a folder whose path has plain characters"
        ) from None


def install_addin(
    *,
    platform: str = sys.platform,
    home: Path | None = None,
    env: Mapping[str, str] | None = None,
    interpreter: str = sys.executable,
    folder: Path | None = None,
) -> Installed:
    """Build the add-in into Excel's startup folder (or `folder`) and write its settings."""
    home = Path.home() if home is None else home
    env = os.environ if env is None else env
    target_folder = folder if folder is not None else startup_folder(platform, home, env)
    config = config_file(platform, home, env)
    if _windows(platform):
        # VBA reads the file in the system's ANSI code page, with Windows line ends.
        key, newline = "INTERPRETER_WIN", "\r\n"
        encoding = "mbcs" if sys.platform == "win32" else "cp1252"
    else:
        key, newline, encoding = "INTERPRETER_MAC", "\n", "utf-8"
    # Everything that can be refused is checked before anything is written.
    settings = config_bytes(config, key, interpreter, newline, encoding)
    script = xlwings_applescript() if _mac(platform) else None
    target_folder.mkdir(parents=True, exist_ok=True)
    addin = write_addin(target_folder / ADDIN_FILE)
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_bytes(settings)
    copied = None
    if script is not None:
        scripts_folder = home / MAC_SCRIPTS
        scripts_folder.mkdir(parents=True, exist_ok=True)
        copied = Path(shutil.copyfile(script, scripts_folder / script.name))
    return Installed(addin, config, interpreter, copied)
