"""The two sheets every run writes, passed or failed: `Rule Check` and `Run Log`.

`Rule Check` has a row per rule (its status, and the amount it spread or
billed), a further row per extra problem of that rule, then a row per problem
that belongs to no rule (data problems, cycles spanning several rules), so a
finance user filtering on Status sees everything to fix in one place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from costloop.engine.model.formats import money_format as format_for_money
from costloop.engine.model.sheets import RULE_CHECK, RULE_CHECK_COLUMNS, RUN_LOG, RUN_LOG_COLUMNS
from costloop.engine.workbook.host import OutputSheet
from costloop.problems import Problem, Severity, grouped
from costloop.rules.ast import RuleCell

MAX_PROBLEM_ROWS = 1_048_575
"""Rows of data an Excel sheet holds below its header."""


def _message(problem: Problem) -> str:
    if problem.character is not None:
        return f"character {problem.character}: {problem.message}"
    return problem.message


def _belongs_to(problem: Problem, cell: RuleCell) -> bool:
    if problem.rule_id is not None:
        return problem.rule_id == cell.rule_id and problem.where in (cell.where, cell.id_where)
    return problem.where in (cell.where, cell.id_where)


def rule_check_sheet(
    cells: Iterable[RuleCell],
    problems: Iterable[Problem],
    amounts: Mapping[str, Decimal] | None = None,
    money_format: str = format_for_money(2),
    name: str = RULE_CHECK,
) -> OutputSheet:
    """The `Rule Check` sheet: a status for every rule, then every other problem.

    ``money_format`` is the workbook's (`model.formats.money_format` of its
    currency); the default, for cents, serves only a run with no Book to ask.
    """
    amounts = amounts or {}
    problems = list(problems)
    # Problems by cell, so a million data problems are not scanned once per rule.
    at: dict[str, list[int]] = {}
    for i, problem in enumerate(problems):
        at.setdefault(problem.where, []).append(i)
    taken: set[int] = set()
    rows: list[tuple] = []
    for cell in cells:
        candidates = sorted(set(at.get(cell.where, [])) | set(at.get(cell.id_where, [])))
        own = [problems[i] for i in candidates if i not in taken and _belongs_to(problems[i], cell)]
        taken.update(i for i in candidates if _belongs_to(problems[i], cell))
        amount = amounts.get(cell.rule_id)
        if not cell.enabled:
            rows.append((cell.rule_id, cell.where, "DISABLED", "Enabled is N: not run", None))
            continue
        if not own:
            rows.append((cell.rule_id, cell.where, "OK", "", amount))
            continue
        # Errors first: the worst status is what a filter on the first row shows.
        own.sort(key=lambda p: p.severity is not Severity.ERROR)
        for i, problem in enumerate(own):
            rows.append(
                (
                    cell.rule_id,
                    problem.where,
                    problem.severity.value,
                    _message(problem),
                    amount if i == 0 else None,
                )
            )
    # A column of bad cells is one row (with the count and the first cells), not one per cell.
    remaining = grouped(p for i, p in enumerate(problems) if i not in taken)
    for problem in remaining:
        rows.append(
            (problem.rule_id or "", problem.where, problem.severity.value, _message(problem), None)
        )
    if len(rows) > MAX_PROBLEM_ROWS:
        cut = rows[MAX_PROBLEM_ROWS - 1 :]
        left = len(cut)
        rows[MAX_PROBLEM_ROWS - 1 :] = [
            (
                "",
                "",
                "ERROR" if any(r[2] == "ERROR" for r in cut) else "WARNING",
                f"{left:,} more rows not listed: an Excel sheet holds no more; fix the problems "
                "above and run again",
                None,
            )
        ]
    return OutputSheet(
        name=name, columns=RULE_CHECK_COLUMNS, rows=rows, formats={"Amount": money_format}
    )


@dataclass
class RunLog:
    """Key/value lines in the order they were added."""

    entries: list[tuple[str, object]] = field(default_factory=list)

    def add(self, key: str, value: object) -> None:
        self.entries.append((key, value))

    def sheet(self, name: str = RUN_LOG) -> OutputSheet:
        rows = [(k, "" if v is None else v) for k, v in self.entries]
        return OutputSheet(name=name, columns=RUN_LOG_COLUMNS, rows=rows)

    def value(self, key: str) -> object:
        return next((v for k, v in self.entries if k == key), None)
