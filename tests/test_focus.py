"""Real FOCUS usage files bill right (issue 17).

The FinOps Foundation's FOCUS 1.0 sample (tests/data/focus/, CC BY 4.0, exactly as
published) is billed through Settings UsageSource, and the bills are held to figures
computed here independently: Python's csv module and Decimal over the file's text,
nothing of costloop's reading. Each way a real export went wrong before has its own
test: US dates, a leading-zero account past DuckDB's sample, a quantity without a
unit, another currency, rows without the department tag, a correction invoiced a
month later, a net credit.
"""

from __future__ import annotations

import csv
import shutil
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import openpyxl
import pytest

from costloop.engine.pipeline.commands import run_book
from costloop.engine.pipeline.run import prepare
from costloop.engine.xlsx.file_workbook import FileWorkbook
from costloop.problems import Severity

DATA = Path(__file__).parent / "data" / "focus"
SAMPLE = DATA / "focus_sample.csv"
TEMPLATE = Path(__file__).resolve().parents[1] / "workbooks" / "template.xlsx"
CENT = Decimal("0.01")


def _sample_rows() -> list[dict[str, str | None]]:
    """The sample as FOCUS means it: NULL, null and empty are no value."""
    with SAMPLE.open(newline="", encoding="utf-8") as handle:
        return [
            {k: (None if v in ("", "NULL", "null") else v) for k, v in row.items()}
            for row in csv.DictReader(handle)
        ]


def focus_book(
    folder: Path,
    departments: list[str],
    rules: list[str],
    settings: dict[str, str],
    pools: dict[str, int],
    period: str,
) -> Path:
    """A workbook from the blank template: Departments, one Budget row per pool, the rules."""
    folder.mkdir(parents=True, exist_ok=True)
    book = folder / "book.xlsx"
    wb = openpyxl.load_workbook(TEMPLATE)
    s = wb["Settings"]
    for row in range(s.max_row, 1, -1):  # the template's example keys: ours replace them
        if s.cell(row, 1).value in settings or s.cell(row, 1).value == "Period":
            s.delete_rows(row)
    for key, value in {"Period": period, **settings}.items():
        s.append([key, value])
    for code in departments:
        wb["Departments"].append([code, f"Dept {code}", "General", None, "Y"])
    for pool, amount in pools.items():
        wb["Budget"].append([period, pool, amount])
    for n, rule in enumerate(rules, 1):
        wb["Rules"].append([f"R{n}", rule, "Y"])
    wb.save(book)
    return book


def _bills(outcome) -> dict[tuple[str, str], Decimal]:
    bills = outcome.result.bills
    out: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for dept, pool, amount in zip(bills["Department"], bills["Pool"], bills["Amount"], strict=True):
        out[(dept, pool)] += Decimal(amount)
    return dict(out)


def _rendered(outcome, severity: Severity | None = None) -> list[str]:
    return [
        p.render()
        for p in outcome.problems
        if (severity is None or p.severity == severity) and p.where.startswith("focus")
    ]


SAMPLE_RULES = [
    'CHARGE "Cloud" FOR "EffectiveCost" AT 1 WHERE ChargeCategory = "Usage" '
    'AND Service <> "Azure Machine Learning"',
    'CHARGE "Machine Learning" FOR "EffectiveCost" AT 1 WHERE Service = "Azure Machine Learning"',
    'CHARGE "Cloud Credits" FOR "EffectiveCost" AT 1 WHERE ChargeCategory = "Credit"',
    'CHARGE "Compute" FOR "Hours" AT 0.05 WHERE ProviderName = "AWS"',
]
SAMPLE_POOLS = {"Cloud": 25, "Machine Learning": 1, "Cloud Credits": 0, "Compute": 5}


