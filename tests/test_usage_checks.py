"""Input that billed wrong with exit 0 and no word (issue 16, items 2-4), now a message at its cell.

Each case edits a copy of the demo workbook as a user did (openpyxl, as Excel
leaves the file), runs the command line, and pins the exit code, the exact
message and its cell, and, where it bills, the amounts: a warning changes no
bill, so the bill is what the rules say of the data as it stands, worked out
here by hand from the sheet.
"""

from __future__ import annotations

import csv
import shutil
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path

import openpyxl
import pytest

from costloop.cli import main
from costloop.engine.pipeline.run import check_workbook
from costloop.engine.workbook.memory import MemoryWorkbook
from costloop.engine.xlsx.file_workbook import FileWorkbook
from costloop.problems import Reason, Severity
from costloop.workbooks import demo_path

PERIOD = "2026-03"
DEMO_TOTAL = Decimal("1073295.02")


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    book = tmp_path / "demo.xlsx"
    shutil.copyfile(demo_path(), book)
    return book


def edit(path: Path, change) -> None:
    wb = openpyxl.load_workbook(path)
    change(wb)
    wb.save(path)


def run(path: Path, capsys, *args: str, command: str = "run") -> tuple[int, list[str]]:
    code = main([command, str(path), *args])
    return code, capsys.readouterr().out.splitlines()


def bills(path: Path) -> list[dict]:
    rows = FileWorkbook(path).read_sheet("Bills")
    return [dict(zip(rows[0], r, strict=False)) for r in rows[1:]]


def amount(line: dict) -> Decimal:
    return Decimal(str(line["Amount"]))


def total(lines: list[dict]) -> Decimal:
    return sum((amount(r) for r in lines), Decimal(0))


def usage_rows(ws, **match) -> list[tuple]:
    """The Usage rows (cells) whose Period/Department/Metric/Service match."""
    columns = {"Period": 0, "Department": 1, "Metric": 2, "Service": 4}
    return [
        row
        for row in ws.iter_rows(min_row=2)
        if all(row[columns[k]].value == v for k, v in match.items())
    ]


def largest_remainder(total_cents: int, weights: dict[str, Decimal]) -> dict[str, int]:
    """The contract's split, written out: floors, then a cent each to the largest remainders
    (ties by name)."""
    whole = sum(weights.values())
    exact = {k: Decimal(total_cents) * w / whole for k, w in weights.items()}
    floors = {k: int(v.to_integral_value(rounding=ROUND_FLOOR)) for k, v in exact.items()}
    left = total_cents - sum(floors.values())
    for k in sorted(exact, key=lambda k: (-(exact[k] - floors[k]), k))[:left]:
        floors[k] += 1
    return floors


def rule_check_rows(path: Path) -> list[list]:
    return FileWorkbook(path).read_sheet("Rule Check")[1:]


EXPECTED = (
    "if another process bills it, this is expected; otherwise add the Service to a rule's WHERE"
)
MARKETPLACE = (
    'Usage!E1385, E1404, E1506: no enabled rule reads "AWS Cost" with Service "Marketplace" '
    "(the rules reading it filter on WHERE Service), so 3 rows in 2026-03 (quantity 1,830.71, "
    f"used by ENG, MED, CCR) are billed to nobody: {EXPECTED}"
)
"""The demo's R13 bills AWS EC2 and S3 only (its note: Marketplace goes via Procurement)."""


def other_warnings(out: list[str]) -> list[str]:
    """The warnings printed besides the demo's own Marketplace one (pinned by its test)."""
    return [
        line
        for line in out
        if line.startswith("warning") and 'with Service "Marketplace"' not in line
    ]


# --- item 2: usage nobody bills --------------------------------------------------------


