"""Exact money: integer minor units inside, Decimal at the edges, never a float.

Three kinds of numbers meet here:

- money: integer minor units (cents for USD, yen for JPY), as `Book` stores it;
- quantities: float64 exactly as Excel stored them. ``0.1`` in a cell means one
  tenth, so a quantity is read as ``Decimal(repr(x))`` (the shortest text that
  round-trips), never as the binary fraction the float really holds;
- shares and rates: `fractions.Fraction` while computing, so nothing is lost
  before the single rounding step that produces a bill line.

Two roundings (docs/contract.md#money-and-rounding): largest remainder for
spreading a fixed total (the shares then add up to the total exactly), half-up
(away from zero) for a rate charge. Half-up has one definition, `round_half_up`
(to an integer); `round_to_places` (a Decimal of so many places: a forecast, a
ratio) and `to_minor_units` (an amount in cents) are that rounding, scaled.

Conversions happen here and only here: `cents_to_money` (minor units to the
Decimal a sheet shows), `to_minor_units` (back), `exact_fraction` and
`exact_decimal` (a number from a result frame, None when it is missing).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from decimal import Context, Decimal
from fractions import Fraction

import numpy as np
import pandas as pd

from costloop.rules.ast import name_key

# Quantities with at most this many decimals are aggregated as int64 "units"
# (quantity x 10**scale); beyond it we fall back to Python ints.
_MAX_FAST_SCALE = 9
# Keep units small enough that two different decimals at this scale are never
# the same double, so units / 10**scale reproduces repr(x) exactly.
_MAX_FAST_UNITS = 2**50


def to_decimal(x: float | int | Decimal) -> Decimal:
    """A number as Excel shows it: ``0.1`` -> ``Decimal('0.1')``, not 0.1000000000000000055."""
    if isinstance(x, Decimal):
        return x
    if isinstance(x, int | np.integer):
        return Decimal(int(x))
    return Decimal(repr(float(x)))


def to_fraction(x: float | int | Decimal | Fraction) -> Fraction:
    """An exact fraction of a number as Excel shows it."""
    if isinstance(x, Fraction):
        return x
    return Fraction(to_decimal(x))


def quantity_units(values: Sequence[float] | np.ndarray) -> tuple[np.ndarray, int]:
    """Quantities as exact integers at one common decimal scale.

    Returns ``(units, scale)`` with ``units[i] / 10**scale == Decimal(repr(values[i]))``
    exactly. Units are int64 when every quantity has at most 9 decimals and is
    not astronomically large (vectorised sums stay exact); otherwise an object
    array of Python ints.
    """
    arr = np.asarray(values, dtype="float64")
    if arr.size == 0:
        return np.zeros(0, dtype="int64"), 0
    if not np.all(np.isfinite(arr)):
        arr = np.where(np.isfinite(arr), arr, 0.0)
    for scale in range(_MAX_FAST_SCALE + 1):
        scaled = np.round(arr * 10.0**scale)
        if np.abs(scaled).max() >= _MAX_FAST_UNITS:
            break
        # units / 10**scale round-trips to x, and (units below 2**50) no other
        # decimal of that scale does: so it is exactly repr(x).
        if np.array_equal(scaled / 10.0**scale, arr):
            return scaled.astype("int64"), scale
    decimals = [to_decimal(x) for x in arr]
    scale = max(0, *(-d.as_tuple().exponent for d in decimals))
    units = np.array([int(d.scaleb(scale)) for d in decimals], dtype=object)
    return units, scale


def exact_sums(frame, name_col: str, value_col: str) -> dict[str, dict[str, Fraction]]:
    """{name key: {period: exact total of value_col}} over a Book frame.

    Sums in integer units with one pandas groupby on integer codes (so a million
    usage rows cost a few vectorised passes, not a million Fractions or string
    hashes); blank names and values skip. Keys and periods come in the order of
    their first row.
    """
    if frame is None or len(frame) == 0 or name_col not in frame or value_col not in frame:
        return {}
    name_codes, names = pd.factorize(frame[name_col])
    period_codes, periods = pd.factorize(frame["Period"])
    # Spellings that differ only in case or spaces are one name: code them by key.
    key_codes, keys = pd.factorize(np.array([name_key(str(n)) for n in names], dtype=object))
    blank = np.flatnonzero(keys == "")
    key_of_name = np.append(key_codes, -1)  # a name code of -1 (blank cell) stays -1
    if len(blank):
        key_of_name[np.isin(key_of_name, blank)] = -1
    row_keys = key_of_name[name_codes]
    values = frame[value_col].to_numpy(dtype="float64", na_value=np.nan)
    kept = (row_keys >= 0) & (period_codes >= 0) & ~np.isnan(values)
    units, scale = quantity_units(values[kept])
    groups = row_keys[kept].astype(np.int64) * len(periods) + period_codes[kept]
    totals = pd.Series(units).groupby(groups, sort=False).sum()
    out: dict[str, dict[str, Fraction]] = {}
    for group, total in zip(totals.index, totals.to_numpy(), strict=True):
        key, period = divmod(int(group), len(periods))
        out.setdefault(keys[key], {})[periods[period]] = Fraction(int(total), 10**scale)
    return out


def units_to_decimal(units: int, scale: int) -> Decimal:
    """Integer units at ``scale`` decimals -> the quantity as Decimal, trailing zeros dropped."""
    d = Decimal(int(units)).scaleb(-scale)
    return _plain(d)


def _plain(d: Decimal) -> Decimal:
    """``1.2300`` -> ``1.23``, ``1E+3`` -> ``1000`` (no exponent when shown)."""
    if d == d.to_integral_value():
        # Enough digits for the whole number: the default 28 would refuse a Departments
        # cell of 1E+28 (InvalidOperation) where it only needs showing in full.
        return d.quantize(Decimal(1), context=Context(prec=max(28, d.adjusted() + 1)))
    return d.normalize()


def cents_to_money(cents: int, minor_unit: int = 2) -> Decimal:
    """Integer minor units -> exact Decimal with the currency's places (1200 -> 12.00)."""
    return Decimal(int(cents)).scaleb(-minor_unit)


