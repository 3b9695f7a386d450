"""WHERE comparisons, pinned at their boundaries, from rule text in a real workbook to bills.

Every operator is tried on a value that sits exactly on the boundary (a
Headcount of 20 against ``<= 20``, ``< 20``, ...), and each operator's
expected receivers differ from every other operator's, so changing ``<=``
into ``<`` (or any operator into its neighbour) fails a test. ALLOCATE
filters receivers on `Departments` columns; CHARGE filters usage rows on
`Usage` columns (and receivers on `Departments` columns). Text compares
case-insensitively, ignoring surrounding spaces, as names do; numbers
compare numerically, and a code typed as a number (101) matches the text
"101" (see docs/rules-language.md).

One workbook holds every boundary case, one pool per rule, so a single run
through the file implementation (read, parse, check, order, execute) covers
them all; a broken case fails only its own test. Last, a WHERE that the rule
would silently ignore (a Usage column with a driver that reads no usage, a
Departments column when only pools receive) is an error, pinned with its text.
"""

from __future__ import annotations

from decimal import Decimal

import openpyxl
import pytest

from costloop.engine.pipeline.commands import run_book

P = "2026-03"
D = Decimal

# Department, Fund, Billable, Headcount, FTE, Cost Center (a code typed as a number),
# Seats (one typed as text with a thousands separator, as pasted from a report)
DEPARTMENTS = [
    ("A", "General", "Y", 10, 0.3, 101, "1,250"),
    ("B", "Grants", "Y", 20, 0.7, 102, 20),
    ("C", "Auxiliary", "Y", 30, 1.1, 103, 30),
    # On every boundary too, but not billable: it must never receive.
    ("Z", "General", "N", 20, 0.3, 101, 20),
    # Blank numbers: a blank never meets =, <, <=, >, >= or IN with a number; it meets <>.
    ("Y", "Water", "Y", None, None, None, None),
]

# ALLOCATE cases: pool -> (WHERE clause, departments that receive an even share of 600.00)
ALLOCATE_CASES: dict[str, tuple[str, set[str]]] = {
    "Headcount <=": ("Headcount <= 20", {"A", "B"}),
    "Headcount <": ("Headcount < 20", {"A"}),
    "Headcount >=": ("Headcount >= 20", {"B", "C"}),
    "Headcount >": ("Headcount > 20", {"C"}),
    "Headcount =": ("Headcount = 20", {"B"}),
    "Headcount <>": ("Headcount <> 20", {"A", "C", "Y"}),
    "Headcount IN": ("Headcount IN (10, 30)", {"A", "C"}),
    "Headcount decimal": ("Headcount <= 20.0", {"A", "B"}),
    # A decimal boundary stored as a float (0.3): exactly on it, not a hair off.
    "FTE <=": ("FTE <= 0.3", {"A"}),
    "FTE >": ("FTE > 0.3", {"B", "C"}),
    "FTE >=": ("FTE >= 0.7", {"B", "C"}),
    "FTE <": ("FTE < 0.7", {"A"}),
    # Text: case and surrounding spaces do not matter.
    "Fund =": ('Fund = "general"', {"A"}),
    "Fund = padded": ('Fund = "  GENERAL "', {"A"}),
    "Fund <>": ('Fund <> "GENERAL"', {"B", "C", "Y"}),
    "Fund IN": ('Fund IN ("grants", "Auxiliary")', {"B", "C"}),
    "Fund IN one": ('Fund IN ("GRANTS")', {"B"}),
    # Text orders alphabetically, ignoring case: Auxiliary < General < Grants < Water.
    "Fund <": ('Fund < "grants"', {"A", "C"}),
    "Fund >=": ('Fund >= "grants"', {"B", "Y"}),
    # Several conditions: all must hold.
    "AND": ('Headcount >= 20 AND Fund <> "grants"', {"C"}),
    "AND numeric": ("Headcount > 10 AND Headcount < 30", {"B"}),
    # A code typed as a number in Excel matches the number and its text alike.
    "Cost Center number": ("[Cost Center] = 101", {"A"}),
    "Cost Center text": ('[Cost Center] = "101"', {"A"}),
    "Cost Center <> text": ('[Cost Center] <> "101"', {"B", "C", "Y"}),
    "Cost Center IN text": ('[Cost Center] IN ("102", "103")', {"B", "C"}),
    "Cost Center IN mixed": ('[Cost Center] IN (101, "x")', {"A"}),
    # Numeric text counts as its number, as it does when the column is a driver.
    "Seats >=": ("Seats >= 1000", {"A"}),
    "Seats <": ("Seats < 1000", {"B", "C"}),
    "Seats =": ("Seats = 1250", {"A"}),
}