def test_a_metric_no_rule_reads_is_a_warning_at_its_cells_and_the_share_goes_to_the_others(
    demo: Path, capsys
):
    hours: dict[str, Decimal] = {}

    def change(wb):
        ws = wb["Usage"]
        for row in usage_rows(ws, Period=PERIOD, Metric="Server Hours"):
            hours[row[1].value] = Decimal(row[3].value)
        [eng] = usage_rows(ws, Period=PERIOD, Department="ENG", Metric="Server Hours")
        assert eng[2].coordinate == "C1376"
        eng[2].value = "Server Hrs"

    edit(demo, change)
    code, out = run(demo, capsys)
    assert code == 0
    message = (
        'Usage!C1376: no enabled rule reads the metric "Server Hrs", so 1 row in 2026-03 '
        "(quantity 17,740, used by ENG) is billed to nobody: fix the Metric cells, or name "
        'the metric in a rule — did you mean "Server Hours"?'
    )
    assert f"warning: {message}" in out
    assert [None, "Usage!C1376", "WARNING", message.split(": ", 1)[1], None] in rule_check_rows(
        demo
    )
    # The bill is what the rules say of this data: ENG's hours are read by no rule, so the
    # Data Center's 241,540.40 went to the other departments by their hours.
    lines = bills(demo)
    center = {r["Department"]: amount(r) for r in lines if r["Pool"] == "Data Center"}
    del hours["ENG"]
    expected = largest_remainder(24154040, hours)
    assert center == {k: Decimal(v).scaleb(-2) for k, v in expected.items()}
    assert total(lines) == DEMO_TOTAL


def test_a_service_the_rules_never_let_in_is_a_warning_when_blank_or_a_near_miss(
    demo: Path, capsys
):
    def change(wb):
        ws = wb["Usage"]
        [eng] = usage_rows(ws, Period=PERIOD, Department="ENG", Metric="AWS Cost", Service="EC2")
        [med] = usage_rows(ws, Period=PERIOD, Department="MED", Metric="AWS Cost", Service="S3")
        assert (eng[4].coordinate, med[4].coordinate) == ("E1383", "E1403")
        eng[4].value = "EC 2"
        med[4].value = None

    edit(demo, change)
    code, out = run(demo, capsys)
    assert code == 0
    filter_words = "(the rules reading it filter on WHERE Service)"
    fix = "fix the Service cells, or add the Service to a rule's WHERE"
    assert (
        f'warning: Usage!E1383: no enabled rule reads "AWS Cost" with Service "EC 2" '
        f"{filter_words}, so 1 row in 2026-03 (quantity 4,839.97, used by ENG) is billed to "
        f'nobody: {fix} — did you mean "EC2"?'
    ) in out
    assert (
        f'warning: Usage!E1403: no enabled rule reads "AWS Cost" with a blank Service '
        f"{filter_words}, so 1 row in 2026-03 (quantity 2,314.2, used by MED) is billed to "
        f"nobody: {fix}"
    ) in out
    # The Marketplace rows are no near miss of EC2 or S3: their own warning, no "did you mean".
    assert [line for line in out if "Marketplace" in line] == [f"warning: {MARKETPLACE}"]
    # ENG is billed its S3 only: 1.05 x its S3 cost, half-up.
    wb = openpyxl.load_workbook(demo_path(), read_only=True)
    [s3] = [
        r
        for r in wb["Usage"].iter_rows(min_row=2, values_only=True)
        if r[:3] == (PERIOD, "ENG", "AWS Cost") and r[4] == "S3"
    ]
    [line] = [
        r for r in bills(demo) if (r["Department"], r["Pool"]) == ("ENG", "Cloud Pass-through")
    ]
    expected = (Decimal(str(s3[3])) * Decimal("1.05")).quantize(Decimal("0.01"), "ROUND_HALF_UP")
    assert (Decimal(str(line["Quantity"])), amount(line)) == (Decimal(str(s3[3])), expected)


def test_the_demo_says_its_marketplace_rows_are_billed_by_no_rule(demo: Path, capsys):
    code, out = run(demo, capsys, command="check")
    assert code == 0
    assert out == [
        f"warning: {MARKETPLACE}",
        f"{demo}: 20 rule(s) checked, 0 error(s), 1 warning(s)",
    ]
    code, out = run(demo, capsys)
    assert code == 0
    assert [line for line in out if line.startswith("warning")] == [f"warning: {MARKETPLACE}"]
    assert [None, "Usage!E1385, E1404, E1506", "WARNING", MARKETPLACE.split(": ", 1)[1], None] in (
        rule_check_rows(demo)
    )
    # A warning bills nothing differently: the demo's total is as before.
    assert total(bills(demo)) == DEMO_TOTAL


