"""Problems are values: every stage returns them, only the edges show them.

A problem carries a reason code (what kind of mistake), a severity, a location
a finance user can click to (``Rules!B7``, ``Usage!D1042``) and a message in
their words. Rule problems also carry the rule text and the character span so
the edge can draw a caret under the mistake.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "ERROR"
    WARNING = "WARNING"


class Reason(StrEnum):
    """Why something is a problem. Stable codes: tests and tools match on them."""

    # rules language
    SYNTAX = "SYNTAX"
    UNKNOWN_KEYWORD = "UNKNOWN_KEYWORD"
    UNCLOSED_QUOTE = "UNCLOSED_QUOTE"
    UNKNOWN_NAME = "UNKNOWN_NAME"
    UNKNOWN_POOL = "UNKNOWN_POOL"
    UNKNOWN_DEPARTMENT = "UNKNOWN_DEPARTMENT"
    UNKNOWN_METRIC = "UNKNOWN_METRIC"
    UNKNOWN_COLUMN = "UNKNOWN_COLUMN"
    NOT_NUMERIC = "NOT_NUMERIC"
    SHARES_NOT_100 = "SHARES_NOT_100"
    DUPLICATE_ID = "DUPLICATE_ID"
    MISSING_ID = "MISSING_ID"
    BAD_DRIVER = "BAD_DRIVER"
    BAD_TIERS = "BAD_TIERS"
    BAD_FORECAST = "BAD_FORECAST"
    CYCLE = "CYCLE"
    CHARGED_AND_ALLOCATED = "CHARGED_AND_ALLOCATED"
    SELF_ALLOCATION = "SELF_ALLOCATION"
    DUPLICATE_ALLOCATION = "DUPLICATE_ALLOCATION"
    # workbook data
    MISSING_SHEET = "MISSING_SHEET"
    MISSING_COLUMN = "MISSING_COLUMN"
    BAD_VALUE = "BAD_VALUE"
    BAD_PERIOD = "BAD_PERIOD"
    BAD_SETTING = "BAD_SETTING"
    EXCEL_ERROR = "EXCEL_ERROR"
    DUPLICATE_DEPARTMENT = "DUPLICATE_DEPARTMENT"
    NO_DATA = "NO_DATA"
    SHEET_NOT_OWNED = "SHEET_NOT_OWNED"
    # running
    ZERO_DRIVER = "ZERO_DRIVER"
    NO_RATE = "NO_RATE"
    SINGULAR = "SINGULAR"
    COST_BASIS_FALLBACK = "COST_BASIS_FALLBACK"
    NO_BUDGET = "NO_BUDGET"
    UNALLOCATED = "UNALLOCATED"
    UNBALANCED = "UNBALANCED"
    TIE_OUT = "TIE_OUT"
    # the ITFM loop (forecast, compliance, scenarios)
    NO_VOLUME = "NO_VOLUME"
    OVER_RECOVERY = "OVER_RECOVERY"
    RESERVE_EXCEEDED = "RESERVE_EXCEEDED"
    RATE_NOT_UNIFORM = "RATE_NOT_UNIFORM"
    BAD_SCENARIO = "BAD_SCENARIO"
    # reading (appended)
    DUPLICATE_COLUMN = "DUPLICATE_COLUMN"
    UNCALCULATED = "UNCALCULATED"
    HIDDEN_ROWS = "HIDDEN_ROWS"
    WHERE_NO_MATCH = "WHERE_NO_MATCH"
    # headless recalculation (appended)
    NO_LIBREOFFICE = "NO_LIBREOFFICE"
    RECALC_FAILED = "RECALC_FAILED"
    NOT_RECALCULATED = "NOT_RECALCULATED"
    FORMULA_ERROR = "FORMULA_ERROR"
    NOT_SPILLED = "NOT_SPILLED"
    # the Rates sheet checked as a schedule (appended)
    RATE_SCHEDULE = "RATE_SCHEDULE"
    # data that would bill wrong without a word (appended)
    UNBILLED_USAGE = "UNBILLED_USAGE"
    NO_USAGE = "NO_USAGE"
    DUPLICATE_ROW = "DUPLICATE_ROW"
    BLANK_DRIVER = "BLANK_DRIVER"
    NO_HEADER = "NO_HEADER"
    HEADER_ROW = "HEADER_ROW"
    # a run's advice sheets (appended)
    NOT_COMPUTED = "NOT_COMPUTED"
    # issued bills: period close, corrections, disputes (appended)
    ISSUED_EDITED = "ISSUED_EDITED"
    PERIOD_CLOSED = "PERIOD_CLOSED"
    CLOSE_REFUSED = "CLOSE_REFUSED"
    BAD_DISPUTE = "BAD_DISPUTE"
    LATE_DISPUTE = "LATE_DISPUTE"


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or worth a look) in the workbook."""

    code: Reason
    severity: Severity
    where: str
    """Location as a user types it into Excel's Name Box: ``Rules!B7``, ``Usage!D1042``."""
    message: str
    text: str | None = None
    """The rule's text, when the problem is inside a rule (for the caret line)."""
    start: int | None = None
    """0-based character offset in ``text`` where the problem starts."""
    end: int | None = None
    rule_id: str | None = None

    @classmethod
    def at_rule(
        cls,
        rule,
        code: Reason,
        message: str,
        span=None,
        severity: Severity = Severity.ERROR,
    ) -> Problem:
        """A problem located in a rule (any AST statement), at ``span`` if given."""
        return cls(
            code,
            severity,
            rule.where,
            message,
            text=rule.text,
            start=span.start if span else None,
            end=span.end if span else None,
            rule_id=rule.rule_id,
        )

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    @property
    def character(self) -> int | None:
        """1-based character position, as the message shows it."""
        return None if self.start is None else self.start + 1

    def headline(self) -> str:
        """``Rules!B7, character 31: message`` — the first line of the rendering."""
        place = self.where
        if self.character is not None:
            place = f"{place}, character {self.character}"
        return f"{place}: {self.message}"

    def render(self) -> str:
        """The headline, then the rule text with a caret under the problem."""
        lines = [self.headline()]
        if self.text is not None and self.start is not None:
            shown = self.text.replace("\n", " ").replace("\r", " ")
            lines.append("  " + shown)
            lines.append("  " + " " * self.start + "^")
        return "\n".join(lines)


