"""Excel number formats of the output sheets, defined once, following the workbook's currency.

Money shows the currency's minor unit and no more: ``#,##0.00`` for USD,
``#,##0`` for JPY, ``#,##0.000`` for KWD (docs/contract.md#money-and-rounding).
A column of one sheet holds one format, so a column that mixes money with
quantities or rates (Forecast's Plan and Forecast, Variance's Plan YTD) shows
the currency's places and, where a number has them, more: ``#,##0.00####`` for
USD, ``#,##0.######`` for JPY.

For a currency without a minor unit that column format would end a whole
amount with Excel's decimal point ("1,234."), so there the money rows of those
sheets (by their Kind) carry the money format cell by cell (`row_formats`).
"""

from __future__ import annotations

from costloop.engine.model import sheets

QUANTITY_FORMAT = "#,##0.####"
PERCENT_FORMAT = "0.0%"
DAYS_FORMAT = "0.0"
RATE_PLACES = 6
"""Rates show up to 6 decimal places (fine enough for per-unit prices of a cent)."""
QUANTITY_PLACES = 4
"""Forecast and Variance quantities are shown to 4 decimal places."""


def money_format(minor_unit: int) -> str:
    """Excel number format showing the currency's minor unit: ``#,##0.00`` for USD."""
    return "#,##0" + ("." + "0" * minor_unit if minor_unit > 0 else "")


def mixed_format(minor_unit: int, places: int) -> str:
    """The currency's places always, up to ``places`` when a number has them.

    ``mixed_format(2, 6)`` is ``#,##0.00####``; ``mixed_format(0, 4)`` is ``#,##0.####``.
    """
    optional = "#" * max(places - minor_unit, 0)
    return money_format(minor_unit) + ("." if minor_unit == 0 and optional else "") + optional


def rate_format(minor_unit: int) -> str:
    """A rate per unit: the currency's places, up to 6 (``#,##0.00####`` for USD)."""
    return mixed_format(minor_unit, RATE_PLACES)


def sheet_formats(minor_unit: int) -> dict[str, dict[str, str]]:
    """Output sheet -> {column: number format} for a workbook whose currency has ``minor_unit``.

    The result sheets; `Rule Check` shows its Amount as `money_format`, and `Run
    Log` is key and value, unformatted.
    """
    money = money_format(minor_unit)
    rate = rate_format(minor_unit)
    # Forecast rows are usage (4 places), cost (money) and RATE rows (6 places).
    forecast = mixed_format(minor_unit, RATE_PLACES)
    # Variance rows are cost (money) and usage (4 places).
    variance = mixed_format(minor_unit, QUANTITY_PLACES)
    return {
        sheets.BILLS: {"Quantity": QUANTITY_FORMAT, "Rate": rate, "Amount": money},
        sheets.JOURNAL: {"Debit": money, "Credit": money},
        sheets.RECOVERY: {
            "Cost": money,
            "Recovered": money,
            "OverUnder": money,
            "RecoveryPct": PERCENT_FORMAT,
            "Unallocated": money,
        },
        sheets.FORECAST: dict.fromkeys(("Plan", "Actual", "Forecast", "Adjustment"), forecast),
        sheets.VARIANCE: dict.fromkeys(("Plan YTD", "Actual YTD", "Variance"), variance)
        | {"Variance %": PERCENT_FORMAT},
        sheets.COMPLIANCE: {
            "Cost YTD": money,
            "Revenue YTD": money,
            "Over/Under YTD": money,
            "Recovery %": PERCENT_FORMAT,
            "Annualised Cash Expenses": money,
            "Reserve Days": DAYS_FORMAT,
            "Excess Over Limit": money,
            "Rate Billed": rate,
            "Standard Rate": rate,
        },
    }


MONEY_KINDS = {sheets.FORECAST: ("COST",), sheets.VARIANCE: ("COST", "TOTAL")}
"""The Kinds whose rows are money on the sheets that mix kinds in a column."""


def row_formats(minor_unit: int) -> dict[str, tuple[str, dict[str, dict[str, str]]]]:
    """Output sheet -> (the column naming a row's kind, {kind: {column: number format}}).

    The formats a row of that kind takes instead of its column's (`sheet_formats`).
    Only a currency without a minor unit needs any: there the mixed column format
    (``#,##0.######``) shows a whole amount as ``1,234.``, so money rows show
    ``#,##0``. With a minor unit the column format shows an amount of the
    currency's places exactly as `money_format` does (its optional digits show
    nothing), so the USD and KWD sheets stay as they were. Quantity and rate rows
    keep their column's format in every currency.
    """
    if minor_unit > 0:
        return {}
    money = money_format(minor_unit)
    columns = sheet_formats(minor_unit)
    found = {}
    for sheet, kinds in MONEY_KINDS.items():
        # Every number column of the sheet but its ratio (Variance %) is money in these rows.
        amounts = {c: money for c, f in columns[sheet].items() if f != PERCENT_FORMAT}
        found[sheet] = ("Kind", {kind: amounts for kind in kinds})
    return found
