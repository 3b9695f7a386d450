"""The Rates sheet checked as a schedule: every way its rows would bill the wrong amount.

This module only validates; the rate in force is resolved by the chargeback
(engine/chargeback). The checks follow how billing reads the rows
(docs/contract.md, Rates):

- A tier row is the band from ``TierFrom`` (blank: 0) up to ``TierTo`` (blank:
  no limit): a quantity ``q`` bills ``min(q, TierTo) - TierFrom`` units at its
  rate, as ``TIERED FIRST 1000 AT …, NEXT 9000 AT …, ABOVE AT …`` does. A flat
  row (both blank) prices every unit.
- Of the rows of one pool and metric, those with the latest ``EffectiveFrom``
  not after the period are the whole schedule: a new date replaces every row
  of the old one.

So, per (Pool, Metric, EffectiveFrom): a gap between tiers bills its units
nothing, an overlap bills them twice, a flat row beside tiers bills every unit
twice, a first tier above 0 or a capped top tier leaves units free, two flat
rates bill only the first, and a new date that reprices only some tiers leaves
the others' units free. Each is an error at the cell to change, with the fix (the
same flat rate typed twice bills right, and is a warning).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from decimal import Decimal
from itertools import pairwise

import pandas as pd

from costloop.engine.model.money import to_decimal
from costloop.engine.model.values import is_blank
from costloop.problems import Problem, Reason, Severity
from costloop.rules.ast import name_key

ZERO = Decimal(0)


@dataclass(frozen=True)
class RatesSheet:
    """Where the rows were read: the sheet's name (``Rates@High`` in a scenario) and letters."""

    name: str
    letters: Mapping[str, str]
    """Column key (``metric``, ``rate``, ``tierfrom``, ``tierto``, ``effectivefrom``) -> letter."""
    last: str
    """The letter of the sheet's last column, to name a whole row."""

    def cell(self, key: str, row: int) -> str:
        # A column the sheet does not have (no TierFrom header): name the row by its Metric.
        return f"{self.name}!{self.letters.get(key, self.letters['metric'])}{row}"

    def row(self, row: int) -> str:
        return f"{self.name}!A{row}:{self.last}{row}"


@dataclass(frozen=True)
class _Row:
    row: int
    metric: str
    pool: str
    effective: str
    """``YYYY-MM``, "" when blank (in force from the start)."""
    rate: Decimal
    low: Decimal | None
    """TierFrom as typed (None: blank)."""
    high: Decimal | None
    """TierTo as typed (None: blank, no upper limit)."""

    @property
    def flat(self) -> bool:
        return self.low is None and self.high is None

    @property
    def start(self) -> Decimal:
        """Where the band starts: a blank TierFrom is 0, as billing reads it."""
        return ZERO if self.low is None else self.low

    def band(self) -> str:
        if self.high is None:
            return f"{_n(self.start)} up"
        return f"{_n(self.start)} to {_n(self.high)}"


