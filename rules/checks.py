"""Static checks: does every rule make sense against the workbook's real names?

Runs on parsed rules before anything is computed, and returns every problem
at once (finance wants the whole list, not the first). The rules package
knows nothing of pandas: the engine builds `Names` from its Book.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from costloop.problems import Problem, Reason, Severity
from costloop.rules.ast import (
    Allocate,
    Charge,
    Column,
    ColumnDriver,
    Condition,
    CostDriver,
    Forecast,
    Name,
    Rule,
    RuleCell,
    RunRate,
    SharesDriver,
    Span,
    Tiered,
    Trend,
    UsageDriver,
    name_key,
)
from costloop.rules.parser import is_blank
from costloop.rules.plan import SetAside
from costloop.rules.suggest import closest, closest_keyword, keyword_hint, quoted_hint

HUNDRED = Decimal(100)
_QUOTED = re.compile('["\u201c\u201d]([^"\u201c\u201d]*)["\u201c\u201d]')
_DRIVER_KEYWORDS = ("USAGE", "COST", "EVENLY")


@dataclass(frozen=True)
class Names:
    """The names a rule may use, each as ``key -> spelling`` (keys from ``name_key``)."""

    pools: dict[str, str] = field(default_factory=dict)
    """Pools in Budget or Actuals."""
    departments: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, str] = field(default_factory=dict)
    department_columns: dict[str, str] = field(default_factory=dict)
    """Departments column key -> header."""
    numeric_department_columns: frozenset[str] = frozenset()
    """Keys of the Departments columns that can be drivers."""
    usage_columns: dict[str, str] = field(default_factory=dict)
    column_values: Mapping[tuple[str, str], Mapping[str, str]] = field(default_factory=dict)
    """(``"Departments"`` or ``"Usage"``, column key) -> `value_key` of every value in the
    column -> its spelling, for WHERE values; a column left out is not checked."""
    cells_not_numbers: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    """Departments column key -> (cell, value as shown) of each value that is not a number,
    for columns that are numbers otherwise (a driver with a stray word in it)."""
    uncertain: frozenset[str] = frozenset()
    """Kinds of name (``"pools"``, ``"departments"``, ``"metrics"``) whose list may be
    incomplete because a name cell could not be read: no "unknown" errors for them."""


def value_key(value: object) -> str:
    """How a WHERE value and a cell value are matched: names by `name_key`, numbers by value
    (``7``, ``7.0`` and ``7.00`` are one key)."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value.is_finite() else str(value)
    return name_key(str(value))


def check(
    rules: list[Rule], names: Names, cells: Iterable[RuleCell] | None = None
) -> list[Problem]:
    """Every problem in ``rules`` against ``names``; with ``cells``, their IDs too."""
    problems: list[Problem] = []
    for rule in rules:
        problems.extend(_RuleChecker(rule, names).run())
    problems.extend(_across(rules, names))
    if cells is not None:
        problems.extend(check_ids(list(cells)))
    return problems


def set_aside(rules: list[Rule], names: Names) -> tuple[SetAside, ...]:
    """The FORECAST rules `check` finds a mistake in, to leave out of the plan (`order`).

    A forecast is advice about the months to come, never a reason to hold back
    the period's bills (docs/contract.md#errors): its mistakes are warnings, and
    the rule is not run rather than run wrong.
    """
    aside = []
    for rule in rules:
        if isinstance(rule, Forecast):
            found = _RuleChecker(rule, names).run()
            if found:
                aside.append(SetAside(rule, found[0].message))
    return tuple(aside)


