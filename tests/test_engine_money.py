"""Exact money: largest remainder, half-up, quantities as Excel shows them."""

from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest

from costloop.engine.model.money import (
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
    # Wider than Decimal's default 28 digits (a Headcount cell of 1E+28, found by
    # tests/test_robustness.py): shown in full, not an InvalidOperation.
    assert format_quantity(Decimal("1E+28")) == "10," + ",".join(["000"] * 9)


# --- the vectorised forms give the same cents as the one-at-a-time ones ------------


def _ints(values):
    from costloop.engine.model.money import as_int_array

    return as_int_array(values)


@pytest.mark.parametrize("big", [False, True], ids=["int64", "beyond int64"])
def test_split_by_weight_is_largest_remainder(big):
    import random

    from costloop.engine.chargeback.allocate import name_ranks
    from costloop.engine.model.money import split_by_weight

    rng = random.Random(7)
    digits = 18 if big else 6
    for _ in range(2000):
        n = rng.randint(1, 9)
        weights = [rng.choice([0, rng.randint(0, 5), rng.randint(0, 10**digits)]) for _ in range(n)]
        weights[0] = weights[0] or 1
        names = [rng.choice("abc") + rng.choice("xy") for _ in range(n)]  # ties by name too
        total = rng.randint(-(10 ** (digits + 2)), 10 ** (digits + 2))
        expected = largest_remainder(total, weights, names)
        assert split_by_weight(total, _ints(weights), name_ranks(names)).tolist() == expected


@pytest.mark.parametrize("big", [False, True], ids=["int64", "beyond int64"])
def test_charge_cents_array_is_charge_units_cents(big):
    import random

    from costloop.engine.model.money import charge_cents_array, charge_units_cents

    rng = random.Random(11)
    rates = ["0.40", "0.125", "1E-7", "-0.05", "3", "1234.5678", "0.005", "2E+3"]
    for _ in range(2000):
        rate, scale, minor = Decimal(rng.choice(rates)), rng.randint(0, 9), rng.choice([0, 2, 3])
        units = [
            rng.randint(-(10 ** (19 if big else 9)), 10 ** (19 if big else 9)) for _ in range(5)
        ]
        expected = [charge_units_cents(u, scale, rate, minor) for u in units]
        assert charge_cents_array(_ints(units), scale, rate, minor).tolist() == expected


def test_quantity_and_money_arrays_show_as_one_at_a_time():
    from costloop.engine.model.money import cents_to_money, money_array, quantity_array

    values = [0, 1, -1, 10, 100, 39770, -39700, 12345678901234, 10**20]
    for scale in range(6):
        shown = quantity_array(_ints(values), scale).tolist()
        assert [d.as_tuple() for d in shown] == [
            units_to_decimal(v, scale).as_tuple() for v in values
        ]
        small = _ints(values[:-1])  # int64, then the Python-int fallback
        for array, kept in ((small, values[:-1]), (_ints(values), values)):
            amounts = money_array(array, scale).tolist()
            assert [d.as_tuple() for d in amounts] == [
                cents_to_money(v, scale).as_tuple() for v in kept
            ]


# --- one rounding, one conversion each (issue 15) ------------------------------------


def test_round_to_places_is_the_bill_line_rounding_at_another_scale():
    from costloop.engine.model.money import round_to_places

    assert round_to_places(Fraction(1, 8), 2) == Decimal("0.13")
    assert round_to_places(Fraction(-1, 8), 2) == Decimal("-0.13")
    assert str(round_to_places(Fraction(1, 1), 4)) == "1.0000"  # exactly that many places
    assert str(round_to_places(Decimal("2.5"), 0)) == "3"
    for x in (Fraction(5, 2), Fraction(-5, 2), Fraction(249, 100), Fraction(-7, 3)):
        assert round_to_places(x, 0) == round_half_up(x)


@pytest.mark.parametrize(
    "amount, places, cents",
    [(Decimal("0.125"), 2, 13), (Decimal("-0.125"), 2, -13), (Decimal("12.5"), 0, 13),
     (Fraction(1, 3), 2, 33), (Decimal("1.0005"), 3, 1001), (7, 2, 700)],
)  # fmt: skip
def test_to_minor_units_half_up(amount, places, cents):
    from costloop.engine.model.money import to_minor_units

    assert to_minor_units(amount, places) == cents
    assert cents_to_money(cents, places) == Decimal(cents).scaleb(-places)


def test_exact_numbers_from_result_frames():
    import pandas as pd

    from costloop.engine.model.money import exact_decimal, exact_fraction

    assert str(exact_decimal(Decimal("0.10"))) == "0.10"  # as written
    assert exact_decimal(0.1) == Decimal("0.1") and exact_decimal(np.float64(0.1)) == Decimal("0.1")
    assert exact_fraction(0.1) == Fraction(1, 10)
    assert exact_fraction(Fraction(1, 3)) == Fraction(1, 3)
    assert exact_fraction("2.5") == Fraction(5, 2)
    missing = [None, float("nan"), pd.NA, Decimal("NaN"), np.float64("nan")]
    assert [exact_fraction(v) for v in missing] == [None] * 5
    assert [exact_decimal(v) for v in missing] == [None] * 5