def object_array(values: Sequence) -> np.ndarray:
    """Values as a 1-d object array, as they are (numpy would unpack tuples or lists)."""
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _scaled(integers: np.ndarray, exponent: int) -> list[Decimal]:
    """Each integer x 10**exponent as a Decimal with exactly that exponent.

    Multiplying by ``1E<exponent>`` keeps the integer's digits and sets the exponent,
    as ``scaleb`` does; mapped in C it makes a Decimal in half the time.
    """
    return list(map(Decimal(1).scaleb(exponent).__mul__, map(Decimal, integers.tolist())))


def money_array(cents: np.ndarray, minor_unit: int = 2) -> np.ndarray:
    """`cents_to_money` of each of an array of minor units (an object array of Decimal)."""
    if cents.dtype != np.int64:  # Python ints beyond int64: one at a time
        return object_array([cents_to_money(c, minor_unit) for c in cents.tolist()])
    return object_array(_scaled(cents, -minor_unit))


def quantity_array(units: np.ndarray, scale: int) -> np.ndarray:
    """`units_to_decimal` of each of an array of units (an object array of Decimal).

    Trailing zeros are dropped as `_plain` drops them (12.50 -> 12.5, 12.00 -> 12),
    counted in integers for the whole array at once.
    """
    if units.dtype != np.int64:
        return object_array([units_to_decimal(u, scale) for u in units.tolist()])
    zeros = np.zeros(len(units), dtype=np.int64)
    for places in range(1, scale + 1):
        zeros[units % 10**places == 0] = places
    out = np.empty(len(units), dtype=object)
    for places in np.unique(zeros).tolist():
        at = np.flatnonzero(zeros == places)
        out[at] = _scaled(units[at] // 10**places, places - scale)
    return out


def round_half_up(x: Fraction | Decimal | int) -> int:
    """Nearest integer, halves away from zero (2.5 -> 3, -2.5 -> -3): the bill-line rounding."""
    x = Fraction(x)
    if x >= 0:
        return math.floor(x + Fraction(1, 2))
    return -math.floor(-x + Fraction(1, 2))


def round_to_places(x: Fraction | Decimal | int, places: int) -> Decimal:
    """``x`` half-up to ``places`` decimals, as a Decimal of exactly that many places.

    ``1/8`` to 2 places is ``0.13``, ``-1/8`` is ``-0.13``: the rounding of a bill
    line (`round_half_up`), applied at another scale. Forecasts, ratios, reserve
    days and proposed rates are shown this way.
    """
    return Decimal(round_half_up(Fraction(x) * 10**places)).scaleb(-places)


def to_minor_units(amount: Decimal | Fraction | int, minor_unit: int) -> int:
    """An amount -> integer minor units, half-up (``0.125`` -> 13 cents; JPY: ``12.5`` -> 13)."""
    return round_half_up(Fraction(amount) * 10**minor_unit)


def exact_fraction(value: object) -> Fraction | None:
    """A number from a result frame or a cell as an exact fraction (0.1 is one tenth).

    None for a missing value (None, NaN, pd.NA, a NaN Decimal); numeric text is
    read as the decimal it spells.
    """
    if isinstance(value, Fraction):
        return value
    number = exact_decimal(value)
    return None if number is None else Fraction(number)


def exact_decimal(value: object) -> Decimal | None:
    """A number as the Decimal it shows (0.10 stays 0.10, the float 0.1 is 0.1); None if missing."""
    if value is None or value is pd.NA:
        return None
    if hasattr(value, "item") and not isinstance(value, Decimal):  # a numpy scalar
        value = value.item()
    if isinstance(value, Decimal):
        return None if value.is_nan() else value
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, Fraction):
        return None  # no finite decimal in general: `exact_fraction` keeps it whole
    if isinstance(value, int | float):
        return to_decimal(value)
    return Decimal(str(value))