def check_ids(cells: list[RuleCell]) -> list[Problem]:
    """Every enabled rule has an ID, and no two share one."""
    problems: list[Problem] = []
    first: dict[str, RuleCell] = {}
    for cell in cells:
        if not cell.enabled or is_blank(cell.text):
            continue
        where = cell.id_where or cell.where
        key = name_key(cell.rule_id)
        if not key:
            problems.append(
                Problem(
                    Reason.MISSING_ID,
                    Severity.ERROR,
                    where,
                    "this rule has no ID: type a short unique ID, like R1, in the ID column",
                )
            )
            continue
        if key in first:
            other = first[key]
            problems.append(
                Problem(
                    Reason.DUPLICATE_ID,
                    Severity.ERROR,
                    where,
                    f'rule ID "{cell.rule_id}" is also used in {other.id_where or other.where}:'
                    " give each rule its own ID",
                    rule_id=cell.rule_id,
                )
            )
            continue
        first[key] = cell
    return problems


class _RuleChecker:
    """The checks of one rule on its own."""

    def __init__(self, rule: Rule, names: Names) -> None:
        self.rule = rule
        self.names = names
        self.problems: list[Problem] = []
        # A FORECAST rule's mistakes never hold back the bills: warnings (see `set_aside`).
        self.severity = Severity.WARNING if isinstance(rule, Forecast) else Severity.ERROR

    def flag(
        self,
        code: Reason,
        message: str,
        span: Span | None = None,
        severity: Severity | None = None,
    ) -> None:
        """A problem of this rule: an error, unless ``severity`` or the rule's kind says less."""
        severity = severity or self.severity
        self.problems.append(_problem(self.rule, code, message, span, severity))

    def run(self) -> list[Problem]:
        rule = self.rule
        if isinstance(rule, Allocate):
            self.allocate(rule)
        elif isinstance(rule, Charge):
            self.charge(rule)
        else:
            self.forecast(rule)
        return self.problems

    # --- names --------------------------------------------------------------

    def pool(self, name: Name) -> bool:
        if name.key in self.names.pools or not name.key:  # empty: the parser said so
            return True
        if "pools" in self.names.uncertain:
            return True
        hint = quoted_hint(closest(name.text, self.names.pools.values()))
        self.flag(
            Reason.UNKNOWN_POOL,
            f'unknown pool "{name.text}"' + (hint or ": it is in neither Budget nor Actuals"),
            name.span,
        )
        return False

    def metric(self, name: Name) -> None:
        if name.key in self.names.metrics or not name.key or "metrics" in self.names.uncertain:
            return
        hint = quoted_hint(closest(name.text, self.names.metrics.values()))
        self.flag(
            Reason.UNKNOWN_METRIC,
            f'unknown metric "{name.text}"' + (hint or ": no Usage row has this Metric"),
            name.span,
        )

    def where_columns(self, conditions: tuple[Condition, ...]) -> None:
        known = {**self.names.usage_columns, **self.names.department_columns}
        for condition in conditions:
            column = condition.column
            if column.key in known:
                continue
            hint = _column_hint(closest(column.text, known.values()))
            self.flag(
                Reason.UNKNOWN_COLUMN,
                f'unknown column "{column.text}" in WHERE'
                + (hint or ": neither Departments nor Usage has this column"),
                column.span,
            )

    def where_values(self, conditions: tuple[Condition, ...]) -> None:
        """A WHERE value found in no row of its column is a typo until shown otherwise.

        ``Fund = "Genral"`` selects nothing and ``Fund <> "Genral"`` leaves out
        nothing, both silently; the real values give the did-you-mean. Only
        ``=``, ``<>`` and ``IN`` are checked: a range (``<``) need not hit a value.
        """
        for condition in conditions:
            if condition.op not in ("=", "<>", "IN"):
                continue
            column = condition.column
            sheets = [
                sheet
                for sheet in ("Departments", "Usage")
                if (sheet, column.key) in self.names.column_values
            ]
            if not sheets:
                continue
            for value in condition.values:
                key = value_key(value)
                lacking = [
                    s for s in sheets if key not in self.names.column_values[(s, column.key)]
                ]
                if not lacking:
                    continue
                header = {**self.names.usage_columns, **self.names.department_columns}.get(
                    column.key, column.text
                )
                shown = f'"{value}"' if isinstance(value, str) else format(value, "f")
                message = f"no {' or '.join(lacking)} row has {header} {shown}"
                if condition.op == "<>":
                    message += f", so <> {shown} leaves nothing out"
                elif condition.op == "=":
                    message += ", so this condition selects nothing"
                if isinstance(value, str):
                    spellings = [
                        spelling
                        for sheet in lacking
                        for spelling in self.names.column_values[(sheet, column.key)].values()
                    ]
                    message += quoted_hint(closest(value, spellings))
                self.flag(
                    Reason.WHERE_NO_MATCH,
                    message,
                    _value_span(self.rule.text, condition, shown),
                    Severity.WARNING,
                )

    # --- statements ---------------------------------------------------------

    def allocate(self, rule: Allocate) -> None:
        self.pool(rule.pool)
        for name in rule.receivers.pool_names:
            if name.key == rule.pool.key:
                self.flag(
                    Reason.SELF_ALLOCATION,
                    f'pool "{rule.pool.text}" cannot allocate to itself',
                    name.span,
                )
            else:
                self.pool(name)
        driver = rule.driver
        if isinstance(driver, UsageDriver):
            self.metric(driver.metric)
        elif isinstance(driver, ColumnDriver):
            self.column_driver(rule, driver.column)
        elif isinstance(driver, SharesDriver):
            self.shares(rule, driver)
        elif isinstance(driver, CostDriver) and rule.to_departments:
            self.flag(
                Reason.BAD_DRIVER,
                "BY COST shares by the receiving pools' own cost, so only pools can receive:"
                " write TO POOLS, or pick another driver for departments",
                driver.span,
            )
        self.where_columns(rule.where_clause)
        self.where_values(rule.where_clause)
        self.where_without_usage(rule)

    def where_without_usage(self, rule: Allocate) -> None:
        """WHERE on a Usage-only column filters usage rows; a driver that reads none of them
        would ignore it and spread to every receiver: a silent wrong bill, so an error.
        Likewise a Departments-only column when only pools receive."""
        for condition in rule.where_clause:
            key = condition.column.key
            if (
                not rule.to_departments
                and key in self.names.department_columns
                and key not in self.names.usage_columns
            ):
                header = self.names.department_columns[key]
                self.flag(
                    Reason.BAD_DRIVER,
                    f"{header} is a Departments column: it picks departments, but this rule "
                    f"gives only to pools, so WHERE {header} would change nothing; remove it, "
                    f"or add AND DEPARTMENTS to the receivers",
                    condition.column.span,
                )
                continue
            if isinstance(rule.driver, UsageDriver):
                continue
            if key not in self.names.usage_columns or key in self.names.department_columns:
                continue
            header = self.names.usage_columns[key]
            self.flag(
                Reason.BAD_DRIVER,
                f"{header} is a Usage column: it filters usage rows, but {_driver_words(rule)}"
                f" reads no usage, so WHERE {header} would change nothing; filter on a "
                f'Departments column, or share BY USAGE "<metric>"',
                condition.column.span,
            )

    def column_driver(self, rule: Allocate, column: Column) -> None:
        columns = self.names.department_columns
        if column.key not in columns:
            suggestion = _column_hint(closest(column.text, columns.values()))
            if suggestion:
                message = f'unknown column "{column.text}"{suggestion}'
            else:
                keyword = closest_keyword(column.text, _DRIVER_KEYWORDS)
                message = (
                    f'unknown driver "{column.text}"{keyword_hint(keyword)}'
                    if keyword
                    else f'unknown driver "{column.text}": Departments has no column'
                    f' "{column.text}" (drivers are USAGE "metric", a numeric Departments'
                    ' column, shares like 60% "ADM", or COST)'
                )
            self.flag(Reason.UNKNOWN_COLUMN, message, column.span)
            return
        stray = self.names.cells_not_numbers.get(column.key)
        if stray:
            # A column of numbers with a few words in it: point at those cells.
            header = columns[column.key]
            for cell, shown in stray:
                self.problems.append(
                    Problem(
                        Reason.NOT_NUMERIC,
                        Severity.ERROR,
                        cell,
                        f"{header} must be a number, got {shown} (rule {rule.rule_id} shares cost "
                        f"by {header}); type the number, or 0 for none",
                        rule_id=rule.rule_id,
                    )
                )
        elif column.key not in self.names.numeric_department_columns:
            self.flag(
                Reason.NOT_NUMERIC,
                f"Departments column {columns[column.key]} is not a numeric column,"
                " so it cannot share out cost: use a column of numbers such as Headcount",
                column.span,
            )
        if rule.to_pools:
            self.flag(
                Reason.BAD_DRIVER,
                f"BY {column.text} reads a Departments column, so pools cannot receive:"
                " use BY USAGE, BY COST or fixed shares for pools",
                column.span,
            )

    def shares(self, rule: Allocate, driver: SharesDriver) -> None:
        total = sum((share.percent for share in driver.shares), Decimal(0))
        if total != HUNDRED:
            self.flag(Reason.SHARES_NOT_100, f"shares add up to {_pct(total)}%, not 100%")
        listed = {name.key for name in rule.receivers.pool_names}
        seen: set[str] = set()
        for share in driver.shares:
            name = share.name
            if name.key in seen:
                self.flag(
                    Reason.BAD_DRIVER,
                    f'"{name.text}" has two shares: give it one share',
                    share.span,
                )
            seen.add(name.key)
            if name.key == rule.pool.key:
                self.flag(
                    Reason.SELF_ALLOCATION,
                    f'pool "{rule.pool.text}" cannot allocate to itself',
                    name.span,
                )
                continue
            is_pool = name.key in self.names.pools
            is_department = name.key in self.names.departments
            if rule.to_pools and is_pool:
                if listed and name.key not in listed:
                    self.flag(
                        Reason.UNKNOWN_NAME,
                        f'pool "{name.text}" gets a share but is not one of the pools'
                        " this rule allocates to: add it after POOLS",
                        name.span,
                    )
                continue
            if rule.to_departments and is_department:
                continue
            self.unknown_share(rule, name)

    def unknown_share(self, rule: Allocate, name: Name) -> None:
        uncertain = self.names.uncertain
        if (rule.to_departments and "departments" in uncertain) or (
            rule.to_pools and "pools" in uncertain
        ):
            return  # a name cell could not be read: its own error explains
        candidates: list[str] = []
        if rule.to_departments:
            candidates.extend(self.names.departments.values())
        if rule.to_pools:
            candidates.extend(self.names.pools.values())
        hint = quoted_hint(closest(name.text, candidates))
        if rule.to_departments and rule.to_pools:
            code, what, home = Reason.UNKNOWN_NAME, "department or pool", "Departments, Budget"
        elif rule.to_pools:
            code, what, home = Reason.UNKNOWN_POOL, "pool", "Budget or Actuals"
        else:
            code, what, home = Reason.UNKNOWN_DEPARTMENT, "department", "Departments"
        if not hint and rule.to_departments and name.key in self.names.pools:
            hint = ": it is a pool, and this rule allocates TO DEPARTMENTS"
        elif not hint and rule.to_pools and name.key in self.names.departments:
            hint = ": it is a department, and this rule allocates TO POOLS"
        self.flag(
            code, f'unknown {what} "{name.text}"' + (hint or f": it is not in {home}"), name.span
        )

    def charge(self, rule: Charge) -> None:
        self.pool(rule.pool)
        self.metric(rule.metric)
        if isinstance(rule.pricing, Tiered):
            self.tiers(rule.pricing)
        self.where_columns(rule.where_clause)
        self.where_values(rule.where_clause)

    def tiers(self, pricing: Tiered) -> None:
        tiers = pricing.tiers
        for index, tier in enumerate(tiers):
            last = index == len(tiers) - 1
            if tier.width is None and not last:
                self.flag(Reason.BAD_TIERS, "ABOVE must be the last tier", tier.span)
            elif tier.width is not None and tier.width <= 0:
                self.flag(
                    Reason.BAD_TIERS,
                    f"a tier must cover more than 0 units, got {tier.width}",
                    tier.span,
                )
        if not tiers or tiers[-1].width is not None:
            self.flag(
                Reason.BAD_TIERS,
                "the tiers need a last band for everything above them: add , ABOVE AT <rate>",
                pricing.span,
            )

    def forecast(self, rule: Forecast) -> None:
        if rule.kind == "USAGE":
            self.metric(rule.name)
        else:
            self.pool(rule.name)
        method = rule.method
        if isinstance(method, Trend) and method.periods < 2:
            self.flag(
                Reason.BAD_FORECAST,
                f"a trend needs at least 2 periods to draw a line through, got {method.periods}",
                method.span,
            )
        elif isinstance(method, RunRate) and method.periods < 1:
            self.flag(
                Reason.BAD_FORECAST,
                "a run rate averages at least 1 period, got 0",
                method.span,
            )


