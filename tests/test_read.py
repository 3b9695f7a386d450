"""Reading a workbook into a Book: types, spellings and every located problem."""

from __future__ import annotations

import copy
from datetime import date, datetime
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from costloop.engine.read.columns import _cents_of_numbers, minor_units
from costloop.engine.read.reader import read_book
from costloop.engine.workbook.host import ExcelError, column_letter
from costloop.problems import Reason, Severity


class FakeWorkbook:
    """The `Workbook` protocol over a dict of sheet name -> grid (rows from A1)."""

    def __init__(self, sheets: dict[str, list[list[object]]]):
        self.sheets = sheets

    def sheet_names(self) -> list[str]:
        return list(self.sheets)

    def read_sheet(self, name: str) -> list[list[object]]:
        return self.sheets[name]

    def owned_sheets(self) -> set[str]:
        return set()

    def replace_sheets(self, sheets, output=None) -> None:  # pragma: no cover - unused
        raise NotImplementedError


def clean_sheets() -> dict[str, list[list[object]]]:
    return {
        "Settings": [
            ["Key", "Value"],
            ["Organization", "State University"],
            ["Currency", "usd"],
            ["FiscalYearStart", 7],
            ["RevenueAccount", 4400.0],
            ["Period", "2026-03"],
        ],
        "Departments": [
            ["Department", "Fund", "Name", "Billable", "Headcount", "Region"],
            ["ADM", "General", "Administration", "Y", 10, "North"],
            ["FIN", "general", "Finance", None, 5.5, 7],
            ["IT", "IT", "IT Department", "no", 3, None],
        ],
        "Budget": [
            ["Period", "Pool", "Amount", "Metric", "Volume"],
            ["2026-03", "Cloud", 1000.1, "vCPU-Hours", 2000],
            [datetime(2026, 4, 1), "cloud ", 0.1, "vcpu-hours", None],
            ["2026-3", "Service Desk", "1,234.50", None, None],
        ],
        "Actuals": [
            ["Period", "Pool", "Amount", "Account"],
            ["2026-03", "CLOUD", 2.675, 5100.0],
            ["2026-03", "Service Desk", -12.5, "5200"],
        ],
        "Usage": [
            ["Period", "Department", "Metric", "Quantity", "Service"],
            ["2026-03", "adm", "VCPU-HOURS", 120.5, "EC2"],
            [None, None, None, None, None],
            ["2026-03", " FIN", "vCPU-Hours", 0, "S3"],
            ["2026-03", "service desk", "Tickets", 4, None],
        ],
        "Rates": [
            ["Metric", "Rate", "TierFrom", "TierTo", "Effective From"],
            ["vCPU-Hours", 0.05, 0, 1000, "2025-07"],
            ["vCPU-Hours", 0.04, 1000, None, date(2025, 7, 15)],  # a date: its month
            ["Tickets", 12, None, None, None],
        ],
        "Rules": [
            ["ID", "Rule", "Enabled", "Note"],
            [1.0, 'CHARGE "Cloud" FOR "vCPU-Hours" AT RATE CARD\n', None, "per hour"],
            ["R2", '  ALLOCATE "Service Desk" TO DEPARTMENTS BY Headcount ', "N", None],
            ["R3", None, None, "placeholder"],
        ],
    }


def read(grids, **kwargs):
    return read_book(FakeWorkbook(grids), **kwargs)


def only(problems):
    assert len(problems) == 1, [p.render() for p in problems]
    return problems[0]


def headlines(problems):
    return [p.headline() for p in problems]


# --- a clean workbook ----------------------------------------------------------


def test_clean_workbook_reads_without_problems():
    book, problems = read(clean_sheets())
    assert problems == []
    assert book is not None


def test_frames_have_the_contract_dtypes():
    book, _ = read(clean_sheets())
    assert book.budget["Cents"].dtype == np.int64
    assert book.actuals["Cents"].dtype == np.int64
    assert book.usage["Quantity"].dtype == np.float64
    assert book.budget["Volume"].dtype == np.float64
    assert book.departments["Billable"].dtype == bool
    assert book.departments["Headcount"].dtype == np.float64
    assert book.departments["Region"].dtype == object  # some text: not a driver
    assert book.usage["_row"].dtype == np.int64
    assert all(isinstance(r, Decimal) for r in book.rates["Rate"])
    assert list(book.usage.columns) == [
        "Period", "Department", "Metric", "Quantity", "Service", "Reference", "_row", "_key",
    ]  # fmt: skip


