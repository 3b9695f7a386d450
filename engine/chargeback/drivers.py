"""What the engine reads from a Book, prepared once per run.

`Drivers` holds the departments (fund, billable, display name), each pool's
direct cost per period (per CostBasis), and usage quantities as exact integer
units. Usage is aggregated once per (metric, WHERE) signature across every
period with a pandas groupby, so running the rules for twelve periods of
Recovery costs twelve dictionary look-ups, not twelve passes over the rows.

WHERE (docs/rules-language.md#where--who-is-included) filters receivers on
`Departments` columns and usage rows on `Usage` columns; a column in both
filters both. Text compares case-insensitively (as names do), numbers numerically.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pandas as pd

from costloop.engine.chargeback.rates import RateCards
from costloop.engine.model.book import Book
from costloop.engine.model.money import (
    as_int_array,
    integer_weights,
    quantity_units,
    to_fraction,
)
from costloop.engine.model.values import cell_number, is_blank, yes_no
from costloop.rules.ast import Condition, name_key

_NO_USAGE = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))


@dataclass(frozen=True)
class Department:
    key: str
    code: str
    """As written in Departments.Department."""
    name: str
    fund: str
    billable: bool
    row: int | None


def _billable(value: object) -> bool:
    """Departments.Billable as the reader reads it (`yes_no`: blank is Y, ``f`` is N)."""
    flag = yes_no(value)
    if flag is None:
        # The reader refuses such a cell at its cell; only a Book built in code gets here.
        raise ValueError(f"Billable must be Y or N (or blank for Y), got {value!r}")
    return flag


def name_keys(values: list) -> list[str]:
    """name_key(str(v)) of each value, worked out once per distinct value."""
    keys: dict = {}
    return [keys[v] if v in keys else keys.setdefault(v, name_key(str(v))) for v in values]


def _frame_column(frame: pd.DataFrame, key: str) -> str | None:
    """The frame's column whose header has this name key (helper columns excluded)."""
    for column in frame.columns:
        if isinstance(column, str) and not column.startswith("_") and name_key(column) == key:
            return column
    return None


def _shown_number(value: object) -> object:
    """A whole-number float as the text its cell shows: a code typed as 101 is "101"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value


def _text_key(series: pd.Series, _distinct: bool = False) -> pd.Series:
    """Column values compared as names: trimmed, inner spaces collapsed, case-folded."""
    if not _distinct and pd.api.types.infer_dtype(series, skipna=True) == "string":
        # A million usage rows hold a few thousand names: key each distinct one once.
        codes, uniques = pd.factorize(series.to_numpy(dtype=object), use_na_sentinel=True)
        keys = _text_key(pd.Series(uniques, dtype=object), _distinct=True)
        keys = np.append(keys.to_numpy(dtype=object), "")
        return pd.Series(keys[codes], index=series.index, dtype=object)
    if pd.api.types.infer_dtype(series, skipna=True) not in ("string", "empty"):
        # Excel stores codes typed as numbers as floats; "101.0" would never equal "101".
        series = series.map(_shown_number)
    text = series.astype("string").fillna("")
    return text.str.split().str.join(" ").str.casefold().fillna("")


def _value_text(value: object) -> str:
    """A WHERE value compared as text: a number as a cell shows it (101.0 -> "101")."""
    if isinstance(value, Decimal):
        return str(int(value)) if value == value.to_integral_value() else f"{value.normalize():f}"
    return str(value)


def _number_or_nan(value: object) -> float:
    number = cell_number(value)
    return np.nan if number is None else float(number)


def _numbers(series: pd.Series) -> np.ndarray:
    """A column as numbers the way a driver reads it: numeric text ("1,250") counts,
    anything else is NaN (and so meets only ``<>``)."""
    if series.dtype.kind in "iuf":
        return series.to_numpy(dtype="float64")
    return series.map(_number_or_nan).to_numpy(dtype="float64")


def condition_mask(frame: pd.DataFrame, column: str, cond: Condition) -> np.ndarray:
    """Rows of ``frame`` meeting one WHERE condition on ``column``."""
    values = frame[column]
    wanted = cond.values
    numeric = all(isinstance(v, Decimal) for v in wanted)
    if numeric:
        col = _numbers(values)
        floats = [float(v) for v in wanted]
        with np.errstate(invalid="ignore"):
            if cond.op == "IN":
                return np.isin(col, floats)
            target = floats[0]
            return {
                "=": col == target,
                "<>": ~(col == target),
                "<": col < target,
                "<=": col <= target,
                ">": col > target,
                ">=": col >= target,
            }[cond.op]
    keys = _text_key(values).to_numpy(dtype=object)
    texts = [name_key(_value_text(v)) for v in wanted]
    if cond.op == "IN":
        return np.isin(keys, texts)
    target = texts[0]
    return {
        "=": keys == target,
        "<>": keys != target,
        "<": keys < target,
        "<=": keys <= target,
        ">": keys > target,
        ">=": keys >= target,
    }[cond.op]


def _factorize(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(code of each row, distinct values as an object array); a blank is a value too.

    Factorized as the column's own array: for text that is twice as fast as
    going through an object array first.
    """
    codes, uniques = pd.factorize(column.array, use_na_sentinel=False)
    return np.asarray(codes), np.asarray(uniques, dtype=object)


