"""Usage that no rule bills, and a billed period with no usage at all.

A Usage row bills only through a rule that reads its metric (``ALLOCATE … BY
USAGE "m"``, ``CHARGE … FOR "m"``). A metric typed "Server Hrs" where the rules
say "Server Hours" was read by none: that department's whole share went to the
others, with exit 0 and Rule Check all OK. So, for the billed period:

- **a metric no enabled rule reads** (ALLOCATE BY USAGE, CHARGE, or FORECAST
  USAGE, which reads it on purpose without billing it) is a warning with its
  rows, quantity, cells and the closest metric the rules do read;
- **a Service no rule lets through**: when every rule reading a metric filters on
  ``WHERE Service``, rows whose Service no rule lets in are billed to nobody: a
  warning for each such Service. A blank Service, or one spelled like a value
  the rules name ("EC 2" for "EC2"), is a typo to fix ("did you mean"). A Service
  no rule names and that resembles none is warned about too: a brand-new
  "Lambda" under ``WHERE Service IN ("EC2", "S3")`` would otherwise go unbilled
  without a word. It may be left out on purpose (the demo's Marketplace rows,
  which R13 leaves to Procurement), so its message says that then it is expected;
- **a period with no Usage rows at all**, when rules bill usage, is one error
  saying where the period came from, instead of one "no usage of …; add IF NO
  USAGE EVENLY" per rule (advice that would spread the whole month evenly).

This needs both the plan and the Book, and reads usage rows the way the
drivers do (`condition_mask`), so it lives with the chargeback, pure; the
pipeline calls it once per run, and `check` calls it too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

from costloop.engine.chargeback.drivers import condition_mask
from costloop.engine.model.book import Book
from costloop.engine.model.money import format_quantity, quantity_units, units_to_decimal
from costloop.problems import Problem, Reason, Severity
from costloop.rules.ast import Allocate, Charge, Condition, Name, UsageDriver, name_key
from costloop.rules.plan import Plan
from costloop.rules.suggest import closest, quoted_hint

MAX_RANGES_SHOWN = 5
SERVICE = "service"


def _readers(plan: Plan) -> tuple[dict[str, list[tuple[Condition, ...]]], dict[str, str]]:
    """Metric key -> the WHERE Service conditions of each enabled rule that reads it; and
    metric key -> its spelling in the first rule naming it."""
    reads: dict[str, list[tuple[Condition, ...]]] = {}
    spelled: dict[str, str] = {}

    def add(metric: Name, where: Iterable[Condition]) -> None:
        spelled.setdefault(metric.key, metric.text)
        reads.setdefault(metric.key, []).append(tuple(c for c in where if c.column.key == SERVICE))

    for step in plan.allocations:
        for rule in step.rules:
            if isinstance(rule, Allocate) and isinstance(rule.driver, UsageDriver):
                add(rule.driver.metric, rule.where_clause)
    for charge in plan.charges:
        if isinstance(charge, Charge):
            add(charge.metric, charge.where_clause)
    # Read on purpose, never billed: not "forgotten" (even by a rule set aside for a mistake).
    for forecast in (*plan.forecasts, *(s.rule for s in plan.set_aside)):
        if forecast.kind == "USAGE":
            add(forecast.name, ())
    return reads, spelled


def _ranges(letter: str, rows: np.ndarray) -> str:
    """``C14:C20, C45`` for the rows (ascending), the first few runs of them."""
    rows = np.sort(rows)
    breaks = np.flatnonzero(np.diff(rows) != 1)
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [len(rows) - 1]])
    shown = [
        f"{letter}{rows[a]}" if rows[a] == rows[b] else f"{letter}{rows[a]}:{letter}{rows[b]}"
        for a, b in zip(
            starts[:MAX_RANGES_SHOWN].tolist(), ends[:MAX_RANGES_SHOWN].tolist(), strict=True
        )
    ]
    text = ", ".join(shown)
    if len(starts) > MAX_RANGES_SHOWN:
        text += f" and {len(starts) - MAX_RANGES_SHOWN} more range(s)"
    return text


def _is(positions: np.ndarray) -> str:
    return "is" if len(positions) == 1 else "are"


class _PeriodUsage:
    """The billed period's usage rows, with what messages need to name them."""

    def __init__(self, book: Book, period: str):
        usage = book.usage
        self.book = book
        self.rows = usage[usage["Period"].to_numpy(dtype=object) == period]
        self.sheet = book.sources.get("Usage", "Usage")
        # Rows summed from UsageSource files have no sheet row: point at the setting.
        self.in_files = len(self.rows) > 0 and not self.rows["_row"].to_numpy().any()
        services = self.rows["Service"] if "Service" in self.rows else pd.Series([], dtype=object)
        codes, distinct = pd.factorize(services.to_numpy(dtype=object), use_na_sentinel=False)
        self.service_codes = np.asarray(codes, dtype=np.int64)
        self.services = pd.DataFrame({"Service": pd.Series(distinct, dtype=object)})
        """Each distinct Service once (WHERE is judged on these), and each row's code into it."""
        self._masks: dict[tuple, np.ndarray] = {}

    def service_mask(self, condition: Condition) -> np.ndarray:
        """The distinct Services meeting ``condition`` (rules often share one)."""
        signature = (condition.op, condition.values)
        if signature not in self._masks:
            self._masks[signature] = condition_mask(self.services, "Service", condition)
        return self._masks[signature]

    def where(self, column: str, positions: np.ndarray) -> str:
        if self.in_files:
            for key, cell in self.book.settings.cells.items():
                if key.replace(" ", "") == "usagesource":
                    return cell
            return "Settings"
        letter = self.book.columns.get("Usage", {}).get(column, (column, "A"))[1]
        rows = self.rows["_row"].to_numpy()[positions]
        return f"{self.sheet}!{_ranges(letter, rows)}"

    def described(self, positions: np.ndarray, period: str) -> str:
        """``3 rows in 2026-03 (quantity 1,234.5, used by ENG, CAS)``: what is left unbilled."""
        count = len(positions)
        quantities = self.rows["Quantity"].to_numpy(dtype="float64")[positions]
        units, scale = quantity_units(quantities)
        total = units_to_decimal(int(sum(units.tolist())), scale)
        users = pd.unique(self.rows["Department"].to_numpy(dtype=object)[positions]).tolist()
        who = ", ".join(str(u) for u in users[:3]) + (
            f" and {len(users) - 3} more" if len(users) > 3 else ""
        )
        return (
            f"{count:,} row{'s' if count != 1 else ''} in {period}"
            f"{' of the UsageSource files' if self.in_files else ''} "
            f"(quantity {format_quantity(total)}, "
            f"used by {who})"
        )


