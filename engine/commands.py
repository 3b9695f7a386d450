"""The file-level commands behind the CLI: check and run a workbook on disk."""

from __future__ import annotations

import zipfile
from decimal import Decimal
from pathlib import Path

from costloop.engine.pipeline import Outcome, check_workbook, run_workbook, total_billed
from costloop.engine.xlsx_file import FileWorkbook


def check_book(path: Path) -> Outcome:
    """`costloop check BOOK`: validate, write Rule Check."""
    return check_workbook(FileWorkbook(path), label=path.name)


def run_book(
    path: Path,
    period: str | None = None,
    output: Path | None = None,
    scenario: str | None = None,
) -> Outcome:
    """`costloop run BOOK`: the whole loop, written in place or to ``output``."""
    return run_workbook(
        FileWorkbook(path, output=output),
        label=path.name,
        period=period,
        scenario=scenario,
        failure_report=output is None,  # a failed run with --output writes no file at all
    )


def _fmt(amount: Decimal) -> str:
    return f"{amount:,.2f}"


def summary_lines(outcome: Outcome) -> list[str]:
    """A few lines for the terminal: what was billed, how each pool recovered."""
    if not outcome.ok or outcome.result is None:
        return [
            f"FAILED: {len(outcome.errors)} error(s), {len(outcome.warnings)} warning(s); "
            "see the Rule Check and Run Log sheets"
        ]
    result = outcome.result
    bills = result.bills
    total = total_billed(bills)
    departments = bills["Department"].nunique()
    lines = [
        f"Period {outcome.period}: billed {_fmt(total)} to {departments} department(s) "
        f"in {len(bills)} bill line(s)"
    ]
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
                f"  {row.Pool:<{width}}  cost {_fmt(row.Cost):>14}  "
                f"recovered {_fmt(row.Recovered):>14}  {pct}"
            )
    tieouts = result.tieouts
    passed = sum(1 for t in tieouts if t.passed)
    lines.append(
        "All tie-outs passed" if passed == len(tieouts) else f"{passed}/{len(tieouts)} tie-outs"
    )
    lines[-1] += f" ({len(tieouts)} checks)"
    return lines


def explain_exception(exc: Exception) -> str | None:
    """A user-facing sentence for failures that are not bugs (file locked, not a workbook)."""
    if isinstance(exc, PermissionError):
        return (
            f"cannot write {exc.filename or 'the workbook'}: it is read-only or open in "
            "another program (close it in Excel and run again); nothing was changed"
        )
    if isinstance(exc, zipfile.BadZipFile):
        return "the file is not an Excel workbook (.xlsx or .xlsm); save it as one and retry"
    name = type(exc).__name__
    if name in ("WorkbookFormatError", "WorkbookProtectedError", "NotOwnedError"):
        return str(exc)
    return None