def _across(rules: list[Rule], names: Names) -> list[Problem]:
    """Checks between rules: one spreader per pool; charged and allocated pools."""
    problems: list[Problem] = []
    spreader: dict[str, Allocate] = {}
    charged: dict[str, Charge] = {}
    for rule in rules:
        if isinstance(rule, Charge):
            charged.setdefault(rule.pool.key, rule)
    for rule in rules:
        if not isinstance(rule, Allocate):
            continue
        key = rule.pool.key
        spelled = names.pools.get(key, rule.pool.text)
        first = spreader.setdefault(key, rule)
        if first is not rule:
            problems.append(
                _problem(
                    rule,
                    Reason.DUPLICATE_ALLOCATION,
                    f'pool "{spelled}" is already allocated by rule {first.rule_id}'
                    f" ({first.where}): a pool's cost is spread by one ALLOCATE rule,"
                    " so join the two rules or disable one",
                    rule.pool.span,
                )
            )
        charge = charged.get(key)
        if charge is not None and rule.to_departments:
            problems.append(
                _problem(
                    rule,
                    Reason.CHARGED_AND_ALLOCATED,
                    f'pool "{spelled}" is also charged by rule {charge.rule_id}'
                    f" ({charge.where}): departments pay for it twice unless the charge and"
                    " the allocation cover different costs",
                    rule.pool.span,
                    Severity.WARNING,
                )
            )
    return problems


