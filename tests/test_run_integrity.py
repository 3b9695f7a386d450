"""A run fails when its bills are wrong, and only then (issue 16, items 5, 6, 7 and 9).

- a forecast that cannot be computed never holds back the bills: a warning, and
  the Forecast sheet marks the rows it could not compute;
- reciprocal pools round as the contract says, to the cent, and tie out;
- a failed run's Run Log shows the tie-outs as not run and no Total Billed;
- "Revenue equals bills" is checked against Recovery, so a fault in building
  the Bills (or Recovery) fails the run;
- the reserve limit of the Compliance sheet at its boundary: exactly 60 days
  passes, a cent over warns.

Every case runs the command line on a real workbook: the demo, edited the way a
user would, or a small workbook made from the shipped template.
"""

from __future__ import annotations

import shutil
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path

import openpyxl
import pytest

from costloop.cli import main
from costloop.engine.chargeback import execute
from costloop.engine.pipeline import itfm_sheets
from costloop.engine.xlsx.file_workbook import FileWorkbook
from costloop.problems import Problem, Reason, Severity
from costloop.workbooks import demo_path

TEMPLATE = Path(demo_path()).with_name("template.xlsx")
NOT_RUN = "NOT RUN: the run stopped at an error before the bills were checked"
BILLING_KEYS = {"Bill Lines", "Departments Billed", "Total Billed", "Journal Lines"}
CENT = Decimal("0.01")
MARKETPLACE = (
    'warning: Usage!E1385, E1404, E1506: no enabled rule reads "AWS Cost" with Service '
    '"Marketplace"'
)
"""The demo's one warning of every run (R13 leaves Marketplace to Procurement)."""


def others(out: list[str]) -> list[str]:
    """The lines printed besides the demo's own Marketplace warning (tests/test_usage_checks)."""
    assert sum(line.startswith(MARKETPLACE) for line in out) <= 1
    return [line for line in out if not line.startswith(MARKETPLACE)]


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    book = tmp_path / "demo.xlsx"
    shutil.copyfile(demo_path(), book)
    return book


def set_rule(path: Path, rule_id: str, text: str) -> None:
    wb = openpyxl.load_workbook(path)
    for row in wb["Rules"].iter_rows(min_row=2):
        if row[0].value == rule_id:
            row[1].value = text
    wb.save(path)


def sheet(path: Path, name: str) -> list[list[object]]:
    return FileWorkbook(path).read_sheet(name)


def run_log(path: Path) -> list[tuple[str, object]]:
    # The Key / Value lines (the history of every run is to their right).
    return [(row[0], row[1]) for row in sheet(path, "Run Log")[1:] if row[0] is not None]


def from_tieouts(path: Path) -> list[tuple[str, object]]:
    """The Run Log from its first tie-out line on (what a run adds after counting its inputs)."""
    log = run_log(path)
    first = next(i for i, (k, _) in enumerate(log) if k.startswith("Tie-out"))
    return log[first:]


def make_book(path: Path, settings: dict, **sheets: list[tuple]) -> Path:
    """The shipped blank template with ``settings`` set and rows added to the named sheets."""
    shutil.copyfile(TEMPLATE, path)
    wb = openpyxl.load_workbook(path)
    for row in wb["Settings"].iter_rows(min_row=2):
        if row[0].value in settings:
            row[1].value = settings.pop(row[0].value)
    for key, value in settings.items():
        wb["Settings"].append([key, value])
    for name, rows in sheets.items():
        for values in rows:
            wb[name].append(list(values))
    wb.save(path)
    return path


# --- 5. a forecast problem never holds back the bills -------------------------------------


