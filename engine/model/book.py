"""The Book: a workbook's input sheets read, validated and typed.

This is the contract between reading (`costloop.engine.read.reader`) and every later
stage. Frames use the contract's column names for the columns it names, the user's
own header text for any extra column, and ``_``-prefixed helper columns:

- ``_row``: the Excel row number the data came from (for messages and lineage);
- ``_key``: the name key (`costloop.rules.ast.name_key`) of the row's
  department (Departments, Usage) or pool (Budget, Actuals).

Types: ``Period`` is text ``YYYY-MM``; money (``Amount``) is integer cents in
a column named ``Cents``; ``Quantity`` and ``Volume`` are float64 exactly as
Excel stored them (the engine aggregates them exactly); ``Rate`` is a Decimal;
names are trimmed text in the spelling of their first occurrence.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from costloop.engine.model.values import first_spellings
from costloop.rules.ast import RuleCell, name_key


@dataclass(frozen=True)
class Settings:
    """The `Settings` sheet, typed, with the defaults of docs/contract.md#settings."""

    organization: str = ""
    currency: str = "USD"
    minor_unit: int = 2
    """Decimal places of the currency (ISO 4217): 2 for USD, 0 for JPY."""
    period: str | None = None
    fiscal_year_start: int = 7
    cost_basis: str = "ACTUAL"
    it_fund: str = "IT"
    revenue_account: str = "4400"
    expense_account: str = "6400"
    reimbursement_account: str = "6499"
    due_from_account: str = "1300"
    due_to_account: str = "2300"
    reserve_days: int = 60
    email_from: str = ""
    email_subject: str = ""
    email_body: str = ""
    raw: dict[str, str] = field(default_factory=dict)
    """Every key as written (name key -> value text), including ones costloop does not know."""
    cells: dict[str, str] = field(default_factory=dict)
    """Name key of a setting -> the cell of its Value (``Settings!B4``), for messages."""


@dataclass(frozen=True)
class Book:
    """Every input sheet of one workbook, validated and typed.

    Final once `costloop.engine.read.reader.read_book` returns it (usage from a
    Settings UsageSource included): no stage replaces a part of it. A variant is a
    new Book (`dataclasses.replace`); the frames themselves are not to be edited.
    """

    settings: Settings
    departments: pd.DataFrame
    budget: pd.DataFrame
    actuals: pd.DataFrame
    usage: pd.DataFrame
    rates: pd.DataFrame
    rules: list[RuleCell]
    columns: dict[str, dict[str, tuple[str, str]]] = field(default_factory=dict)
    """Sheet -> name key of a header -> (header as written, column letter)."""
    sheet_names: list[str] = field(default_factory=list)
    """Every sheet in the workbook, in order."""
    fingerprint: str = ""
    """A hash of every input sheet's content (for the Run Log)."""
    sources: dict[str, str] = field(default_factory=dict)
    """Input sheet -> the workbook sheet it was read from, when they differ by case or a
    scenario reads another one (``{"Budget": "Budget@Cloud10"}``); `cell` names that sheet."""
    names_seen: dict[str, dict[str, str]] = field(default_factory=dict)
    """``"pools"``, ``"departments"``, ``"metrics"`` -> key -> spelling of every name typed
    in the input sheets, rows left out for a problem included (so their problem is the only one
    reported, not a second "unknown pool" for the rules that name it)."""
    unreadable_names: frozenset[str] = frozenset()
    """The kinds of name (as in `names_seen`) with a cell that has no value: an Excel error
    or a formula never calculated. Which names exist is then unknown."""

    # --- names, for static checks and "did you mean" --------------------
    @property
    def pools(self) -> dict[str, str]:
        """Pool key -> spelling of its first occurrence (Budget first, then Actuals)."""
        return first_spellings(self.budget["Pool"], self.actuals["Pool"])

    @property
    def department_names(self) -> dict[str, str]:
        return {name_key(d): d for d in self.departments["Department"]}

    @property
    def metrics(self) -> dict[str, str]:
        """Metric key -> spelling, from Usage, Budget's Metric column and Rates."""
        frames = (self.usage, self.budget, self.rates)
        return first_spellings(*(f["Metric"] for f in frames if f is not None and "Metric" in f))

    @property
    def periods(self) -> list[str]:
        """Every period seen in Usage, Budget or Actuals, sorted."""
        # Distinct values first: Usage may hold a million rows of a dozen periods.
        frames = (self.usage, self.budget, self.actuals)
        seen = set().union(*(frame["Period"].unique() for frame in frames))
        return sorted(seen)

    def column_names(self, sheet: str) -> dict[str, str]:
        """Header key -> header as written, for one sheet."""
        return {k: v[0] for k, v in self.columns.get(sheet, {}).items()}

    def cell(self, sheet: str, column: str, row: int) -> str:
        """``Usage!D1042`` for a header name (any case) and an Excel row number."""
        letter = self.columns.get(sheet, {}).get(name_key(column), (column, "?"))[1]
        return f"{self.sources.get(sheet, sheet)}!{letter}{row}"

    def pool_cell(self, key: str, sheets: tuple[str, ...] = ("Budget", "Actuals")) -> str:
        """Where a pool first appears (its Budget row, else its Actuals row), for messages."""
        frames = {"Budget": self.budget, "Actuals": self.actuals}
        for sheet, frame in ((s, frames[s]) for s in sheets):
            rows = frame.loc[frame["_key"] == key, "_row"] if "_key" in frame else []
            if len(rows):
                return self.cell(sheet, "Pool", int(rows.iloc[0]))
        return f"{self.sources.get('Budget', 'Budget')}!A1"
