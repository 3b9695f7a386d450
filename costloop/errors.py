"""The exceptions costloop raises on purpose, under one root: `CostloopError`.

A `CostloopError` is a failure the user can act on — a file that is not a
workbook, a workbook open in Excel, LibreOffice not installed — never a bug. Its
message is written for the user, and the command line and the Excel add-in
show it as it is (`explain`) and the command line exits with its `exit_code`
(docs/contract.md#exit-codes). Any other exception that escapes a command is a
bug, reported as an "unexpected error".

What is wrong *inside* a workbook (a bad cell, a rule that does not parse) is
not an exception at all: it is a `costloop.problems.Problem` value.

The families below are what a caller may catch; each module raises its own
subclass of one of them (`costloop.engine.xlsx.parts.PackageError` is a
`WorkbookError`, `costloop.engine.recalc.libreoffice.LibreOfficeMissing` a
`RecalcError`, ...).
"""

from __future__ import annotations

EXIT_PROBLEMS = 1
"""The workbook (or what was asked of it) has a problem: see docs/contract.md#exit-codes."""
EXIT_USAGE = 2
"""The command line itself is wrong."""


class CostloopError(Exception):
    """A failure with a message for the user; nothing was changed unless it says so."""

    exit_code = EXIT_PROBLEMS

    def explain(self) -> str:
        """The sentence to show the user."""
        return str(self)


class UsageError(CostloopError):
    """The command line itself is wrong: an option, a missing file (exit 2)."""

    exit_code = EXIT_USAGE


class WorkbookError(CostloopError):
    """The workbook file cannot be read or written as asked: not a workbook, damaged,
    protected, open in Excel or read-only, or a sheet costloop needs is the user's."""


class RecalcError(CostloopError):
    """LibreOffice, which recalculates formulas and makes PDFs, cannot be used."""


class EmailError(CostloopError):
    """The mail server could not be reached or refused the session."""


class AddinError(CostloopError):
    """The Excel add-in cannot be built or installed."""
