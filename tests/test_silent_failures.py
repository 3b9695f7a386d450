"""Mistakes a new user really made that used to give a wrong bill, or a wrong message, silently.

Each case edits a copy of the demo workbook the way the user did (with
openpyxl, as a script or Excel would leave the file) and pins the exact message.
"""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest

from costloop.cli import main
from costloop.engine.xlsx.file_workbook import FileWorkbook
from costloop.engine.xlsx.sheet_xml import hidden_rows, uncalculated_cells
from costloop.problems import Reason, Severity
from costloop.rules import Names, check, parse_rules
from costloop.rules.ast import RuleCell, name_key
from costloop.rules.checks import value_key
from costloop.workbooks import demo_path

RECALC_HINT = "open and save the workbook in Excel, or run `costloop recalc`"


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    book = tmp_path / "demo.xlsx"
    shutil.copyfile(demo_path(), book)
    return book


def edit(path: Path, change) -> None:
    wb = openpyxl.load_workbook(path)
    change(wb)
    wb.save(path)


def set_rule(rule_id: str, text: str):
    def change(wb):
        for row in wb["Rules"].iter_rows(min_row=2):
            if row[0].value == rule_id:
                row[1].value = text

    return change


def run(path: Path, capsys, command: str = "run") -> tuple[int, list[str]]:
    code = main([command, str(path)])
    return code, capsys.readouterr().out.splitlines()


def bills(path: Path) -> list[list[object]]:
    return FileWorkbook(path).read_sheet("Bills")


def total(rows: list[list[object]]) -> Decimal:
    amount = rows[0].index("Amount")
    return sum((Decimal(str(r[amount])) for r in rows[1:]), Decimal(0))


# --- a CHARGE whose WHERE selects nothing ---------------------------------------------


def test_charge_where_typo_warns_at_the_value_with_did_you_mean(demo: Path, capsys):
    rule = 'CHARGE "Cloud Pass-through" FOR "AWS Cost" AT 1.05 WHERE Fund = "Genral"'
    edit(demo, set_rule("R13", rule))
    code, out = run(demo, capsys)
    assert code == 0  # a warning, not an error: the rest of the bills are right
    assert (
        'warning: Rules!B14, character 65: no Departments row has Fund "Genral", so this '
        'condition selects nothing — did you mean "General"?'
    ) in out
    assert (
        'warning: Rules!B14, character 58: WHERE matches none of the 21 "AWS Cost" usage rows '
        "of 2026-03, so this rule bills nothing; check the WHERE values"
    ) in out
    # The caret sits under the misspelt value.
    at = out.index(
        'warning: Rules!B14, character 65: no Departments row has Fund "Genral", so '
        'this condition selects nothing — did you mean "General"?'
    )
    assert out[at + 2] == "  " + " " * 64 + "^"
    assert rule[64:72] == '"Genral"'
    check_rows = FileWorkbook(demo).read_sheet("Rule Check")
    r13 = [r for r in check_rows if r[0] == "R13"]
    assert {r[2] for r in r13} == {"WARNING"}
    assert any(str(r[3]).startswith("character 65: no Departments row") for r in r13)
    assert any(str(r[3]).startswith("character 58: WHERE matches none") for r in r13)


def test_charge_where_matching_nothing_in_the_period_warns_even_when_the_value_exists(
    demo: Path, capsys
):
    # "Hosting" is a real Service in Usage, just never one of AWS Cost's.
    edit(
        demo,
        set_rule(
            "R13", 'CHARGE "Cloud Pass-through" FOR "AWS Cost" AT 1.05 WHERE Service = "Hosting"'
        ),
    )
    code, out = run(demo, capsys)
    assert code == 0
    assert not any("no Usage row has Service" in line for line in out)
    assert (
        'warning: Rules!B14, character 58: WHERE matches none of the 21 "AWS Cost" usage rows '
        "of 2026-03, so this rule bills nothing; check the WHERE values"
    ) in out


def test_a_where_that_matches_is_silent(demo: Path, capsys):
    code, out = run(demo, capsys)
    assert code == 0
    # The demo's Marketplace rows are another matter (tests/test_usage_checks.py).
    out = [line for line in out if 'with Service "Marketplace"' not in line]
    assert not any("WHERE" in line or "no Usage row" in line for line in out)


NAMES = Names(
    pools={name_key("Cloud"): "Cloud", name_key("Network"): "Network"},
    departments={name_key("ADM"): "ADM"},
    metrics={name_key("vCPU-Hours"): "vCPU-Hours"},
    department_columns={"fund": "Fund", "tier": "Tier"},
    usage_columns={"service": "Service"},
    column_values={
        ("Departments", "fund"): {name_key("General"): "General", name_key("IT"): "IT"},
        ("Departments", "tier"): {value_key(Decimal("1")): "1", value_key(Decimal("2")): "2.0"},
        ("Usage", "service"): {name_key("EC2"): "EC2", name_key("S3"): "S3"},
    },
)


