"""What-if scenarios: run the loop on an alternate Budget and/or Rates, beside the real run.

``costloop run BOOK --scenario NAME`` reads the sheet ``Budget@NAME`` instead of
``Budget`` and ``Rates@NAME`` instead of ``Rates`` (either or both must exist;
the other input sheets are shared), and writes every output under
``<output>@NAME`` (``Bills@NAME``, ``Forecast@NAME``, ``Run Log@NAME`` …), so
the base run's sheets are never touched.

Excel limits a sheet name to 31 characters and forbids ``[ ] : * ? / \\``. A
scenario name is therefore at most 20 characters (so the longest output name,
``Compliance@`` or ``Rule Check@`` + 20, fits exactly), may not contain those
characters or ``@``, and may not end with an apostrophe. An output name that
would still be too long (a longer base name) keeps the whole scenario name and
shortens the base.

The scenario's name is spelled as its sheets spell it, whatever case
``--scenario`` was typed in: ``--scenario CLOUD10`` on ``Budget@cloud10``
writes ``Bills@cloud10``, so a rerun replaces the same sheets.

The functions here are pure: the pipeline passes `resolve_scenario`'s inputs to
the reader and names its output sheets with `output_sheet_names` from the
resolved spelling.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from costloop.engine.model.sheets import BUDGET, OUTPUT_SHEETS, RATES
from costloop.engine.workbook.host import MAX_SHEET_NAME
from costloop.problems import Problem, Reason, Severity
from costloop.rules.ast import name_key

SEPARATOR = "@"
SCENARIO_INPUTS = (BUDGET, RATES)
"""The input sheets a scenario may replace."""
MAX_SCENARIO_NAME = MAX_SHEET_NAME - len(SEPARATOR) - max(map(len, OUTPUT_SHEETS))
"""20 = 31 − len("Compliance@"): every standard output name fits with no shortening."""
FORBIDDEN = set("[]:*?/\\") | {SEPARATOR}
_OUTPUT_KEYS = {name_key(s) for s in OUTPUT_SHEETS}
WHERE = "--scenario"
"""Where scenario problems point: the command-line option (or the ribbon's scenario box)."""


@dataclass(frozen=True)
class Scenario:
    """A resolved scenario: its name as spelled by its sheets, and the inputs it replaces."""

    name: str
    inputs: dict[str, str] = field(default_factory=dict)
    """Logical input sheet -> the workbook's scenario sheet (``{"Budget": "Budget@High"}``)."""


def _problem(message: str, severity: Severity = Severity.ERROR) -> Problem:
    return Problem(Reason.BAD_SCENARIO, severity, WHERE, message)


def validate_scenario_name(scenario: str) -> list[Problem]:
    """Errors for a scenario name that cannot be part of an Excel sheet name."""
    name = scenario.strip()
    if not name:
        return [_problem("the scenario name is empty; give a name, e.g. --scenario High")]
    problems = []
    bad = sorted({c for c in name if c in FORBIDDEN or ord(c) < 32})
    if bad:
        shown = " ".join(repr(c) for c in bad)
        problems.append(
            _problem(
                f'scenario name "{name}" contains {shown}; sheet names cannot contain '
                f"[ ] : * ? / \\ and costloop uses @ to join sheet and scenario — "
                f"use letters, digits, spaces, - or _"
            )
        )
    if name.endswith("'"):
        problems.append(
            _problem(f'scenario name "{name}" ends with an apostrophe, which Excel forbids')
        )
    if len(name) > MAX_SCENARIO_NAME:
        problems.append(
            _problem(
                f'scenario name "{name}" is {len(name)} characters; at most '
                f"{MAX_SCENARIO_NAME} fit, because Excel sheet names stop at {MAX_SHEET_NAME} "
                f'characters and outputs are named like "Compliance@{name}" — use a shorter '
                f"name (and rename its Budget@ / Rates@ sheets to match)"
            )
        )
    return problems


def scenarios_in(sheet_names: list[str]) -> list[str]:
    """Scenario names the workbook offers (from its ``Budget@…`` and ``Rates@…`` sheets)."""
    found: dict[str, str] = {}
    inputs = {name_key(s) for s in SCENARIO_INPUTS}
    for sheet in sheet_names:
        base, sep, scenario = sheet.partition(SEPARATOR)
        if sep and scenario.strip() and name_key(base) in inputs:
            found.setdefault(name_key(scenario), scenario.strip())
    return sorted(found.values(), key=name_key)


def resolve_scenario(
    sheet_names: list[str], scenario: str | None
) -> tuple[Scenario | None, list[Problem]]:
    """The scenario's sheets in this workbook (names match case-insensitively, as in Excel)."""
    if scenario is None:
        return None, []
    problems = validate_scenario_name(scenario)
    if problems:
        return None, problems
    wanted = name_key(scenario)
    inputs: dict[str, str] = {}
    spelling = scenario.strip()
    others = []
    for sheet in sheet_names:
        base, sep, suffix = sheet.partition(SEPARATOR)
        if not sep or name_key(suffix) != wanted:
            continue
        logical = next((s for s in SCENARIO_INPUTS if name_key(s) == name_key(base)), None)
        if logical is None:
            # costloop's own outputs of an earlier run of this scenario are not inputs.
            if name_key(base) not in _OUTPUT_KEYS:
                others.append(sheet)
        elif logical not in inputs:
            if not inputs:  # the first scenario sheet (in workbook order) spells the name
                spelling = suffix.strip()
            inputs[logical] = sheet
    if not inputs:
        looked = " or ".join(f'"{s}{SEPARATOR}{scenario.strip()}"' for s in SCENARIO_INPUTS)
        offered = scenarios_in(sheet_names)
        hint = (
            f"this workbook has scenarios: {', '.join(offered)}"
            if offered
            else "add a copy of Budget or Rates named that way and change its numbers"
        )
        return None, [_problem(f'no sheet {looked} for scenario "{scenario.strip()}"; {hint}')]
    for sheet in others:
        problems.append(
            _problem(
                f'sheet "{sheet}" is not read: a scenario replaces only '
                f"{' and '.join(SCENARIO_INPUTS)}; the other input sheets are shared with the "
                f"base run",
                Severity.WARNING,
            )
        )
    return Scenario(spelling, inputs), problems


def input_sheet_map(
    sheet_names: list[str], scenario: str | None
) -> tuple[dict[str, str], list[Problem]]:
    """Logical input sheet -> sheet to read, for the reader; empty without a scenario."""
    resolved, problems = resolve_scenario(sheet_names, scenario)
    return (dict(resolved.inputs) if resolved else {}), problems


def output_sheet_name(base: str, scenario: str | None) -> str:
    """``Bills`` -> ``Bills@High``; the base is shortened if the whole would pass 31 characters.

    Expects a valid scenario name (`validate_scenario_name`); raises ValueError
    for one that cannot fit at all.
    """
    if scenario is None or not scenario.strip():
        return base
    scenario = scenario.strip()
    room = MAX_SHEET_NAME - len(SEPARATOR) - len(scenario)
    if room < 1:
        raise ValueError(f"scenario name {scenario!r} is too long for an Excel sheet name")
    return f"{base[:room].rstrip()}{SEPARATOR}{scenario}"


def output_sheet_names(
    bases: list[str], scenario: str | None
) -> tuple[dict[str, str], list[Problem]]:
    """Every output's scenario name; an error if shortening made two of them the same."""
    names = {base: output_sheet_name(base, scenario) for base in bases}
    seen: dict[str, str] = {}
    problems = []
    for base, name in names.items():
        if name.casefold() in seen:
            problems.append(
                _problem(
                    f'outputs "{seen[name.casefold()]}" and "{base}" would both be written to '
                    f'"{name}" under scenario "{scenario}"; use a shorter scenario name'
                )
            )
        seen.setdefault(name.casefold(), base)
    return names, problems