def test_amounts_become_exact_minor_units_half_up():
    book, _ = read(clean_sheets())
    assert list(book.budget["Cents"]) == [100010, 10, 123450]  # 0.1 is exactly 10 cents
    assert list(book.actuals["Cents"]) == [268, -1250]  # 2.675 as shown rounds half up


def test_periods_text_short_month_and_date_cells():
    book, _ = read(clean_sheets())
    assert list(book.budget["Period"]) == ["2026-03", "2026-04", "2026-03"]


def test_names_use_the_spelling_of_the_first_occurrence():
    book, _ = read(clean_sheets())
    assert list(book.budget["Pool"]) == ["Cloud", "Cloud", "Service Desk"]
    assert list(book.actuals["Pool"]) == ["Cloud", "Service Desk"]
    assert list(book.usage["Department"]) == ["ADM", "FIN", "Service Desk"]
    assert list(book.usage["Metric"]) == ["vCPU-Hours", "vCPU-Hours", "Tickets"]
    assert list(book.departments["Fund"]) == ["General", "General", "IT"]
    assert list(book.usage["_key"]) == ["adm", "fin", "service desk"]
    assert list(book.budget["_key"]) == ["cloud", "cloud", "service desk"]
    assert book.pools == {"cloud": "Cloud", "service desk": "Service Desk"}


def test_rows_keep_their_excel_row_numbers_and_blank_rows_are_skipped():
    book, _ = read(clean_sheets())
    assert list(book.usage["_row"]) == [2, 4, 5]
    assert book.cell("Usage", "quantity", 4) == "Usage!D4"


def test_departments_billable_and_text_columns():
    book, _ = read(clean_sheets())
    assert list(book.departments["Billable"]) == [True, True, False]
    assert list(book.departments["Name"]) == ["Administration", "Finance", "IT Department"]
    assert list(book.departments["Email"]) == ["", "", ""]


def test_rates_tiers_and_effective_periods():
    book, _ = read(clean_sheets())
    rates = book.rates
    assert list(rates["Rate"]) == [Decimal("0.05"), Decimal("0.04"), Decimal("12")]
    assert list(rates["EffectiveFrom"]) == ["2025-07", "2025-07", None]
    assert rates["TierTo"].isna().tolist() == [False, True, True]
    assert book.columns["Rates"]["effectivefrom"] == ("Effective From", "E")


def test_rules_keep_text_exactly_and_ids_as_text():
    book, _ = read(clean_sheets())
    assert [r.rule_id for r in book.rules] == ["1", "R2"]
    first, second = book.rules
    assert first.text == 'CHARGE "Cloud" FOR "vCPU-Hours" AT RATE CARD\n'
    assert first.where == "Rules!B2" and first.id_where == "Rules!A2"
    assert first.enabled and first.note == "per hour"
    assert second.text == '  ALLOCATE "Service Desk" TO DEPARTMENTS BY Headcount '
    assert not second.enabled


def test_settings_are_typed_with_cells():
    book, _ = read(clean_sheets())
    s = book.settings
    assert s.organization == "State University"
    assert (s.currency, s.minor_unit) == ("USD", 2)
    assert s.fiscal_year_start == 7
    assert s.revenue_account == "4400"
    assert s.expense_account == "6400"  # default
    assert s.period == "2026-03"
    assert s.cells["fiscalyearstart"] == "Settings!B4"
    assert s.raw["currency"] == "usd"


def test_absent_actuals_and_rates_are_empty_frames_with_columns():
    sheets = clean_sheets()
    del sheets["Actuals"], sheets["Rates"]
    book, problems = read(sheets)
    assert problems == []
    assert book.actuals.empty and {"Period", "Pool", "Cents", "_row"} <= set(book.actuals)
    assert book.actuals["Cents"].dtype == np.int64
    assert book.rates.empty and {"Metric", "Rate", "EffectiveFrom"} <= set(book.rates)
    assert book.periods == ["2026-03", "2026-04"]


def test_book_knows_sheet_names_and_columns():
    book, _ = read(clean_sheets())
    assert book.sheet_names == list(clean_sheets())
    assert book.columns["Usage"]["quantity"] == ("Quantity", "D")
    assert book.column_names("Departments")["headcount"] == "Headcount"