def problems_of(text: str):
    cells = [RuleCell("R1", "Rules!B2", text)]
    rules, parse_problems = parse_rules(cells)
    assert parse_problems == []
    return [p for p in check(rules, NAMES) if p.code is Reason.WHERE_NO_MATCH]


@pytest.mark.parametrize(
    ("text", "rendered"),
    [
        (
            'CHARGE "Cloud" FOR "vCPU-Hours" AT 1 WHERE Fund <> "Genral"',
            'Rules!B2, character 52: no Departments row has Fund "Genral", so <> "Genral" '
            'leaves nothing out — did you mean "General"?',
        ),
        (
            'CHARGE "Cloud" FOR "vCPU-Hours" AT 1 WHERE Service IN ("EC2", "S33")',
            'Rules!B2, character 63: no Usage row has Service "S33" — did you mean "S3"?',
        ),
        (
            'ALLOCATE "Network" TO DEPARTMENTS EVENLY WHERE Fund = \u201cGenral\u201d',
            'Rules!B2, character 55: no Departments row has Fund "Genral", so this condition '
            'selects nothing — did you mean "General"?',
        ),
        (
            'CHARGE "Cloud" FOR "vCPU-Hours" AT 1 WHERE Tier = 3',
            "Rules!B2, character 51: no Departments row has Tier 3, so this condition selects "
            "nothing",
        ),
    ],
)
def test_where_value_in_no_row_is_a_warning(text: str, rendered: str):
    (problem,) = problems_of(text)
    assert problem.severity is Severity.WARNING
    assert problem.headline() == rendered


@pytest.mark.parametrize(
    "text",
    [
        'CHARGE "Cloud" FOR "vCPU-Hours" AT 1 WHERE Fund = " general "',
        'CHARGE "Cloud" FOR "vCPU-Hours" AT 1 WHERE Tier IN (1, 2)',  # 2 matches a cell 2.0
        'CHARGE "Cloud" FOR "vCPU-Hours" AT 1 WHERE Fund > "Genral"',  # a range need not hit
        'CHARGE "Cloud" FOR "vCPU-Hours" AT 1 WHERE Reference = "X1"',  # values not known
    ],
)
def test_where_values_that_exist_or_cannot_be_checked_are_silent(text: str):
    assert problems_of(text) == []


# --- hidden rows ---------------------------------------------------------------------


def test_hidden_rows_are_counted_and_warned_with_their_cells(demo: Path, tmp_path: Path, capsys):
    plain = tmp_path / "plain.xlsx"
    shutil.copyfile(demo, plain)

    def hide(wb):
        for row in (5, 6, 7, 12):
            wb["Usage"].row_dimensions[row].hidden = True

    edit(demo, hide)
    code, out = run(demo, capsys)
    assert code == 0
    assert out[0] == (
        "warning: Usage!A5:F7, A12:F12: 4 hidden rows with data are counted, as Excel's SUM "
        "counts hidden rows; unhide them (or clear the filter) to see what is counted, and "
        "delete any row that should not count"
    )
    assert main(["run", str(plain)]) == 0
    assert bills(demo) == bills(plain)  # counted: the same bills as with the rows shown


def test_hidden_blank_rows_say_nothing(demo: Path, capsys):
    def hide(wb):
        ws = wb["Rates"]
        ws.row_dimensions[ws.max_row + 3].hidden = True

    edit(demo, hide)
    code, out = run(demo, capsys)
    assert code == 0
    assert not [line for line in out if "hidden row" in line]


def test_hidden_rows_in_sheet_xml():
    xml = (
        b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        b'<cols><col min="1" max="1" hidden="1"/></cols><sheetData>'
        b'<row r="2" hidden="1"><c r="A2"><v>1</v></c></row>'
        b"<row><c><v>2</v></c></row>"  # no r: row 3
        b'<row hidden="true"><c><v>3</v></c></row>'  # row 4
        b'<row r="9" customHeight="1" ht="0"><c r="A9"><v>4</v></c></row>'
        b"</sheetData></worksheet>"
    )
    assert hidden_rows(xml) == {2, 4}
    assert hidden_rows(b"<worksheet><sheetData/></worksheet>") == set()


# --- formulas with no calculated value ---------------------------------------------------


def test_formula_without_a_value_is_named_at_its_cell_with_no_false_unknown_pool(
    demo: Path, capsys
):
    def script(wb):
        budget = wb["Budget"]
        budget["C7"] = "=1000*2"
        row = budget.max_row + 1
        budget.cell(row, 1, "2026-03")
        budget.cell(row, 2, '="Print"&"ing"')  # the pool's name is itself a formula
        budget.cell(row, 3, 500)
        wb["Rules"].append(["R20", 'ALLOCATE "Printing" TO DEPARTMENTS EVENLY', "Y", ""])

    edit(demo, script)
    code, out = run(demo, capsys)
    assert code == 1
    assert out[:2] == [
        f"Budget!B158: formula with no calculated value: {RECALC_HINT}",
        f"Budget!C7: formula with no calculated value: {RECALC_HINT}",
    ]
    assert not any("unknown" in line or "blank" in line for line in out)


