"""Errors at scale: a mistake repeated down a column is one line (console and Rule Check)."""

from __future__ import annotations

import shutil

import openpyxl

from costloop.cli import main
from costloop.engine.pipeline import report
from costloop.engine.pipeline.report import rule_check_sheet
from costloop.engine.xlsx.file_workbook import FileWorkbook
from costloop.problems import Problem, Reason, Severity, grouped
from costloop.rules.ast import RuleCell
from costloop.workbooks import demo_path

BLANK = "Quantity must be a non-negative number, got a blank cell"


def _blank_quantities(rows: int) -> list[Problem]:
    return [
        Problem(Reason.BAD_VALUE, Severity.ERROR, f"Usage!D{row}", BLANK)
        for row in range(2, rows + 2)
    ]


def test_a_million_blank_cells_are_one_problem():
    problems = _blank_quantities(1_000_000)
    shown = grouped(problems)
    assert [p.render() for p in shown] == [
        "Usage!D2:D1000001: Quantity must be a non-negative number, got a blank cell "
        "(1,000,000 cells; first D2, D3, D4 …)"
    ]
    assert shown[0].code is Reason.BAD_VALUE and shown[0].is_error


def test_different_values_in_one_column_say_how_many_messages():
    problems = [
        Problem(
            Reason.BAD_VALUE,
            Severity.ERROR,
            f"Usage!D{row}",
            f'Quantity must be a non-negative number, got "n/a {row % 3}"',
        )
        for row in range(5, 25)
    ]
    assert [p.headline() for p in grouped(problems)] == [
        'Usage!D5:D24: Quantity must be a non-negative number, got "n/a 2" '
        "(20 cells, 3 different messages; first D5, D6, D7 …)"
    ]


def test_a_few_problems_stay_one_per_cell_and_kinds_stay_apart():
    few = _blank_quantities(10)
    assert grouped(few) == few  # ten or fewer: each cell is named on its own
    other = Problem(Reason.BAD_PERIOD, Severity.ERROR, "Usage!A7", "Period must be a month")
    mixed = [*_blank_quantities(11), other, Problem(Reason.NO_DATA, Severity.ERROR, "Usage", "x")]
    assert [p.where for p in grouped(mixed)] == ["Usage!D2:D12", "Usage!A7", "Usage"]


def test_five_thousand_rule_warnings_are_one_line_each_kind():
    problems = []
    for row in range(2, 5002):
        rule = RuleCell(f"R{row}", f"Rules!B{row}", 'ALLOCATE "P" TO DEPARTMENTS EVENLY')
        for code in (Reason.UNALLOCATED, Reason.ZERO_DRIVER, Reason.NO_BUDGET):
            problems.append(
                Problem.at_rule(
                    rule, code, f"{code.value.lower()} in {rule.rule_id}", severity=Severity.WARNING
                )
            )
    lines = [p.headline() for p in grouped(problems)]
    assert lines == [
        "Rules!B2:B5001: unallocated in R2 (5,000 cells, 5,000 different messages; "
        "first B2, B3, B4 …)",
        "Rules!B2:B5001: zero_driver in R2 (5,000 cells, 5,000 different messages; "
        "first B2, B3, B4 …)",
        "Rules!B2:B5001: no_budget in R2 (5,000 cells, 5,000 different messages; "
        "first B2, B3, B4 …)",
    ]


def test_rule_check_lists_a_bad_column_in_one_row_and_rules_keep_their_rows():
    rule = RuleCell("R1", "Rules!B2", 'CHARGE "Cloud" FOR "GB" AT 0.1')
    rule_problem = Problem.at_rule(rule, Reason.NO_RATE, "no rate", severity=Severity.WARNING)
    sheet = rule_check_sheet([rule], [*_blank_quantities(1_000_000), rule_problem])
    assert sheet.rows == [
        ("R1", "Rules!B2", "WARNING", "no rate", None),
        (
            "",
            "Usage!D2:D1000001",
            "ERROR",
            f"{BLANK} (1,000,000 cells; first D2, D3, D4 …)",
            None,
        ),
    ]


def test_rule_check_never_passes_excels_row_limit(monkeypatch):
    monkeypatch.setattr(report, "MAX_PROBLEM_ROWS", 5)
    # Problems at no single cell are never grouped: ten of them need ten rows.
    problems = [
        Problem(Reason.NO_DATA, Severity.WARNING, f"Sheet{i}", f"message {i}") for i in range(10)
    ]
    sheet = rule_check_sheet([], problems)
    assert len(sheet.rows) == 5
    assert sheet.rows[-1] == (
        "",
        "",
        "WARNING",
        "6 more rows not listed: an Excel sheet holds no more; fix the problems above "
        "and run again",
        None,
    )


def test_check_prints_one_line_for_a_column_of_blank_quantities(tmp_path, capsys):
    book = tmp_path / "blank.xlsx"
    shutil.copyfile(demo_path(), book)
    wb = openpyxl.load_workbook(book)
    usage = wb["Usage"]
    first = usage.max_row + 1
    template = [c.value for c in usage[2]]
    headers = [c.value for c in usage[1]]
    quantity = headers.index("Quantity")
    for _ in range(3000):
        row = list(template)
        row[quantity] = None
        usage.append(row)
    last = usage.max_row
    letter = openpyxl.utils.get_column_letter(quantity + 1)
    wb.save(book)

    assert main(["check", str(book)]) == 1
    out = capsys.readouterr().out
    expected = (
        f"Usage!{letter}{first}:{letter}{last}: {BLANK} "
        f"(3,000 cells; first {letter}{first}, {letter}{first + 1}, {letter}{first + 2} …)"
    )
    assert expected in out.splitlines()
    assert len(out.splitlines()) < 10
    rule_check = FileWorkbook(book).read_sheet("Rule Check")
    assert [r for r in rule_check if r[1] == f"Usage!{letter}{first}:{letter}{last}"] == [
        [None, f"Usage!{letter}{first}:{letter}{last}", "ERROR", expected.split(": ", 1)[1], None]
    ]
