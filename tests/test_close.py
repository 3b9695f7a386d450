"""Period close: issued bills stay issued; corrections are billed in the next open period.

Real files throughout: a small workbook built with openpyxl (`ledger_books`), the
command line as a user runs it, every sheet read back from the saved file.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from ledger_books import (
    YEAR,
    append_rows,
    build,
    by_department,
    fresh_bills,
    money,
    records,
    set_cell,
)

from costloop.cli import main


@pytest.fixture
def book(tmp_path: Path) -> Path:
    return build(tmp_path / "ledger.xlsx")


def run(book: Path, period: str) -> int:
    return main(["run", str(book), "--period", period])


def close(book: Path, period: str) -> int:
    return main(["close", str(book), "--period", period])


def closed(book: Path, period: str) -> None:
    assert run(book, period) == 0
    assert close(book, period) == 0


def issued(book: Path, record: str = "Bill") -> list[dict]:
    return [r for r in records(book, "Issued") if r["Record"] == record]


def test_close_records_every_bill_and_journal_line_sealed(book: Path, capsys):
    assert run(book, "2025-07") == 0
    bills, journal = records(book, "Bills"), records(book, "Journal")
    capsys.readouterr()
    assert close(book, "2025-07") == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Closed 2025-07: {len(bills)} bill line(s) (0 correction or credit")
    lines = issued(book)
    assert [(r["Department"], r["Pool"], money(r["Amount"]), r["Line Type"]) for r in lines] == [
        (r["Department"], r["Pool"], money(r["Amount"]), "Charge") for r in bills
    ]
    assert [(r["Entry"], r["Fund"], r["Account"], r["Debit"], r["Credit"]) for r in
            issued(book, "Journal")] == [
        (r["Entry"], r["Fund"], r["Account"], r["Debit"], r["Credit"]) for r in journal
    ]  # fmt: skip
    rows = records(book, "Issued")
    assert {r["Closed Period"] for r in rows} == {"2025-07"}
    assert len({r["Hash"] for r in rows}) == 1 and len(rows[0]["Hash"]) == 64
    # Recovery, Actual and Usage records: what Recovery and Variance show for the period.
    assert {(r["Pool"], money(r["Amount"])) for r in issued(book, "Actual")} == {
        ("Cloud", Decimal("140.00")),
        ("Network", Decimal("1000.00")),
    }
    assert {(r["Metric"], r["Quantity"]) for r in issued(book, "Usage")} == {
        ("Ports", 47),
        ("vCPU-Hours", 1290.5),
    }
    cloud = next(r for r in issued(book, "Recovery") if r["Pool"] == "Cloud")
    assert (money(cloud["Cost"]), money(cloud["Amount"])) == (Decimal("140.00"), Decimal("129.05"))


def test_a_closed_period_is_refused_and_the_file_is_byte_identical(book: Path, capsys):
    closed(book, "2025-07")
    append_rows(book, "Usage", [("2025-07", "ENG", "vCPU-Hours", 100)])
    before = book.read_bytes()
    capsys.readouterr()
    assert run(book, "2025-07") == 1
    assert book.read_bytes() == before
    out = capsys.readouterr().out
    assert out.startswith("--period: period 2025-07 is closed (issued ")
    assert (
        "its bills are never rewritten, so nothing was changed. To correct it, change its "
        "inputs and run the next open period (2025-08): it bills a Reversal of each changed "
        "line and the Correction, each with Charge Period 2025-07 (docs/audit.md)"
    ) in out
    assert "FAILED: 1 error(s), 0 warning(s); nothing was written" in out


def test_the_next_period_bills_the_reversal_and_the_correction(book: Path):
    closed(book, "2025-07")
    was = by_department(issued(book), ("Charge",))
    # Late usage for the closed month: a charge and the usage an allocation is spread by.
    append_rows(
        book, "Usage", [("2025-07", "ENG", "vCPU-Hours", 100), ("2025-07", "BIO", "Ports", 6)]
    )
    now = fresh_bills(book, "2025-07")
    assert run(book, "2025-08") == 0
    bills = records(book, "Bills")
    corrections = [r for r in bills if r["Line Type"] in ("Reversal", "Correction")]
    assert {r["Charge Period"] for r in corrections} == {"2025-07"}
    assert {r["Period"] for r in corrections} == {"2025-08"}
    change = by_department(corrections, ("Reversal", "Correction"))
    assert change == {d: now[d] - was[d] for d in now}
    # By hand: Network 1,000.00 by Ports was 30:12:5 (638.30, 255.32, 106.38), now 30:18:5
    # (566.04, 339.62, 94.34); ENG's 100 vCPU-Hours more at 0.10 is 10.00.
    assert change == {"BIO": Decimal("84.30"), "ENG": Decimal("-62.26"), "ITS": Decimal("-12.04")}
    # Each reversal line is the issued line negated, quantity and all.
    reversed_eng = [
        (r["Pool"], r["Quantity"], money(r["Amount"]))
        for r in corrections
        if r["Line Type"] == "Reversal" and r["Department"] == "ENG"
    ]
    assert reversed_eng == [
        ("Cloud", -1000, Decimal("-100.00")),
        ("Network", -30, Decimal("-638.30")),
    ]
    # The month's own charges are untouched by it.
    assert {r["Charge Period"] for r in bills if r["Line Type"] == "Charge"} == {"2025-08"}

    journal = records(book, "Journal")
    totals: dict[tuple, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for r in journal:
        totals[(r["Entry"], r["Fund"])][0] += money(r["Debit"])
        totals[(r["Entry"], r["Fund"])][1] += money(r["Credit"])
    assert all(d == c for d, c in totals.values())
    memos = {r["Entry"]: r["Memo"] for r in journal if r["Entry"].endswith("2025-07")}
    assert memos["CB-2025-08-0002-R2025-07"] == (
        "Reversal of CB-2025-07-0002 (2025-07 Network) — by Ports -30"
    )
    assert memos["CB-2025-08-0002-C2025-07"] == (
        "Correction of CB-2025-07-0002 (2025-07 Network) — by Ports 30"
    )
    log = {r["Key"]: r["Value"] for r in records(book, "Run Log")}
    assert log["Corrected Periods"] == "2025-07"
    assert log["Tie-out: Journal balances"].startswith("PASS")
    assert log["Tie-out: Revenue equals bills"].startswith("PASS")


def test_recovery_takes_a_closed_period_from_issued_and_recognises_the_correction(book: Path):
    closed(book, "2025-07")
    append_rows(book, "Usage", [("2025-07", "ENG", "vCPU-Hours", 100)])
    assert run(book, "2025-08") == 0
    recovery = {(r["Period"], r["Pool"]): r for r in records(book, "Recovery")}
    # July as issued (129.05 recovered), not recomputed (139.05).
    assert money(recovery[("2025-07", "Cloud")]["Recovered"]) == Decimal("129.05")
    # August: its own 130.05 plus the 10.00 of July's correction it bills.
    assert money(recovery[("2025-08", "Cloud")]["Recovered"]) == Decimal("140.05")
    variance = {r["Name"]: r for r in records(book, "Variance")}
    assert variance["vCPU-Hours"]["Actual YTD"] == 1290.5 + 1300.5 + 100


def test_an_edited_issued_cell_is_named(book: Path, capsys):
    closed(book, "2025-07")
    set_cell(book, "Issued", "N3", 1.23)  # the Amount of the second issued bill line
    capsys.readouterr()
    assert run(book, "2025-08") == 1
    out = capsys.readouterr().out
    assert out.startswith(
        "Issued!N3: this cell of the issued record of 2025-07 (Amount) is not what was issued "
        "when 2025-07 was closed; issued bills are never edited"
    )


def test_a_removed_issued_row_breaks_the_chain(book: Path, capsys):
    closed(book, "2025-07")
    wb = openpyxl.load_workbook(book)
    wb["Issued"].delete_rows(4)
    wb.save(book)
    capsys.readouterr()
    assert run(book, "2025-08") == 1
    assert capsys.readouterr().out.startswith(
        "Issued!X2: the records of closed period 2025-07 do not hash to its seal: a row was "
        "added, removed or moved"
    )


def test_close_is_refused_twice_out_of_order_after_a_change_or_without_a_run(book, capsys):
    assert close(book, "2025-07") == 1
    assert "cannot close 2025-07: there is no Run Log" in capsys.readouterr().out
    assert run(book, "2025-07") == 0
    append_rows(book, "Usage", [("2025-07", "ENG", "vCPU-Hours", 1)])
    assert close(book, "2025-07") == 1
    assert "the inputs changed since the last run of 2025-07" in capsys.readouterr().out
    closed(book, "2025-07")
    assert close(book, "2025-07") == 1
    assert "cannot close 2025-07: period 2025-07 is already closed" in capsys.readouterr().out
    assert run(book, "2025-09") == 0
    assert close(book, "2025-09") == 1
    out = capsys.readouterr().out
    assert "period 2025-08 has data and is not closed: close 2025-08 first" in out
    set_cell(book, "Rules", "B2", 'CHARGE "Cloud" FOR "vCPU-Hours" AT')
    assert run(book, "2025-08") == 1
    capsys.readouterr()
    before = book.read_bytes()
    assert close(book, "2025-08") == 1
    assert "the workbook has errors (listed above): nothing can be closed" in (
        capsys.readouterr().out
    )
    assert book.read_bytes() == before


def test_a_year_closed_month_by_month_with_late_usage_ties_out(book: Path):
    late = {"2025-09": ("2025-08", "ENG"), "2025-12": ("2025-11", "BIO"),
            "2026-04": ("2026-02", "ITS")}  # fmt: skip
    for period in YEAR:
        if period in late:  # usage for a month already closed arrives
            month, dep = late[period]
            append_rows(book, "Usage", [(month, dep, "vCPU-Hours", 55.5), (month, dep, "Ports", 4)])
        closed(book, period)
    lines = issued(book)
    assert {r["Charge Period"] for r in lines if r["Line Type"] == "Correction"} == {
        "2025-08", "2025-11", "2026-02"
    }  # fmt: skip
    total = by_department(lines, ("Charge", "Reversal", "Correction"))
    fresh: dict[str, Decimal] = defaultdict(Decimal)
    for period in YEAR:
        for dep, amount in fresh_bills(book, period).items():
            fresh[dep] += amount
    assert total == dict(fresh)
    # Per charge period too: what stands for each month is what a fresh run bills it.
    for period in YEAR:
        standing = by_department(
            [r for r in lines if r["Charge Period"] == period], ("Charge", "Reversal", "Correction")
        )
        assert {d: a for d, a in standing.items() if a} == {
            d: a for d, a in fresh_bills(book, period).items() if a
        }


def test_the_run_log_keeps_every_run_and_close(book: Path, capsys):
    import getpass

    closed(book, "2025-07")
    set_cell(book, "Rules", "B2", 'CHARGE "Cloud" FOR "vCPU-Hours" AT')
    assert run(book, "2025-08") == 1
    set_cell(book, "Rules", "B2", 'CHARGE "Cloud" FOR "vCPU-Hours" AT 0.10')
    assert run(book, "2025-08") == 0
    before = book.read_bytes()
    assert run(book, "2025-07") == 1  # refused: leaves no trace, not even in the history
    assert book.read_bytes() == before
    grid = records(book, "Run Log")
    history = [
        (r["Command"], r["Period"], r["Status"], r["User"]) for r in grid if r["Run ID"] is not None
    ]
    user = getpass.getuser()
    assert history == [
        ("run", "2025-07", "OK", user),
        ("close", "2025-07", "OK", user),
        ("run", "2025-08", "FAILED", user),
        ("run", "2025-08", "OK", user),
    ]
    totals = [money(r["Total Billed"]) for r in grid if r["Run ID"] is not None]
    assert totals == [Decimal("1129.05"), Decimal("1129.05"), Decimal(0), Decimal("1133.38")]
    # The Key / Value lines are the last run's, as before.
    log = {r["Key"]: r["Value"] for r in grid if r["Key"] is not None}
    assert (log["Period"], log["Status"], log["Command"]) == ("2025-08", "OK", "run")


def test_after_a_close_the_run_log_lines_stay_the_reviewed_runs(book: Path):
    assert run(book, "2025-07") == 0
    reviewed = {r["Key"]: r["Value"] for r in records(book, "Run Log") if r["Key"]}
    assert close(book, "2025-07") == 0
    lines = {r["Key"]: r["Value"] for r in records(book, "Run Log") if r["Key"]}
    seal = records(book, "Issued")[0]["Hash"]
    assert lines == reviewed | {"Closed (UTC)": lines["Closed (UTC)"], "Closed Hash": seal}
    assert records(book, "Issued")[0]["Run ID"] == reviewed["Run ID"]