def _n(number: Decimal) -> str:
    """A limit as a person types it: 1000, 0.5 (never 1E+3 or 1000.0)."""
    text = format(number, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _whole(number: Decimal | None) -> bool:
    return number is not None and number == number.to_integral_value()


def _label(row: _Row) -> str:
    """The schedule a row belongs to, in the sheet's words."""
    text = f'"{row.metric}"'
    if row.pool:
        text += f' for "{row.pool}"'
    return text + (f" from {row.effective}" if row.effective else " (blank EffectiveFrom)")


def _rows(rates: pd.DataFrame) -> list[_Row]:
    def column(name: str) -> list:
        return list(rates[name]) if name in rates else [None] * len(rates)

    def limit(value: object) -> Decimal | None:
        return None if is_blank(value) or pd.isna(value) else to_decimal(value)

    return [
        _Row(
            int(row),
            str(metric),
            "" if is_blank(pool) else str(pool),
            "" if is_blank(effective) else str(effective),
            rate,
            limit(low),
            limit(high),
        )
        for metric, pool, effective, rate, low, high, row in zip(
            column("Metric"),
            column("Pool"),
            column("EffectiveFrom"),
            column("Rate"),
            column("TierFrom"),
            column("TierTo"),
            column("_row"),
            strict=True,
        )
    ]


def rate_schedule_problems(
    rates: pd.DataFrame, sheet: RatesSheet, unchecked_metrics: Collection[str] = ()
) -> list[Problem]:
    """Every schedule of the rate card checked; all problems at once, schedule by schedule.

    ``rates`` is the Rates frame as read (good rows, ``_row`` their Excel row).
    ``unchecked_metrics`` are metric keys with a row left out for a problem of its
    own (reported at its cell; "" for a row whose metric is unknown): their
    schedules are incomplete as read, so checking them would report false gaps.
    """
    if "" in unchecked_metrics:
        return []
    schedules: dict[tuple[str, str], dict[str, list[_Row]]] = {}
    for row in _rows(rates):
        metric = name_key(row.metric)
        if metric in unchecked_metrics:
            continue
        by_date = schedules.setdefault((metric, name_key(row.pool)), {})
        by_date.setdefault(row.effective, []).append(row)
    problems: list[Problem] = []
    for by_date in schedules.values():
        replaced: list[_Row] | None = None
        for effective in sorted(by_date):  # "" (blank: from the start) first
            problems += _schedule_problems(by_date[effective], replaced, sheet)
            replaced = by_date[effective]
    return problems


def _error(where: str, message: str, severity: Severity = Severity.ERROR) -> Problem:
    return Problem(Reason.RATE_SCHEDULE, severity, where, message)


def _schedule_problems(
    rows: list[_Row], replaced: list[_Row] | None, sheet: RatesSheet
) -> list[Problem]:
    """One (Pool, Metric, EffectiveFrom): its rows in sheet order, and the schedule it replaces."""
    flat = [r for r in rows if r.flat]
    tiers = [r for r in rows if not r.flat]
    problems = _flat_problems(flat, bool(tiers), sheet)
    if not tiers:
        return problems
    bands, duplicates = _unique_bands(tiers, sheet)
    problems += duplicates
    inverted = [b for b in bands if b.high is not None and b.high <= b.start]
    for band in inverted:
        problems.append(
            _error(
                sheet.cell("tierto", band.row),
                f"TierTo {_n(band.high)} is not above TierFrom {_n(band.start)}, so this tier "
                f"of {_label(band)} prices nothing; TierTo is where the tier ends, above its "
                f"TierFrom",
            )
        )
    if inverted:
        return problems  # where the tiers should meet is unknown until the band is fixed
    bands.sort(key=lambda b: (b.start, b.high is None, b.high or ZERO))
    problems += _bottom_problems(bands[0], replaced, sheet)
    problems += _between_problems(bands, sheet)
    problems += _top_problems(bands[-1], replaced, sheet)
    return problems


def _flat_problems(flat: list[_Row], beside_tiers: bool, sheet: RatesSheet) -> list[Problem]:
    problems = []
    if beside_tiers:
        for row in flat:
            problems.append(
                _error(
                    sheet.cell("tierfrom", row.row),
                    f"a flat rate (no TierFrom or TierTo) beside the tier rows of "
                    f"{_label(row)}: every unit would be billed at {row.rate} and again at the "
                    f"tiers; give this row its TierFrom and TierTo, or delete it",
                )
            )
        return problems
    first = flat[0] if flat else None
    for row in flat[1:]:
        if row.rate != first.rate:
            problems.append(
                _error(
                    sheet.cell("rate", row.row),
                    f"two flat rates for {_label(row)}: {sheet.cell('rate', first.row)} "
                    f"({first.rate}) and {sheet.cell('rate', row.row)} ({row.rate}); only the "
                    f"first would be billed — delete the row that is wrong",
                )
            )
        else:
            problems.append(
                _error(
                    sheet.cell("rate", row.row),
                    f"the flat rate {row.rate} of {_label(row)} is typed twice (also in "
                    f"{sheet.cell('rate', first.row)}); delete one of the rows",
                    Severity.WARNING,  # bills right: only the first row is read
                )
            )
    return problems


def _unique_bands(tiers: list[_Row], sheet: RatesSheet) -> tuple[list[_Row], list[Problem]]:
    """The tiers with each band once; a band typed twice bills its units twice (an error)."""
    first: dict[tuple[Decimal, Decimal | None], _Row] = {}
    problems = []
    for row in tiers:
        key = (row.start, row.high)
        if key not in first:
            first[key] = row
            continue
        earlier = first[key]
        if row.rate == earlier.rate:
            message = (
                f"the tier {row.band()} of {_label(row)} is typed twice (also in row "
                f"{earlier.row}): its units would be billed twice; delete one of the rows"
            )
        else:
            message = (
                f"two rates for the tier {row.band()} of {_label(row)}: "
                f"{sheet.cell('rate', earlier.row)} ({earlier.rate}) and "
                f"{sheet.cell('rate', row.row)} ({row.rate}): its units would be billed at "
                f"both; delete the row that is wrong"
            )
        problems.append(_error(sheet.cell("tierfrom", row.row), message))
    return list(first.values()), problems


def _bottom_problems(first: _Row, replaced: list[_Row] | None, sheet: RatesSheet) -> list[Problem]:
    """The lowest tier must start at 0, else the units below it are billed nothing."""
    low = first.start
    if low == 0:
        return []
    where = sheet.cell("tierfrom", first.row)
    if low == 1 and _whole(first.high):
        # "1–1,000 / 1,001–10,000": counting units from 1, as a price list is printed.
        return [
            _error(
                where,
                f"TierFrom should be 0, where the first tier starts: tiers count from 0, not "
                f"1, so units from 0 to 1 of {_label(first)} would be billed nothing",
            )
        ]
    forward = _to_copy_forward(replaced, ZERO, low)
    if forward:
        return [
            _error(
                sheet.cell("effectivefrom", first.row),
                f"a new EffectiveFrom replaces the whole schedule, and {_label(first)} prices "
                f"only from {_n(low)} up, so units below {_n(low)} would be billed nothing; "
                f"{_copy_forward(forward, first, sheet)}",
            )
        ]
    return [
        _error(
            where,
            f"the tiers of {_label(first)} start at TierFrom {_n(low)}, so the first "
            f"{_n(low)} units are billed nothing; add the first tier, from TierFrom 0 to "
            f"TierTo {_n(low)}{_no_longer(replaced, first)}",
        )
    ]


def _between_problems(bands: list[_Row], sheet: RatesSheet) -> list[Problem]:
    """Each tier starts exactly where the one below it ends (bands in order)."""
    problems = []
    for below, above in pairwise(bands):
        if below.high is None:
            problems.append(
                _error(
                    sheet.cell("tierto", below.row),
                    f"TierTo is blank (no upper limit), but the tier at "
                    f"{sheet.cell('tierfrom', above.row)} starts at {_n(above.start)}: only "
                    f"the top tier of {_label(below)} may be open-ended, so units above "
                    f"{_n(above.start)} would be billed twice; type TierTo {_n(above.start)} "
                    f"here",
                )
            )
            continue
        if above.start == below.high:
            continue
        if above.start > below.high:
            problems.append(_gap(below, above, sheet))
            continue
        end = below.high if above.high is None else min(below.high, above.high)
        message = (
            f"TierFrom should be {_n(below.high)}, where the tier above ends "
            f"({sheet.cell('tierto', below.row)}): units from {_n(above.start)} to {_n(end)} "
            f"of {_label(above)} would be billed twice"
        )
        problems.append(_error(sheet.cell("tierfrom", above.row), message))
    return problems


def _gap(below: _Row, above: _Row, sheet: RatesSheet) -> Problem:
    """Units between two tiers billed nothing: the limit to change, and to what."""
    units = (
        f"units from {_n(below.high)} to {_n(above.start)} of {_label(above)} would be billed "
        f"nothing"
    )
    if not (_whole(below.high) and above.start == below.high + 1):
        return _error(
            sheet.cell("tierfrom", above.row),
            f"TierFrom should be {_n(below.high)}, where the tier above ends "
            f"({sheet.cell('tierto', below.row)}): {units}",
        )
    # One whole unit apart: a price list's inclusive layout. "1–1,000 / 1,001–10,000" meant
    # the limit 1000, so TierFrom is to change; "0–999 / 1,000–9,999" meant 1000 as well, so
    # TierTo is. The rounder number is the limit that was meant.
    if _zeros(above.start) > _zeros(below.high):
        return _error(
            sheet.cell("tierto", below.row),
            f"TierTo should be {_n(above.start)}, where the tier below starts "
            f"({sheet.cell('tierfrom', above.row)}): a tier ends where the next one starts, "
            f"not one unit before it, so {units}",
        )
    return _error(
        sheet.cell("tierfrom", above.row),
        f"TierFrom should be {_n(below.high)}, where the tier above ends "
        f"({sheet.cell('tierto', below.row)}): a tier starts where the tier above ends, not at "
        f"the next whole number, so {units}",
    )


def _zeros(number: Decimal) -> int:
    """Trailing zeros of a whole number (1000: 3, 1001: 0)."""
    digits = str(int(number))
    return len(digits) - len(digits.rstrip("0")) if int(number) else 0


def _top_problems(top: _Row, replaced: list[_Row] | None, sheet: RatesSheet) -> list[Problem]:
    """The top tier is open-ended, else the units above it are billed nothing."""
    if top.high is None:
        return []
    forward = _to_copy_forward(replaced, top.high, None)
    if forward:
        return [
            _error(
                sheet.cell("effectivefrom", top.row),
                f"a new EffectiveFrom replaces the whole schedule, and {_label(top)} prices "
                f"only up to {_n(top.high)}, so units above {_n(top.high)} would be billed "
                f"nothing; {_copy_forward(forward, top, sheet)}",
            )
        ]
    return [
        _error(
            sheet.cell("tierto", top.row),
            f"the top tier of {_label(top)} ends at TierTo {_n(top.high)}, so units above "
            f"{_n(top.high)} would be billed nothing; leave TierTo blank on the top tier (no "
            f"upper limit), or add a tier from {_n(top.high)} at Rate 0 if they are "
            f"free{_no_longer(replaced, top)}",
        )
    ]


def _no_longer(replaced: list[_Row] | None, new: _Row) -> str:
    """Why the rows of an earlier date do not fill the hole (people expect them to)."""
    if not replaced:
        return ""
    old = f"of {replaced[0].effective}" if replaced[0].effective else "with a blank EffectiveFrom"
    return (
        f" (a new EffectiveFrom replaces the whole schedule: from {new.effective} the rows "
        f"{old} no longer apply)"
    )


def _to_copy_forward(replaced: list[_Row] | None, low: Decimal, high: Decimal | None) -> list[_Row]:
    """The replaced schedule's tiers that exactly fill [low, high), else none.

    Only then is "copy these rows forward" the whole fix; when the old tiers
    straddle the hole (or the old rate was flat), the fix is a new tier instead.
    """
    if not replaced:
        return []
    inside = sorted(
        (
            r
            for r in replaced
            if not r.flat
            and r.start >= low
            and (high is None or (r.high is not None and r.high <= high))
        ),
        key=lambda r: (r.start, r.high is None, r.high or ZERO),
    )
    if not inside or inside[0].start != low or inside[-1].high != high:
        return []
    if any(a.high != b.start for a, b in pairwise(inside)):
        return []
    return inside


def _copy_forward(rows: list[_Row], new: _Row, sheet: RatesSheet) -> str:
    shown = ", ".join(f"{sheet.row(r.row)} ({r.band()} at {r.rate})" for r in rows)
    old = f"of {rows[0].effective}" if rows[0].effective else "with a blank EffectiveFrom"
    return (
        f"copy the tier{'s' if len(rows) != 1 else ''} {old} forward with EffectiveFrom "
        f"{new.effective} (and a new Rate where it changed): {shown}"
    )
