"""`costloop demo` shows a closed month, its correction and a credit memo (docs/audit.md).

The demo it writes is the packaged demo with February 2026 closed (its Issued sheet,
made by `costloop close` at build time), a February meter reading that arrived after
the close and two disputes of February, one accepted. Billing March, the run carries
February's reversal and correction lines and the credit memo, and February is refused.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from pathlib import Path

from costloop.cli import main
from costloop.engine.xlsx.file_workbook import FileWorkbook
from costloop.workbooks import closed_demo_path
from costloop.workbooks.demo_data import LATE_USAGE

PLAIN_DEMO_TOTAL = Decimal("1073295.02")  # tests/golden/demo/run_log.tsv: the plain demo's March


def rows(book: Path, sheet: str) -> list[dict]:
    grid = FileWorkbook(book).read_sheet(sheet)
    return [dict(zip(grid[0], r, strict=True)) for r in grid[1:]]


def money(value) -> Decimal:
    return Decimal(repr(value)).quantize(Decimal("0.01"))


def test_costloop_demo_shows_the_closed_month_its_correction_and_the_credit_memo(
    tmp_path: Path, capsys
):
    assert main(["demo", str(tmp_path)]) == 0
    out = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("warning")]
    assert out[:4] == [
        "Period 2026-03: billed 1,073,175.02 to 25 department(s) in 249 bill line(s)",
        "Closed periods: 2026-02 (the Issued sheet)",
        "Corrections of 2026-02: 30 reversal and correction line(s), net 0.00",
        "Credit memos: 1 (D-2026-017), -120.00",
    ]
    book = tmp_path / "costloop-demo.xlsx"
    bills = rows(book, "Bills")
    assert Counter(r["Line Type"] for r in bills) == {
        "Charge": 218, "Reversal": 15, "Correction": 15, "Credit memo": 1,
    }  # fmt: skip
    changed = [r for r in bills if r["Line Type"] in ("Reversal", "Correction")]
    assert {(r["Pool"], r["Charge Period"], r["Period"]) for r in changed} == {
        ("Data Center", "2026-02", "2026-03")
    }
    # The late reading is ENG's: its Data Center share of February grows, the others' shrink,
    # and the pool's February cost is unchanged, so the correction nets to 0.00.
    eng = [money(r["Amount"]) for r in changed if r["Department"] == "ENG"]
    assert sum(eng) > 0 and sum(money(r["Amount"]) for r in changed) == 0
    reversed_eng = next(
        r for r in changed if r["Department"] == "ENG" and r["Line Type"] == "Reversal"
    )
    corrected_eng = next(
        r for r in changed if r["Department"] == "ENG" and r["Line Type"] == "Correction"
    )
    assert corrected_eng["Quantity"] + reversed_eng["Quantity"] == LATE_USAGE[0][3] == 2160
    [memo] = [r for r in bills if r["Line Type"] == "Credit memo"]
    assert (memo["Department"], memo["Pool"], money(memo["Amount"]), memo["Rule"]) == (
        "ENG", "Cloud", Decimal("-120.00"), "D-2026-017",
    )  # fmt: skip
    assert sum(money(r["Amount"]) for r in bills) == PLAIN_DEMO_TOTAL - 120
    log = {r["Key"]: r["Value"] for r in rows(book, "Run Log") if r["Key"]}
    assert log["Open Disputes"] == 1 and log["Closed Periods"] == "2026-02"

    before = book.read_bytes()
    assert main(["run", str(book), "--period", "2026-02"]) == 1
    assert book.read_bytes() == before
    assert capsys.readouterr().out.startswith("--period: period 2026-02 is closed (issued ")


def test_the_closed_demo_is_sealed_as_costloop_closed_it():
    wb = FileWorkbook(closed_demo_path())
    assert "Issued" in wb.owned_sheets()
    issued = rows(closed_demo_path(), "Issued")
    assert {r["Closed Period"] for r in issued} == {"2026-02"}
    assert {r["Run ID"] for r in issued} == {"demo0226run1"}
    assert {r["Closed (UTC)"] for r in issued} == {"2026-03-03 17:00:00"}