# --- sheets and headers --------------------------------------------------------


def test_missing_sheet_suggests_a_close_name():
    sheets = clean_sheets()
    sheets["Usages"] = sheets.pop("Usage")
    book, problems = read(sheets)
    assert book is None
    p = only(problems)
    assert p.code is Reason.MISSING_SHEET
    assert p.headline() == (
        'Usage: the workbook has no sheet "Usage" (its sheets: Settings, Departments, Budget, '
        'Actuals, Rates, Rules, Usages); did you mean "Usages"? Rename that sheet to Usage'
    )


def test_sheet_names_match_in_any_case_and_messages_name_the_real_sheet():
    sheets = clean_sheets()
    sheets["usage"] = sheets.pop("Usage")
    sheets["usage"][1][3] = "n/a"
    book, problems = read(sheets)
    assert headlines(problems) == ['usage!D2: Quantity must be a non-negative number, got "n/a"']
    assert book.cell("Usage", "Quantity", 2) == "usage!D2"


def test_missing_column_lists_the_headers_and_suggests_one():
    sheets = clean_sheets()
    sheets["Usage"][0][3] = "Quantty"
    book, problems = read(sheets)
    assert book is None
    p = only(problems)
    assert p.code is Reason.MISSING_COLUMN
    assert p.headline() == (
        'Usage!A1:E1: required column "Quantity" is missing from row 1 (the header row has '
        'Period, Department, Metric, Quantty, Service); did you mean "Quantty"? '
        "Rename that header to Quantity"
    )


def test_duplicate_header_is_an_error():
    sheets = clean_sheets()
    sheets["Usage"][0][4] = " quantity"
    _, problems = read(sheets)
    p = only(problems)
    assert p.code is Reason.DUPLICATE_COLUMN
    assert p.headline() == (
        'Usage!E1: the column header "quantity" appears twice (first in D1); '
        "rename or delete one of them"
    )


def test_headers_match_ignoring_case_and_surrounding_spaces():
    sheets = clean_sheets()
    sheets["Usage"][0] = ["  PERIOD", "department\xa0", "Metric", "quantity ", "Service"]
    sheets["Rates"][0][2] = "tier_from"
    book, problems = read(sheets)
    assert problems == []
    assert list(book.usage["Quantity"]) == [120.5, 0.0, 4.0]
    assert book.columns["Usage"]["quantity"] == ("quantity", "D")
    assert book.rates["TierFrom"].tolist()[:2] == [0.0, 1000.0]


def test_extra_columns_are_kept_under_their_header():
    sheets = clean_sheets()
    sheets["Usage"][0].append("Cost Center")
    for row, value in zip(sheets["Usage"][1:], [100, None, 200, 300], strict=True):
        row.append(value)
    book, _ = read(sheets)
    assert book.usage["Cost Center"].tolist() == [100.0, 200.0, 300.0]


# --- cell problems --------------------------------------------------------------


def test_bad_period():
    sheets = clean_sheets()
    sheets["Budget"][1][0] = "March 2026"
    _, problems = read(sheets)
    p = only(problems)
    assert p.code is Reason.BAD_PERIOD
    assert p.headline() == (
        'Budget!A2: Period must be a month as YYYY-MM text or a date, got "March 2026"'
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("abc", 'Actuals!C2: Amount must be a number, got "abc"'),
        (
            "$1,234.50",
            'Actuals!C2: Amount must be a number, got "$1,234.50" (type the number without '
            "currency signs or brackets, e.g. -1234.50)",
        ),
        (None, "Actuals!C2: Amount must be a number, got a blank cell"),
        (True, "Actuals!C2: Amount must be a number, got TRUE"),
    ],
)
def test_bad_amount(value, message):
    sheets = clean_sheets()
    sheets["Actuals"][1][2] = value
    book, problems = read(sheets)
    p = only(problems)
    assert (p.code, p.headline()) == (Reason.BAD_VALUE, message)
    assert list(book.actuals["_row"]) == [3]  # the bad row is left out, the rest stays


@pytest.mark.parametrize(
    ("value", "shown"),
    [("n/a", '"n/a"'), (-5, "-5"), (-0.25, "-0.25"), (None, "a blank cell"), ("", "a blank cell")],
)
def test_bad_quantity(value, shown):
    sheets = clean_sheets()
    sheets["Usage"][4][3] = value
    _, problems = read(sheets)
    p = only(problems)
    assert p.code is Reason.BAD_VALUE
    assert p.headline() == f"Usage!D5: Quantity must be a non-negative number, got {shown}"