def _key_codes(column: pd.Series) -> tuple[np.ndarray, dict[str, int]]:
    """A code per row for the column's name key (as `_text_key`), and key -> code.

    Each distinct spelling is keyed once; the rows only carry integer codes.
    """
    codes, spellings = pd.factorize(column.array, use_na_sentinel=True)
    keys = _text_key(pd.Series(np.asarray(spellings, dtype=object), dtype=object))
    keys = [*keys.tolist(), ""]  # code -1 (a blank) is the key ""
    code_of: dict[str, int] = {}
    key_codes = np.array([code_of.setdefault(k, len(code_of)) for k in keys], dtype=np.int64)
    return key_codes[codes], code_of


class Drivers:
    """The Book's departments, pool costs and usage, shaped for allocating and charging."""

    def __init__(self, book: Book):
        self.book = book
        self.settings = book.settings
        self.minor_unit = book.settings.minor_unit
        self.pool_names: dict[str, str] = book.pools
        self.metric_names: dict[str, str] = book.metrics
        self.departments: dict[str, Department] = {}
        deps = book.departments

        def column(name: str) -> list:
            # Whole columns as lists: reading cell by cell costs a frame lookup each.
            return deps[name].tolist() if name in deps else [None] * len(deps)

        for code, name, fund, billable, row in zip(
            column("Department"),
            column("Name"),
            column("Fund"),
            column("Billable"),
            column("_row"),
            strict=True,
        ):
            code = str(code).strip()
            key = name_key(code)
            if key in self.departments:
                continue  # the reader reports duplicates; the first one counts
            self.departments[key] = Department(
                key=key,
                code=code,
                name="" if is_blank(name) else str(name).strip(),
                fund=str(fund).strip(),
                billable=_billable(billable) if "Billable" in deps else True,
                row=int(row) if "_row" in deps else None,
            )
        self.department_order = sorted(self.departments)
        self.department_keys = np.array(self.department_order, dtype=object)
        """The department keys in name order: bill lines point into it by position."""
        self._department_keys = [name_key(str(code)) for code in deps["Department"]]
        self._prepare_costs()
        self._prepare_usage()
        self._usage_cache: dict[tuple, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
        self._receiver_usage_cache: dict[tuple, dict[str, int]] = {}
        # Worked out once per run and read for every rule and period of the year, each in
        # a field of its own (not one dict that other modules wrote into under magic keys).
        self._positions_by_where: dict[tuple, np.ndarray] = {}
        self._columns: dict[str, tuple[str | None, dict[str, Fraction]]] = {}
        self._column_weights: dict[str, tuple[str | None, np.ndarray, np.ndarray]] = {}
        self.rate_cards = RateCards(book.rates)
        """The Rates sheet, resolved by `costloop.engine.chargeback.rates` for every charge."""

    @functools.cached_property
    def department_labels(self) -> tuple[np.ndarray, np.ndarray]:
        """Code and Name of every department, in `department_keys` order (for bill lines)."""
        deps = [self.departments[k] for k in self.department_order]
        codes = np.empty(len(deps), dtype=object)
        codes[:] = [d.code for d in deps]
        names = np.empty(len(deps), dtype=object)
        names[:] = [d.name for d in deps]
        return codes, names

    # --- pool cost ---------------------------------------------------------
    def _prepare_costs(self) -> None:
        def sums(frame: pd.DataFrame) -> dict[tuple[str, str], int]:
            if frame is None or frame.empty:
                return {}
            keys = frame["_key"] if "_key" in frame else frame["Pool"].map(name_key)
            grouped = (
                pd.DataFrame({"p": frame["Period"], "k": keys, "c": frame["Cents"]})
                .groupby(["p", "k"], sort=True)["c"]
                .sum()
            )
            return {(p, k): int(c) for (p, k), c in grouped.items()}

        self.budget_cents = sums(self.book.budget)
        self.actual_cents = sums(self.book.actuals)

    def pool_cost(self, period: str, pool: str) -> tuple[int, bool]:
        """(direct cost in minor units, fell back to Budget?) of one pool in one period."""
        budget = self.budget_cents.get((period, pool), 0)
        if self.settings.cost_basis.strip().upper() == "BUDGET":
            return budget, False
        if (period, pool) in self.actual_cents:
            return self.actual_cents[(period, pool)], False
        return budget, (period, pool) in self.budget_cents

    # --- usage -------------------------------------------------------------
    def _prepare_usage(self) -> None:
        usage = self.book.usage
        units, scale = quantity_units(usage["Quantity"].to_numpy(dtype="float64"))
        self.usage_scale = scale
        self._usage = usage
        self._usage_units = units
        departments = usage["_key"] if "_key" in usage else usage["Department"].map(name_key)
        # Integer codes of metric, period and receiver: a million usage rows are then
        # selected and grouped by comparing integers, not strings, once per rule signature.
        self._metric_codes, self._metric_code = _key_codes(usage["Metric"])
        self._period_codes, self._period_names = _factorize(usage["Period"])
        self._period_code = {p: i for i, p in enumerate(self._period_names.tolist())}
        self._dept_codes, self._dept_names = _factorize(departments)
        self._rows_by_metric: tuple[np.ndarray, np.ndarray] | None = None
        code_of = {name: i for i, name in enumerate(self._dept_names)}
        # Each department's usage code (-1: no usage rows), so usage lines up with receivers.
        self._usage_code_of_department = np.array(
            [code_of.get(k, -1) for k in self.department_order], dtype=np.int64
        )

    def split_conditions(
        self, conditions: tuple[Condition, ...]
    ) -> tuple[list[tuple[str, Condition]], list[tuple[str, Condition]], list[Condition]]:
        """WHERE conditions on Departments columns, on Usage columns, and on neither."""
        on_departments, on_usage, unknown = [], [], []
        for cond in conditions:
            dep_col = _frame_column(self.book.departments, cond.column.key)
            use_col = _frame_column(self._usage, cond.column.key)
            if dep_col:
                on_departments.append((dep_col, cond))
            if use_col:
                on_usage.append((use_col, cond))
            if not dep_col and not use_col:
                unknown.append(cond)
        return on_departments, on_usage, unknown

    def usage_rows(self, metric: str, period: str) -> int:
        """How many Usage rows of ``metric`` fall in ``period``, before any WHERE."""
        code = self._period_code.get(period)
        if code is None:
            return 0
        return int((self._metric_mask(metric) & (self._period_codes == code)).sum())

    def _metric_mask(self, metric: str) -> np.ndarray:
        code = self._metric_code.get(metric)
        if code is None:
            return np.zeros(len(self._metric_codes), dtype=bool)
        return self._metric_codes == code

    def department_receivers(self, on_departments: list[tuple[str, Condition]]) -> list[str]:
        """Billable departments passing the WHERE conditions on Departments columns, by key."""
        return self.department_keys[self.department_positions(on_departments)].tolist()

    def department_positions(self, on_departments: list[tuple[str, Condition]]) -> np.ndarray:
        """`department_receivers` as positions in `department_keys` (name order)."""
        signature = tuple((c, cond.op, cond.values) for c, cond in on_departments)
        cached = self._positions_by_where.get(signature)
        if cached is not None:
            return cached
        deps = self.book.departments
        mask = np.ones(len(deps), dtype=bool)
        for column, cond in on_departments:
            mask &= condition_mask(deps, column, cond)
        keys = {k for k, ok in zip(self._department_keys, mask, strict=True) if ok}
        found = np.array(
            [
                i
                for i, k in enumerate(self.department_order)
                if k in keys and self.departments[k].billable
            ],
            dtype=np.intp,
        )
        self._positions_by_where[signature] = found
        return found

    def usage_by_receiver(
        self, metric: str, on_usage: list[tuple[str, Condition]], period: str
    ) -> dict[str, int]:
        """Units of ``metric`` per department/pool key in ``period`` (usage WHERE applied)."""
        signature = (metric, tuple((c, cond.op, cond.values) for c, cond in on_usage), period)
        found = self._receiver_usage_cache.get(signature)
        if found is None:
            codes, units = self._usage_table(metric, on_usage).get(period, _NO_USAGE)
            names = self._dept_names
            found = {names[c]: u for c, u in zip(codes.tolist(), units.tolist(), strict=True)}
            self._receiver_usage_cache[signature] = found
        return found

    def department_usage(
        self,
        metric: str,
        on_usage: list[tuple[str, Condition]],
        period: str,
        positions: np.ndarray,
    ) -> np.ndarray:
        """Units of ``metric`` used in ``period`` by the departments at ``positions`` (0: none)."""
        codes, units = self._usage_table(metric, on_usage).get(period, _NO_USAGE)
        wanted = self._usage_code_of_department[positions]
        if len(codes) == 0:
            return np.zeros(len(positions), dtype=units.dtype)
        # The period's receivers are sorted by code: look each department up by bisection.
        where = np.minimum(np.searchsorted(codes, wanted), len(codes) - 1)
        found = codes[where] == wanted
        out = np.zeros(len(positions), dtype=units.dtype)
        out[found] = units[where[found]]
        return out

    def _usage_table(
        self, metric: str, on_usage: list[tuple[str, Condition]]
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Period -> (receiver codes ascending, their units): one pass per rule signature."""
        signature = (metric, tuple((c, cond.op, cond.values) for c, cond in on_usage))
        table = self._usage_cache.get(signature)
        if table is None:
            table = self._aggregate(metric, on_usage)
            self._usage_cache[signature] = table
        return table

    def _aggregate(
        self, metric: str, on_usage: list[tuple[str, Condition]]
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        rows = self._metric_rows(metric)
        if on_usage:
            mask = np.ones(len(self._metric_codes), dtype=bool)
            for column, cond in on_usage:
                mask &= condition_mask(self._usage, column, cond)
            rows = rows[mask[rows]]
        if len(rows) == 0:
            return {}
        # One integer key per (period, receiver); its units summed in int64 (or exact
        # Python ints) over the rows sorted by key.
        width = max(len(self._dept_names), 1)
        keys = self._period_codes[rows].astype(np.int64) * width + self._dept_codes[rows]
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        starts = np.flatnonzero(np.diff(keys, prepend=-1))
        units = np.add.reduceat(self._usage_units[rows[order]], starts)
        keys = keys[starts]
        periods, receivers = keys // width, keys % width
        # Keys sort by period first: each period is one run of the grouped rows.
        firsts = np.flatnonzero(np.diff(periods, prepend=-1))
        ends = [*firsts[1:].tolist(), len(keys)]
        return {
            self._period_names[periods[a]]: (receivers[a:b], units[a:b])
            for a, b in zip(firsts.tolist(), ends, strict=True)
        }

    def _metric_rows(self, metric: str) -> np.ndarray:
        """The usage rows of ``metric``, from one sort of all rows by metric."""
        if self._rows_by_metric is None:
            codes = self._metric_codes
            if len(self._metric_code) < 2**15:
                codes = codes.astype(np.int16)  # small integers sort by radix, in one pass
            order = np.argsort(codes, kind="stable")
            bounds = np.searchsorted(
                self._metric_codes[order], np.arange(len(self._metric_code) + 1)
            )
            self._rows_by_metric = (order, bounds)
        order, bounds = self._rows_by_metric
        code = self._metric_code.get(metric)
        if code is None:
            return order[:0]
        return order[bounds[code] : bounds[code + 1]]

    def column_weights(self, column_key: str) -> tuple[str | None, np.ndarray, np.ndarray]:
        """(header, integer weight, quantity shown) of every department for a BY <column>
        driver, in `department_order`.

        The same for every period and rule, so worked out once per column: values
        brought to one denominator (the ratios are what spreads), Decimals to show.
        """
        cached = self._column_weights.get(column_key)
        if cached is not None:
            return cached
        header, values = self.department_column(column_key)
        exact = [values.get(k, Fraction(0)) for k in self.department_order]
        weights = as_int_array(integer_weights(exact))
        quantities = np.empty(len(exact), dtype=object)
        quantities[:] = [Decimal(v.numerator) / Decimal(v.denominator) for v in exact]
        self._column_weights[column_key] = (header, weights, quantities)
        return header, weights, quantities

    def department_column(self, column_key: str) -> tuple[str | None, dict[str, Fraction]]:
        """(header as written, exact value per department key) of a numeric Departments column."""
        cached = self._columns.get(column_key)
        if cached is not None:
            return cached
        deps = self.book.departments
        column = _frame_column(deps, column_key)
        if column is None:
            return None, {}
        values: dict[str, Fraction] = {}
        for code, value in zip(deps["Department"], deps[column], strict=True):
            key = name_key(str(code))
            if key not in values:
                # Numeric text ("1,250") counts as amounts do; a blank is 0. A word was
                # refused at its cell by the checks before anything ran.
                number = None if isinstance(value, bool) else cell_number(value)
                values[key] = Fraction(0) if number is None else to_fraction(number)
        self._columns[column_key] = (column, values)
        return column, values
