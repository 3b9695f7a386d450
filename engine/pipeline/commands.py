"""The file-level commands behind the CLI: check and run a workbook on disk."""

from __future__ import annotations

import zipfile
from decimal import Decimal
from pathlib import Path

from costloop.engine.model.money import format_money, to_minor_units
from costloop.engine.pipeline.run import (
    Outcome,
    Progress,
    check_workbook,
    run_workbook,
    total_billed,
)
from costloop.engine.xlsx.file_workbook import FileWorkbook, WorkbookFormatError
from costloop.engine.xlsx.write_guard import refuse_unwritable, why_not_writable
from costloop.errors import EXIT_PROBLEMS, CostloopError


def check_book(path: Path, output: Path | None = None) -> Outcome:
    """`costloop check BOOK [--output OUT]`: validate, write Rule Check into BOOK (or OUT).

    Checking only reads, so a workbook open in Excel or read-only is still
    checked: every problem is reported, nothing is written, and
    ``Outcome.not_written`` says why and what to do. ``output`` is a copy of the
    workbook with its Rule Check, the workbook itself untouched.
    """
    if output is not None:
        refuse_unwritable(output, "--output")  # before any work, as for run
        return check_workbook(FileWorkbook(path, output=output), label=path.name)
    blocked = why_not_writable(path)
    outcome = check_workbook(FileWorkbook(path), label=path.name, write=blocked is None)
    if blocked is not None:
        why, fix = blocked
        outcome.not_written = (
            f"{path}: Rule Check was not written, as {why}; the problems are listed above. "
            f"To get the sheet, {fix} and check again, or write it into a copy with "
            f"--output OUT.xlsx"
        )
    return outcome


def run_book(
    path: Path,
    period: str | None = None,
    output: Path | None = None,
    scenario: str | None = None,
    progress: Progress | None = None,
) -> Outcome:
    """`costloop run BOOK`: the whole loop, written in place or to ``output``."""
    # Asked first, so a locked or read-only target costs no work and loses nothing.
    if output is None:
        refuse_unwritable(path)
    else:
        refuse_unwritable(output, "--output")
    return run_workbook(
        FileWorkbook(path, output=output),
        label=path.name,
        period=period,
        scenario=scenario,
        failure_report=output is None,  # a failed run with --output writes no file at all
        progress=progress,
    )


def close_book(path: Path, period: str | None) -> Outcome:
    """`costloop close BOOK --period P`: record P's bills as issued, in the Issued sheet."""
    from costloop.engine.pipeline.close import close_workbook

    refuse_unwritable(path)
    return close_workbook(FileWorkbook(path), period, label=path.name)


def _fmt(amount: Decimal, minor_unit: int) -> str:
    """An amount for the terminal in the currency's places (``1,234.50``; JPY ``1,235``)."""
    return format_money(to_minor_units(amount, minor_unit), minor_unit)


def summary_lines(outcome: Outcome) -> list[str]:
    """A few lines for the terminal: what was billed, how each pool recovered."""
    if not outcome.ok or outcome.result is None:
        counts = f"FAILED: {len(outcome.errors)} error(s), {len(outcome.warnings)} warning(s)"
        if not outcome.written:
            # e.g. a scenario that does not exist, or --output: no sheet to point at.
            return [f"{counts}; nothing was written"]
        return [f"{counts}; see the {' and '.join(outcome.written)} sheets"]
    result = outcome.result
    bills = result.bills
    total = total_billed(bills)
    minor = outcome.book.settings.minor_unit if outcome.book is not None else 2
    departments = bills["Department"].nunique()
    lines = [
        f"Period {outcome.period}: billed {_fmt(total, minor)} to {departments} department(s) "
        f"in {len(bills)} bill line(s)"
    ]
    lines += _ledger_lines(outcome)
    recovery = result.recovery
    current = recovery[recovery["Period"] == outcome.period]
    if len(current):
        lines.append("Recovery this period:")
        width = max(len(str(p)) for p in current["Pool"])
        for row in current.itertuples(index=False):
            if not row.Cost and not row.Recovered:
                # A support pool: everything it cost went on to other pools (step-down).
                lines.append(f"  {row.Pool:<{width}}  allocated onward to other pools")
                continue
            pct = "" if row.RecoveryPct is None else f"{Decimal(row.RecoveryPct) * 100:6.1f}%"
            lines.append(
                f"  {row.Pool:<{width}}  cost {_fmt(row.Cost, minor):>14}  "
                f"recovered {_fmt(row.Recovered, minor):>14}  {pct}"
            )
    tieouts = result.tieouts
    passed = sum(1 for t in tieouts if t.passed)
    lines.append(
        "All tie-outs passed" if passed == len(tieouts) else f"{passed}/{len(tieouts)} tie-outs"
    )
    lines[-1] += f" ({len(tieouts)} checks)"
    return lines


