"""A big worksheet part surveyed in a second process while fastexcel reads it in this one.

fastexcel (`costloop.engine.xlsx.file_workbook.FileWorkbook.read_columns`) reads a
million-row Usage sheet's values but not what else the sheet's XML says: error
cells, formulas saved without a value, hidden rows (`costloop.engine.xlsx.sheet_xml`).
Finding those means inflating and searching the whole part (270 MB for a
million rows, about a second). fastexcel holds Python's lock while it reads, so
a thread could not search beside it; a second process can (``python -m
costloop.engine.xlsx.survey``), and on a two-core machine the survey then
costs no time at all.

The child opens the workbook file itself (nothing big is copied to it) and
checks the part's CRC against the one this process read, so it can never
survey a different version of the file.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from lxml import etree

from costloop.engine.xlsx import sheet_xml

T = TypeVar("T")


@dataclass
class PartSurvey:
    """What the value reader misses in one worksheet part."""

    same_file: bool = True
    """False when the part on disk is not the one that was read (the file changed)."""
    errors: bool = False
    uncalculated: bool = False
    hidden: set[int] = field(default_factory=set)
    first_row: bytes | None = None
    """The XML of the part's first ``<row>``, or None (no rows, or a damaged part)."""

    def to_json(self) -> str:
        return json.dumps(
            {
                "same_file": self.same_file,
                "errors": self.errors,
                "uncalculated": self.uncalculated,
                "hidden": sorted(self.hidden),
                "first_row": None if self.first_row is None else self.first_row.decode("utf-8"),
            }
        )

    @classmethod
    def from_json(cls, text: bytes) -> PartSurvey:
        data = json.loads(text)
        row = data["first_row"]
        return cls(
            same_file=bool(data["same_file"]),
            errors=bool(data["errors"]),
            uncalculated=bool(data["uncalculated"]),
            hidden={int(r) for r in data["hidden"]},
            first_row=None if row is None else row.encode("utf-8"),
        )

    def header(self, shared_strings) -> list[str | None] | None:
        """Row 1's texts (see `sheet_xml.header_texts`), or None when it is not plain text."""
        if self.first_row is None:
            return None
        row = etree.fromstring(self.first_row)
        try:
            return sheet_xml.header_texts(row, shared_strings)
        except (IndexError, ValueError):
            return None


def survey_part(path: str | Path, part: str, crc: int) -> PartSurvey:
    """Survey ``part`` of the workbook at ``path`` (runs in the child process)."""
    with zipfile.ZipFile(path) as archive:
        try:
            info = archive.getinfo(part)
        except KeyError:
            return PartSurvey(same_file=False)
        if crc != info.CRC:
            return PartSurvey(same_file=False)
        with archive.open(info) as stream:
            found = sheet_xml.survey(stream)
        result = PartSurvey(errors=found.errors)
        if found.first_row is not None:
            result.first_row = etree.tostring(found.first_row)
        if found.errors or not (found.formulas or found.hidden):
            return result
        # Rare: the bytes say there may be formulas or hidden rows; look at the whole part.
        xml = archive.read(info)
    result.uncalculated = bool(found.formulas and sheet_xml.uncalculated_cells(xml))
    result.hidden = sheet_xml.hidden_rows(xml) if found.hidden else set()
    return result


def survey_beside(path: Path, part: str, crc: int, work: Callable[[], T]) -> tuple[T, PartSurvey]:
    """``work()`` in this process while ``part`` is surveyed in a second one: both results.

    The second process is this module run by the same Python (``python -m``), so it
    never re-runs the caller's script the way multiprocessing's spawn would. Where it
    cannot start or fails, the survey runs here after ``work``: slower, never different.
    """
    command = [sys.executable, "-m", __name__, str(path), part, str(crc)]
    child = None
    try:
        if sys.executable:  # empty where Python is embedded in another program
            child = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL,
                creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),  # Windows: no console
            )
    except OSError:
        child = None
    try:
        done = work()
    finally:
        output = child.communicate()[0] if child is not None else b""
    if child is not None and child.returncode == 0:
        try:
            return done, PartSurvey.from_json(output)
        except (ValueError, TypeError, KeyError):
            pass
    return done, survey_part(path, part, crc)


def main(argv: list[str]) -> int:
    path, part, crc = argv
    found = survey_part(path, part, int(crc))
    sys.stdout.write(found.to_json())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
