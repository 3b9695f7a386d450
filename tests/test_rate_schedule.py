"""The Rates sheet checked as a schedule (docs/contract.md, Rates; issue 16 item 1).

Each case is a rate card a finance user really typed that used to bill a wrong
amount with exit 0. It edits a copy of the demo workbook with openpyxl (as Excel
or a script leaves the file) and pins the exit code of `costloop check` and
`costloop run`, the message and its cell. The demo's Rates sheet is
Metric (A), Rate (B), Pool (C), Unit (D), TierFrom (E), TierTo (F), EffectiveFrom (G);
rows 2-3 VM-Month 95 then 88 from 2026-01, rows 4-5 GB-Month 0.08 up to 10,000
and 0.04 above, from 2025-07.
"""

from __future__ import annotations

import shutil
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import openpyxl
import pytest

from costloop.cli import main
from costloop.engine.read.reader import read_book
from costloop.engine.workbook.memory import MemoryWorkbook
from costloop.engine.xlsx.file_workbook import FileWorkbook
from costloop.problems import Reason, Severity
from costloop.workbooks import demo_path

STORAGE = '"GB-Month" for "Storage"'
UNIT = "GB per month"


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    book = tmp_path / "demo.xlsx"
    shutil.copyfile(demo_path(), book)
    return book


def set_rates(path: Path, rows: list[tuple]) -> None:
    """Replace the Rates rows below the header (Metric, Rate, Pool, TierFrom, TierTo, From)."""
    wb = openpyxl.load_workbook(path)
    ws = wb["Rates"]
    ws.delete_rows(2, ws.max_row)
    for metric, rate, pool, low, high, effective in rows:
        ws.append([metric, rate, pool, UNIT if metric == "GB-Month" else "VM per month",
                   low, high, effective])  # fmt: skip
    wb.save(path)


VM = [
    ("VM-Month", 95, "Virtual Servers", None, None, "2025-07"),
    ("VM-Month", 88, "Virtual Servers", None, None, "2026-01"),
]


def storage(*tiers: tuple) -> list[tuple]:
    """The demo's VM rows, then GB-Month rows (rate, TierFrom, TierTo, EffectiveFrom) from row 4."""
    return VM + [("GB-Month", rate, "Storage", low, high, eff) for rate, low, high, eff in tiers]