def test_a_new_service_under_an_in_list_is_a_warning_with_its_quantity_rows_and_cells(
    demo: Path, capsys
):
    """A brand-new "Lambda" no rule names and that resembles neither EC2 nor S3: before,
    silent, and its cost billed to nobody."""

    def change(wb):
        ws = wb["Usage"]
        ws.append([PERIOD, "ENG", "AWS Cost", 120.5, "Lambda", "AWS-2026-03"])
        ws.append([PERIOD, "RES", "AWS Cost", 80.25, "Lambda", "AWS-2026-03"])
        ws.append(["2026-02", "RES", "AWS Cost", 999, "Lambda", "AWS-2026-02"])  # not billed now
        assert ws.max_row == 1553

    edit(demo, change)
    code, out = run(demo, capsys)
    assert code == 0
    lambda_warning = (
        'Usage!E1551:E1552: no enabled rule reads "AWS Cost" with Service "Lambda" (the rules '
        "reading it filter on WHERE Service), so 2 rows in 2026-03 (quantity 200.75, used by "
        f"ENG, RES) are billed to nobody: {EXPECTED}"
    )
    assert [line for line in out if line.startswith("warning")] == [
        f"warning: {MARKETPLACE}",
        f"warning: {lambda_warning}",
    ]
    assert [None, "Usage!E1551:E1552", "WARNING", lambda_warning.split(": ", 1)[1], None] in (
        rule_check_rows(demo)
    )
    # Billed to nobody indeed: the bills are the demo's.
    assert total(bills(demo)) == DEMO_TOTAL


def test_a_metric_only_a_forecast_reads_is_read_on_purpose(demo: Path, capsys):
    def change(wb):
        ws = wb["Usage"]
        for period in ("2026-01", "2026-02", PERIOD):
            ws.append([period, "ENG", "Printer Pages", 1200, "Print", "MTR-" + period])
        rules = wb["Rules"]
        rules.append(["F07", 'FORECAST USAGE "Printer Pages" BY RUN RATE', "Y", None])

    edit(demo, change)
    code, out = run(demo, capsys)
    assert code == 0
    assert [line for line in out if line.startswith("warning")] == [f"warning: {MARKETPLACE}"]
    assert total(bills(demo)) == DEMO_TOTAL


def _set_period(value: str):
    def change(wb):
        for row in wb["Settings"].iter_rows(min_row=2):
            if row[0].value == "Period":
                assert row[1].coordinate == "B4"
                row[1].value = value

    return change


def test_a_billed_period_without_usage_says_so_once_and_where_the_period_came_from(
    demo: Path, capsys
):
    edit(demo, _set_period("2026-04"))
    code, out = run(demo, capsys)
    assert code == 1
    message = (
        "there are no Usage rows for 2026-04, the period billed (from Settings Period, "
        "Settings!B4), so every rule that bills usage would bill nothing; add the usage of "
        "2026-04, or bill a period that has usage (the latest is 2026-03, Usage!A1550)"
    )
    assert out[0] == f"Settings!B4: {message}"
    # Not the per-rule "add IF NO USAGE EVENLY", which would spread the month evenly.
    assert not [line for line in out if "IF NO USAGE" in line]
    assert [p for p in out if p.startswith(("Rules!", "warning"))] == []
    # A failed run writes only Rule Check and Run Log.
    assert "Bills" not in FileWorkbook(demo).sheet_names()
    # `check` says the same, before any run.
    code, out = run(demo, capsys, command="check")
    assert code == 1
    assert f"Settings!B4: {message}" in out


def test_a_period_from_the_command_line_without_usage_names_period_flag(demo: Path, capsys):
    code, out = run(demo, capsys, "--period", "2026-05")
    assert code == 1
    assert out[0] == (
        "--period: there are no Usage rows for 2026-05, the period billed (from --period), so "
        "every rule that bills usage would bill nothing; add the usage of 2026-05, or bill a "
        "period that has usage (the latest is 2026-03, Usage!A1550)"
    )


# --- item 3: usage rows pasted twice ------------------------------------------------------