# Usage rows: Department, Quantity, Size, Service, Project (a code typed as a number).
# Quantities 1, 10, 100 for A's rows, so the quantity billed names the rows that passed
# (11 = the first two, 101 = the first and the last).
USAGE = [
    ("A", 1, 10, "Gold", 4711),
    ("A", 10, 20, " gold ", 4711),
    ("A", 100, 30, "Silver", 4712),
    ("B", 1000, 20, "Bronze", 4712),
    ("C", 5, None, "Copper", None),  # blank Size and Project
]

# CHARGE cases at 1.00 per GB: pool -> (WHERE clause, {department: quantity billed})
CHARGE_CASES: dict[str, tuple[str, dict[str, int]]] = {
    "Size <=": ("Size <= 20", {"A": 11, "B": 1000}),
    "Size <": ("Size < 20", {"A": 1}),
    "Size >=": ("Size >= 20", {"A": 110, "B": 1000}),
    "Size >": ("Size > 20", {"A": 100}),
    "Size =": ("Size = 20", {"A": 10, "B": 1000}),
    "Size <>": ("Size <> 20", {"A": 101, "C": 5}),
    "Size IN": ("Size IN (10, 30)", {"A": 101}),
    "Quantity <=": ("Quantity <= 10", {"A": 11, "C": 5}),
    "Quantity >": ("Quantity > 10", {"A": 100, "B": 1000}),
    "Service =": ('Service = "GOLD"', {"A": 11}),
    "Service <>": ('Service <> "gold"', {"A": 100, "B": 1000, "C": 5}),
    "Service IN": ('Service IN ("silver", "BRONZE")', {"A": 100, "B": 1000}),
    # Alphabetically, ignoring case and spaces: Bronze < Copper < Gold = " gold " < Silver.
    "Service <": ('Service < "GOLD"', {"B": 1000, "C": 5}),
    "Service <=": ('Service <= "gold"', {"A": 11, "B": 1000, "C": 5}),
    "Service >": ('Service > "Gold"', {"A": 100}),
    "Service >=": ('Service >= "gold"', {"A": 111}),
    # A code typed as a number matches its text: these billed nothing before (a silent 0).
    "Project text": ('Project = "4711"', {"A": 11}),
    "Project IN text": ('Project IN ("4712")', {"A": 100, "B": 1000}),
    "Project number": ("Project <> 4711", {"A": 100, "B": 1000, "C": 5}),
    # A Departments column in a CHARGE picks the departments billed.
    "Fund =": ('Fund = "GRANTS"', {"B": 1000}),
    "Headcount <": ("Headcount < 20", {"A": 111}),
    "Usage and Departments": ('Size >= 20 AND Fund = "General"', {"A": 110}),
}


def _pool(case: str, kind: str) -> str:
    return f"{kind} {case}"


def _rule_rows() -> list[tuple[str, str, str]]:
    """(kind, case, rule text) in Rules row order, from row 2."""
    rows = [
        ("Alloc", c, f'ALLOCATE "{_pool(c, "Alloc")}" TO DEPARTMENTS EVENLY WHERE {where}')
        for c, (where, _) in ALLOCATE_CASES.items()
    ]
    rows += [
        ("Charge", c, f'CHARGE "{_pool(c, "Charge")}" FOR "GB" AT 1 WHERE {where}')
        for c, (where, _) in CHARGE_CASES.items()
    ]
    return rows


