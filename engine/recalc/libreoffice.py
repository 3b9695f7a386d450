"""Running LibreOffice headless to recalculate workbooks: profile, batch, timeout.

LibreOffice is only asked to open copies of the workbooks and save them again
(``soffice --convert-to``); what it saves is lossy, so `costloop.engine.recalc.merge`
takes nothing from it but the formula values. This module knows how to start
LibreOffice safely:

- **A private profile per run.** Two LibreOffice starts that share a profile hand
  their work to each other (or refuse to start), and the default profile keeps
  the values Excel cached instead of recalculating. Each run makes a fresh
  profile in a temporary folder whose ``registrymodifications.xcu`` sets
  ``OOXMLRecalcMode`` to 0 ("always recalculate"); LibreOffice 7.4 ignores the
  workbook's own ``fullCalcOnLoad`` flag, so this setting is what makes it compute.
- **Several workbooks per start, but not too many.** Starting LibreOffice costs
  about two seconds, so workbooks that use the same save filter share a start —
  at most `MAX_DOCUMENTS_PER_START` of them: LibreOffice 7.4 reads only its first
  253 command-line arguments and silently ignores the rest (it converts them,
  exits 0 and says nothing), which is how 2,000 bills once came back with 976 PDFs.
- **A timeout that ends everything.** ``soffice`` is a launcher (``oosplash``)
  that starts ``soffice.bin``; killing the launcher alone, as ``timeout`` does,
  leaves ``soffice.bin`` running. LibreOffice is started in a session of its
  own, so on a timeout the whole process group is killed. Some workbooks hang
  LibreOffice while it saves them (it spins forever); the one it was working on
  is reported, and the workbooks after it in the batch get a fresh start.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from costloop.errors import RecalcError

SOFFICE_VARIABLE = "COSTLOOP_SOFFICE"
"""Environment variable naming the soffice program, when it is not on PATH."""

DEFAULT_TIMEOUT = 300.0
"""Seconds one LibreOffice start may take before it is stopped."""

MAX_DOCUMENTS_PER_START = 200
"""Documents given to one LibreOffice start. LibreOffice 7.4 acts on its first 253
command-line arguments only (measured: with 9 options it converts 244 documents, with
8 options 245, and exits 0 having ignored the rest), so a start is given fewer
documents than that, with room for its options."""

# The save filter for each workbook kind: .xlsm keeps its VBA project.
FILTERS = {
    ".xlsx": ("xlsx", "Calc MS Excel 2007 XML"),
    ".xlsm": ("xlsm", "Calc MS Excel 2007 VBA XML"),
}

# Where installers put soffice when it is not on PATH.
_USUAL_PLACES = [
    "/usr/bin/soffice",
    "/usr/lib/libreoffice/program/soffice",
    "/opt/libreoffice/program/soffice",
    "/Applications/LibreOffice.app/Contents/MacOS/soffice",
    r"C:\Program Files\LibreOffice\program\soffice.exe",
    r"C:\Program Files (x86)\LibreOffice\program\soffice.exe",
]

# OOXMLRecalcMode: 0 always recalculate, 1 never, 2 ask (the default, which
# headless treats as never). ODFRecalcMode likewise, should a copy be .ods.
PROFILE_SETTINGS = """<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry" \
xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<item oor:path="/org.openoffice.Office.Calc/Formula/Load">\
<prop oor:name="OOXMLRecalcMode" oor:op="fuse"><value>0</value></prop></item>
<item oor:path="/org.openoffice.Office.Calc/Formula/Load">\
<prop oor:name="ODFRecalcMode" oor:op="fuse"><value>0</value></prop></item>
</oor:items>
"""

INSTALL_HINT = (
    "install LibreOffice (Debian/Ubuntu: apt-get install libreoffice-calc-nogui; "
    "macOS: brew install --cask libreoffice; Windows: libreoffice.org) or set "
    f"{SOFFICE_VARIABLE} to its soffice program"
)


class LibreOfficeMissing(RecalcError):
    """No soffice program was found."""


@dataclass
class Conversion:
    """One workbook handed to LibreOffice, and what came back."""

    source: Path
    """The copy LibreOffice opened."""
    result: Path | None = None
    """LibreOffice's recalculated copy; None when it saved nothing."""
    failure: str | None = None
    """Why there is no result, in words for the user."""


def find_soffice() -> str:
    """The soffice program: ``COSTLOOP_SOFFICE``, else PATH, else where installers put it."""
    named = os.environ.get(SOFFICE_VARIABLE)
    if named:
        found = shutil.which(named)
        if found is None:
            raise LibreOfficeMissing(
                f"{SOFFICE_VARIABLE}={named} is not a program that can be run; "
                f"point it at LibreOffice's soffice"
            )
        return found
    for name in ("soffice", "libreoffice"):
        found = shutil.which(name)
        if found:
            return found
    for place in _USUAL_PLACES:
        if os.access(place, os.X_OK):
            return place
    raise LibreOfficeMissing(f"LibreOffice is not installed (no soffice found); {INSTALL_HINT}")


def write_profile(folder: Path) -> str:
    """Make a fresh LibreOffice profile in ``folder``; return its -env:UserInstallation URL."""
    user = folder / "user"
    user.mkdir(parents=True, exist_ok=True)
    (user / "registrymodifications.xcu").write_text(PROFILE_SETTINGS, encoding="utf-8")
    return folder.resolve().as_uri()


