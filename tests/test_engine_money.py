"""Exact money: largest remainder, half-up, quantities as Excel shows them."""

from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest

from costloop.engine.money import (
    cents_to_money,
    charge_cents,
    format_quantity,
    largest_remainder,
    quantity_units,
    round_half_up,
    to_decimal,
    units_to_decimal,
)


def test_even_split_of_100_over_three_gives_the_extra_cent_to_the_first_name():
    # 10000 cents / 3 = 3333.33..: floors 3333 x 3 = 9999, 1 left over; all
    # remainders equal, so the tie goes to the first name: ADM.
    assert largest_remainder(10000, [1, 1, 1], ["adm", "fin", "hr"]) == [3334, 3333, 3333]


def test_leftover_goes_to_largest_remainders_then_names():
    # 100 cents by 3:3:1 -> 42.857, 42.857, 14.285: floors 42+42+14 = 98, two
    # left; the two largest remainders (6/7 each) get one each, not x (2/7).
    assert largest_remainder(100, [3, 3, 1], ["z", "y", "x"]) == [43, 43, 14]
    # 101 over four equal: 25.25 each, 1 left, equal remainders: name "a" wins
    # though it is listed last.
    assert largest_remainder(101, [1, 1, 1, 1], ["d", "c", "b", "a"]) == [25, 25, 25, 26]


def test_largest_remainder_with_exact_fraction_and_decimal_weights():
    # 1/3 and 2/3 of 1.00: 33.33.. and 66.66..: floors 33 + 66, 1 left to the
    # larger remainder (2/3 > 1/3): 67.
    assert largest_remainder(100, [Fraction(1, 3), Fraction(2, 3)], ["a", "b"]) == [33, 67]
    assert largest_remainder(100, [Decimal("12.5"), Decimal("37.5")], ["a", "b"]) == [25, 75]


def test_negative_total_splits_like_its_absolute_value():
    assert largest_remainder(-10000, [1, 1, 1], ["a", "b", "c"]) == [-3334, -3333, -3333]


def test_largest_remainder_refuses_zero_weights():
    with pytest.raises(ValueError):
        largest_remainder(100, [0, 0], ["a", "b"])


def test_half_up_rounds_halves_away_from_zero():
    assert round_half_up(Fraction(5, 2)) == 3
    assert round_half_up(Fraction(-5, 2)) == -3
    assert round_half_up(Fraction(249, 100)) == 2
    # 3 x 0.005 = 0.015 exactly -> 0.02 (a float would give 0.01499.. -> 0.01)
    assert charge_cents(Fraction(3), Decimal("0.005"), 2) == 2
    assert charge_cents(Fraction(1), Decimal("0.125"), 2) == 13
    assert charge_cents(Fraction(1), Decimal("0.125"), 0) == 0  # JPY: 0.125 yen -> 0


def test_quantities_are_read_as_excel_shows_them():
    units, scale = quantity_units(np.array([0.1, 0.2, 3.0]))
    assert scale == 1 and units.tolist() == [1, 2, 30]
    # 0.1 + 0.2 is exactly 0.3 here (in floats it is 0.30000000000000004)
    assert units_to_decimal(int(units[0] + units[1]), scale) == Decimal("0.3")
    assert to_decimal(0.1) == Decimal("0.1")


def test_quantities_beyond_nine_decimals_fall_back_to_exact_python_ints():
    units, scale = quantity_units(np.array([1e-12, 2.5]))
    assert scale == 12
    assert units_to_decimal(units[0], scale) == Decimal("1E-12")
    assert units_to_decimal(units[1], scale) == Decimal("2.5")


def test_money_and_quantity_text():
    assert cents_to_money(1200) == Decimal("12.00")
    assert str(cents_to_money(1200)) == "12.00"
    assert cents_to_money(1200, 0) == Decimal("1200")
    assert format_quantity(Decimal("1234.50")) == "1,234.5"
    assert format_quantity(Decimal("1E+3")) == "1,000"