def _workbook(path) -> None:
    wb = openpyxl.Workbook()
    wb.active.title = "Settings"
    settings = wb["Settings"]
    # The fiscal year ends with the billed period, so nothing is forecast (no noise).
    for row in (["Key", "Value"], ["Period", P], ["CostBasis", "BUDGET"], ["FiscalYearStart", 4]):
        settings.append(row)
    deps = wb.create_sheet("Departments")
    deps.append(["Department", "Fund", "Billable", "Headcount", "FTE", "Cost Center", "Seats"])
    for row in DEPARTMENTS:
        deps.append(list(row))
    budget = wb.create_sheet("Budget")
    budget.append(["Period", "Pool", "Amount"])
    for kind, case, _text in _rule_rows():
        budget.append([P, _pool(case, kind), 600])
    usage = wb.create_sheet("Usage")
    usage.append(["Period", "Department", "Metric", "Quantity", "Size", "Service", "Project"])
    for department, quantity, size, service, project in USAGE:
        usage.append([P, department, "GB", quantity, size, service, project])
    rules = wb.create_sheet("Rules")
    rules.append(["ID", "Rule"])
    for n, (_kind, _case, text) in enumerate(_rule_rows(), start=1):
        rules.append([f"R{n}", text])
    wb.save(path)


Lines = dict[str, tuple[Decimal | None, Decimal]]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[dict[str, Lines], dict[str, list[str]]]:
    """The one run holding every case: pool -> department -> (Quantity, Amount), and the
    errors by rule cell (so a broken case fails only its own test)."""
    path = tmp_path_factory.mktemp("where") / "where.xlsx"
    _workbook(path)
    outcome = run_book(path)
    assert outcome.result is not None, [p.render() for p in outcome.errors]
    errors: dict[str, list[str]] = {}
    for problem in outcome.errors:
        errors.setdefault(problem.where.split(",")[0], []).append(problem.render())
    bills: dict[str, Lines] = {}
    frame = outcome.result.bills
    for pool, department, quantity, amount in zip(
        frame["Pool"], frame["Department"], frame["Quantity"], frame["Amount"], strict=True
    ):
        bills.setdefault(pool, {})[department] = (quantity, amount)
    return bills, errors


def _lines(run, kind: str, case: str) -> Lines:
    bills, errors = run
    row = [(k, c) for k, c, _t in _rule_rows()].index((kind, case)) + 2
    assert errors.get(f"Rules!B{row}", []) == []
    return bills.get(_pool(case, kind), {})


@pytest.mark.parametrize("case", list(ALLOCATE_CASES))
def test_allocate_where_on_departments(run, case):
    where, receivers = ALLOCATE_CASES[case]
    lines = _lines(run, "Alloc", case)
    assert set(lines) == receivers, f"WHERE {where}"
    # 600.00 split evenly: 600 / 2 = 300.00 each, 600 / 1 = 600.00.
    share = D(600) / len(receivers)
    assert {d: amount for d, (_q, amount) in lines.items()} == dict.fromkeys(receivers, share)


@pytest.mark.parametrize("case", list(CHARGE_CASES))
def test_charge_where_on_usage(run, case):
    where, billed = CHARGE_CASES[case]
    lines = _lines(run, "Charge", case)
    # At 1.00 per GB the amount is the quantity: it names the usage rows that passed.
    assert lines == {d: (D(q), D(q).quantize(D("0.01"))) for d, q in billed.items()}, (
        f"WHERE {where}"
    )


def test_every_operator_gives_a_different_answer_at_the_boundary():
    """The cases above would catch any operator swapped for another: no two agree."""
    for prefix, cases, answer in (
        ("Headcount ", ALLOCATE_CASES, lambda v: frozenset(v)),
        ("Size ", CHARGE_CASES, lambda v: tuple(sorted(v.items()))),
        ("Service ", CHARGE_CASES, lambda v: tuple(sorted(v.items()))),
    ):
        ops = ("<=", "<", ">=", ">", "=", "<>")
        answers = {op: answer(cases[prefix + op][1]) for op in ops}
        assert len(set(answers.values())) == len(ops), answers