def _expected_sample_bills(rows) -> dict[tuple[str, str], Decimal]:
    """The rules above, worked out from the file's text with Decimal: each department's
    quantity summed exactly, times the rate, rounded half-up to the cent."""
    quantities: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for row in rows:
        dept, service = row["SubAccountId"], row["ServiceName"]
        cost = Decimal(row["EffectiveCost"])
        if service == "Azure Machine Learning":
            quantities[(dept, "Machine Learning")] += cost
        elif row["ChargeCategory"] == "Usage":
            quantities[(dept, "Cloud")] += cost
        if row["ChargeCategory"] == "Credit":
            quantities[(dept, "Cloud Credits")] += cost
        if row["ProviderName"] == "AWS" and row["ConsumedUnit"] == "Hours":
            quantities[(dept, "Compute")] += Decimal(row["ConsumedQuantity"]) * Decimal("0.05")
    return {
        key: q.quantize(CENT, rounding=ROUND_HALF_UP)
        for key, q in quantities.items()
        if q != 0  # a department with no usage of the metric gets no line
    }


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sample")
    shutil.copyfile(SAMPLE, folder / "focus_sample.csv")
    rows = _sample_rows()
    departments = sorted({r["SubAccountId"] for r in rows})
    book = focus_book(
        folder,
        departments,
        SAMPLE_RULES,
        {"UsageSource": "focus_sample.csv"},
        SAMPLE_POOLS,
        "2024-09",
    )
    return rows, run_book(book, output=folder / "out.xlsx")


def test_the_vendored_sample_is_the_published_file():
    # Vendored byte for byte with its licence notice (CC BY 4.0) beside it.
    assert SAMPLE.stat().st_size == 755_423
    readme = (DATA / "README.md").read_text(encoding="utf-8")
    assert "Creative Commons Attribution 4.0 International (CC BY 4.0)" in readme
    assert "adbdd17a132984d6e8583c149c236d2199c3f5bc" in readme
    rows = _sample_rows()
    assert len(rows) == 1000
    with SAMPLE.open(newline="", encoding="utf-8") as handle:
        cells = [v for row in list(csv.reader(handle))[1:] for v in row]
    assert (cells.count("NULL"), cells.count("")) == (8_973, 56)


def test_the_focus_sample_bills_what_an_independent_decimal_sum_says(sample_run):
    rows, outcome = sample_run
    assert outcome.ok, [p.render() for p in outcome.errors]
    expected = _expected_sample_bills(rows)
    got = _bills(outcome)
    assert got == expected
    # Not an empty agreement: the sample's own figures, to the cent.
    assert sum(got.values()) == Decimal("19.11")
    assert len(got) == 42


def test_a_net_credit_is_a_credit_line_and_a_swapped_journal_entry(sample_run):
    _rows, outcome = sample_run
    ml = "/subscriptions/64e355d7-997c-491d-b0c1-8414dccfcf42"
    # Its Azure Machine Learning refunds outweigh the month's charges: -0.157 before.
    assert _bills(outcome)[(ml, "Machine Learning")] == Decimal("-0.15")
    journal = outcome.result.journal
    entry = journal[(journal["Department"] == ml) & (journal["Pool"] == "Machine Learning")]
    lines = [
        (a, None if d is None else Decimal(d), None if c is None else Decimal(c))
        for a, d, c in zip(entry["Account"], entry["Debit"], entry["Credit"], strict=True)
    ]
    # A charge debits the department's expense; the credit credits it, and so on down.
    assert lines == [
        ("6400", None, Decimal("0.15")),
        ("2300", Decimal("0.15"), None),
        ("1300", None, Decimal("0.15")),
        ("4400", Decimal("0.15"), None),
    ]


def test_oracles_zero_effective_cost_is_a_warning_with_what_it_billed(sample_run):
    _rows, outcome = sample_run
    warnings = _rendered(outcome, Severity.WARNING)
    oracle = [w for w in warnings if '"Oracle"' in w]
    assert oracle == [
        "focus_sample.csv!W927:W952: EffectiveCost is 0 on 6 rows (rows 927, 943, 946 …) of "
        'ProviderName "Oracle" where BilledCost is not (BilledCost 0.54 there), so they bill '
        "0.00; if the export leaves EffectiveCost out, set Settings UsageCost to BilledCost"
    ]


# --- each way a real export went wrong ------------------------------------------------

FOCUS_HEADER = [
    "BillingPeriodStart",
    "ChargePeriodStart",
    "ChargeClass",
    "ChargeCategory",
    "SubAccountId",
    "BillingCurrency",
    "EffectiveCost",
    "BilledCost",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ServiceName",
]