def _problem(
    rule: Rule,
    code: Reason,
    message: str,
    span: Span | None,
    severity: Severity = Severity.ERROR,
) -> Problem:
    return Problem.at_rule(rule, code, message, span, severity)


def _value_span(text: str, condition: Condition, shown: str) -> Span:
    """Where a WHERE value is written in the rule (the condition, if it cannot be found)."""
    start, end = condition.span.start, condition.span.end
    inside = text[start:end]
    after_column = condition.column.span.end - start
    if not shown.startswith('"'):
        at = inside.find(shown, after_column)
        return Span(start + at, start + at + len(shown)) if at >= 0 else condition.span
    body = shown[1:-1].strip().casefold()
    # Names may be in straight or curly quotes, with stray spaces inside them.
    for match in _QUOTED.finditer(inside, after_column):
        if match.group(1).strip().casefold() == body:
            return Span(start + match.start(), start + match.end())
    return condition.span


def _driver_words(rule: Allocate) -> str:
    """How the rule's driver reads in a message: ``EVENLY``, ``BY Headcount``, ``BY COST``."""
    driver = rule.driver
    if isinstance(driver, ColumnDriver):
        return f"BY {driver.column.text}"
    if isinstance(driver, SharesDriver):
        return "a split by fixed shares"
    if isinstance(driver, CostDriver):
        return "BY COST"
    return "EVENLY"


def _column_hint(header: str | None) -> str:
    if not header:
        return ""
    written = header if header.replace("_", "a").isalnum() else f"[{header}]"
    return f" — did you mean {written}?"


def _pct(value: Decimal) -> str:
    """90 -> ``90``, 99.50 -> ``99.5``: the total as a person writes it."""
    return format(value.normalize(), "f")