def test_a_forecast_that_cannot_be_computed_warns_and_the_bills_go_out(
    demo: Path, ran_demo: Path, capsys
):
    # The demo has nine months of vCPU-Hours (July to March): a 12-month trend has no line.
    set_rule(demo, "F01", 'FORECAST USAGE "vCPU-Hours" BY TREND OVER 12 PERIODS')
    assert main(["run", str(demo)]) == 0
    out = capsys.readouterr().out.splitlines()
    warning = (
        "Rules!B15, character 43: TREND OVER 12 PERIODS needs 12 periods of actual usage of "
        '"vCPU-Hours"; only 9 exist (2025-07 to 2026-03) — use OVER 9 PERIODS or fewer; until '
        "then the Forecast sheet shows RUN RATE OVER 3 PERIODS in its place (its Method says so)"
    )
    assert others(out)[0] == "warning: " + warning
    assert out[-1] == (
        "Wrote Bills, Journal, Recovery, Forecast, Variance, Compliance, Rule Check, Run Log "
        f"to {demo}"
    )
    # The bills are exactly those of the demo with its good forecast rule.
    for name in ("Bills", "Journal", "Recovery"):
        assert sheet(demo, name) == sheet(ran_demo, name), name
    # Forecast!A8:H8 is the first vCPU-Hours row: numbers from the default, marked as such.
    assert sheet(demo, "Forecast")[7] == [
        "2026-04",
        "USAGE",
        "vCPU-Hours",
        290000,
        None,
        417703,
        127703,
        "RUN RATE OVER 3 PERIODS — TREND OVER 12 PERIODS NOT COMPUTED: ONLY 9 OF 12 PERIODS "
        "OF ACTUALS",
    ]
    f01 = [r for r in sheet(demo, "Rule Check") if r[0] == "F01"]
    assert f01 == [["F01", "Rules!B15", "WARNING", warning.split(", ", 1)[1], None]]
    log = dict(run_log(demo))
    assert (log["Status"], log["Errors"], log["Warnings"]) == ("OK", 0, 2)
    assert log["Total Billed"] == 1073295.02


MISTAKES = {
    "unknown metric": (
        "F01",
        'FORECAST USAGE "vCPU-Hrs" BY TREND OVER 6 PERIODS',
        'Rules!B15, character 16: unknown metric "vCPU-Hrs" — did you mean "vCPU-Hours"?',
    ),
    "a one-period trend": (
        "F01",
        'FORECAST USAGE "vCPU-Hours" BY TREND OVER 1 PERIODS',
        "Rules!B15, character 32: a trend needs at least 2 periods to draw a line through, got 1",
    ),
    "unknown pool": (
        "F02",
        'FORECAST COST "Clowd" BY TREND OVER 6 PERIODS',
        'Rules!B16, character 15: unknown pool "Clowd" — did you mean "Cloud"?',
    ),
}
"""A mistake in the text of a FORECAST rule: (rule, its text, the warning `check` gives)."""


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_a_mistake_in_a_forecast_rule_is_a_warning_and_the_bills_go_out(
    demo: Path, ran_demo: Path, capsys, mistake: str
):
    rule_id, text, warning = MISTAKES[mistake]
    set_rule(demo, rule_id, text)
    # check: a warning at the rule's cell and character, with the caret, exit 0.
    assert main(["check", str(demo)]) == 0
    out = others(capsys.readouterr().out.splitlines())
    caret = " " * (2 + int(warning.split("character ")[1].split(":")[0]) - 1) + "^"
    assert out == [
        f"warning: {warning}",
        f"  {text}",
        caret,
        f"{demo}: 20 rule(s) checked, 0 error(s), 2 warning(s)",
    ]
    # run: the same warning; Bills, Journal and Recovery exactly a clean run's; exit 0.
    assert main(["run", str(demo)]) == 0
    out = others(capsys.readouterr().out.splitlines())
    assert out[0] == f"warning: {warning}"
    assert out[-1] == (
        "Wrote Bills, Journal, Recovery, Forecast, Variance, Compliance, Rule Check, Run Log "
        f"to {demo}"
    )
    for name in ("Bills", "Journal", "Recovery"):
        assert sheet(demo, name) == sheet(ran_demo, name), name
    cell, message = warning.split(", ", 1)
    assert [r for r in sheet(demo, "Rule Check") if r[0] == rule_id] == [
        [rule_id, cell, "WARNING", message, None]
    ]
    log = dict(run_log(demo))
    assert (log["Status"], log["Errors"], log["Warnings"]) == ("OK", 0, 2)
    assert log["Total Billed"] == 1073295.02
    # The Forecast sheet marks what the rule would have forecast as NOT COMPUTED, and why.
    why = f"NOT COMPUTED: {message.split(': ', 1)[1]} ({cell})"
    forecast = sheet(demo, "Forecast")
    marked = [r for r in forecast if "NOT COMPUTED" in str(r[7])]
    if mistake == "a one-period trend":
        # vCPU-Hours has usage: its rows are the default's, marked (Forecast!A8 is the first).
        assert forecast[7] == [
            "2026-04", "USAGE", "vCPU-Hours", 290000, None, 417703, 127703,
            f"RUN RATE OVER 3 PERIODS — TREND OVER 1 PERIODS {why}",
        ]  # fmt: skip
        assert [r[:3] for r in marked] == [
            [p, "USAGE", "vCPU-Hours"] for p in ("2026-04", "2026-05", "2026-06")
        ]
    else:
        # No sheet has the name: one row with no figures says the rule was not computed.
        kind, name = text.split()[1], text.split('"')[1]
        assert marked == [
            ["2026-04", kind, name, None, None, None, None, f"TREND OVER 6 PERIODS {why}"]
        ]
        # What the rule meant is forecast by the default (never a guess at the name): usage
        # by its run rate, cost by its plan.
        meant, default = {"F01": ("vCPU-Hours", "RUN RATE OVER 3 PERIODS"),
                          "F02": ("Cloud", "PLAN")}[rule_id]  # fmt: skip
        assert {r[7] for r in forecast if r[1] == kind and r[2] == meant} == {default}