def test_numeric_text_quantity_is_accepted():
    sheets = clean_sheets()
    sheets["Usage"][1][3] = "1,200.5"
    book, problems = read(sheets)
    assert problems == []
    assert book.usage["Quantity"].iloc[0] == 1200.5


def test_negative_volume_is_an_error():
    sheets = clean_sheets()
    sheets["Budget"][1][4] = -1
    _, problems = read(sheets)
    assert headlines(problems) == ["Budget!E2: Volume must be a non-negative number, got -1"]


def test_excel_error_in_a_used_column():
    sheets = clean_sheets()
    sheets["Usage"][4][3] = ExcelError("#REF!")
    _, problems = read(sheets)
    p = only(problems)
    assert p.code is Reason.EXCEL_ERROR and p.is_error
    assert p.headline() == (
        "Usage!D5: the cell shows the Excel error #REF!; fix the formula or type a value"
    )


def test_excel_error_in_an_extra_column_is_a_warning():
    sheets = clean_sheets()
    sheets["Departments"][2][4] = ExcelError("#DIV/0!")
    book, problems = read(sheets)
    p = only(problems)
    assert (p.code, p.severity, p.where) == (
        Reason.EXCEL_ERROR,
        Severity.WARNING,
        "Departments!E3",
    )
    assert len(book.departments) == 3


def test_duplicate_department_names_both_cells():
    sheets = clean_sheets()
    sheets["Departments"].append(["adm ", "General", None, None, 1, None])
    book, problems = read(sheets)
    p = only(problems)
    assert p.code is Reason.DUPLICATE_DEPARTMENT
    assert p.headline() == (
        'Departments!A5: department "adm" is listed twice (first in Departments!A2); '
        "delete one row or give it another name"
    )
    assert list(book.departments["Department"]) == ["ADM", "FIN", "IT"]


def test_department_needs_a_name_and_a_fund():
    sheets = clean_sheets()
    sheets["Departments"].append([None, "General", "Nameless", None, 1, None])
    sheets["Departments"][2][1] = "  "
    _, problems = read(sheets)
    assert headlines(problems) == [
        "Departments!A5: Department is blank; type the department's code or name",
        "Departments!B3: Fund is blank; type the department's fund code",
    ]


def test_bad_billable_flag():
    sheets = clean_sheets()
    sheets["Departments"][1][3] = "maybe"
    _, problems = read(sheets)
    assert headlines(problems) == [
        'Departments!D2: Billable must be Y or N (or blank for Y), got "maybe"'
    ]


def test_usage_of_an_unknown_department_suggests_one():
    sheets = clean_sheets()
    sheets["Usage"][3][1] = "FNI"
    sheets["Usage"][4][1] = "Zebra"
    _, problems = read(sheets)
    assert [p.code for p in problems] == [Reason.UNKNOWN_DEPARTMENT] * 2
    assert headlines(problems) == [
        'Usage!B4: "FNI" is not a department or a cost pool; did you mean "FIN"?',
        'Usage!B5: "Zebra" is not a department or a cost pool; '
        "add it to Departments or fix the name",
    ]


def test_usage_needs_a_metric():
    sheets = clean_sheets()
    sheets["Usage"][1][2] = None
    _, problems = read(sheets)
    assert headlines(problems) == [
        "Usage!C2: Metric is blank; type the metric's name, e.g. vCPU-Hours"
    ]


def test_rates_must_be_non_negative_numbers():
    sheets = clean_sheets()
    sheets["Rates"][1][1] = -0.05
    sheets["Rates"][2][4] = "soon"
    sheets["Rates"][3][2] = "lots"
    _, problems = read(sheets)
    assert headlines(problems) == [
        "Rates!B2: Rate must be a non-negative number, got -0.05",
        'Rates!C4: TierFrom must be a non-negative number, got "lots"',
        'Rates!E3: Effective From must be a month as YYYY-MM text or a date, got "soon"',
    ]


def test_rule_without_an_id():
    sheets = clean_sheets()
    sheets["Rules"][2][0] = None
    book, problems = read(sheets)
    p = only(problems)
    assert p.code is Reason.MISSING_ID
    assert p.headline() == "Rules!A3: the rule in B3 has no ID; type a unique ID here (e.g. R2)"
    assert [r.rule_id for r in book.rules] == ["1"]


