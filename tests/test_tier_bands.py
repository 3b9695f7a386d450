"""Which band and rate date a bill's tier line shows (engine/pipeline/bands.py)."""

from __future__ import annotations

from decimal import Decimal

import pandas as pd

from costloop.engine.pipeline.bands import tier_lines
from costloop.rules import parse_rules
from costloop.rules.ast import RuleCell

D = Decimal

RATES = pd.DataFrame(
    {
        "_row": [2, 3, 4, 5, 6],
        "Metric": ["GB-Month", "GB-Month", "GB-Month", "GB-Month", "VM-Month"],
        "Pool": ["Storage"] * 4 + [None],
        "Rate": [D("0.08"), D("0.04"), D("0.07"), D("0.03"), D("95")],
        "TierFrom": [0, 10000, 0, 2500.5, None],
        "TierTo": [10000, None, 2500.5, None, None],
        "EffectiveFrom": ["2025-07", "2025-07", "2026-02", "2026-02", "2025-07"],
    }
)


def rules() -> dict:
    parsed, problems = parse_rules(
        [
            RuleCell("R1", "Rules!B2", 'CHARGE "Storage" FOR "GB-Month" AT RATE CARD'),
            RuleCell(
                "R2", "Rules!B3", 'CHARGE "Cloud" FOR "vCPU" TIERED FIRST 10 AT 2, ABOVE AT 1'
            ),
            RuleCell("R3", "Rules!B4", 'CHARGE "VM" FOR "VM-Month" AT RATE CARD'),
            RuleCell("R4", "Rules!B5", 'CHARGE "Pass" FOR "Cost" AT 1.05'),
        ]
    )
    assert problems == []
    return {r.rule_id: r for r in parsed}


def lines(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(
        rows, columns=["Department", "Rule", "Line Type", "Period", "Charge Period", "Rate"]
    )


def test_each_line_takes_its_band_in_turn_and_the_schedule_in_force_dates_it():
    bands, dates = tier_lines(
        RATES,
        rules(),
        lines(
            [
                ("ENG", "R1", "Charge", "2026-03", "2026-03", D("0.07")),
                ("ENG", "R1", "Charge", "2026-03", "2026-03", D("0.03")),
                ("ENG", "R2", "Charge", "2026-03", "2026-03", D("2")),
                ("ENG", "R2", "Charge", "2026-03", "2026-03", D("1")),
                ("ENG", "R3", "Charge", "2026-03", "2026-03", D("95")),
                ("ENG", "R4", "Charge", "2026-03", "2026-03", D("1.05")),
                # A reversal of January's issued lines: January's card, bands from the bottom.
                ("ENG", "R1", "Reversal", "2026-03", "2026-01", D("0.08")),
                ("ENG", "R1", "Reversal", "2026-03", "2026-01", D("0.04")),
                # The next department starts at the first band again.
                ("FIN", "R1", "Charge", "2026-03", "2026-03", D("0.07")),
                ("FIN", "R5", "Credit memo", "2026-03", "2026-03", None),
            ]
        ),
    )
    assert bands == [
        "0 to 2,500.5",
        "2,500.5 up",
        "0 to 10",
        "10 up",
        None,  # a flat rate card
        None,  # a fixed rate
        "0 to 10,000",
        "10,000 up",
        "0 to 2,500.5",
        None,
    ]
    assert dates == ["2026-02", "2026-02", None, None, None, None, "2025-07", "2025-07",
                     "2026-02", None]  # fmt: skip


def test_a_line_whose_rate_is_not_its_bands_shows_no_band_rather_than_a_guess():
    bands, dates = tier_lines(
        RATES,
        rules(),
        lines([("ENG", "R1", "Charge", "2026-03", "2026-03", D("0.05"))]),
    )
    assert (bands, dates) == ([None], [None])