def test_a_sheet_that_fails_to_compute_is_marked_and_the_bills_go_out(
    demo: Path, ran_demo: Path, capsys, monkeypatch
):
    """An unforeseen failure inside an ITFM sheet (injected here) costs it, not the bills."""

    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(itfm_sheets, "compliance", broken)
    assert main(["run", str(demo)]) == 0
    out = others(capsys.readouterr().out.splitlines())
    assert out[0] == (
        "warning: Compliance!A2: the Compliance sheet could not be computed (ZeroDivisionError: "
        "division by zero), so it shows one NOT COMPUTED row; Bills, Journal and Recovery are "
        "complete and not affected. Please report this, with the workbook if you can"
    )
    compliance = sheet(demo, "Compliance")
    assert len(compliance) == 2
    assert compliance[1] == ["NOT COMPUTED", *[None] * 16, "NOT COMPUTED", (
        "NOT COMPUTED: ZeroDivisionError: division by zero; see Rule Check — the bills are not "
        "affected"
    )]  # fmt: skip
    for name in ("Bills", "Journal", "Recovery", "Forecast", "Variance"):
        assert sheet(demo, name) == sheet(ran_demo, name), name
    assert dict(run_log(demo))["Status"] == "OK"


def test_a_what_if_sheet_that_fails_to_compute_is_named_as_written(demo: Path, capsys, monkeypatch):
    wb = openpyxl.load_workbook(demo)
    wb.copy_worksheet(wb["Budget"]).title = "Budget@cloud10"
    wb.save(demo)
    monkeypatch.setattr(itfm_sheets, "forecast", lambda *a, **k: 1 / 0)
    assert main(["run", str(demo), "--scenario", "cloud10"]) == 0
    assert others(capsys.readouterr().out.splitlines())[0] == (
        "warning: Forecast@cloud10!A2: the Forecast@cloud10 sheet could not be computed "
        "(ZeroDivisionError: division by zero), so it shows one NOT COMPUTED row; Bills, "
        "Journal and Recovery are complete and not affected. Please report this, with the "
        "workbook if you can"
    )
    assert sheet(demo, "Forecast@cloud10")[1] == [None, "NOT COMPUTED", *[None] * 5, (
        "NOT COMPUTED: ZeroDivisionError: division by zero; see Rule Check — the bills are not "
        "affected"
    )]  # fmt: skip


def test_an_error_from_an_itfm_sheet_is_only_a_warning(demo: Path, capsys, monkeypatch):
    """The guard holds whatever a future Forecast, Variance or Compliance check reports."""
    real = itfm_sheets.variance

    def with_an_error(book, period, closed=None):
        frame, problems = real(book, period, closed)
        return frame, [*problems, Problem(Reason.NO_BUDGET, Severity.ERROR, "Budget!A1", "no")]

    monkeypatch.setattr(itfm_sheets, "variance", with_an_error)
    assert main(["run", str(demo)]) == 0
    assert others(capsys.readouterr().out.splitlines())[0] == "warning: Budget!A1: no"
    assert [r for r in sheet(demo, "Rule Check") if r[1] == "Budget!A1"] == [
        [None, "Budget!A1", "WARNING", "no", None]
    ]