def refused(path: Path, capsys, *lines: str) -> list[str]:
    """`check` and `run` both exit 1 printing every line; the run writes no Bills."""
    assert main(["check", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    for line in lines:
        assert line in out
    assert out[-1].endswith("0 warning(s)") and f"{len(lines)} error(s)" in out[-1]
    assert main(["run", str(path)]) == 1
    ran = capsys.readouterr().out.splitlines()
    for line in lines:
        assert line in ran
    wb = FileWorkbook(path)
    assert "Bills" not in wb.sheet_names()  # a failed run bills nothing
    check = {(r[1], r[2]): r[3] for r in wb.read_sheet("Rule Check")[1:]}
    for line in lines:
        cell, _, message = line.partition(": ")
        assert check[(cell, "ERROR")] == message
    return out


def test_only_the_top_tier_repriced_names_the_rows_to_copy_forward(demo: Path, capsys):
    # From 2026-01 the user typed only the new top tier: the first 10,000 GB would bill nothing.
    set_rates(
        demo,
        storage((0.08, 0, 10000, "2025-07"), (0.04, 10000, None, "2025-07"),
                (0.035, 10000, None, "2026-01")),
    )  # fmt: skip
    refused(
        demo,
        capsys,
        f"Rates!G6: a new EffectiveFrom replaces the whole schedule, and {STORAGE} from "
        f"2026-01 prices only from 10000 up, so units below 10000 would be billed nothing; "
        f"copy the tier of 2025-07 forward with EffectiveFrom 2026-01 (and a new Rate where it "
        f"changed): Rates!A4:G4 (0 to 10000 at 0.08)",
    )


def test_a_three_tier_card_repriced_at_the_top_names_both_lower_rows(demo: Path, capsys):
    set_rates(
        demo,
        storage((0.08, 0, 1000, "2025-07"), (0.06, 1000, 10000, "2025-07"),
                (0.04, 10000, None, "2025-07"), (0.03, 10000, None, "2026-01")),
    )  # fmt: skip
    refused(
        demo,
        capsys,
        f"Rates!G7: a new EffectiveFrom replaces the whole schedule, and {STORAGE} from "
        f"2026-01 prices only from 10000 up, so units below 10000 would be billed nothing; "
        f"copy the tiers of 2025-07 forward with EffectiveFrom 2026-01 (and a new Rate where "
        f"it changed): Rates!A4:G4 (0 to 1000 at 0.08), Rates!A5:G5 (1000 to 10000 at 0.06)",
    )


def test_the_tiers_copied_forward_bill_the_new_rates_from_their_date(demo: Path, capsys):
    # The fix of the case above: the whole schedule repriced from 2026-01.
    set_rates(
        demo,
        storage((0.08, 0, 10000, "2025-07"), (0.04, 10000, None, "2025-07"),
                (0.07, 0, 10000, "2026-01"), (0.035, 10000, None, "2026-01")),
    )  # fmt: skip
    assert main(["check", str(demo)]) == 0
    out = capsys.readouterr().out.splitlines()
    # The demo's one warning only (R13 leaves Marketplace to Procurement).
    assert [line for line in out if line.startswith("warning")] == [
        line for line in out if 'with Service "Marketplace"' in line
    ]
    assert out[-1].endswith("0 error(s), 1 warning(s)")
    assert main(["run", str(demo)]) == 0
    march = storage_lines(demo)
    # CCR used 100,835.18 GB-months: 10,000 x 0.07 = 700.00; 90,835.18 x 0.035 = 3,179.2313.
    assert march["CCR"] == [
        (Decimal("10000"), Decimal("0.07"), Decimal("700")),
        (Decimal("90835.18"), Decimal("0.035"), Decimal("3179.23")),
    ]
    assert_lines_priced(march, {Decimal("0.07"), Decimal("0.035")})
    # December is before the new date: the 2025-07 schedule, whole.
    assert main(["run", str(demo), "--period", "2025-12"]) == 0
    assert_lines_priced(storage_lines(demo), {Decimal("0.08"), Decimal("0.04")})


def storage_lines(path: Path) -> dict[str, list[tuple[Decimal, Decimal, Decimal]]]:
    rows = FileWorkbook(path).read_sheet("Bills")
    header = rows[0]
    at = {name: header.index(name) for name in ("Department", "Pool", "Quantity", "Rate", "Amount")}
    lines: dict[str, list[tuple[Decimal, Decimal, Decimal]]] = {}
    for row in rows[1:]:
        if row[at["Pool"]] == "Storage":
            lines.setdefault(row[at["Department"]], []).append(
                tuple(Decimal(repr(row[at[k]])) for k in ("Quantity", "Rate", "Amount"))
            )
    return lines


def assert_lines_priced(lines: dict, rates: set[Decimal]) -> None:
    """Every Storage line at one of ``rates``, its amount quantity x rate half-up, tiers split."""
    assert lines
    low, high = sorted(rates, reverse=True)
    for department, bands in lines.items():
        assert {rate for _, rate, _ in bands} <= rates, department
        for quantity, rate, amount in bands:
            cents = (quantity * rate).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
            assert amount == cents, (department, quantity, rate)
        assert bands[0][1] == low and bands[0][0] <= 10000
        if len(bands) == 2:
            assert bands[0][0] == 10000 and bands[1][1] == high


def test_a_flat_row_beside_the_tiers_is_an_error_at_its_tierfrom(demo: Path, capsys):
    set_rates(
        demo,
        storage((0.08, 0, 10000, "2025-07"), (0.04, 10000, None, "2025-07"),
                (0.05, None, None, "2025-07")),
    )  # fmt: skip
    refused(
        demo,
        capsys,
        f"Rates!E6: a flat rate (no TierFrom or TierTo) beside the tier rows of {STORAGE} from "
        f"2025-07: every unit would be billed at 0.05 and again at the tiers; give this row "
        f"its TierFrom and TierTo, or delete it",
    )


def test_overlapping_tiers_give_the_tierfrom_to_type(demo: Path, capsys):
    set_rates(demo, storage((0.08, 0, 10000, "2025-07"), (0.04, 8000, None, "2025-07")))
    refused(
        demo,
        capsys,
        f"Rates!E5: TierFrom should be 10000, where the tier above ends (Rates!F4): units from "
        f"8000 to 10000 of {STORAGE} from 2025-07 would be billed twice",
    )


def test_the_price_list_layout_1_to_1000_then_1001_gets_the_exact_fix(demo: Path, capsys):
    # "1–1,000 / 1,001–10,000 / 10,001+": the units in the gaps would be free.
    set_rates(
        demo,
        storage((0.08, 1, 1000, "2025-07"), (0.06, 1001, 10000, "2025-07"),
                (0.04, 10001, None, "2025-07")),
    )  # fmt: skip
    refused(
        demo,
        capsys,
        f"Rates!E4: TierFrom should be 0, where the first tier starts: tiers count from 0, not "
        f"1, so units from 0 to 1 of {STORAGE} from 2025-07 would be billed nothing",
        f"Rates!E5: TierFrom should be 1000, where the tier above ends (Rates!F4): a tier "
        f"starts where the tier above ends, not at the next whole number, so units from 1000 "
        f"to 1001 of {STORAGE} from 2025-07 would be billed nothing",
        f"Rates!E6: TierFrom should be 10000, where the tier above ends (Rates!F5): a tier "
        f"starts where the tier above ends, not at the next whole number, so units from 10000 "
        f"to 10001 of {STORAGE} from 2025-07 would be billed nothing",
    )


def test_the_layout_0_to_999_then_1000_asks_for_the_rounder_tierto(demo: Path, capsys):
    # "0–999 / 1,000–9,999 / 10,000+" meant the limits 1000 and 10000: TierTo is to change.
    set_rates(
        demo,
        storage((0.08, 0, 999, "2025-07"), (0.06, 1000, 9999, "2025-07"),
                (0.04, 10000, None, "2025-07")),
    )  # fmt: skip
    refused(
        demo,
        capsys,
        f"Rates!F4: TierTo should be 1000, where the tier below starts (Rates!E5): a tier ends "
        f"where the next one starts, not one unit before it, so units from 999 to 1000 of "
        f"{STORAGE} from 2025-07 would be billed nothing",
        f"Rates!F5: TierTo should be 10000, where the tier below starts (Rates!E6): a tier "
        f"ends where the next one starts, not one unit before it, so units from 9999 to 10000 "
        f"of {STORAGE} from 2025-07 would be billed nothing",
    )


def test_the_first_tier_forgotten(demo: Path, capsys):
    set_rates(demo, storage((0.06, 1000, 10000, "2025-07"), (0.04, 10000, None, "2025-07")))
    refused(
        demo,
        capsys,
        f"Rates!E4: the tiers of {STORAGE} from 2025-07 start at TierFrom 1000, so the first "
        f"1000 units are billed nothing; add the first tier, from TierFrom 0 to TierTo 1000",
    )


def test_tierto_below_tierfrom_is_the_only_message_for_its_schedule(demo: Path, capsys):
    # 5000 typed for 50000: where the next tier should start is unknown, so no gap is guessed.
    set_rates(
        demo,
        storage((0.08, 0, 10000, "2025-07"), (0.06, 10000, 5000, "2025-07"),
                (0.04, 50000, None, "2025-07")),
    )  # fmt: skip
    refused(
        demo,
        capsys,
        f"Rates!F5: TierTo 5000 is not above TierFrom 10000, so this tier of {STORAGE} from "
        f"2025-07 prices nothing; TierTo is where the tier ends, above its TierFrom",
    )


def test_two_flat_rates_on_one_date_name_both(demo: Path, capsys):
    set_rates(
        demo,
        [*VM, ("VM-Month", 90, "Virtual Servers", None, None, "2026-01"),
         ("GB-Month", 0.08, "Storage", 0, 10000, "2025-07"),
         ("GB-Month", 0.04, "Storage", 10000, None, "2025-07")],
    )  # fmt: skip
    refused(
        demo,
        capsys,
        'Rates!B4: two flat rates for "VM-Month" for "Virtual Servers" from 2026-01: Rates!B3 '
        "(88) and Rates!B4 (90); only the first would be billed — delete the row that is wrong",
    )


def test_check_reports_every_schedule_problem_at_once(demo: Path, capsys):
    set_rates(
        demo,
        [*VM, ("VM-Month", 90, "Virtual Servers", None, None, "2026-01"),
         ("GB-Month", 0.08, "Storage", 0, 10000, "2025-07"),
         ("GB-Month", 0.04, "Storage", 8000, None, "2025-07"),
         ("GB-Month", 0.05, "Storage", None, None, "2025-07"),
         ("GB-Month", 0.035, "Storage", 10000, None, "2026-01")],
    )  # fmt: skip
    refused(
        demo,
        capsys,
        'Rates!B4: two flat rates for "VM-Month" for "Virtual Servers" from 2026-01: Rates!B3 '
        "(88) and Rates!B4 (90); only the first would be billed — delete the row that is wrong",
        f"Rates!E7: a flat rate (no TierFrom or TierTo) beside the tier rows of {STORAGE} from "
        f"2025-07: every unit would be billed at 0.05 and again at the tiers; give this row "
        f"its TierFrom and TierTo, or delete it",
        f"Rates!E6: TierFrom should be 10000, where the tier above ends (Rates!F5): units from "
        f"8000 to 10000 of {STORAGE} from 2025-07 would be billed twice",
        f"Rates!G8: a new EffectiveFrom replaces the whole schedule, and {STORAGE} from "
        f"2026-01 prices only from 10000 up, so units below 10000 would be billed nothing; "
        f"copy the tier of 2025-07 forward with EffectiveFrom 2026-01 (and a new Rate where it "
        f"changed): Rates!A5:G5 (0 to 10000 at 0.08)",
    )


def test_a_scenario_rate_card_is_checked_on_its_own_sheet(demo: Path, capsys):
    wb = openpyxl.load_workbook(demo)
    copy = wb.copy_worksheet(wb["Rates"])
    copy.title = "Rates@High"
    copy["E5"] = 10001
    wb.save(demo)
    assert main(["run", str(demo), "--scenario", "High"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert (
        f"Rates@High!E5: TierFrom should be 10000, where the tier above ends (Rates@High!F4): a "
        f"tier starts where the tier above ends, not at the next whole number, so units from "
        f"10000 to 10001 of {STORAGE} from 2025-07 would be billed nothing"
    ) in out
    assert main(["run", str(demo)]) == 0  # the base card is whole


# --- the rest of the schedule rules, read from a workbook in memory ------------------------


def book_with_rates(rows: list[list[object]], header=None) -> MemoryWorkbook:
    """A small valid workbook whose Rates sheet holds ``rows``."""
    header = header or ["Metric", "Rate", "Pool", "TierFrom", "TierTo", "EffectiveFrom"]
    return MemoryWorkbook(
        {
            "Settings": [["Key", "Value"], ["Period", "2026-03"]],
            "Departments": [["Department", "Fund"], ["ADM", "General"], ["FIN", "General"]],
            "Budget": [["Period", "Pool", "Amount"], ["2026-03", "Storage", 100]],
            "Usage": [["Period", "Department", "Metric", "Quantity"],
                      ["2026-03", "ADM", "GB", 2500]],
            "Rates": [header, *rows],
            "Rules": [["ID", "Rule"], ["R1", 'CHARGE "Storage" FOR "GB" AT RATE CARD']],
        }
    )  # fmt: skip


def schedule_problems(rows, header=None) -> list[tuple[str, str, str]]:
    book, problems = read_book(book_with_rates(rows, header))
    assert book is not None
    return [
        (p.severity.value, p.where, p.message)
        for p in problems
        if p.code is Reason.RATE_SCHEDULE or p.is_error
    ]


def test_an_open_ended_tier_below_another_bills_twice():
    assert schedule_problems(
        [["GB", 0.10, "", 0, None, None], ["GB", 0.05, "", 1000, None, None]]
    ) == [
        (
            "ERROR",
            "Rates!E2",
            "TierTo is blank (no upper limit), but the tier at Rates!D3 starts at 1000: only "
            'the top tier of "GB" (blank EffectiveFrom) may be open-ended, so units above 1000 '
            "would be billed twice; type TierTo 1000 here",
        )
    ]


def test_a_capped_top_tier_leaves_the_units_above_it_free():
    assert schedule_problems([["GB", 0.10, "", 0, 1000, "2025-07"]]) == [
        (
            "ERROR",
            "Rates!E2",
            'the top tier of "GB" from 2025-07 ends at TierTo 1000, so units above 1000 would '
            "be billed nothing; leave TierTo blank on the top tier (no upper limit), or add a "
            "tier from 1000 at Rate 0 if they are free",
        )
    ]
    # Free units above a cap, said so: a top tier at Rate 0.
    assert (
        schedule_problems(
            [["GB", 0.10, "", 0, 1000, "2025-07"], ["GB", 0, "", 1000, None, "2025-07"]]
        )
        == []
    )


def test_a_new_date_that_drops_the_top_tier_names_it():
    rows = [
        ["GB", 0.10, "Storage", 0, 1000, "2025-07"],
        ["GB", 0.05, "Storage", 1000, None, "2025-07"],
        ["GB", 0.09, "Storage", 0, 1000, "2026-01"],
    ]
    assert schedule_problems(rows) == [
        (
            "ERROR",
            "Rates!F4",
            'a new EffectiveFrom replaces the whole schedule, and "GB" for "Storage" from '
            "2026-01 prices only up to 1000, so units above 1000 would be billed nothing; copy "
            "the tier of 2025-07 forward with EffectiveFrom 2026-01 (and a new Rate where it "
            "changed): Rates!A3:F3 (1000 up at 0.05)",
        )
    ]


def test_a_tier_typed_twice_is_an_error_and_a_flat_rate_typed_twice_a_warning():
    assert schedule_problems(
        [
            ["GB", 0.10, "", 0, 1000, None],
            ["GB", 0.05, "", 1000, None, None],
            ["GB", 0.10, "", None, 1000, None],  # TierFrom blank is 0: the same band
            ["GB", 0.06, "", 1000, None, None],
            ["TB", 12, "", None, None, "2025-07"],
            ["TB", 12, "", None, None, "2025-07"],
        ]
    ) == [
        (
            "ERROR",
            "Rates!D4",
            'the tier 0 to 1000 of "GB" (blank EffectiveFrom) is typed twice (also in row 2): '
            "its units would be billed twice; delete one of the rows",
        ),
        (
            "ERROR",
            "Rates!D5",
            'two rates for the tier 1000 up of "GB" (blank EffectiveFrom): Rates!B3 (0.05) and '
            "Rates!B5 (0.06): its units would be billed at both; delete the row that is wrong",
        ),
        (
            "WARNING",
            "Rates!B7",
            'the flat rate 12 of "TB" from 2025-07 is typed twice (also in Rates!B6); delete one '
            "of the rows",
        ),
    ]


def test_valid_cards_say_nothing():
    rows = [
        ["GB", 0.10, "", None, 1000, None],  # a blank first TierFrom is 0
        ["GB", 0.05, "", 1000, None, None],
        ["GB", 0.08, "", None, None, "2025-09"],  # tiered before, flat now: a whole schedule
        ["GB", 0.125, "Storage", 0, 0.5, "2025-07"],  # decimal limits
        ["GB", 0.1, "Storage", 0.5, 2000.25, "2025-07"],
        ["GB", 0.0725, "Storage", 2000.25, None, "2025-07"],
        ["GB", 0.12, "Storage", 0, 2000.25, "2026-01"],  # the whole card repriced, fewer tiers
        ["GB", 0.07, "Storage", 2000.25, None, "2026-01"],
        ["gb ", 0.2, "storage", None, None, "2027-01"],  # same names, any spelling
    ]
    assert schedule_problems(rows) == []


def test_the_columns_may_be_in_any_order_and_the_cells_follow_them():
    header = ["EffectiveFrom", "TierTo", "Metric", "TierFrom", "Rate"]
    rows = [["2025-07", 1000, "GB", 0, 0.1], ["2025-07", None, "GB", 1001, 0.05]]
    assert schedule_problems(rows, header) == [
        (
            "ERROR",
            "Rates!D3",
            "TierFrom should be 1000, where the tier above ends (Rates!B2): a tier starts where "
            "the tier above ends, not at the next whole number, so units from 1000 to 1001 of "
            '"GB" from 2025-07 would be billed nothing',
        )
    ]


def test_a_row_left_out_for_its_own_error_holds_back_its_metrics_schedule():
    # The 0-1000 row has a Rate of "n/a": it is reported there, and the schedule, read
    # without it, does not get a false "start at 0" on top.
    _, problems = read_book(
        book_with_rates(
            [
                ["GB", "n/a", "", 0, 1000, None],
                ["GB", 0.05, "", 1000, None, None],
                ["TB", 1, "", 5, None, None],
            ]
        )
    )
    assert [(p.severity, p.where, p.message) for p in problems] == [
        (Severity.ERROR, "Rates!B2", 'Rate must be a non-negative number, got "n/a"'),
        (
            Severity.ERROR,
            "Rates!D4",
            'the tiers of "TB" (blank EffectiveFrom) start at TierFrom 5, so the first 5 units '
            "are billed nothing; add the first tier, from TierFrom 0 to TierTo 5",
        ),
    ]


def test_a_new_date_whose_hole_the_old_tiers_do_not_fill_asks_for_a_new_tier():
    # The old 1000 tier straddles the new schedule's start at 500: copying it would overlap.
    rows = [
        ["GB", 0.10, "", 0, 1000, "2025-07"],
        ["GB", 0.05, "", 1000, None, "2025-07"],
        ["GB", 0.04, "", 500, None, "2026-01"],
    ]
    assert schedule_problems(rows) == [
        (
            "ERROR",
            "Rates!D4",
            'the tiers of "GB" from 2026-01 start at TierFrom 500, so the first 500 units are '
            "billed nothing; add the first tier, from TierFrom 0 to TierTo 500 (a new "
            "EffectiveFrom replaces the whole schedule: from 2026-01 the rows of 2025-07 no "
            "longer apply)",
        )
    ]