def test_a_usage_row_pasted_twice_is_a_warning_naming_both_rows(demo: Path, capsys):
    def change(wb):
        ws = wb["Usage"]
        ws.append([c.value for c in ws[1500]])

    edit(demo, change)
    code, out = run(demo, capsys)
    assert code == 0
    assert (
        "warning: Usage!A1551: this row repeats Usage!A1500 (the same Period, Department, "
        "Metric, Service and Reference: 2026-03, CCR, Endpoints, Service Security, Reference "
        "MTR-202603), so both are billed; if it was pasted twice, delete one of the two rows"
    ) in out
    # Both rows count: CCR's Endpoints are doubled on its Security line.
    wb = openpyxl.load_workbook(demo_path(), read_only=True)
    once = next(wb["Usage"].iter_rows(min_row=1500, max_row=1500, values_only=True))
    [line] = [r for r in bills(demo) if (r["Department"], r["Pool"]) == ("CCR", "Security")]
    assert line["Quantity"] == 2 * once[3]
    assert total(bills(demo)) == DEMO_TOTAL


def test_many_repeated_rows_are_one_warning_with_the_count_and_the_first_pairs(demo: Path, capsys):
    def change(wb):
        ws = wb["Usage"]
        for row in [[c.value for c in r] for r in ws.iter_rows(min_row=2, max_row=40)]:
            ws.append(row)

    edit(demo, change)
    code, out = run(demo, capsys)
    assert code == 0
    assert other_warnings(out) == [
        "warning: Usage!A1551:A1589: 39 Usage rows repeat an earlier row (the same Period, "
        "Department, Metric, Service and Reference), so both are billed; first A1551 repeats "
        "A2, A1552 repeats A3, A1553 repeats A4 …; if they were pasted twice, delete the repeats"
    ]


def test_without_a_reference_column_only_a_whole_row_repeated_is_a_repeat(demo: Path, capsys):
    def change(wb):
        ws = wb["Usage"]
        ws.delete_cols(6)  # Reference
        ws.append([c.value for c in ws[1500]])  # the same in every column: pasted twice
        second = [c.value for c in ws[1499]]
        second[3] += 1  # another reading of the same metric: not a repeat
        ws.append(second)

    edit(demo, change)
    code, out = run(demo, capsys)
    assert code == 0
    assert other_warnings(out) == [
        "warning: Usage!A1551: this row repeats Usage!A1500 (the same value in every column: "
        "2026-03, CCR, Endpoints, Service Security), so both are billed; if it was pasted "
        "twice, delete one of the two rows"
    ]


def _usage_grid(rows: int, repeats: int) -> list[list[object]]:
    header = ["Period", "Department", "Metric", "Quantity", "Service", "Reference"]
    body = [
        ["2026-03", "ENG", "Server Hours", 1 + i % 97, "Hosting", f"MTR-{i}"] for i in range(rows)
    ]
    return [header, *body, *body[:repeats]]


def test_thousands_of_repeats_are_one_warning_read_in_bulk():
    # 50,000 rows pasted again after 200,000: found in a few vectorised passes.
    sheets = {
        n: FileWorkbook(demo_path()).read_sheet(n) for n in FileWorkbook(demo_path()).sheet_names()
    }
    sheets["Usage"] = _usage_grid(200_000, 50_000)
    outcome = check_workbook(MemoryWorkbook(sheets))
    repeated = [p for p in outcome.problems if p.code is Reason.DUPLICATE_ROW]
    assert [(p.severity, p.where, p.message) for p in repeated] == [
        (
            Severity.WARNING,
            "Usage!A200002:A250001",
            "50,000 Usage rows repeat an earlier row (the same Period, Department, Metric, "
            "Service and Reference), so both are billed; first A200002 repeats A2, A200003 "
            "repeats A3, A200004 repeats A4 …; if they were pasted twice, delete the repeats",
        )
    ]


# --- item 4: blank driver cells and headers -------------------------------------------------