# --- 6. reciprocal rounding ----------------------------------------------------------------


def test_reciprocal_pools_round_as_the_contract_says_and_tie_out(tmp_path: Path, capsys):
    """A case where rounding each department's exact share would bill two cents too many.

    HR (100.00) serves IT and the departments ADM and FIN, a third each (HR Tickets);
    IT (200.00) serves HR, ADM, FIN and LAW, a quarter each (IT Tickets). Exactly:
    T_HR = 100 + T_IT/4 and T_IT = 200 + T_HR/3, so T_HR = 1,800/11 = 163.6363… and
    T_IT = 2,800/11 = 254.5454….

    Rounding each department's exact share half-up: HR's 54.5454… -> 54.55 twice, IT's
    63.6363… -> 63.64 three times = 300.02, two cents that nobody spent.

    What costloop does (docs/contract.md#money-and-rounding):
    1. each transfer between the pools half-up: HR -> IT 600/11 = 54.5454… -> 54.55,
       IT -> HR 700/11 = 63.6363… -> 63.64;
    2. HR spreads 100.00 + 63.64 = 163.64; less 54.55 to IT, 109.09 to departments by
       largest remainder: 54.545 each -> 54.54 each and the last cent to the tie broken by
       name: ADM 54.55, FIN 54.54;
    3. IT spreads 200.00 + 54.55 = 254.55; less 63.64 to HR, 190.91 over three: 63.6366…
       -> 63.63 each and two cents by name: ADM 63.64, FIN 63.64, LAW 63.63.
    Departments get 300.00: exactly the two pools' cost.
    """
    t_hr, t_it = Fraction(1800, 11), Fraction(2800, 11)
    assert (t_hr, t_it) == (100 + t_it / 4, 200 + t_hr / 3)

    def alone(share: Fraction) -> Decimal:  # one share rounded half-up on its own
        return (Decimal(share.numerator) / share.denominator).quantize(CENT, ROUND_HALF_UP)

    naive = [alone(t_hr / 3)] * 2 + [alone(t_it / 4)] * 3
    assert naive == [Decimal("54.55")] * 2 + [Decimal("63.64")] * 3
    assert sum(naive) == Decimal("300.02")

    hr_tickets = [("2026-03", who, "HR Tickets", 1) for who in ("IT", "ADM", "FIN")]
    it_tickets = [("2026-03", who, "IT Tickets", 1) for who in ("HR", "ADM", "FIN", "LAW")]
    book = make_book(
        tmp_path / "reciprocal.xlsx",
        {"Period": "2026-03", "FiscalYearStart": 4, "CostBasis": "BUDGET"},
        Departments=[
            (code, f"{code} Office", "General", None, "Y") for code in ("ADM", "FIN", "LAW")
        ],
        Budget=[("2026-03", "HR", 100), ("2026-03", "IT", 200)],
        Usage=hr_tickets + it_tickets,
        Rules=[
            ("R1", 'ALLOCATE "HR" TO POOLS "IT" AND DEPARTMENTS BY USAGE "HR Tickets" RECIPROCAL'),
            ("R2", 'ALLOCATE "IT" TO POOLS "HR" AND DEPARTMENTS BY USAGE "IT Tickets" RECIPROCAL'),
        ],
    )
    assert main(["run", str(book)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        "Period 2026-03: billed 300.00 to 3 department(s) in 5 bill line(s)"
    )
    bills = [(r[1], r[3], Decimal(str(r[7]))) for r in sheet(book, "Bills")[1:]]
    assert bills == [
        ("ADM", "HR", Decimal("54.55")),
        ("ADM", "IT", Decimal("63.64")),
        ("FIN", "HR", Decimal("54.54")),
        ("FIN", "IT", Decimal("63.64")),
        ("LAW", "IT", Decimal("63.63")),
    ]
    assert sum(amount for *_, amount in bills) == Decimal("300.00")
    rule_check = {r[0]: (r[2], r[4]) for r in sheet(book, "Rule Check")[1:]}
    assert rule_check == {"R1": ("OK", 163.64), "R2": ("OK", 254.55)}
    assert from_tieouts(book)[:4] == [
        ("Tie-out: Allocations tie out", "PASS 2 ALLOCATE rule(s), each to the cent"),
        ("Tie-out: Journal balances", "PASS 3 entries, every fund balanced"),
        ("Tie-out: Revenue equals bills", "PASS credited = billed = recovered = 300.00"),
        ("Tie-out: Pools tie out", "PASS 2 pool(s)"),
    ]


# --- 7. a failed run's Run Log ---------------------------------------------------------


def test_a_failed_run_log_shows_the_tie_outs_not_run_and_no_total(book: Path, capsys):
    """An input error: the run stops before billing; the last clean run's totals are gone too."""
    assert dict(run_log(book))["Total Billed"] == 1073295.02  # the clean run's Run Log
    wb = openpyxl.load_workbook(book)
    wb["Budget"]["C2"] = "oops"
    wb.save(book)
    bills_before = sheet(book, "Bills")
    assert main(["run", str(book)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        'Budget!C2: Amount must be a number, got "oops"',
        "FAILED: 1 error(s), 0 warning(s); see the Rule Check and Run Log sheets",
    ]
    assert from_tieouts(book) == [
        ("Tie-out: Allocations tie out", NOT_RUN),
        ("Tie-out: Journal balances", NOT_RUN),
        ("Tie-out: Revenue equals bills", NOT_RUN),
        ("Tie-out: Pools tie out", NOT_RUN),
        ("Errors", 1),
        ("Warnings", 0),
        ("Status", "FAILED"),
        ("Failure", '1 error(s); first: Budget!C2: Amount must be a number, got "oops"'),
    ]
    assert not BILLING_KEYS & {k for k, _ in run_log(book)}
    assert sheet(book, "Bills") == bills_before  # the issued bills stay as they were


def test_a_run_stopped_by_a_billing_error_shows_the_tie_outs_not_run(demo: Path, capsys):
    """The rules ran and found an error: those bills are held back, so nothing is tied out."""
    wb = openpyxl.load_workbook(demo)
    for row in wb["Usage"].iter_rows(min_row=2):
        if row[0].value == "2026-03" and row[2].value == "Server Hours":
            row[3].value = 0
    wb.save(demo)
    assert main(["run", str(demo)]) == 1
    out = capsys.readouterr().out.splitlines()
    error = 'Rules!B5, character 42: no usage of "Server Hours" in 2026-03 among the receivers'
    assert out[0].startswith(error)
    log = from_tieouts(demo)
    assert log[:7] == [
        ("Tie-out: Allocations tie out", NOT_RUN),
        ("Tie-out: Journal balances", NOT_RUN),
        ("Tie-out: Revenue equals bills", NOT_RUN),
        ("Tie-out: Pools tie out", NOT_RUN),
        ("Errors", 1),
        ("Warnings", 1),
        ("Status", "FAILED"),
    ]
    assert log[7][0] == "Failure" and log[7][1].startswith("1 error(s); first: " + error)
    assert not BILLING_KEYS & {k for k, _ in run_log(demo)}
    assert "Bills" not in FileWorkbook(demo).sheet_names()


# --- 9. tie-outs that can fail ------------------------------------------------------------


def test_a_bill_line_altered_on_its_way_to_the_sheet_fails_revenue_equals_bills(
    book: Path, capsys, monkeypatch
):
    """The journal is made from the Bills, so it agrees with a wrong line; Recovery does not."""
    real = execute.bills_frame

    def one_cent_more(drivers, run, rated_only=False):
        frame = real(drivers, run, rated_only)
        if not rated_only:
            frame = frame.copy()
            frame.loc[frame.index[-1], "Amount"] += Decimal("0.01")  # Virtual Servers, ITPM
        return frame

    monkeypatch.setattr(execute, "bills_frame", one_cent_more)
    bills_before = sheet(book, "Bills")
    assert main(["run", str(book)]) == 1
    revenue = (
        "tie-out failed: Revenue equals bills: Bills total 1073295.03 ≠ Recovery's 1073295.02 "
        "recovered in 2026-03"
    )
    pool = '"Virtual Servers": Bills show 30448.01, credited 30448.00'
    pools = f"tie-out failed: Pools tie out: {pool}"
    assert others(capsys.readouterr().out.splitlines()) == [
        f"Bills: {revenue}",
        f"Recovery: {pools}",
        "FAILED: 2 error(s), 1 warning(s); see the Rule Check and Run Log sheets",
    ]
    failures = [r for r in sheet(book, "Rule Check") if r[2] == "ERROR"]
    assert failures == [
        [None, "Bills", "ERROR", revenue, None],
        [None, "Recovery", "ERROR", pools, None],
    ]
    assert from_tieouts(book) == [
        ("Tie-out: Allocations tie out", "PASS 9 ALLOCATE rule(s), each to the cent"),
        ("Tie-out: Journal balances", "PASS 25 entries, every fund balanced"),
        (
            "Tie-out: Revenue equals bills",
            "FAIL Bills total 1073295.03 ≠ Recovery's 1073295.02 recovered in 2026-03",
        ),
        ("Tie-out: Pools tie out", f"FAIL {pool}"),
        ("Errors", 2),
        ("Warnings", 1),
        ("Status", "FAILED"),
        ("Failure", "a tie-out failed"),
    ]  # fmt: skip
    assert sheet(book, "Bills") == bills_before  # the wrong bill never reached the sheet


def test_a_recovery_row_lost_fails_revenue_equals_bills_alone(book: Path, capsys, monkeypatch):
    real = execute.build_recovery

    def without_erp_in_march(flows):
        frame = real(flows)
        return frame[~((frame["Period"] == "2026-03") & (frame["Pool"] == "ERP"))]

    monkeypatch.setattr(execute, "build_recovery", without_erp_in_march)
    assert main(["run", str(book)]) == 1
    # ERP billed 235,271.37 in March: Recovery without its row recovers that much less.
    assert others(capsys.readouterr().out.splitlines()) == [
        "Bills: tie-out failed: Revenue equals bills: Bills total 1073295.02 ≠ Recovery's "
        "838023.65 recovered in 2026-03",
        "FAILED: 1 error(s), 1 warning(s); see the Rule Check and Run Log sheets",
    ]
    assert Decimal("1073295.02") - Decimal("838023.65") == Decimal("235271.37")
    assert [v for k, v in from_tieouts(book)[:4]] == [
        "PASS 9 ALLOCATE rule(s), each to the cent",
        "PASS 25 entries, every fund balanced",
        "FAIL Bills total 1073295.02 ≠ Recovery's 838023.65 recovered in 2026-03",
        "PASS 13 pool(s)",
    ]


def test_a_scenario_run_s_tie_out_failures_point_at_its_own_sheets(book: Path, capsys, monkeypatch):
    """In a --scenario run the sheets are Bills@High, Journal@High and Recovery@High: a
    failed tie-out names those, not the base run's sheets (which this run never touches)."""
    wb = openpyxl.load_workbook(book)
    wb.copy_worksheet(wb["Budget"]).title = "Budget@High"
    wb.save(book)
    real_bills, real_journal = execute.bills_frame, execute.build_journal

    def one_cent_more(drivers, run, rated_only=False):
        frame = real_bills(drivers, run, rated_only)
        if not rated_only:
            frame = frame.copy()
            frame.loc[frame.index[-1], "Amount"] += Decimal("0.01")  # Virtual Servers, ITPM
        return frame

    def a_debit_a_cent_off(drivers, bills, period):
        frame = real_journal(drivers, bills, period).copy()
        first = frame.index[frame["Debit"].notna()][0]
        frame.loc[first, "Debit"] += Decimal("0.01")
        return frame

    monkeypatch.setattr(execute, "bills_frame", one_cent_more)
    monkeypatch.setattr(execute, "build_journal", a_debit_a_cent_off)
    base_before = {name: sheet(book, name) for name in ("Bills", "Journal", "Recovery")}
    assert main(["run", str(book), "--scenario", "High"]) == 1
    journal = (
        "tie-out failed: Journal balances: entry CB-2026-03-0001 fund General: debits "
        "13834.84 ≠ credits 13834.83; fund General: debits 813087.42 ≠ credits 813087.41"
    )
    revenue = (
        "tie-out failed: Revenue equals bills: Bills total 1073295.03 ≠ Recovery's 1073295.02 "
        "recovered in 2026-03"
    )
    pools = (
        'tie-out failed: Pools tie out: "Virtual Servers": Bills show 30448.01, credited 30448.00'
    )
    assert others(capsys.readouterr().out.splitlines()) == [
        f"Journal@High: {journal}",
        f"Bills@High: {revenue}",
        f"Recovery@High: {pools}",
        "FAILED: 3 error(s), 1 warning(s); see the Rule Check@High and Run Log@High sheets",
    ]
    assert [r for r in sheet(book, "Rule Check@High") if r[2] == "ERROR"] == [
        [None, "Journal@High", "ERROR", journal, None],
        [None, "Bills@High", "ERROR", revenue, None],
        [None, "Recovery@High", "ERROR", pools, None],
    ]
    assert {name: sheet(book, name) for name in base_before} == base_before


# --- 9. the reserve limit at its boundary -----------------------------------------------


def reserve_book(path: Path, units: int) -> Path:
    """One pool costing 365.00 in the last month of its fiscal year, billed ``units`` × 0.01.

    Twelve months: reserve days = (revenue − 365.00) × 365 × 12 ÷ (365.00 × 12), so
    425.00 billed is a reserve of 60.00, exactly 60 days of cash expenses.
    """
    return make_book(
        path,
        {"Period": "2026-03", "FiscalYearStart": 4, "CostBasis": "BUDGET"},
        Departments=[("ADM", "Admissions", "General", None, "Y")],
        Budget=[("2026-03", "Hosting", 365)],
        Usage=[("2026-03", "ADM", "Units", units)],
        Rules=[("R1", 'CHARGE "Hosting" FOR "Units" AT 0.01')],
    )


def test_a_reserve_of_exactly_60_days_is_within_the_limit(tmp_path: Path, capsys):
    book = reserve_book(tmp_path / "reserve.xlsx", 42_500)
    assert main(["run", str(book)]) == 0
    assert not [line for line in capsys.readouterr().out.splitlines() if "warning" in line]
    fund = sheet(book, "Compliance")[2]
    header = sheet(book, "Compliance")[0]
    row = dict(zip(header, fund, strict=True))
    assert (row["Check"], row["Over/Under YTD"], row["Reserve Days"], row["Limit Days"]) == (
        "FUND TOTAL",
        60,
        60,
        60,
    )
    assert (row["Status"], row["Excess Over Limit"]) == ("WITHIN LIMIT", None)
    assert row["Finding"] == "over-recovery of 60.00 is within the 60-day reserve"


def test_a_reserve_a_cent_over_60_days_warns_at_the_fund_row(tmp_path: Path, capsys):
    book = reserve_book(tmp_path / "reserve.xlsx", 42_501)
    assert main(["run", str(book)]) == 0  # a warning: the bills are right
    message = (
        "the IT fund's reserve from billing (60.01) is just over 60 days of cash expenses, "
        "over the 60-day limit (Settings ReserveDays; 2 CFR 200 App. V G.2) — lower rates or "
        "refund 0.01; see the Compliance sheet"
    )
    assert capsys.readouterr().out.splitlines()[0] == f"warning: Compliance!A3: {message}"
    compliance = sheet(book, "Compliance")
    row = dict(zip(compliance[0], compliance[2], strict=True))
    assert row["Check"] == "FUND TOTAL"  # Compliance!A3
    assert (row["Reserve Days"], row["Status"], row["Excess Over Limit"]) == (
        60,
        "EXCEEDS RESERVE LIMIT",
        0.01,
    )
    assert row["Finding"] == (
        "reserve of 60.01 is just over 60 days of cash expenses, over the 60-day limit "
        "(2 CFR 200 App. V G.2): lower rates or refund/credit the excess of 0.01 (G.4)"
    )
    assert [r for r in sheet(book, "Rule Check") if r[2] == "WARNING"] == [
        [None, "Compliance!A3", "WARNING", message, None]
    ]