def _ledger_lines(outcome: Outcome) -> list[str]:
    """What the run billed for closed periods: corrections and credit memos (docs/audit.md)."""
    bills = outcome.result.bills
    kinds = bills["Line Type"]
    minor = outcome.book.settings.minor_unit if outcome.book is not None else 2
    out = []
    if outcome.issued.closed:
        out.append(f"Closed periods: {', '.join(outcome.issued.closed)} (the Issued sheet)")
    changed = bills[kinds.isin(("Reversal", "Correction"))]
    if len(changed):
        periods = ", ".join(sorted(set(changed["Charge Period"])))
        out.append(
            f"Corrections of {periods}: {len(changed)} reversal and correction line(s), "
            f"net {_fmt(total_billed(changed), minor)}"
        )
    credits = bills[kinds == "Credit memo"]
    if len(credits):
        out.append(
            f"Credit memos: {len(credits)} ({', '.join(credits['Rule'])}), "
            f"{_fmt(total_billed(credits), minor)}"
        )
    return out


def explain_exception(exc: BaseException) -> str | None:
    """A user-facing sentence for failures that are not bugs (file locked, not a workbook).

    By type: every `CostloopError` explains itself; two failures of the operating
    system and the zip library are put in words here. None: a bug.
    """
    if isinstance(exc, CostloopError):
        return exc.explain()
    if isinstance(exc, PermissionError):
        return (
            f"cannot write {exc.filename or 'the workbook'}: it is read-only or open in "
            "another program (close it in Excel and run again); nothing was changed"
        )
    if isinstance(exc, zipfile.BadZipFile):
        return "the file is not an Excel workbook (.xlsx or .xlsm); save it as one and retry"
    return None


def exit_code(exc: BaseException) -> int:
    """The command line's exit code for a failure (docs/contract.md#exit-codes)."""
    return exc.exit_code if isinstance(exc, CostloopError) else EXIT_PROBLEMS


def demo_changes(path: Path, shipped: Path) -> str | None:
    """What makes ``path`` more than the shipped demo plus costloop's own outputs, or None.

    A rerun of ``costloop demo`` may replace a demo nobody touched; any sheet of
    the user's that differs from the shipped one (or a sheet added, removed or
    renamed) means work that a copy would destroy.
    """
    if path.read_bytes() == shipped.read_bytes():
        return None
    try:
        mine = FileWorkbook(path)
        theirs = FileWorkbook(shipped)
        owned = {n.casefold() for n in mine.owned_sheets()}
        sheets = [n for n in mine.sheet_names() if n.casefold() not in owned]
        # The shipped demo holds a sheet of costloop's own too (Issued: a closed month).
        shipped_owned = {n.casefold() for n in theirs.owned_sheets()}
        shipped = [n for n in theirs.sheet_names() if n.casefold() not in shipped_owned]
        if sheets != shipped:
            return f"its sheets are {', '.join(sheets)}, not the demo's"
        for name in sheets:
            if mine.read_sheet(name) != theirs.read_sheet(name):
                return f"its {name} sheet differs from the demo's"
    except (WorkbookFormatError, zipfile.BadZipFile, KeyError):
        return "it is not the demo workbook"
    return None