def unbilled_usage(book: Book, plan: Plan, period: str) -> list[Problem]:
    """Warnings for the billed period's usage that no enabled rule reads (see the module)."""
    usage = _PeriodUsage(book, period)
    if not len(usage.rows):
        return []
    reads, spelled = _readers(plan)
    metrics = usage.rows["Metric"].to_numpy(dtype=object)
    codes, spellings = pd.factorize(metrics)
    keys = [name_key(str(s)) for s in spellings]
    # The rules' metrics as the period's Usage spells them (the rule's spelling if absent).
    spelled |= {k: str(s) for k, s in zip(keys, spellings, strict=True) if k in spelled}
    read_spellings = list(spelled.values())
    problems: list[Problem] = []
    for code, (key, spelling) in enumerate(zip(keys, spellings, strict=True)):
        positions = np.flatnonzero(codes == code)
        if key not in reads:
            guess = closest(str(spelling), [s for s in read_spellings if name_key(s) != key])
            problems.append(
                Problem(
                    Reason.UNBILLED_USAGE,
                    Severity.WARNING,
                    usage.where("metric", positions),
                    f'no enabled rule reads the metric "{spelling}", so '
                    f"{usage.described(positions, period)} {_is(positions)} billed to nobody: "
                    f"fix the Metric cells, or name the metric in a rule{quoted_hint(guess)}",
                )
            )
            continue
        problems += _unread_services(usage, reads[key], str(spelling), positions, period)
    return problems