def test_bad_enabled_flag():
    sheets = clean_sheets()
    sheets["Rules"][1][2] = "perhaps"
    _, problems = read(sheets)
    assert headlines(problems) == [
        'Rules!C2: Enabled must be Y or N (or blank for Y), got "perhaps"'
    ]


# --- settings ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("FiscalYearStart", 13, "FiscalYearStart must be a month number 1-12, got 13"),
        ("FiscalYearStart", 6.5, "FiscalYearStart must be a month number 1-12, got 6.5"),
        (
            "Currency",
            "Dollars",
            'Currency must be an ISO 4217 code such as USD, EUR or JPY, got "Dollars"',
        ),
        ("Period", "2026-13", 'Period must be a month as YYYY-MM text or a date, got "2026-13"'),
        ("CostBasis", "Actual cost", 'CostBasis must be ACTUAL or BUDGET, got "Actual cost"'),
        ("ReserveDays", 0, "ReserveDays must be a whole number of days above 0, got 0"),
    ],
)
def test_bad_setting(key, value, message):
    sheets = clean_sheets()
    sheets["Settings"].append([key, value])
    sheets["Settings"] = [r for r in sheets["Settings"] if r[0] != key or r[1] == value]
    _, problems = read(sheets)
    p = only(problems)
    assert p.code is Reason.BAD_SETTING
    assert p.where == f"Settings!B{len(sheets['Settings'])}"
    assert p.message == message


def test_fiscal_year_start_message_matches_the_brief():
    sheets = clean_sheets()
    sheets["Settings"][4] = ["FiscalYearStart", 13]
    sheets["Settings"][3] = ["ITFund", "IT"]
    _, problems = read(sheets)
    assert headlines(problems) == [
        "Settings!B5: FiscalYearStart must be a month number 1-12, got 13"
    ]


def test_settings_keys_any_case_and_typed_values():
    sheets = clean_sheets()
    sheets["Settings"][1:] = [
        ["currency", "jpy"],
        ["Fiscal Year Start", "10"],
        ["COSTBASIS", "budget"],
        ["ReserveDays", 45.0],
        ["DueFromAccount", 1300.0],
        ["Period", datetime(2026, 2, 1)],
    ]
    book, problems = read(sheets)
    assert problems == []
    s = book.settings
    assert (s.currency, s.minor_unit) == ("JPY", 0)
    assert (s.fiscal_year_start, s.cost_basis, s.reserve_days) == (10, "BUDGET", 45)
    assert (s.due_from_account, s.period) == ("1300", "2026-02")
    assert s.cells["fiscalyearstart"] == "Settings!B3"
    assert list(book.budget["Cents"]) == [1000, 0, 1235]  # whole yen, half up


def test_unknown_setting_near_a_known_one_is_a_warning():
    sheets = clean_sheets()
    sheets["Settings"].append(["FiscalYearStrat", 1])
    sheets["Settings"].append(["Approver", "J. Smith"])
    book, problems = read(sheets)
    p = only(problems)
    assert (p.severity, p.headline()) == (
        Severity.WARNING,
        'Settings!A7: costloop does not know the setting "FiscalYearStrat"; '
        'did you mean "FiscalYearStart"?',
    )
    assert book.settings.fiscal_year_start == 7
    assert book.settings.raw["approver"] == "J. Smith"


def test_a_misspelt_usage_source_is_caught_and_the_real_one_kept_as_written():
    sheets = clean_sheets()
    sheets["Settings"].append(["UsageSorce", "usage.csv"])
    sheets["Settings"].append(["UsageDepartmentTag", "cost-center"])
    book, problems = read(sheets)
    p = only(problems)
    assert (p.severity, p.headline()) == (
        Severity.WARNING,
        'Settings!A7: costloop does not know the setting "UsageSorce"; did you mean "UsageSource"?',
    )
    # engine/read/usage_source.py reads these keys from the raw settings, as written.
    assert book.settings.raw["usagedepartmenttag"] == "cost-center"


def test_setting_given_twice_is_an_error():
    sheets = clean_sheets()
    sheets["Settings"].append(["currency", "EUR"])
    book, problems = read(sheets)
    assert headlines(problems) == [
        "Settings!A7: the setting currency is set twice (first in Settings!A3); "
        "delete one of the rows"
    ]
    assert book.settings.currency == "USD"


