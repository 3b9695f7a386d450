"""Problems are values: every stage returns them, only the edges show them.

A problem carries a reason code (what kind of mistake), a severity, a location
a finance user can click to (``Rules!B7``, ``Usage!D1042``) and a message in
their words. Rule problems also carry the rule text and the character span so
the edge can draw a caret under the mistake.
"""

from __future__ import annotations

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


def errors(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.is_error]


def has_errors(problems: list[Problem]) -> bool:
    return any(p.is_error for p in problems)