def _unread_services(
    usage: _PeriodUsage,
    readers: list[tuple[Condition, ...]],
    metric: str,
    positions: np.ndarray,
    period: str,
) -> list[Problem]:
    """Rows of one metric whose Service no reading rule lets in, one warning per Service."""
    if any(not conditions for conditions in readers) or "Service" not in usage.rows:
        return []  # some rule reads every Service of this metric
    # Conditions are judged once per distinct Service, then looked up by each row's code.
    let_in = np.zeros(len(usage.services), dtype=bool)
    named: list[str] = []
    for conditions in readers:
        passes = np.ones(len(usage.services), dtype=bool)
        for condition in conditions:
            passes &= usage.service_mask(condition)
            named += [v for v in condition.values if isinstance(v, str)]
        let_in |= passes
    row_codes = usage.service_codes[positions]
    unread = np.flatnonzero(~let_in[row_codes])
    if not len(unread):
        return []
    problems: list[Problem] = []
    codes, spellings = pd.factorize(row_codes[unread])
    spellings = usage.services["Service"].to_numpy(dtype=object)[spellings]
    for code, spelling in enumerate(spellings.tolist()):
        where = positions[unread[codes == code]]
        text = spelling.strip() if isinstance(spelling, str) else _blank_or_text(spelling)
        guess = closest(text, named) if text else None
        if guess is not None and name_key(guess) == name_key(text):
            guess = None  # spelled as a rule names it, yet no rule lets it in (an AND, a <>)
        which = f'Service "{text}"' if text else "a blank Service"
        if text and guess is None:
            # No rule names it and it resembles none: new, or left out on purpose.
            fix = (
                "if another process bills it, this is expected; otherwise add the Service "
                "to a rule's WHERE"
            )
        else:
            fix = f"fix the Service cells, or add the Service to a rule's WHERE{quoted_hint(guess)}"
        problems.append(
            Problem(
                Reason.UNBILLED_USAGE,
                Severity.WARNING,
                usage.where("service", where),
                f'no enabled rule reads "{metric}" with {which} (the rules reading it filter '
                f"on WHERE Service), so {usage.described(where, period)} {_is(where)} billed to "
                f"nobody: {fix}",
            )
        )
    return problems


def _blank_or_text(value: object) -> str:
    """A non-text Service as text; None or NaN (a file's empty cell) as blank."""
    return "" if value is None or pd.isna(value) else str(value)


def reads_usage(plan: Plan) -> bool:
    """Whether any enabled rule bills by usage (ALLOCATE BY USAGE or CHARGE)."""
    return bool(plan.charges) or any(
        isinstance(rule.driver, UsageDriver) for step in plan.allocations for rule in step.rules
    )


def no_usage_in_period(
    book: Book, plan: Plan, period: str, origin: Callable[[], tuple[str, str]]
) -> Problem | None:
    """One error when rules bill usage and the billed period has no Usage rows at all.

    ``origin()`` says where the period came from, as (cell, words): asked only then.
    """
    if not reads_usage(plan):
        return None
    periods = book.usage["Period"].to_numpy(dtype=object)
    if (periods == period).any():
        return None
    if len(periods):
        latest = max(pd.unique(periods).tolist())
        rows = book.usage.loc[periods == latest, "_row"].to_numpy()
        sheet = book.sources.get("Usage", "Usage")
        letter = book.columns.get("Usage", {}).get("period", ("Period", "A"))[1]
        at = f", {sheet}!{letter}{int(rows.max())}" if rows.any() else ""
        elsewhere = f"bill a period that has usage (the latest is {latest}{at})"
    else:
        elsewhere = "check that the usage was pasted in (the Usage sheet has no rows)"
    where, words = origin()
    return Problem(
        Reason.NO_USAGE,
        Severity.ERROR,
        where,
        f"there are no Usage rows for {period}, the period billed ({words}), so every rule "
        f"that bills usage would bill nothing; add the usage of {period}, or {elsewhere}",
    )