# --- all at once ------------------------------------------------------------------


def test_every_problem_is_reported_at_once():
    sheets = clean_sheets()
    sheets["Settings"][3][1] = 13  # FiscalYearStart
    sheets["Departments"][3][3] = "sometimes"  # Billable
    sheets["Budget"][2][0] = "2026-13"  # Period
    sheets["Usage"][1][3] = "n/a"  # Quantity
    sheets["Rules"][1][0] = None  # ID
    book, problems = read(sheets)
    assert book is not None
    assert [p.where for p in problems] == [
        "Settings!B4",
        "Departments!D4",
        "Budget!A3",
        "Rules!A2",
        "Usage!D2",
    ]
    assert [p.code for p in problems] == [
        Reason.BAD_SETTING,
        Reason.BAD_VALUE,
        Reason.BAD_PERIOD,
        Reason.MISSING_ID,
        Reason.BAD_VALUE,
    ]


def test_structural_and_cell_problems_together():
    sheets = clean_sheets()
    del sheets["Rules"]
    sheets["Budget"][0][2] = "Amt"
    sheets["Usage"][1][3] = -1
    book, problems = read(sheets)
    assert book is None
    assert [p.code for p in problems] == [
        Reason.MISSING_SHEET,
        Reason.MISSING_COLUMN,
        Reason.BAD_VALUE,
    ]


# --- fingerprint and scenarios -----------------------------------------------------


def test_fingerprint_is_stable_and_follows_every_input_cell():
    first, _ = read(clean_sheets())
    again, _ = read(clean_sheets())
    assert first.fingerprint == again.fingerprint and len(first.fingerprint) == 64

    sheets = clean_sheets()
    sheets["Rules"][2][3] = "changed note"
    changed, _ = read(sheets)
    assert changed.fingerprint != first.fingerprint

    # How a reader types a cell (1 or 1.0, trailing blanks) does not matter.
    sheets = clean_sheets()
    sheets["Departments"][1][4] = 10.0
    sheets["Rules"][1].append(None)
    same, _ = read(sheets)
    assert same.fingerprint == first.fingerprint


def test_fingerprint_ignores_output_sheets():
    first, _ = read(clean_sheets())
    sheets = clean_sheets()
    sheets["Bills"] = [["Period", "Department"], ["2026-03", "ADM"]]
    with_bills, _ = read(sheets)
    assert with_bills.fingerprint == first.fingerprint


def test_scenario_reads_another_sheet_and_names_it():
    sheets = clean_sheets()
    sheets["Budget@Cloud10"] = copy.deepcopy(sheets["Budget"])
    sheets["Budget@Cloud10"][1][2] = "lots"
    sheets["Budget@Cloud10"][2][2] = 0.11
    book, problems = read(sheets, sheets={"Budget": "Budget@Cloud10"})
    assert headlines(problems) == ['Budget@Cloud10!C2: Amount must be a number, got "lots"']
    assert list(book.budget["Cents"]) == [11, 123450]
    assert book.cell("Budget", "Amount", 3) == "Budget@Cloud10!C3"
    assert book.sources["Budget"] == "Budget@Cloud10"


def test_scenario_naming_a_missing_sheet():
    book, problems = read(clean_sheets(), sheets={"Budget": "Budget@Nope"})
    assert book is None
    p = only(problems)
    assert p.code is Reason.MISSING_SHEET and p.where == "Budget@Nope"


# --- helpers and speed --------------------------------------------------------------


def test_column_letters():
    assert [column_letter(i) for i in (0, 25, 26, 51, 701, 702)] == [
        "A", "Z", "AA", "AZ", "ZZ", "AAA",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("value", "places", "expected"),
    [
        (0.1, 2, 10),
        (0.125, 2, 13),
        (-0.125, 2, -13),
        (1.005, 2, 101),  # 1.005 as Excel shows it, not the binary 1.00499...
        (2.5, 0, 3),
        (1234.5678, 3, 1234568),
        ("1,234.50", 2, 123450),
        (10**15 + 0.5, 2, 100000000000000050),
        ("n/a", 2, None),
    ],
)
def test_minor_units(value, places, expected):
    assert minor_units(value, places) == expected