def _focus_csv(path: Path, rows: list[list[object]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([FOCUS_HEADER, *rows])


def _row(**values: object) -> list[object]:
    """One FOCUS row: an ordinary March 2026 usage charge unless told otherwise."""
    row = {
        "BillingPeriodStart": "2026-03-01T00:00:00Z",
        "ChargePeriodStart": "2026-03-05T00:00:00Z",
        "ChargeClass": "NULL",
        "ChargeCategory": "Usage",
        "SubAccountId": "ENG",
        "BillingCurrency": "USD",
        "EffectiveCost": "10.00",
        "BilledCost": "10.00",
        "ConsumedQuantity": "2",
        "ConsumedUnit": "Hours",
        "ServiceName": "EC2",
    }
    row.update(values)
    return [row[c] for c in FOCUS_HEADER]


SIMPLE_RULES = [
    'CHARGE "Cloud" FOR "EffectiveCost" AT 1',
    'CHARGE "Compute" FOR "Hours" AT 0.50',
]


def _simple_book(tmp_path: Path, rows, settings=None, departments=("ENG", "FIN"), period="2026-03"):
    _focus_csv(tmp_path / "focus.csv", rows)
    return focus_book(
        tmp_path,
        list(departments),
        SIMPLE_RULES,
        {"UsageSource": "focus.csv", **(settings or {})},
        {"Cloud": 100, "Compute": 10},
        period,
    )


def _usage(book: Path):
    return prepare(FileWorkbook(book)).book.usage


def _source_problems(book: Path) -> list[str]:
    return [
        p.render()
        for p in prepare(FileWorkbook(book)).problems
        if p.where.startswith(("focus", "Settings"))
    ]


def test_us_dates_are_an_error_naming_the_cell_without_usage_date_format(tmp_path):
    # DuckDB's sniffer read these day-first: every month became January, exit 0.
    book = _simple_book(
        tmp_path,
        [_row(ChargePeriodStart="7/1/2025", BillingPeriodStart="7/1/2025"),
         _row(ChargePeriodStart="1/7/2025", BillingPeriodStart="1/1/2025")],
    )  # fmt: skip
    from costloop.cli import main

    assert main(["check", str(book)]) == 1
    assert _source_problems(book) == [
        "focus.csv!B2: ChargePeriodStart must be a month as YYYY-MM text or a date, got "
        '"7/1/2025"; costloop reads ISO 8601 (2025-07-01, 2025-07-01T00:00:00Z) and YYYY-MM, '
        "never guessing day from month — set Settings UsageDateFormat (e.g. M/D/YYYY) to read "
        "other dates",
        "focus.csv!B3: ChargePeriodStart must be a month as YYYY-MM text or a date, got "
        '"1/7/2025"; costloop reads ISO 8601 (2025-07-01, 2025-07-01T00:00:00Z) and YYYY-MM, '
        "never guessing day from month — set Settings UsageDateFormat (e.g. M/D/YYYY) to read "
        "other dates",
    ]


def test_us_dates_read_month_first_with_usage_date_format(tmp_path):
    book = _simple_book(
        tmp_path,
        [
            _row(ChargePeriodStart="7/1/2025", EffectiveCost="1.25"),
            _row(ChargePeriodStart="1/7/2025 13:00", EffectiveCost="2.50"),
            _row(ChargePeriodStart="12/31/2025", EffectiveCost="4.00"),
        ],
        {"UsageDateFormat": "M/D/YYYY"},
    )
    assert _source_problems(book) == []
    usage = _usage(book)
    cost = usage[usage["Metric"] == "EffectiveCost"]
    assert sorted(zip(cost["Period"], cost["Quantity"], strict=True)) == [
        ("2025-01", 2.5),
        ("2025-07", 1.25),
        ("2025-12", 4.0),
    ]


def test_a_date_the_format_does_not_fit_is_still_an_error(tmp_path):
    # "4/1/25" has a two-digit year: M/D/YYYY does not read it (M/D/YY would).
    rows = [_row(ChargePeriodStart="4/1/25"), _row(ChargePeriodStart="2/30/2025")]
    book = _simple_book(tmp_path, rows, {"UsageDateFormat": "M/D/YYYY"})
    fix = "; it fits neither ISO 8601 (2025-07-01) nor the Settings UsageDateFormat"
    said = "ChargePeriodStart must be a month as YYYY-MM text or a date, got"
    assert _source_problems(book) == [
        f'focus.csv!B2: {said} "4/1/25"{fix}',
        f'focus.csv!B3: {said} "2/30/2025"{fix}',
    ]
    book = _simple_book(tmp_path, rows[:1], {"UsageDateFormat": "M/D/YY"})
    assert _source_problems(book) == []
    assert set(_usage(book)["Period"]) == {"2025-04"}


def test_a_usage_date_format_that_is_no_date_is_named_at_its_cell(tmp_path):
    book = _simple_book(tmp_path, [_row()], {"UsageDateFormat": "month/day"})
    (problem,) = _source_problems(book)
    assert problem.endswith(
        ": UsageDateFormat must spell a date with D (day), M (month) and YYYY or YY (year) "
        "and separators such as / - or ., e.g. M/D/YYYY; got 'month/day'"
    )
    assert problem.startswith("Settings!B")


def test_offsets_are_read_in_utc(tmp_path):
    # 20:00 on 31 March in California is 03:00 on 1 April in UTC: April's charge.
    book = _simple_book(
        tmp_path,
        [_row(ChargePeriodStart="2026-03-31T20:00:00-07:00", EffectiveCost="3"),
         _row(ChargePeriodStart="2026-03-31 23:00:00", EffectiveCost="4")],
    )  # fmt: skip
    usage = _usage(book)
    cost = usage[usage["Metric"] == "EffectiveCost"]
    assert sorted(zip(cost["Period"], cost["Quantity"], strict=True)) == [
        ("2026-03", 4.0),
        ("2026-04", 3.0),
    ]


def test_a_leading_zero_account_past_duckdbs_sample_stays_text(tmp_path):
    # 37,680 rows; from row 28,682 on the accounts have a leading zero. Typed from a
    # sample, "0456" became 456: 9,000 false "not a department" errors.
    rows = [_row(SubAccountId="12345", EffectiveCost="1") for _ in range(28_680)]
    rows += [_row(SubAccountId="0456", EffectiveCost="2") for _ in range(9_000)]
    book = _simple_book(tmp_path, rows, departments=("12345", "0456"))
    outcome = run_book(book, output=tmp_path / "out.xlsx")
    assert outcome.ok, [p.render() for p in outcome.errors]
    bills = _bills(outcome)
    assert bills[("0456", "Cloud")] == Decimal("18000.00")
    assert bills[("12345", "Cloud")] == Decimal("28680.00")
    assert bills[("0456", "Compute")] == Decimal("9000.00")


def test_a_quantity_without_a_unit_is_a_grouped_warning_with_its_total(tmp_path):
    rows = [
        _row(),
        _row(ConsumedUnit="", ConsumedQuantity="1.5"),
        _row(ConsumedUnit="NULL", ConsumedQuantity="2.25"),
    ]
    book = _simple_book(tmp_path, rows)
    outcome = run_book(book, output=tmp_path / "out.xlsx")
    assert outcome.ok
    assert _rendered(outcome, Severity.WARNING) == [
        "focus.csv!I3:I4: 2 rows (rows 3, 4) have a ConsumedQuantity but a blank ConsumedUnit "
        "(quantity 3.75): that consumption is no metric, so no rule bills it (the rows' cost "
        "is billed); fill ConsumedUnit in the export"
    ]
    # The rows' cost is billed; their consumption, having no unit, is not.
    assert _bills(outcome) == {
        ("ENG", "Cloud"): Decimal("30.00"),
        ("ENG", "Compute"): Decimal("1.00"),
    }


def test_a_row_in_another_currency_is_an_error_naming_its_rows(tmp_path):
    rows = [
        _row(),
        _row(BillingCurrency="EUR", EffectiveCost="7.5"),
        _row(BillingCurrency="eur", EffectiveCost="1"),
    ]
    book = _simple_book(tmp_path, rows)
    from costloop.cli import main

    assert main(["run", str(book)]) == 1
    assert _source_problems(book) == [
        "focus.csv!F3:F4: 2 rows (rows 3, 4) are billed in EUR, not the workbook's Currency USD "
        "(EffectiveCost 8.50 EUR); costloop does not convert currencies: export the usage in "
        "USD, or bill EUR in a workbook of its own"
    ]


def test_untagged_rows_of_the_sample_are_one_error_with_their_count_and_cost(tmp_path):
    shutil.copyfile(SAMPLE, tmp_path / "focus_sample.csv")
    rows = _sample_rows()
    units = sorted({_tag(r, "business_unit") for r in rows} - {None})
    book = focus_book(
        tmp_path,
        units,
        ['CHARGE "Cloud" FOR "EffectiveCost" AT 1'],
        {"UsageSource": "focus_sample.csv", "UsageDepartmentTag": "business_unit"},
        {"Cloud": 25},
        "2024-09",
    )
    untagged = [i + 2 for i, r in enumerate(rows) if _tag(r, "business_unit") is None]
    cost = sum(Decimal(rows[i - 2]["EffectiveCost"]) for i in untagged)
    assert (len(untagged), untagged[:3], round(cost, 2)) == (340, [2, 10, 24], Decimal("-1.02"))
    errors = [
        p.render() for p in prepare(FileWorkbook(book)).problems if p.severity == Severity.ERROR
    ]
    assert errors == [
        f"focus_sample.csv!AR2:AR{untagged[-1]}: 340 rows (rows 2, 10, 24 …) have no "
        '"business_unit" tag in Tags (or it is blank, or Tags is not JSON), so no department, '
        "and EffectiveCost -1.02 is not billed; tag who used them, or set Settings "
        "UntaggedDepartment to the department or cost pool that takes rows without one"
    ]


def _tag(row, key: str) -> str | None:
    import json

    return None if row["Tags"] is None else json.loads(row["Tags"]).get(key)


def test_untagged_department_routes_the_rows_to_a_department(tmp_path):
    shutil.copyfile(SAMPLE, tmp_path / "focus_sample.csv")
    rows = _sample_rows()
    units = sorted({_tag(r, "business_unit") for r in rows} - {None})
    book = focus_book(
        tmp_path,
        [*units, "CLOUD-OPS"],
        ['CHARGE "Cloud" FOR "BilledCost" AT 1'],
        {
            "UsageSource": "focus_sample.csv",
            "UsageDepartmentTag": "business_unit",
            "UntaggedDepartment": "cloud-ops",  # any case, as names are
            "UsageCost": "BilledCost",
        },
        {"Cloud": 25},
        "2024-09",
    )
    outcome = run_book(book, output=tmp_path / "out.xlsx")
    assert outcome.ok, [p.render() for p in outcome.errors]
    expected: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for r in rows:
        expected[(_tag(r, "business_unit") or "CLOUD-OPS", "Cloud")] += Decimal(r["BilledCost"])
    want = {k: v.quantize(CENT, rounding=ROUND_HALF_UP) for k, v in expected.items() if v}
    assert _bills(outcome) == want
    assert want[("CLOUD-OPS", "Cloud")] == Decimal("0.27")


def test_untagged_department_may_be_a_pool_spread_by_a_rule(tmp_path):
    rows = [
        _row(SubAccountId="ENG", EffectiveCost="30"),
        _row(SubAccountId="FIN", EffectiveCost="10"),
        _row(SubAccountId="NULL", EffectiveCost="40"),
    ]
    _focus_csv(tmp_path / "focus.csv", rows)
    book = focus_book(
        tmp_path,
        ["ENG", "FIN"],
        [
            # The untagged rows' usage is the pool's share of Cloud; the pool is then
            # spread evenly: ENG 30 + 20, FIN 10 + 20.
            'ALLOCATE "Cloud" TO POOLS "Shared Cloud" AND DEPARTMENTS BY USAGE "EffectiveCost"',
            'ALLOCATE "Shared Cloud" TO DEPARTMENTS EVENLY',
        ],
        {"UsageSource": "focus.csv", "UntaggedDepartment": "Shared Cloud", "CostBasis": "BUDGET"},
        {"Cloud": 80, "Shared Cloud": 0},
        "2026-03",
    )
    outcome = run_book(book, output=tmp_path / "out.xlsx")
    assert outcome.ok, [p.render() for p in outcome.errors]
    assert _bills(outcome) == {
        ("ENG", "Cloud"): Decimal("30.00"),
        ("ENG", "Shared Cloud"): Decimal("20.00"),
        ("FIN", "Cloud"): Decimal("10.00"),
        ("FIN", "Shared Cloud"): Decimal("20.00"),
    }


def test_a_charge_says_so_when_usage_is_booked_to_a_pool(tmp_path):
    rows = [_row(SubAccountId="ENG", EffectiveCost="30"), _row(SubAccountId="", EffectiveCost="40")]
    _focus_csv(tmp_path / "focus.csv", rows)
    book = focus_book(
        tmp_path,
        ["ENG"],
        [
            'ALLOCATE "Shared Cloud" TO DEPARTMENTS EVENLY',
            'CHARGE "Cloud" FOR "EffectiveCost" AT 1',
        ],
        {"UsageSource": "focus.csv", "UntaggedDepartment": "Shared Cloud"},
        {"Cloud": 70, "Shared Cloud": 0},
        "2026-03",
    )
    outcome = run_book(book, output=tmp_path / "out.xlsx")
    warnings = [p.render().splitlines()[0] for p in outcome.problems if p.where.startswith("Rules")]
    assert warnings == [
        'Rules!B3, character 20: "EffectiveCost" usage of 2026-03 is booked to the cost pool '
        '"Shared Cloud", which a CHARGE does not bill (it bills departments); spread the '
        "pool's share with ALLOCATE … BY USAGE, or book that usage to a department"
    ]


def test_an_unknown_untagged_department_is_named_at_its_cell(tmp_path):
    book = _simple_book(tmp_path, [_row()], {"UntaggedDepartment": "ENGG"})
    (problem,) = _source_problems(book)
    assert problem.startswith("Settings!B")
    assert problem.endswith(
        ": UntaggedDepartment 'ENGG' is not a department or a cost pool; did you mean \"ENG\"?"
    )


def test_a_correction_invoiced_a_month_later_is_billed_in_its_billing_period(tmp_path):
    # May's usage, and a correction of it that the provider invoiced in June.
    rows = [
        _row(BillingPeriodStart="2026-05-01T00:00:00Z", ChargePeriodStart="2026-05-10T00:00:00Z",
             EffectiveCost="100", ConsumedQuantity="10"),
        _row(BillingPeriodStart="2026-06-01T00:00:00Z", ChargePeriodStart="2026-05-10T00:00:00Z",
             ChargeClass="Correction", EffectiveCost="-20", ConsumedQuantity="-2"),
        _row(BillingPeriodStart="2026-06-01T00:00:00Z", ChargePeriodStart="2026-06-03T00:00:00Z",
             EffectiveCost="50", ConsumedQuantity="5", SubAccountId="FIN"),
    ]  # fmt: skip
    book = _simple_book(tmp_path, rows, period="2026-06")
    usage = _usage(book)
    correction = usage[usage["ChargeClass"] == "Correction"]
    assert sorted(zip(correction["Period"], correction["Charge Period"], correction["Metric"],
                      correction["Quantity"], strict=True)) == [
        ("2026-06", "2026-05", "EffectiveCost", -20.0),
        ("2026-06", "2026-05", "Hours", -2.0),
    ]  # fmt: skip
    june = run_book(book, period="2026-06", output=tmp_path / "june.xlsx")
    assert june.ok, [p.render() for p in june.errors]
    # June carries the correction (a credit to ENG), not May: May's bill stays as issued.
    assert _bills(june) == {
        ("ENG", "Cloud"): Decimal("-20.00"),
        ("ENG", "Compute"): Decimal("-1.00"),
        ("FIN", "Cloud"): Decimal("50.00"),
        ("FIN", "Compute"): Decimal("2.50"),
    }
    may = run_book(book, period="2026-05", output=tmp_path / "may.xlsx")
    assert _bills(may) == {("ENG", "Cloud"): Decimal("100.00"), ("ENG", "Compute"): Decimal("5.00")}
    recovery = june.result.recovery
    cloud = recovery[recovery["Pool"] == "Cloud"].set_index("Period")["Recovered"]
    assert (Decimal(cloud["2026-05"]), Decimal(cloud["2026-06"])) == (
        Decimal("100.00"),
        Decimal("30.00"),
    )


def test_focus_columns_and_tags_can_be_named_in_where(sample_run, tmp_path):
    shutil.copyfile(SAMPLE, tmp_path / "focus_sample.csv")
    rows = _sample_rows()
    book = focus_book(
        tmp_path,
        sorted({r["SubAccountId"] for r in rows}),
        [
            'CHARGE "Networking" FOR "BilledCost" AT 1 WHERE ServiceCategory = "Networking" '
            'AND RegionName = "US West (Oregon)"',
            'CHARGE "Apps" FOR "BilledCost" AT 1 WHERE application = "BrightLensMatrix"',
            'CHARGE "Oracle" FOR "BilledCost" AT 1 WHERE ProviderName = "Oracle" '
            'AND ChargeCategory IN ("Usage", "Adjustment")',
        ],
        {"UsageSource": "focus_sample.csv", "UsageCost": "BilledCost"},
        {"Networking": 1, "Apps": 1, "Oracle": 1},
        "2024-09",
    )
    outcome = run_book(book, output=tmp_path / "out.xlsx")
    assert outcome.ok, [p.render() for p in outcome.errors]
    expected: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for r in rows:
        billed = Decimal(r["BilledCost"])
        if r["ServiceCategory"] == "Networking" and r["RegionName"] == "US West (Oregon)":
            expected[(r["SubAccountId"], "Networking")] += billed
        if _tag(r, "application") == "BrightLensMatrix":
            expected[(r["SubAccountId"], "Apps")] += billed
        if r["ProviderName"] == "Oracle" and r["ChargeCategory"] in ("Usage", "Adjustment"):
            expected[(r["SubAccountId"], "Oracle")] += billed
    want = {k: v.quantize(CENT, rounding=ROUND_HALF_UP) for k, v in expected.items() if v}
    assert _bills(outcome) == want
    assert sum(v for (_, pool), v in want.items() if pool == "Oracle") == Decimal("0.54")


def test_a_usage_cost_that_is_no_focus_cost_column_is_named_at_its_cell(tmp_path):
    book = _simple_book(tmp_path, [_row()], {"UsageCost": "Cost"})
    (problem,) = _source_problems(book)
    assert problem.startswith("Settings!B")
    assert problem.endswith(
        ": UsageCost must be one of EffectiveCost, BilledCost, ListCost, ContractedCost (the "
        "FOCUS cost column to bill), got 'Cost'"
    )


def test_a_net_credit_under_tiers_is_one_line_at_the_first_bands_rate(tmp_path):
    # A refund of consumption larger than the month's: -3 hours net.
    rows = [_row(ConsumedQuantity="2"), _row(ConsumedQuantity="-5", ChargeCategory="Credit")]
    _focus_csv(tmp_path / "focus.csv", rows)
    book = focus_book(
        tmp_path,
        ["ENG"],
        ['CHARGE "Compute" FOR "Hours" TIERED FIRST 10 AT 0.50, ABOVE AT 0.25'],
        {"UsageSource": "focus.csv"},
        {"Compute": 10},
        "2026-03",
    )
    outcome = run_book(book, output=tmp_path / "out.xlsx")
    assert outcome.ok, [p.render() for p in outcome.errors]
    bills = outcome.result.bills
    assert [
        (d, Decimal(q), Decimal(r), Decimal(a))
        for d, q, r, a in zip(
            bills["Department"], bills["Quantity"], bills["Rate"], bills["Amount"], strict=True
        )
    ] == [("ENG", Decimal(-3), Decimal("0.50"), Decimal("-1.50"))]


def test_a_tag_in_a_parquet_map_can_be_named_in_where(tmp_path):
    import duckdb

    duckdb.sql(
        f"""COPY (SELECT * FROM (VALUES
            (TIMESTAMP '2026-03-01', 'ENG', MAP {{'team': 'web'}}, 2.5),
            (TIMESTAMP '2026-03-01', 'ENG', MAP {{'team': 'data'}}, 4.0),
            (TIMESTAMP '2026-03-01', 'FIN', MAP {{'owner': 'x'}}, 9.0)
        ) t(ChargePeriodStart, SubAccountId, Tags, EffectiveCost))
        TO '{tmp_path / "focus.parquet"}' (FORMAT parquet)"""
    )
    book = focus_book(
        tmp_path,
        ["ENG", "FIN"],
        ['CHARGE "Web" FOR "EffectiveCost" AT 1 WHERE Team = "WEB"'],
        {"UsageSource": "focus.parquet"},
        {"Web": 1},
        "2026-03",
    )
    outcome = run_book(book, output=tmp_path / "out.xlsx")
    assert outcome.ok, [p.render() for p in outcome.errors]
    assert _bills(outcome) == {("ENG", "Web"): Decimal("2.50")}


def test_a_usage_columns_file_reads_dates_by_usage_date_format_too(tmp_path):
    # The Usage layout's Period as dates a European export writes: D/M/YYYY.
    with (tmp_path / "usage.csv").open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(
            [
                ["Period", "Department", "Metric", "Quantity"],
                ["1/7/2025", "ENG", "Hours", "2"],
                ["31/12/2025", "ENG", "Hours", "3"],
            ]
        )
    settings = {"UsageSource": "usage.csv", "UsageDateFormat": "D/M/YYYY"}
    book = focus_book(tmp_path, ["ENG"], SIMPLE_RULES[1:], settings, {"Compute": 1}, "2025-07")
    assert _source_problems(book) == []
    usage = _usage(book)
    assert sorted(zip(usage["Period"], usage["Quantity"], strict=True)) == [
        ("2025-07", 2.0),
        ("2025-12", 3.0),
    ]


def test_costs_in_scientific_notation_are_read_exactly(tmp_path):
    # Cost exports write small amounts as 1.2E-05; read as text, they are still numbers.
    rows = [
        _row(EffectiveCost="2.5E+1", ConsumedQuantity="1e1"),
        _row(EffectiveCost="1.2E-05", ConsumedQuantity="4"),
        _row(EffectiveCost="1.2E", ConsumedQuantity="4"),
    ]
    book = _simple_book(tmp_path, rows)
    assert _source_problems(book) == ['focus.csv!G4: EffectiveCost must be a number, got "1.2E"']
    _focus_csv(tmp_path / "focus.csv", rows[:2])
    outcome = run_book(book, output=tmp_path / "out.xlsx")
    assert outcome.ok, [p.render() for p in outcome.errors]
    assert _bills(outcome) == {
        ("ENG", "Cloud"): Decimal("25.00"),
        ("ENG", "Compute"): Decimal("7.00"),
    }


@pytest.mark.parametrize(
    ("written", "fmt", "month"),
    [
        ("2024-09-30T23:30:00Z", None, "2024-09"),
        ("2024-09-30T23:30:00.0000000Z", None, "2024-09"),  # Azure's seven digits
        ("2024-09-30T23:30:00-01:00", None, "2024-10"),  # 00:30 UTC on 1 October
        ("2024-09-30T23:30:00+0000", None, "2024-09"),
        ("2024-09-30 23:30:00 UTC", None, "2024-09"),
        ("2024-09-30 23:30:00", None, "2024-09"),
        ("2024-09", None, "2024-09"),
        ("2024-9", None, "2024-09"),
        ("20240930", None, None),  # ISO's basic form: a number could be mistaken for it
        ("9/30/2024", None, None),
        ("30/9/2024", "D/M/YYYY", "2024-09"),
        ("9/30/2024", "D/M/YYYY", None),  # no 30th month
        ("09.30.24", "MM.DD.YY", "2024-09"),
        ("2024/09/30 7:00 PM", "YYYY/MM/DD", "2024-09"),
        ("2024-09-30", "M/D/YYYY", "2024-09"),  # ISO is read whatever the format
    ],
)
def test_dates_are_read_as_written_never_guessed(written, fmt, month):
    from costloop.engine.read.usage_dates import date_format_pattern, month_reader

    pattern = None
    if fmt:
        pattern, why = date_format_pattern(fmt)
        assert why is None
    assert month_reader(pattern)(written) == month


def test_the_departments_bill_shows_the_corrections_original_month(tmp_path):
    from costloop.cli import main

    rows = [
        _row(BillingPeriodStart="2026-06-01T00:00:00Z", ChargePeriodStart="2026-05-10T00:00:00Z",
             ChargeClass="Correction", EffectiveCost="-20", ConsumedQuantity="-2"),
        _row(BillingPeriodStart="2026-06-01T00:00:00Z", ChargePeriodStart="2026-06-03T00:00:00Z",
             EffectiveCost="50", ConsumedQuantity="5"),
    ]  # fmt: skip
    book = _simple_book(tmp_path, rows, period="2026-06")
    assert main(["run", str(book)]) == 0
    assert main(["bills", str(book), "--outdir", str(tmp_path / "bills")]) == 0
    usage = openpyxl.load_workbook(tmp_path / "bills" / "ENG 2026-06.xlsx")["Usage"]
    table = [r for r in usage.iter_rows(values_only=True) if any(v is not None for v in r)]
    header = table[0]
    shown = sorted(
        (r[header.index("Metric")], r[header.index("Quantity")], r[header.index("Charge Period")],
         r[header.index("ChargeClass")])
        for r in table[1:]
    )  # fmt: skip
    assert shown == [
        ("EffectiveCost", -20, "2026-05", "Correction"),
        ("EffectiveCost", 50, "2026-06", ""),
        ("Hours", -2, "2026-05", "Correction"),
        ("Hours", 5, "2026-06", ""),
    ]
