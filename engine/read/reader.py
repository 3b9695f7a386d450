"""Reading a workbook into a validated, typed `Book` (docs/contract.md#workbook-contract).

``read_book(wb)`` reads every input sheet through the narrow `Workbook`
interface and returns ``(book, problems)``. Validation is lazy, like pandera:
every problem in every sheet is collected, so a finance user sees all of them
at once. Each message names the sheet, the cell and the fix.

Choices the contract leaves open (also in docs/workbook.md):

- Sheets are found by exact name, else case-insensitively (``usage`` is
  Usage). ``Actuals`` and ``Rates`` may be absent (empty frames).
- Headers match case-insensitively ignoring surrounding spaces (also
  non-breaking ones); a contract column also matches with inner spaces or
  underscores (``Effective From``, ``tier_to``). A blank header cell makes
  its column ignored.
- A period is text ``YYYY-MM`` (``YYYY-M`` tolerated) or a date cell.
- Amounts and quantities are number cells, or plain numeric text such as
  ``1,234.50`` (thousands commas allowed). Text with a currency sign or
  accounting brackets is refused: the message says to type the number.
- Amounts become exact integer minor units: the number as Excel shows it
  (``repr`` of the float, so 0.1 is exactly 10 cents), rounded half-up to
  the currency's minor unit. Negative amounts are allowed in Budget
  (planned offsets) and Actuals (credits), without a warning.
- Quantities and Volume are non-negative; a blank required value (Amount,
  Quantity, Period, a name) is an error, a blank optional one (Volume,
  TierFrom) is NaN.
- An Excel error value, or a formula with no calculated value, in a contract
  column is an error; in an extra column it is a warning (the column is only
  used if a rule names it).
- Hidden rows are counted (as Excel's SUM counts them) and warned about, one
  warning per sheet with the cells of the hidden rows that hold data.
- Names in rows left out for a problem are kept in ``Book.names_seen``, so the
  rule checks do not add a false "unknown pool"; a name cell with no value
  makes that kind of name uncertain (``Book.unreadable_names``).
- A missing sheet's did-you-mean never names a sheet costloop reads or writes.
- A row with a problem is left out of its frame, so later checks still run
  on the rest; the book is None only if a required sheet or column is
  missing.
- Names are trimmed; the spelling of a name's first occurrence (sheets in
  contract order: Departments, Budget, Actuals, Usage, Rates; rows top-down)
  is used everywhere.
- Text columns hold trimmed text, "" for a blank optional cell (pandas
  infers its text dtype); extra columns are float64 when every filled cell
  is a number, else the cells as read with blanks as None.
- Settings keys match like headers (``Fiscal Year Start`` works); a blank
  value keeps the default; an unknown key is kept in ``raw`` and, when it
  looks like a known one, warned about with a did-you-mean.
- Rules: a row with a blank Rule cell is skipped (a placeholder); its text
  is kept exactly as read, since the parser's spans index into it.
- ``Book.fingerprint`` hashes every cell of the input sheets read (not the
  outputs), numbers as float64 so 1 and 1.0 agree, trailing empties trimmed.

Here the sheets are found and the Book assembled; each step is a module of its
own: `grid` (one sheet's header and body), `cell_checks` (blank, error, once per
distinct value), `columns` (the lazy column validation), `settings`, `sheets`
(Departments, Budget, Actuals, Usage, Rates, Rules), `hidden_rows`,
`spellings` (a name's first spelling, every name seen), `fingerprint`; and
`usage_checks`, `rates` (the card as a schedule) and `usage_source` (the
UsageSource files, read last so the Book returned is final).
"""

from __future__ import annotations

from collections.abc import Mapping

from costloop.engine.model.book import Book
from costloop.engine.model.sheets import INPUT_SHEETS, OUTPUT_SHEETS, REQUIRED_SHEETS
from costloop.engine.read.fingerprint import fingerprint
from costloop.engine.read.grid import Body, InputSheet, header_and_body, read_grid
from costloop.engine.read.hidden_rows import hidden_rows_warning
from costloop.engine.read.settings import read_settings
from costloop.engine.read.sheets import (
    read_costs,
    read_departments,
    read_rates,
    read_rules,
    read_usage,
)
from costloop.engine.read.spellings import canonicalise, names_in_cells
from costloop.engine.read.usage_checks import repeated_usage
from costloop.engine.read.usage_source import with_usage_source
from costloop.engine.workbook.host import Workbook, workbook_folder
from costloop.problems import Problem, Reason, Severity
from costloop.rules.ast import name_key
from costloop.rules.suggest import closest, did_you_mean