def convert(
    sources: list[Path],
    outdir: Path,
    profile: Path,
    timeout: float = DEFAULT_TIMEOUT,
    soffice: str | None = None,
) -> list[Conversion]:
    """Open each copy in LibreOffice, recalculate, save into ``outdir``; each filter's
    copies in starts of at most `MAX_DOCUMENTS_PER_START`.

    Copies must have distinct file names (LibreOffice names each result after
    its source). ``timeout`` is for each LibreOffice start.
    """
    soffice = soffice or find_soffice()
    conversions = [Conversion(Path(s)) for s in sources]
    groups: dict[str, list[Conversion]] = {}
    for conversion in conversions:
        suffix = conversion.source.suffix.lower()
        if suffix not in FILTERS:
            conversion.failure = f"{conversion.source.name}: not an .xlsx or .xlsm workbook"
            continue
        groups.setdefault(suffix, []).append(conversion)
    outdir.mkdir(parents=True, exist_ok=True)
    starts = 0
    for suffix, group in groups.items():
        for at in range(0, len(group), MAX_DOCUMENTS_PER_START):
            chunk = group[at : at + MAX_DOCUMENTS_PER_START]
            starts = _convert_chunk(
                chunk, outdir, profile, timeout, FILTERS[suffix], soffice, starts
            )
    return conversions


def _convert_chunk(
    chunk: list[Conversion],
    outdir: Path,
    profile: Path,
    timeout: float,
    save_filter: tuple[str, str],
    soffice: str,
    starts: int,
) -> int:
    """One start for ``chunk``, and fresh starts for what a hang left; the starts so far."""
    extension, filter_name = save_filter
    waiting = list(chunk)
    silent = False
    while waiting:
        starts += 1
        # A profile per start: a killed LibreOffice leaves its profile locked.
        url = write_profile(profile / str(starts))
        command = [
            soffice,
            f"-env:UserInstallation={url}",
            "--headless",
            "--norestore",
            "--nolockcheck",
            "--convert-to",
            f"{extension}:{filter_name}",
            "--outdir",
            str(outdir),
            *(str(c.source) for c in waiting),
        ]
        timed_out, said = _run_group(command, timeout)
        if timed_out and "convert " not in said and silent:
            # Twice stopped before saving anything: LibreOffice itself is not
            # working here, and retrying each workbook would take hours.
            for conversion in waiting:
                conversion.failure = (
                    f"LibreOffice stopped responding twice within {timeout:g} seconds "
                    f"before it saved a workbook; check that `{soffice} --headless "
                    "--version` works here"
                )
            break
        silent = timed_out and "convert " not in said
        waiting = _collect(waiting, outdir, extension, timed_out, said, timeout)
    return starts


def _collect(
    group: list[Conversion],
    outdir: Path,
    extension: str,
    timed_out: bool,
    said: str,
    timeout: float,
) -> list[Conversion]:
    """Note each conversion's result or failure; return those to try again in a new start."""
    # LibreOffice saves to a temporary file and renames it when done, so a result
    # under its final name is whole, even if LibreOffice hung afterwards.
    unfinished = []
    for conversion in group:
        result = outdir / f"{conversion.source.stem}.{extension}"
        if result.exists():
            conversion.result = result
        elif timed_out:
            unfinished.append(conversion)
        else:
            conversion.failure = "LibreOffice could not open or save it" + _reason(said)
    if not unfinished:
        return []
    # It announces each workbook ("convert A -> B") before working on it: the last
    # one announced without a result is the one it hung on.
    announced = [c for c in unfinished if f"convert {c.source} ->" in said]
    hung = announced[-1] if announced else unfinished[0]
    hung.failure = (
        f"LibreOffice did not finish this workbook within {timeout:g} seconds and was "
        "stopped (try --timeout with more seconds; if it happens again, LibreOffice hangs "
        "on something in this workbook)"
    )
    return [c for c in unfinished if c is not hung]


def _run_group(command: list[str], timeout: float) -> tuple[bool, str]:
    """Run LibreOffice; (timed out?, what it printed). Nothing it started outlives the call."""
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # A session of its own: oosplash and soffice.bin share one process group.
        start_new_session=True,
        env=_environment(),
    )
    timed_out = False
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(process.pid)
        out, err = process.communicate()
    finally:
        # Also on Ctrl+C, and for a soffice.bin left behind after oosplash exited.
        _kill_group(process.pid)
        if process.poll() is None:
            process.wait()
    said = (out or b"").decode("utf-8", "replace") + (err or b"").decode("utf-8", "replace")
    return timed_out, said


def _kill_group(pgid: int) -> None:
    """Kill every process of the group and wait (briefly) until they are gone."""
    if sys.platform == "win32":  # no process groups: end the process tree instead
        subprocess.run(["taskkill", "/T", "/F", "/PID", str(pgid)], capture_output=True)
        return
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return  # the group is already gone
    # SIGKILL is asynchronous: a large soffice.bin takes a moment to release its memory.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _group_alive(pgid):
        time.sleep(0.05)


def _group_alive(pgid: int) -> bool:
    """True while a process of the group still runs (a zombie awaiting its reaper does not)."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the command name (which may hold spaces): state, ppid, pgrp.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    # LibreOffice would otherwise look for a display or a desktop session bus.
    env.pop("DISPLAY", None)
    env.setdefault("SAL_USE_VCLPLUGIN", "svp")
    return env


def _reason(said: str) -> str:
    lines = [line.strip() for line in said.splitlines() if line.strip().startswith("Error")]
    return f" ({'; '.join(lines)})" if lines else ""