def test_vectorised_cents_agree_with_decimal_rounding():
    rng = np.random.default_rng(7)
    values = [float(v) for v in np.round(rng.uniform(-1e6, 1e6, 3000), 3)]
    values += [0.005, 1.005, 2.675, 0.015, -0.005, 1e13 + 0.005]
    sheets = clean_sheets()
    sheets["Actuals"] = [["Period", "Pool", "Amount"]] + [["2026-03", "Cloud", v] for v in values]
    book, problems = read(sheets)
    assert problems == []
    assert list(book.actuals["Cents"]) == [minor_units(v, 2) for v in values]


def test_hundred_thousand_usage_rows_read_whole():
    # Speed is measured by benchmarks/bench_engine.py, not asserted here (shared machines).
    sheets = clean_sheets()
    departments = ["ADM", "FIN", "IT"]
    # Each row its own Reference: without one, equal rows would be repeats (a warning).
    sheets["Usage"] = [["Period", "Department", "Metric", "Quantity", "Service", "Reference"]] + [
        [f"2026-{1 + i % 12:02d}", departments[i % 3], "vCPU-Hours", (i % 997) / 4, "EC2", f"R{i}"]
        for i in range(100_000)
    ]
    book, problems = read(sheets)
    assert problems == []
    assert len(book.usage) == 100_000
    assert book.usage["Quantity"].sum() == sum((i % 997) / 4 for i in range(100_000))


# --- through a real .xlsx file ---------------------------------------------------------


def write_xlsx(path, sheets):
    """An .xlsx made with openpyxl; a text cell like ``#REF!`` becomes an Excel error cell."""
    from openpyxl import Workbook as OpenpyxlWorkbook

    book = OpenpyxlWorkbook()
    book.remove(book.active)
    for name, grid in sheets.items():
        sheet = book.create_sheet(name)
        for row in grid:
            sheet.append(row)
    book.save(path)
    return path


def test_real_xlsx_reads_like_the_grids(tmp_path):
    from costloop.engine.xlsx.file_workbook import FileWorkbook

    path = write_xlsx(tmp_path / "book.xlsx", clean_sheets())
    book, problems = read_book(FileWorkbook(path))
    expected, _ = read(clean_sheets())
    assert problems == []
    assert list(book.budget["Cents"]) == [100010, 10, 123450]
    assert list(book.budget["Period"]) == ["2026-03", "2026-04", "2026-03"]
    assert list(book.usage["Department"]) == ["ADM", "FIN", "Service Desk"]
    assert list(book.rates["EffectiveFrom"]) == ["2025-07", "2025-07", None]
    assert [r.text for r in book.rules] == [r.text for r in expected.rules]
    assert book.settings.revenue_account == "4400"
    # Same cells, same fingerprint, whichever reader typed them.
    assert book.fingerprint == expected.fingerprint


def test_real_xlsx_problems_name_their_cells(tmp_path):
    from costloop.engine.xlsx.file_workbook import FileWorkbook

    sheets = clean_sheets()
    sheets["Usage"][3][3] = "#DIV/0!"
    sheets["Usage"][4][3] = "n/a"
    sheets["Budget"][1][0] = "Q3"
    path = write_xlsx(tmp_path / "bad.xlsx", sheets)
    book, problems = read_book(FileWorkbook(path))
    assert book is not None
    assert headlines(problems) == [
        'Budget!A2: Period must be a month as YYYY-MM text or a date, got "Q3"',
        "Usage!D4: the cell shows the Excel error #DIV/0!; fix the formula or type a value",
        'Usage!D5: Quantity must be a non-negative number, got "n/a"',
    ]


@given(
    st.lists(
        st.floats(min_value=-1e13, max_value=1e13, allow_nan=False, allow_infinity=False),
        min_size=1,
        max_size=50,
    ),
    st.sampled_from([0, 2, 3]),
)
def test_vectorised_cents_equal_decimal_half_up_for_any_float(values, places):
    cents = _cents_of_numbers(np.array(values), np.array(values, dtype=object), places)
    assert list(cents) == [minor_units(v, places) for v in values]


def test_an_absurdly_large_amount_is_a_located_error_not_a_crash():
    sheets = clean_sheets()
    sheets["Budget"] = [["Period", "Pool", "Amount"], ["2026-03", "Cloud", 1e26]]
    _, problems = read(sheets)
    [problem] = [p for p in problems if p.is_error]
    assert problem.where == "Budget!C2"
    assert "too large" in problem.message