def _resolve_sheets(
    present: list[str], chosen: Mapping[str, str], problems: list[Problem]
) -> dict[str, str]:
    """Logical input sheet -> the workbook's sheet to read (exact name, else any case)."""
    by_key = {}
    for name in present:
        by_key.setdefault(name.casefold(), name)
    for logical in chosen:
        if logical not in INPUT_SHEETS:
            problems.append(
                Problem(
                    Reason.MISSING_SHEET,
                    Severity.ERROR,
                    logical,
                    f"{logical} is not an input sheet; choose one of {', '.join(INPUT_SHEETS)}",
                )
            )
    resolved: dict[str, str] = {}
    # Renaming a sheet costloop reads or writes would break something else (a
    # "did you mean Rates?" for a missing Rules sheet would lose the rate card).
    spoken_for = {n.casefold() for n in (*INPUT_SHEETS, *OUTPUT_SHEETS, *chosen.values())}
    spare = {
        name_key(n): n
        for n in present
        if n.casefold() not in spoken_for and n.partition("@")[0].casefold() not in spoken_for
    }
    for logical in INPUT_SHEETS:
        wanted = chosen.get(logical, logical)
        actual = wanted if wanted in present else by_key.get(wanted.casefold())
        if actual is not None:
            resolved[logical] = actual
        elif logical in REQUIRED_SHEETS or logical in chosen:
            listed = ", ".join(present) if present else "none"
            message = f'the workbook has no sheet "{wanted}" (its sheets: {listed})'
            guess = closest(wanted, spare.values())
            if guess:
                message += f"; {did_you_mean(guess)} Rename that sheet to {wanted}"
            else:
                message += f"; add a sheet named {wanted} with its header in row 1"
            problems.append(Problem(Reason.MISSING_SHEET, Severity.ERROR, wanted, message))
    return resolved


def read_book(
    wb: Workbook, sheets: Mapping[str, str] | None = None
) -> tuple[Book | None, list[Problem]]:
    """Read and validate every input sheet; all problems at once, the Book unless unusable.

    ``sheets`` maps a logical input sheet to the sheet to read instead (a
    scenario: ``{"Budget": "Budget@Cloud10"}``); messages then name that sheet.
    The Book is final: usage from the Settings UsageSource files (beside a
    workbook saved as a file) is in it already.
    """
    problems: list[Problem] = []
    present = list(wb.sheet_names())
    resolved = _resolve_sheets(present, sheets or {}, problems)
    read: dict[str, InputSheet] = {}
    grids: list[tuple[str, str, list[object], Body]] = []
    for logical, actual in resolved.items():
        header_row, body = header_and_body(wb, actual)
        grids.append((logical, actual, header_row, body))
        read[logical] = read_grid(logical, actual, header_row, body, problems)
        problems += hidden_rows_warning(wb, read[logical], len(header_row))

    structural = any(p.code in (Reason.MISSING_SHEET, Reason.MISSING_COLUMN) for p in problems)
    usable = {name: sheet for name, sheet in read.items() if sheet.usable}
    settings = read_settings(usable.get("Settings"), problems)
    places = settings.minor_unit

    departments = (
        read_departments(usable["Departments"], problems) if "Departments" in usable else None
    )
    budget = read_costs(usable["Budget"], places, problems) if "Budget" in usable else None
    actuals = read_costs(usable.get("Actuals"), places, problems)
    rates = read_rates(usable.get("Rates"), problems)
    rules = read_rules(usable["Rules"], problems) if "Rules" in usable else []
    names_seen, unreadable = names_in_cells(usable)
    usage = None
    if "Usage" in usable:
        receivers = None
        if {"Departments", "Budget"} <= usable.keys() and not unreadable & {"departments", "pools"}:
            receivers = names_seen["departments"] | names_seen["pools"]
        if "Actuals" in read and "Actuals" not in usable:
            receivers = None  # its pools are unknown: no check beats false alarms
        usage = read_usage(usable["Usage"], receivers, problems)
        sheet = usable["Usage"]
        problems += repeated_usage(usage, sheet.actual, sheet.has("reference"))

    if structural or departments is None or budget is None or usage is None:
        return None, problems

    canonicalise(
        [
            (departments, "Department"),
            (departments, "Parent"),
            (departments, "Fund"),
            (budget, "Pool"),
            (budget, "Metric"),
            (actuals, "Pool"),
            (usage, "Department"),
            (usage, "Metric"),
            (rates, "Metric"),
            (rates, "Pool"),
        ]
    )
    book = Book(
        settings=settings,
        departments=departments,
        budget=budget,
        actuals=actuals,
        usage=usage,
        rates=rates,
        rules=rules,
        columns={
            logical: {key: (text, letter) for key, (text, letter, _) in sheet.headers.items()}
            for logical, sheet in read.items()
        },
        sheet_names=present,
        fingerprint=fingerprint(grids),
        sources={logical: sheet.actual for logical, sheet in read.items()},
        names_seen=names_seen,
        unreadable_names=frozenset(unreadable),
    )
    book, source_problems = with_usage_source(book, workbook_folder(wb))
    return book, problems + source_problems
