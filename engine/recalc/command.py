"""`costloop recalc BOOK...`: recompute every formula headlessly and store the values.

After a headless run, formulas finance keeps over costloop's sheets (a Summary
of ``=SUMIFS(Bills!H:H, Bills!B:B, A2)``) still hold the values Excel last
cached, so a reader that does not calculate (pandas, calamine, a file preview,
an emailed copy) shows old numbers. This command:

1. copies each workbook that has formulas into a private temporary folder;
2. has LibreOffice recalculate and save the copies, all in one start
   (`costloop.engine.recalc.libreoffice`);
3. copies only the formula values back into the original package
   (`costloop.engine.recalc.merge`) and replaces the file atomically.

A workbook without formulas is left alone (LibreOffice is not even started). A
workbook is never half-written: when anything fails it stays exactly as it was.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from costloop.engine.recalc.libreoffice import (
    DEFAULT_TIMEOUT,
    LibreOfficeMissing,
    convert,
    find_soffice,
)
from costloop.engine.recalc.merge import has_formulas, merge_values
from costloop.engine.xlsx import parts
from costloop.engine.xlsx.file_workbook import WorkbookFormatError, _atomic_write, check_format
from costloop.engine.xlsx.write_guard import WriteRefused, refuse_unwritable
from costloop.problems import Problem, Reason, Reported, Severity

__all__ = ["DEFAULT_TIMEOUT", "RecalcOutcome", "recalc_books"]


@dataclass
class RecalcOutcome(Reported):
    """What recalculating one workbook did."""

    path: Path
    problems: list[Problem] = field(default_factory=list)
    has_formulas: bool = False
    formula_cells: int = 0
    cells_updated: int = 0
    changed_sheets: list[str] = field(default_factory=list)
    written: bool = False
    """The workbook file was replaced (values changed, or a stale value was flagged)."""

    def summary(self) -> str:
        """One line for the terminal."""
        name = self.path.name
        if not self.ok:
            return f"{name}: not recalculated ({len(self.errors)} error(s)); the file is unchanged"
        if not self.has_formulas:
            return f"{name}: no formulas to recalculate; the file is unchanged"
        done = f"{name}: recalculated {self.formula_cells} formula cell(s)"
        if self.cells_updated:
            sheets = ", ".join(self.changed_sheets)
            done += f", {self.cells_updated} value(s) updated on {sheets}"
        else:
            done += ", every value was already current"
        kept = len(self.warnings)
        if kept:
            done += f"; {kept} warning(s)"
        if self.written:
            done += "; Excel will recalculate when it opens the file"
        return done


@dataclass
class _Pending:
    outcome: RecalcOutcome
    data: bytes
    copy: Path


def recalc_books(
    paths: list[Path], timeout: float = DEFAULT_TIMEOUT, soffice: str | None = None
) -> tuple[list[RecalcOutcome], float]:
    """Recalculate every workbook in ``paths`` in one LibreOffice start.

    Returns an outcome per path, in order (one shared outcome for a workbook named twice),
    and the seconds LibreOffice took.
    """
    # A workbook named twice (book.xlsx ./book.xlsx) is recalculated once: its second copy
    # would otherwise find the file "changed on disk" by the first one's write.
    by_file: dict[Path, RecalcOutcome] = {}
    outcomes = [by_file.setdefault(Path(p).resolve(), RecalcOutcome(Path(p))) for p in paths]
    workdir = Path(tempfile.mkdtemp(prefix="costloop-recalc-"))
    seconds = 0.0
    try:
        pending = [
            item
            for number, outcome in enumerate(by_file.values(), start=1)
            if (item := _prepare(outcome, workdir / "in", number)) is not None
        ]
        if not pending:
            return outcomes, seconds
        try:
            soffice = soffice or find_soffice()
        except LibreOfficeMissing as exc:
            for item in pending:
                item.outcome.problems.append(
                    _error(Reason.NO_LIBREOFFICE, item.outcome.path, f"{exc}; {_UNCHANGED}")
                )
            return outcomes, seconds
        started = time.perf_counter()
        conversions = convert(
            [item.copy for item in pending], workdir / "out", workdir / "profile", timeout, soffice
        )
        seconds = time.perf_counter() - started
        for item, conversion in zip(pending, conversions, strict=True):
            if conversion.result is None:
                message = f"{conversion.failure}; {_UNCHANGED}"
                item.outcome.problems.append(
                    _error(Reason.RECALC_FAILED, item.outcome.path, message)
                )
                continue
            _store_values(item, conversion.result)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return outcomes, seconds


_UNCHANGED = "the workbook was not recalculated and is unchanged"


def _prepare(outcome: RecalcOutcome, folder: Path, number: int) -> _Pending | None:
    """Read the workbook; give LibreOffice a copy if it has formulas."""
    path = outcome.path
    try:
        check_format(path)
        data = path.read_bytes()
        outcome.has_formulas = has_formulas(parts.Package.read(data))
    except WorkbookFormatError as exc:
        outcome.problems.append(_error(Reason.RECALC_FAILED, path, str(exc)))
        return None
    except (zipfile.BadZipFile, etree.XMLSyntaxError, parts.PackageError) as exc:
        outcome.problems.append(
            _error(Reason.RECALC_FAILED, path, f"the workbook is damaged ({exc})")
        )
        return None
    if not outcome.has_formulas:
        return None
    try:
        # Open in Excel or read-only: say so now, not after LibreOffice has worked.
        refuse_unwritable(path)
    except WriteRefused as exc:
        outcome.problems.append(_error(Reason.RECALC_FAILED, path, str(exc)))
        return None
    folder.mkdir(parents=True, exist_ok=True)
    # Numbered names: two books called the same in different folders cannot clash,
    # and LibreOffice leaves its lock files in this private folder, not beside the book.
    copy = folder / f"book{number}{path.suffix.lower()}"
    copy.write_bytes(data)
    return _Pending(outcome, data, copy)


def _store_values(item: _Pending, result: Path) -> None:
    outcome = item.outcome
    package = parts.Package.read(item.data)
    try:
        merge = merge_values(package, parts.Package.read(result.read_bytes()))
    except (zipfile.BadZipFile, etree.XMLSyntaxError, parts.PackageError) as exc:
        message = f"LibreOffice saved an unreadable copy ({exc}); {_UNCHANGED}"
        outcome.problems.append(_error(Reason.RECALC_FAILED, outcome.path, message))
        return
    outcome.problems += merge.problems
    outcome.formula_cells = merge.formula_cells
    outcome.cells_updated = merge.cells_updated
    outcome.changed_sheets = merge.changed_sheets
    if not merge.changed:
        return
    if outcome.path.read_bytes() != item.data:
        # Saved in Excel meanwhile: writing our copy would undo that save.
        outcome.problems.append(
            _error(
                Reason.RECALC_FAILED,
                outcome.path,
                "the workbook changed on disk while it was being recalculated (saved in "
                "Excel?); nothing was written, run costloop recalc again",
            )
        )
        return
    try:
        _atomic_write(outcome.path, package, mode_from=outcome.path)
    except WriteRefused as exc:  # opened in Excel while LibreOffice worked
        outcome.problems.append(_error(Reason.RECALC_FAILED, outcome.path, str(exc)))
        return
    outcome.written = True


def _error(code: Reason, path: Path, message: str) -> Problem:
    return Problem(code, Severity.ERROR, path.name, message)