def charge_cents(quantity: Fraction, rate: Decimal | Fraction, minor_unit: int) -> int:
    """quantity x rate, rounded half-up to the minor unit (docs/contract.md#money-and-rounding)."""
    return round_half_up(quantity * Fraction(rate) * 10**minor_unit)


@functools.lru_cache(maxsize=4096)
def decimal_parts(value: Decimal) -> tuple[int, int]:
    """``Decimal('0.125')`` -> ``(125, -3)``: an exact integer and a power of ten."""
    sign, digits, exponent = value.as_tuple()
    number = int("".join(map(str, digits)) or "0")
    return (-number if sign else number), int(exponent)


def charge_units_cents(units: int, scale: int, rate: Decimal, minor_unit: int) -> int:
    """(units / 10**scale) x rate, half-up to the minor unit, in integer arithmetic only.

    The same result as `charge_cents`, without building fractions: this runs once
    per department per rate line.
    """
    number, exponent = decimal_parts(rate)
    product = int(units) * number
    power = minor_unit + exponent - scale
    if power >= 0:
        return product * 10**power
    divisor = 10**-power
    quotient, remainder = divmod(abs(product), divisor)
    quotient += 2 * remainder >= divisor
    return quotient if product >= 0 else -quotient


# Vectorised integer arithmetic stays below this bound; beyond it the exact Python
# path runs instead (int64 would silently wrap around).
_INT64_SAFE = 2**62


def fits_int64(values: np.ndarray, factor: int = 1) -> bool:
    """Whether every |value| x ``factor`` stays clear of int64 overflow."""
    if values.dtype != np.int64:
        return False
    if len(values) == 0:
        return True
    largest = max(abs(int(values.max())), abs(int(values.min())))
    return largest * abs(factor) < _INT64_SAFE