def test_a_blank_driver_cell_of_a_receiver_is_a_warning_with_what_it_was_left_out_of(
    demo: Path, capsys
):
    headcount: dict[str, Decimal] = {}

    def change(wb):
        ws = wb["Departments"]
        for row in ws.iter_rows(min_row=2):
            if row[4].value != "N":
                headcount[row[0].value] = Decimal(row[6].value)
            if row[0].value == "LAW":
                assert row[6].coordinate == "G6"
                row[6].value = None

    edit(demo, change)
    code, out = run(demo, capsys)
    assert code == 0
    assert (
        'warning: Departments!G6: Headcount of "LAW" is blank, so LAW gets no share of the '
        '175,165.20 that R05 spreads from "Network" in 2026-03 and the other departments pay '
        "it; type its Headcount (0 if it should get no share)"
    ) in out
    network = {r["Department"]: amount(r) for r in bills(demo) if r["Pool"] == "Network"}
    del headcount["LAW"]
    expected = largest_remainder(17516520, headcount)
    assert network == {k: Decimal(v).scaleb(-2) for k, v in expected.items()}


def test_a_zero_driver_cell_is_a_choice_and_no_warning(demo: Path, capsys):
    def change(wb):
        for row in wb["Departments"].iter_rows(min_row=2):
            if row[0].value == "LAW":
                row[6].value = 0

    edit(demo, change)
    code, out = run(demo, capsys)
    assert code == 0
    assert not other_warnings(out)


def test_a_column_under_a_merged_header_is_a_warning_naming_the_column(demo: Path, capsys):
    def change(wb):
        ws = wb["Departments"]
        ws.insert_cols(3)
        for row in ws.iter_rows(min_row=2):  # the names typed one column to the right
            row[2].value, row[1].value = row[1].value, None
        ws.merge_cells("B1:C1")

    edit(demo, change)
    code, out = run(demo, capsys)
    assert code == 0
    assert other_warnings(out) == [
        "warning: Departments!C1: column C has 26 values but no header, so costloop ignores "
        'them; type a header in C1 (if B1 "Name" is merged across C1, unmerge it: a merged '
        "cell keeps its text in B1 only)"
    ]
    # What it costs: the bills have no department names (the amounts are the demo's).
    lines = bills(demo)
    assert {r["Name"] for r in lines} == {None}
    assert total(lines) == DEMO_TOTAL


@pytest.mark.parametrize(("titles", "fix"), [(1, "delete row 1"), (2, "delete rows 1 to 2")])
def test_headers_below_row_1_are_one_message(demo: Path, capsys, titles: int, fix: str):
    def change(wb):
        ws = wb["Usage"]
        ws.insert_rows(1, titles)
        ws["A1"] = "Metered usage, FY26"

    edit(demo, change)
    code, out = run(demo, capsys)
    assert code == 1
    assert out[:2] == [
        f"Usage!A1: the headers are in row {titles + 1} of Usage; {fix} (costloop reads the "
        "headers from row 1)",
        "FAILED: 1 error(s), 0 warning(s); see the Rule Check and Run Log sheets",
    ]


def test_a_blank_cell_in_a_driver_column_of_numeric_text_is_named_too(demo: Path, capsys):
    def change(wb):
        for row in wb["Departments"].iter_rows(min_row=2):
            if isinstance(row[6].value, int):
                row[6].value = f"{row[6].value:,}"  # "1,250", as pasted from a report
            if row[0].value == "LAW":
                row[6].value = " "

    edit(demo, change)
    code, out = run(demo, capsys)
    assert code == 0
    assert other_warnings(out) == [
        'warning: Departments!G6: Headcount of "LAW" is blank, so LAW gets no share of the '
        '175,165.20 that R05 spreads from "Network" in 2026-03 and the other departments pay '
        "it; type its Headcount (0 if it should get no share)"
    ]


def test_a_metric_no_rule_reads_in_a_usage_file_points_at_the_setting(demo: Path, capsys):
    export = demo.parent / "usage.csv"

    def change(wb):
        ws = wb["Usage"]
        rows = [[c.value for c in r] for r in ws.iter_rows()]
        for row in rows:
            if row[:3] == [PERIOD, "ENG", "Server Hours"]:
                row[2] = "Server Hrs"
        with export.open("w", newline="") as handle:
            csv.writer(handle).writerows(rows)
        ws.delete_rows(2, ws.max_row)
        wb["Settings"].append(["UsageSource", "usage.csv"])
        assert wb["Settings"].max_row == 17

    edit(demo, change)
    code, out = run(demo, capsys)
    assert code == 0
    assert other_warnings(out) == [
        'warning: Settings!B17: no enabled rule reads the metric "Server Hrs", so 1 row in '
        "2026-03 of the UsageSource files (quantity 17,740, used by ENG) is billed to nobody: "
        'fix the Metric cells, or name the metric in a rule — did you mean "Server Hours"?'
    ]
    assert total(bills(demo)) == DEMO_TOTAL


