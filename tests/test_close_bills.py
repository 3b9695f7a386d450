"""What a department sees after a close: corrections, credits, open disputes, why it changed."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from ledger_books import append_rows, build, money, records
from test_disputes import disputes

from costloop.bills import make_bills
from costloop.cli import main


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    folder = tmp_path_factory.mktemp("closed-bills")
    book = build(folder / "ledger.xlsx")
    assert main(["run", str(book), "--period", "2025-07"]) == 0
    assert main(["close", str(book), "--period", "2025-07"]) == 0
    append_rows(book, "Usage", [("2025-07", "ENG", "vCPU-Hours", 100)])
    disputes(
        book,
        ("D-1", "ENG", "2025-07", "Cloud", "Rate", 20, "Accepted", 15, "rate misread"),
        ("D-2", "BIO", "2025-07", "Network", "Allocation", 30, "Open", None, "ports"),
    )
    assert main(["run", str(book), "--period", "2025-08"]) == 0
    report = make_bills(book, folder / "bills")
    assert report.ok, [p.render() for p in report.problems]
    return book, {b.statement.department: b.workbook for b in report.bills}


def summary(path: Path) -> list[list[object]]:
    ws = openpyxl.load_workbook(path, data_only=True)["Summary"]
    return [list(row) for row in ws.iter_rows(values_only=True)]


def section(rows: list[list[object]], title: str) -> list[list[object]]:
    """The rows of a Summary section, below its title and header, up to the blank row."""
    start = next(i for i, r in enumerate(rows) if r[0] == title) + 2
    end = next((i for i in range(start, len(rows)) if rows[i][0] is None), len(rows))
    return rows[start:end]


def test_the_bill_shows_its_corrections_and_credits_apart(made):
    book, bills = made
    rows = summary(bills["ENG"])
    corrections = section(rows, "Corrections to earlier periods")
    assert [(r[0], r[1], r[2], r[3], money(r[4])) for r in corrections] == [
        ("Cloud", "2025-07", "Reversal", -1000, Decimal("-100.00")),
        ("Cloud", "2025-07", "Correction", 1100, Decimal("110.00")),
        ("Total corrections to earlier periods", None, None, None, Decimal("10.00")),
    ]
    credits = section(rows, "Credits")
    assert [(r[0], r[1], r[2], money(r[4]), r[5]) for r in credits] == [
        ("Cloud", "2025-07", "Credit memo", Decimal("-15.00"), "D-1"),
        ("Total credits", None, None, Decimal("-15.00"), None),
    ]
    # The bill's total is everything billed now, as in the main workbook's Bills sheet.
    written = sum(money(r["Amount"]) for r in records(book, "Bills") if r["Department"] == "ENG")
    total = next(r[1] for r in rows if r[0] == "Total charges")
    assert money(total) == written


def test_why_it_changed_splits_volume_rate_and_share(made):
    _, bills = made
    why = {r[0]: [money(v) for v in r[1:6]] for r in section(summary(bills["ENG"]),
           "Why it changed (Jul 2025 to Aug 2025)")}  # fmt: skip
    # Cloud: 1,000 then 1,010 vCPU-Hours at 0.10: the whole change is volume.
    assert why["Cloud"] == [Decimal("100.00"), Decimal("101.00"), Decimal("1.00"), 0, 0]
    # Network: the pool went from 1,000.00 to 1,003.33 (ENG's share then 63.83%: 2.13 of it);
    # the rest is ENG's share moving (BIO used 13 ports, not 12).
    last, this, volume, rate, share = why["Network"]
    assert (last, volume, rate) == (Decimal("638.30"), 0, Decimal("2.13"))
    assert share == this - last - rate and share < 0
    for values in why.values():
        assert values[1] - values[0] == sum(values[2:])


def test_allocated_lines_show_the_pool_total_and_the_share(made):
    _, bills = made
    ws = openpyxl.load_workbook(bills["ENG"], data_only=True)["Bills"]
    grid = list(ws.iter_rows(values_only=True))
    lines = [dict(zip(grid[0], r, strict=True)) for r in grid[1:]]
    network = next(r for r in lines if r["Pool"] == "Network" and r["Line Type"] == "Charge")
    assert money(network["Pool Total"]) == Decimal("1003.33")
    assert network["Share"] == pytest.approx(float(money(network["Amount"]) / Decimal("1003.33")),
                                             abs=1e-4)  # fmt: skip
    cloud = next(r for r in lines if r["Pool"] == "Cloud" and r["Line Type"] == "Charge")
    assert cloud["Pool Total"] is None and cloud["Share"] is None  # a rate line, not a share


def test_an_open_dispute_is_shown_on_its_departments_bill_only(made):
    _, bills = made
    assert section(summary(bills["BIO"]), "Open disputes") == [
        ["D-2", "2025-07", "Network", "Allocation", 30, "ports"]
    ]
    assert not any(r[0] == "Open disputes" for r in summary(bills["ENG"]))