GROUP_AFTER = 10
"""More problems than this of one kind down one column are shown as one line."""

_CELL = re.compile(r"^(?P<sheet>.+)!(?P<column>[A-Z]{1,3})(?P<row>\d+)$")


def grouped(problems: Iterable[Problem], after: int = GROUP_AFTER) -> list[Problem]:
    """The problems as a person should read them: a mistake repeated down a column is one line.

    Problems at cells of the same sheet and column with the same reason and
    severity, when there are more than ``after`` of them, become one problem at
    the range they span, in the place of the first, with the count and the
    first cells::

        Usage!D2:D1000001: Quantity must be a non-negative number, got a blank cell
        (1,000,000 cells; first D2, D3, D4 …)

    Fewer than that, or problems not at a single cell, are left as they are.
    """
    problems = list(problems)
    kinds: dict[tuple, list[int]] = {}
    for i, problem in enumerate(problems):
        cell = _CELL.match(problem.where)
        if cell is not None:
            key = (cell["sheet"], cell["column"], problem.code, problem.severity)
            kinds.setdefault(key, []).append(i)
    out: list[Problem] = []
    merged: dict[int, Problem] = {}
    skip: set[int] = set()
    for (sheet, column, code, severity), members in kinds.items():
        if len(members) <= after:
            continue
        merged[members[0]] = _merge(sheet, column, code, severity, [problems[i] for i in members])
        skip.update(members[1:])
    for i, problem in enumerate(problems):
        if i in skip:
            continue
        out.append(merged.get(i, problem))
    return out


def _merge(
    sheet: str, column: str, code: Reason, severity: Severity, members: list[Problem]
) -> Problem:
    rows = [int(_CELL.match(p.where)["row"]) for p in members]
    first = members[0]
    return repeated(
        sheet,
        column,
        code,
        severity,
        first.message,
        len(members),
        len({p.message for p in members}),
        rows,
        min(rows),
        max(rows),
        rule_id=first.rule_id if all(p.rule_id == first.rule_id for p in members) else None,
    )


def repeated(
    sheet: str,
    column: str,
    code: Reason,
    severity: Severity,
    message: str,
    count: int,
    messages: int,
    rows: list[int],
    low: int,
    high: int,
    rule_id: str | None = None,
) -> Problem:
    """One problem standing for ``count`` cells of one column (see `grouped`).

    ``message`` words the first cell, ``messages`` counts the different messages
    among them, ``rows`` are the first rows (three are shown), ``low``/``high`` the
    range. Readers that find bad cells in bulk (a usage file of millions of rows)
    build it directly, without a problem per cell.
    """
    counted = f"{count:,} cells"
    if messages > 1:
        counted += f", {messages:,} different messages"
    shown = ", ".join(f"{column}{row}" for row in rows[:3])
    return Problem(
        code,
        severity,
        f"{sheet}!{column}{low}:{column}{high}",
        f"{message} ({counted}; first {shown} …)",
        rule_id=rule_id,
    )


def errors(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.is_error]


def has_errors(problems: list[Problem]) -> bool:
    return any(p.is_error for p in problems)


class Reported:
    """Mixed into a command's outcome that holds ``problems``: ok when none is an error."""

    problems: list[Problem]

    @property
    def ok(self) -> bool:
        """No errors (warnings allowed)."""
        return not has_errors(self.problems)

    @property
    def errors(self) -> list[Problem]:
        return errors(self.problems)

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if not p.is_error]
