"""Disputes and credit memos: an accepted dispute credits once, a rejected one nothing."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from ledger_books import append_rows, build, money, records

from costloop.cli import main

HEADER = ("Dispute", "Department", "Period", "Pool", "Reason", "Amount", "Status", "Resolution",
          "Note", "Raised")  # fmt: skip


@pytest.fixture
def book(tmp_path: Path) -> Path:
    path = build(tmp_path / "ledger.xlsx")
    assert main(["run", str(path), "--period", "2025-07"]) == 0
    assert main(["close", str(path), "--period", "2025-07"]) == 0
    return path


def disputes(path: Path, *rows: tuple) -> None:
    wb = openpyxl.load_workbook(path)
    if "Disputes" in wb.sheetnames:
        ws = wb["Disputes"]
    else:
        ws = wb.create_sheet("Disputes")
        ws.append(HEADER)
    for row in rows:
        ws.append(row)
    wb.save(path)


def run(path: Path, period: str) -> int:
    return main(["run", str(path), "--period", period])


def credit_lines(path: Path, sheet: str = "Bills") -> list[dict]:
    rows = records(path, sheet)
    if sheet == "Issued":
        rows = [r for r in rows if r["Record"] == "Bill"]
    return [r for r in rows if r["Line Type"] == "Credit memo"]


def test_an_accepted_dispute_credits_once_and_only_once_across_reruns(book: Path):
    disputes(book, ("D-1", "ENG", "2025-07", "Cloud", "Rate", 20, "Accepted", 15, "rate misread"))
    assert run(book, "2025-08") == 0
    assert run(book, "2025-08") == 0  # a rerun of the open period: still one credit
    lines = credit_lines(book)
    assert [
        (r["Period"], r["Department"], r["Pool"], money(r["Amount"]), r["Rule"], r["Charge Period"])
        for r in lines
    ] == [("2025-08", "ENG", "Cloud", Decimal("-15.00"), "D-1", "2025-07")]
    journal = [r for r in records(book, "Journal") if r["Entry"].endswith("-DD-1")]
    assert {r["Memo"] for r in journal} == {
        "Credit memo D-1 (Rate) for 2025-07 Cloud, crediting CB-2025-07-0002 — rate misread"
    }
    by_fund: dict[str, Decimal] = defaultdict(Decimal)
    for r in journal:
        by_fund[r["Fund"]] += money(r["Debit"]) - money(r["Credit"])
    assert by_fund == {"General": Decimal(0), "IT": Decimal(0)}
    # The credit is a credit: the department's fund is credited its expense back.
    expense = next(r for r in journal if r["Account"] == "6400")
    assert money(expense["Credit"]) == Decimal("15.00") and expense["Debit"] is None
    recovery = {(r["Period"], r["Pool"]): r for r in records(book, "Recovery")}
    assert money(recovery[("2025-08", "Cloud")]["Recovered"]) == Decimal("130.05") - 15

    assert main(["close", str(book), "--period", "2025-08"]) == 0
    assert len(credit_lines(book, "Issued")) == 1
    assert run(book, "2025-09") == 0
    assert credit_lines(book) == []  # issued once: never credited again
    assert main(["close", str(book), "--period", "2025-09"]) == 0
    assert run(book, "2025-10") == 0
    assert credit_lines(book) == []
    assert len(credit_lines(book, "Issued")) == 1


def test_a_rejected_or_open_dispute_credits_nothing(book: Path, capsys):
    disputes(
        book,
        ("D-2", "BIO", "2025-07", "Network", "Allocation", 50, "Rejected", 10, ""),
        ("D-3", "ENG", "2025-07", "Network", "Volume", 40, "Open", None, ""),
    )
    capsys.readouterr()
    assert run(book, "2025-08") == 0
    assert credit_lines(book) == []
    out = capsys.readouterr().out
    assert (
        "warning: Disputes!H2: dispute D-2 is Rejected: it credits nothing, so its Resolution "
        "10 is ignored"
    ) in out
    log = {r["Key"]: r["Value"] for r in records(book, "Run Log")}
    assert log["Open Disputes"] == 1
    assert log["Credit memo Lines"] == 0


def test_a_resolution_larger_than_the_bill_is_an_error_at_its_cell(book: Path, capsys):
    disputes(book, ("D-4", "ENG", "2025-07", "Cloud", "Duplicate", 150, "Accepted", 150, ""))
    capsys.readouterr()
    assert run(book, "2025-08") == 1
    assert capsys.readouterr().out.startswith(
        "Disputes!H2: dispute D-4 credits 150 but ENG was billed 100.00 for Cloud in 2025-07; "
        "a credit cannot exceed the bill"
    )


def test_disputes_that_together_credit_more_than_the_bill_are_an_error(book: Path, capsys):
    """Each fits the 100.00 billed on its own; the second would credit the bill below zero."""
    disputes(
        book,
        ("D-8", "ENG", "2025-07", "Cloud", "Rate", 60, "Accepted", 60, ""),
        ("D-9", "ENG", "2025-07", "Cloud", "Volume", 50, "Accepted", 50, ""),
        ("D-10", "ENG", "2025-07", "Cloud", "Other", 40, "Accepted", 40, ""),
    )
    capsys.readouterr()
    assert run(book, "2025-08") == 1
    out = capsys.readouterr().out
    assert (
        "Disputes!H3: dispute D-9 credits 50, but D-8 (60) already credits 60 of the 100.00 ENG "
        "was billed for Cloud in 2025-07; together they cannot exceed the bill: lower this "
        "Resolution to at most 40.00"
    ) in out
    assert "D-10" not in out  # 60 + 40 fits: only the dispute that overdraws is named


def test_a_dispute_must_name_an_issued_bill_and_a_known_reason(book: Path, capsys):
    disputes(
        book,
        ("D-5", "ENG", "2025-08", "Cloud", "Rate", 5, "Accepted", 5, ""),
        ("D-6", "ENG", "2025-07", "Cloud", "Price", 5, "Open", None, ""),
        ("D-5", "XYZ", "2025-07", "Cloud", "Rate", 5, "Open", None, ""),
    )
    capsys.readouterr()
    assert run(book, "2025-08") == 1
    out = capsys.readouterr().out
    assert (
        "Disputes!C2: dispute D-5 is about 2025-08, which is not closed: a dispute credits an "
        "issued bill (close 2025-08 first)"
    ) in out
    assert (
        'Disputes!E3: Reason must be one of Rate, Volume, Allocation, Duplicate, Other, got "Price"'
    ) in out
    assert "Disputes!A4: the Dispute id D-5 is used twice (first in Disputes!A2)" in out
    assert 'Disputes!B4: "XYZ" is not a department in Departments' in out


def test_a_dispute_raised_after_the_window_is_a_warning(book: Path, capsys):
    append_rows(book, "Settings", [("DisputeDays", 10)])
    late = dt.date.today() + dt.timedelta(days=11)
    disputes(book, ("D-7", "BIO", "2025-07", "Cloud", "Volume", 5, "Accepted", 5, "", late))
    capsys.readouterr()
    assert run(book, "2025-08") == 0
    assert (
        f"warning: Disputes!J2: dispute D-7 was raised 11 days after 2025-07 was issued "
        f"({dt.datetime.now(dt.UTC).date()}), past the 10-day window (Settings DisputeDays)"
    ) in capsys.readouterr().out
    assert len(credit_lines(book)) == 1


def test_close_is_refused_when_the_disputes_changed_since_the_run(book: Path, capsys):
    assert run(book, "2025-08") == 0
    disputes(book, ("D-8", "ENG", "2025-07", "Cloud", "Rate", 1, "Accepted", 1, ""))
    capsys.readouterr()
    assert main(["close", str(book), "--period", "2025-08"]) == 1
    assert "the Disputes sheet changed since the last run of 2025-08" in capsys.readouterr().out