def _demo_sheets() -> dict[str, list[list[object]]]:
    book = FileWorkbook(demo_path())
    return {name: book.read_sheet(name) for name in book.sheet_names()}


def test_repeats_compare_names_as_names_and_every_other_column_as_typed():
    sheets = _demo_sheets()
    header = ["Period", "Department", "Metric", "Quantity", "Service", "Project"]
    sheets["Usage"] = [
        header,
        ["2026-03", "ENG", "Server Hours", 100, "Hosting", "P1"],
        ["2026-03", " eng", "server  HOURS", 100, "hosting", "P1"],  # the same, as names
        ["2026-03", "ENG", "Server Hours", 100, "Hosting", "P2"],  # another project
        ["2026-03", "ENG", "Server Hours", 100.5, "Hosting", "P1"],  # another quantity
    ]
    outcome = check_workbook(MemoryWorkbook(sheets))
    assert [(p.where, p.message) for p in outcome.problems if p.code is Reason.DUPLICATE_ROW] == [
        (
            "Usage!A3",
            # The repeating row as it is typed.
            "this row repeats Usage!A2 (the same value in every column: 2026-03, eng, server  "
            "HOURS, Service hosting), so both are billed; if it was pasted twice, delete one "
            "of the two rows",
        )
    ]


def test_a_row_with_a_blank_reference_repeats_only_when_every_column_does():
    sheets = _demo_sheets()
    header = ["Period", "Department", "Metric", "Quantity", "Service", "Reference"]
    sheets["Usage"] = [
        header,
        ["2026-03", "ENG", "Server Hours", 100, "Hosting", "MTR-1"],
        ["2026-03", "ENG", "Server Hours", 120, "Hosting", "MTR-1"],  # the same reading again
        ["2026-03", "ENG", "Server Hours", 100, "Hosting", None],  # no reference: not MTR-1's
        ["2026-03", "ENG", "Server Hours", 100, "Hosting", None],  # ...but the row above again
        ["2026-03", "ENG", "Server Hours", 101, "Hosting", None],
    ]
    outcome = check_workbook(MemoryWorkbook(sheets))
    assert [(p.where, p.message) for p in outcome.problems if p.code is Reason.DUPLICATE_ROW] == [
        (
            "Usage!A3",
            "this row repeats Usage!A2 (the same Period, Department, Metric, Service and "
            "Reference: 2026-03, ENG, Server Hours, Service Hosting, Reference MTR-1), so both "
            "are billed; if it was pasted twice, delete one of the two rows",
        ),
        (
            "Usage!A5",
            "this row repeats Usage!A4 (the same value in every column: 2026-03, ENG, Server "
            "Hours, Service Hosting), so both are billed; if it was pasted twice, delete one "
            "of the two rows",
        ),
    ]


def test_an_empty_usage_sheet_with_a_settings_period_is_said_plainly():
    sheets = _demo_sheets()
    sheets["Usage"] = sheets["Usage"][:1]
    # Rules whose names all exist without Usage: the rate card's metric, a Departments driver.
    sheets["Rules"] = [
        row for row in sheets["Rules"] if row[0] in ("ID", "R05", "R10") or row[2] == "N"
    ]
    outcome = check_workbook(MemoryWorkbook(sheets))
    assert [(p.severity, p.where, p.message) for p in outcome.problems] == [
        (
            Severity.ERROR,
            "Settings!B4",
            "there are no Usage rows for 2026-03, the period billed (from Settings Period, "
            "Settings!B4), so every rule that bills usage would bill nothing; add the usage of "
            "2026-03, or check that the usage was pasted in (the Usage sheet has no rows)",
        )
    ]