def charge_cents_array(units: np.ndarray, scale: int, rate: Decimal, minor_unit: int) -> np.ndarray:
    """`charge_units_cents` of many quantities at once (Python ints where int64 could overflow)."""
    number, exponent = decimal_parts(rate)
    power = minor_unit + exponent - scale
    if power < -18 or not fits_int64(units, 2 * number * 10 ** max(power, 0)):
        cents = [charge_units_cents(u, scale, rate, minor_unit) for u in units.tolist()]
        return as_int_array(cents)
    product = units * number
    if power >= 0:
        return product * 10**power
    divisor = 10**-power
    quotient, remainder = np.divmod(np.abs(product), divisor)
    quotient += 2 * remainder >= divisor  # half-up: halves away from zero
    return np.where(product >= 0, quotient, -quotient)


def as_int_array(values: Sequence[int]) -> np.ndarray:
    """Python ints as an int64 array when they fit, else an object array of the same ints."""
    if all(-_INT64_SAFE < v < _INT64_SAFE for v in values):
        return np.array(values, dtype=np.int64)
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def split_by_weight(total: int, weights: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """`largest_remainder` over integer weights as arrays; ``ranks`` orders the names.

    The same split to the cent: floor every share, then one unit each to the
    largest remainders, ties to the lower rank (the name first in order).
    """
    if total < 0:
        return -split_by_weight(-total, weights, ranks)
    if not fits_int64(weights, max(total, len(weights))):
        names = ranks.tolist()  # ranks order exactly as the names do
        return as_int_array(largest_remainder(total, weights.tolist(), names))
    whole = int(weights.sum())
    if whole <= 0 or (weights < 0).any():
        raise ValueError("largest_remainder needs non-negative weights with a positive sum")
    parts, remainders = np.divmod(weights * total, whole)
    leftover = total - int(parts.sum())
    if leftover:
        order = np.lexsort((ranks, -remainders))
        parts[order[:leftover]] += 1
    return parts


def integer_weights(weights: Iterable[int | Fraction | Decimal]) -> list[int]:
    """Exact weights scaled to integers with the same ratios (so ties stay ties)."""
    fractions = [w if isinstance(w, (int, Fraction)) else Fraction(w) for w in weights]
    denominator = 1
    for w in fractions:
        if isinstance(w, Fraction) and w.denominator != 1:
            denominator = math.lcm(denominator, w.denominator)
    if denominator == 1:
        # Whole weights (usage units, a headcount): no Fraction arithmetic per receiver.
        return [int(w) if isinstance(w, int) else w.numerator for w in fractions]
    return [int(w * denominator) for w in fractions]


def largest_remainder(
    total: int, weights: Sequence[int | Fraction | Decimal], names: Sequence[str]
) -> list[int]:
    """Split ``total`` minor units in proportion to ``weights``; the parts add up to ``total``.

    Every share is floored to the minor unit, then the leftover units go one each
    to the largest remainders, ties broken by ``names`` ascending (docs/contract.md). A
    negative total (a credit) is split as its absolute value and negated, so a
    credit rounds exactly like a charge. Weights must be non-negative with a
    positive sum.
    """
    ints = integer_weights(weights)
    whole = sum(ints)
    if whole <= 0 or any(w < 0 for w in ints):
        raise ValueError("largest_remainder needs non-negative weights with a positive sum")
    if total < 0:
        return [-part for part in largest_remainder(-total, ints, names)]
    parts: list[int] = []
    remainders: list[int] = []
    for w in ints:
        part, remainder = divmod(total * w, whole)
        parts.append(part)
        remainders.append(remainder)
    leftover = total - sum(parts)
    if leftover:
        order = sorted(range(len(ints)), key=lambda i: (-remainders[i], names[i]))
        for i in order[:leftover]:
            parts[i] += 1
    return parts


def format_quantity(q: Decimal | Fraction | int | None) -> str:
    """``1234.5`` -> ``1,234.5`` for memos."""
    if q is None:
        return ""
    if isinstance(q, Fraction):
        q = Decimal(q.numerator) / Decimal(q.denominator)
    return f"{_plain(Decimal(q)):,f}"


def format_money(cents: int, minor_unit: int = 2) -> str:
    """``123456`` -> ``1,234.56`` for messages."""
    return f"{cents_to_money(cents, minor_unit):,f}"
