"""Never write over a workbook that must not be written: asked before anything is written.

costloop writes a workbook atomically: a new file beside it, renamed over the
old one. A rename does not care that the old file was read-only, or open in
Excel (on Linux and macOS, and on network shares, the rename succeeds), so
without this guard a read-only file would be replaced and a workbook open in
Excel would be pulled from under the user's unsaved edits. The guard refuses,
in words a finance user can act on:

- a read-only file (no write permission: Windows' Read-only box, ``chmod a-w``);
- a file open in Excel, which keeps the owner file ``~$NAME.xlsx`` beside it
  (for long names Word-era Office replaces the first two characters instead:
  ``~$me.xlsx`` for ``name.xlsx``, so both spellings are looked for);
- a file open in LibreOffice, which keeps ``.~lock.NAME.xlsx#`` beside it.

A lock file left behind by a crash also blocks the write; the message says to
delete it if the workbook is not open. `costloop check` is the exception: it
asks `why_not_writable`, reports on the console and writes nothing.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from costloop.errors import WorkbookError


class WriteRefused(WorkbookError):
    """The workbook must not be replaced; the message says why and what to do."""


def lock_file(path: Path) -> tuple[Path, str] | None:
    """The lock file of the program holding ``path`` open, and that program's name, if any."""
    name = path.name
    candidates = [(f"~${name}", "Excel"), (f".~lock.{name}#", "LibreOffice")]
    if len(name) > 2:
        candidates.append((f"~${name[2:]}", "Excel"))
    for candidate, program in candidates:
        lock = path.with_name(candidate)
        if lock.exists():
            return lock, program
    return None


def is_read_only(path: Path) -> bool:
    """True when the file may not be written (checked on the mode too: root may write anything)."""
    mode = path.stat().st_mode
    return not os.access(path, os.W_OK) or not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)


def why_not_writable(path: Path) -> tuple[str, str] | None:
    """(why costloop may not replace ``path``, what the user can do), or None when it may.

    For a command that can still report without writing (``costloop check``).
    """
    path = Path(path)
    held = lock_file(path)
    if held is not None:
        lock, program = held
        return (
            f"it is open in {program} (its lock file {lock.name} is beside it)",
            f"close it there (or delete {lock.name} if it is not open)",
        )
    if path.exists() and is_read_only(path):
        return "it is read-only", "make it writable (untick Read-only in its Properties)"
    return None


def refuse_unwritable(path: Path, option: str | None = None) -> None:
    """Raise `WriteRefused` unless costloop may replace ``path`` (a file that does not exist yet
    may be written). ``option`` names the command-line option that gave the path."""
    path = Path(path)
    label = f"{option} {path}" if option else str(path)
    held = lock_file(path)
    if held is not None:
        lock, program = held
        raise WriteRefused(
            f"{label}: the workbook is open in {program} (its lock file {lock.name} is beside "
            f"it); close it there and run again — nothing was changed. If it is not open, "
            f"delete {lock.name}"
        )
    if path.exists() and is_read_only(path):
        elsewhere = "choose another file" if option else "write the result elsewhere with --output"
        raise WriteRefused(
            f"{label}: the file is read-only, so costloop will not replace it; make it "
            f"writable (untick Read-only in its Properties) or {elsewhere} — nothing was changed"
        )