def test_a_rejected_row_does_not_feed_unknown_name_errors(demo: Path, capsys):
    def script(wb):
        budget = wb["Budget"]
        row = budget.max_row + 1
        budget.cell(row, 1, "2026-03")
        budget.cell(row, 2, "Printing")
        budget.cell(row, 3, "n/a")
        wb["Rules"].append(["R20", 'ALLOCATE "Printing" TO DEPARTMENTS EVENLY', "Y", ""])
        wb["Usage"].append(["2026-03", "Printing", "Service Tickets", 1])

    edit(demo, script)
    code, out = run(demo, capsys)
    assert code == 1
    assert out[0] == 'Budget!C158: Amount must be a number, got "n/a"'
    assert not any("unknown" in line or "not a department" in line for line in out)


def test_uncalculated_cells_in_sheet_xml():
    ns = b'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    xml = (
        b"<worksheet " + ns + b'><sheetData><row r="1">'
        b'<c r="A1"><f>B1*2</f></c>'  # never calculated
        b'<c r="B1"><f>B1*2</f><v></v></c>'  # openpyxl's empty value
        b'<c r="C1" t="str"><f>""&amp;""</f><v></v></c>'  # calculated: the empty string
        b'<c r="D1"><f>1+1</f><v>2</v></c>'  # calculated
        b'<c r="E1"><f t="shared" si="0"/></c>'  # a shared formula's follower, no value
        b"</row></sheetData></worksheet>"
    )
    assert uncalculated_cells(xml) == [(0, 0, "B1*2"), (0, 1, "B1*2"), (0, 4, "")]
    calculated = b"<worksheet " + ns + b'><sheetData><row r="1"><c r="A1"><f>1</f><v>1</v></c>'
    assert uncalculated_cells(calculated + b"</row></sheetData></worksheet>") == []


# --- advice that would destroy data ----------------------------------------------------


def test_a_missing_sheet_never_suggests_renaming_a_sheet_costloop_reads(demo: Path, capsys):
    edit(demo, lambda wb: wb.remove(wb["Rules"]))
    code, out = run(demo, capsys, "check")
    assert code == 1
    assert out[0] == (
        'Rules: the workbook has no sheet "Rules" (its sheets: Instructions, Settings, '
        "Departments, Budget, Actuals, Usage, Rates); add a sheet named Rules with its header "
        "in row 1"
    )


def test_a_missing_sheet_still_suggests_a_spare_sheet_of_a_close_name(demo: Path, capsys):
    def rename(wb):
        wb["Rules"].title = "Rule"

    edit(demo, rename)
    code, out = run(demo, capsys, "check")
    assert code == 1
    assert out[0].endswith('; did you mean "Rule"? Rename that sheet to Rules')


# --- driver columns read numbers as amounts do ------------------------------------------


def test_numeric_text_in_a_driver_column_counts_like_numbers(demo: Path, tmp_path: Path, capsys):
    plain = tmp_path / "plain.xlsx"
    shutil.copyfile(demo, plain)

    def as_text(wb):
        ws = wb["Departments"]
        for row in range(2, ws.max_row + 1):
            value = ws.cell(row, 7).value
            if isinstance(value, int | float):
                ws.cell(row, 7).value = f"{value:,}"  # "1,250", as pasted from a report

    edit(demo, as_text)
    assert FileWorkbook(demo).read_sheet("Departments")[2][6] == "610"
    code, out = run(demo, capsys)
    assert code == 0, out
    assert main(["run", str(plain)]) == 0
    assert bills(demo) == bills(plain)
    assert total(bills(demo)) > 0


def test_a_driver_formula_without_a_value_says_so_not_type_a_number(demo: Path, capsys):
    edit(demo, lambda wb: wb["Departments"].__setitem__("G5", "=100+10"))
    code, out = run(demo, capsys)
    assert code == 1
    assert out[0] == (
        "Departments!G5: Headcount must be a number, got a formula with no calculated value "
        f"({RECALC_HINT}) (rule R05 shares cost by Headcount); type the number, or 0 for none"
    )


def test_a_word_in_a_driver_column_is_an_error_at_its_cell(demo: Path, capsys):
    edit(demo, lambda wb: wb["Departments"].__setitem__("G5", "n/a"))
    code, out = run(demo, capsys)
    assert code == 1
    assert out[0] == (
        'Departments!G5: Headcount must be a number, got "n/a" (rule R05 shares cost by '
        "Headcount); type the number, or 0 for none"
    )