# --- a WHERE that a driver would ignore ------------------------------------------------


def _one_rule_book(path, rule: str, pools=("Cloud",)) -> None:
    wb = openpyxl.Workbook()
    wb.active.title = "Settings"
    for row in (["Key", "Value"], ["Period", P], ["CostBasis", "BUDGET"], ["FiscalYearStart", 4]):
        wb["Settings"].append(row)
    deps = wb.create_sheet("Departments")
    for row in (["Department", "Fund", "Headcount"], ["A", "General", 10], ["B", "Grants", 20]):
        deps.append(row)
    budget = wb.create_sheet("Budget")
    budget.append(["Period", "Pool", "Amount"])
    for pool in pools:
        budget.append([P, pool, 600])
    usage = wb.create_sheet("Usage")
    usage.append(["Period", "Department", "Metric", "Quantity", "Service"])
    usage.append([P, "A", "GB", 1, "EC2"])
    usage.append([P, "B", "GB", 2, "S3"])
    wb.create_sheet("Rules").append(["ID", "Rule"])
    wb["Rules"].append(["R1", rule])
    wb.save(path)


@pytest.mark.parametrize(
    ("driver", "words"),
    [
        ("EVENLY", "EVENLY"),
        ("BY Headcount", "BY Headcount"),
        ('BY 50% "A", 50% "B"', "a split by fixed shares"),
    ],
)
def test_allocate_where_on_a_usage_column_needs_a_usage_driver(tmp_path, driver, words):
    # Service is a Usage column: with EVENLY the condition used to be ignored silently and
    # both departments were billed 300.00, though the rule says only EC2 users.
    rule = f'ALLOCATE "Cloud" TO DEPARTMENTS {driver} WHERE Service = "EC2"'
    path = tmp_path / "book.xlsx"
    _one_rule_book(path, rule)
    outcome = run_book(path)
    assert not outcome.ok
    column = rule.index("Service") + 1
    assert [p.render() for p in outcome.errors] == [
        f"Rules!B2, character {column}: Service is a Usage column: it filters usage rows, but "
        f"{words} reads no usage, so WHERE Service would change nothing; filter on a "
        f'Departments column, or share BY USAGE "<metric>"\n'
        f"  {rule}\n" + " " * (column + 1) + "^"
    ]


def test_allocate_to_pools_only_where_on_a_departments_column(tmp_path):
    # Only pools receive, so a Departments column picks nobody: it used to be ignored.
    rule = 'ALLOCATE "Cloud" TO POOLS "Storage" BY COST WHERE Fund = "General"'
    path = tmp_path / "book.xlsx"
    _one_rule_book(path, rule, pools=("Cloud", "Storage"))
    outcome = run_book(path)
    column = rule.index("Fund") + 1
    assert [p.render() for p in outcome.errors] == [
        f"Rules!B2, character {column}: Fund is a Departments column: it picks departments, "
        "but this rule gives only to pools, so WHERE Fund would change nothing; remove it, "
        "or add AND DEPARTMENTS to the receivers\n"
        f"  {rule}\n" + " " * (column + 1) + "^"
    ]


def test_allocate_where_on_a_usage_column_filters_usage_by_usage(tmp_path):
    # The same condition with a usage driver is what the user meant: only EC2 rows count.
    path = tmp_path / "book.xlsx"
    _one_rule_book(path, 'ALLOCATE "Cloud" TO DEPARTMENTS BY USAGE "GB" WHERE Service = "EC2"')
    outcome = run_book(path)
    assert outcome.ok, [p.render() for p in outcome.errors]
    bills = outcome.result.bills
    assert list(zip(bills["Department"], bills["Amount"], strict=True)) == [("A", D("600.00"))]
