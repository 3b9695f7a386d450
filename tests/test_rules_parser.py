"""The rules parser: Excel's typing artefacts, spans, skipping, collecting every problem."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from costloop.problems import Reason
from costloop.rules import parse_rule, parse_rules
from costloop.rules.ast import (
    Allocate,
    Charge,
    Forecast,
    Growth,
    RuleCell,
    RunRate,
    SharesDriver,
    Tiered,
)
from costloop.rules.parser import is_blank, lark_parser, normalise


def cell(text: str, row: int = 7, enabled: bool = True) -> RuleCell:
    return RuleCell(f"R{row}", f"Rules!B{row}", text, enabled=enabled)


def parsed(text: str):
    rule, problems = parse_rule(cell(text))
    assert problems == [], [p.render() for p in problems]
    return rule


def test_grammar_is_clean_under_strict_lalr() -> None:
    pytest.importorskip("interegular", reason="lark's strict mode needs interegular")
    parser = lark_parser(strict=True)
    assert parser.options.parser == "lalr"
    assert parser.options.lexer == "contextual"


def test_spec_example_message_is_exact() -> None:
    text = 'ALLOCATE "Cloud" TO DEPARTMENTS BY usgae "vCPU-Hours"'
    _rule, problems = parse_rule(cell(text))
    assert [p.render() for p in problems] == [
        'Rules!B7, character 36: unknown driver "usgae" — did you mean USAGE?\n'
        '  ALLOCATE "Cloud" TO DEPARTMENTS BY usgae "vCPU-Hours"\n'
        "                                     ^"
    ]
    assert problems[0].code is Reason.UNKNOWN_KEYWORD
    assert problems[0].rule_id == "R7"


def test_spans_index_the_text_as_read_through_curly_quotes_and_nbsp() -> None:
    text = "ALLOCATE\u00a0\u201cService Desk\u201d TO DEPARTMENTS BY\u2009Headcount"
    rule = parsed(text)
    assert isinstance(rule, Allocate)
    assert rule.pool.text == "Service Desk"
    assert text[rule.pool.span.start : rule.pool.span.end] == "\u201cService Desk\u201d"
    column = rule.driver.column
    assert text[column.span.start : column.span.end] == "Headcount"
    assert rule.text == text
    assert rule.where == "Rules!B7"
    assert rule.rule_id == "R7"


def test_normalise_replaces_one_for_one() -> None:
    text = "\u201cA\u201d\u00a0\u3000B\r\n_x000D_\u200b"
    out = normalise(text)
    assert len(out) == len(text)
    assert out == '"A"  B\r\n        '


@given(st.text(max_size=60))
def test_normalise_never_shifts_offsets(text: str) -> None:
    assert len(normalise(text)) == len(text)


def test_alt_enter_lines_and_comments() -> None:
    text = '-- billed monthly\r\nCHARGE "Storage"\r\nFOR "GB-Month" -- per GB\nAT 0.12\r\n'
    rule = parsed(text)
    assert isinstance(rule, Charge)
    assert rule.metric.text == "GB-Month"
    assert rule.pricing.rate == Decimal("0.12")


def test_keywords_are_case_insensitive() -> None:
    rule = parsed('Forecast usage "GB-Month" by Growth 2.5% Per Period')
    assert isinstance(rule, Forecast)
    assert rule.kind == "USAGE"
    assert rule.method == Growth(Decimal("2.5"), rule.method.span)


def test_percentages_keep_the_number_written() -> None:
    rule = parsed('ALLOCATE "ERP" TO DEPARTMENTS BY 60% "ADM", 33.5 % "FIN", 6.5% "HR"')
    assert isinstance(rule.driver, SharesDriver)
    assert [s.percent for s in rule.driver.shares] == [
        Decimal("60"),
        Decimal("33.5"),
        Decimal("6.5"),
    ]


def test_run_rate_defaults_to_three_periods() -> None:
    rule = parsed('FORECAST USAGE "GB-Month" BY RUN RATE')
    assert rule.method == RunRate(3, rule.method.span)


def test_tiers_in_order_with_above_last() -> None:
    rule = parsed('CHARGE "C" FOR "m" TIERED FIRST 10 AT 3, NEXT 5 AT 2, NEXT 5 AT 1.5, ABOVE AT 1')
    assert isinstance(rule.pricing, Tiered)
    assert [(t.width, t.rate) for t in rule.pricing.tiers] == [
        (Decimal(10), Decimal(3)),
        (Decimal(5), Decimal(2)),
        (Decimal(5), Decimal("1.5")),
        (None, Decimal(1)),
    ]


def test_keyword_needs_a_whole_word() -> None:
    _rule, problems = parse_rule(cell('CHARGE "V" FOR "m" AT RATECARD'))
    assert [p.code for p in problems] == [Reason.UNKNOWN_KEYWORD]
    assert "RATE CARD" in problems[0].message


def test_disabled_blank_and_comment_only_cells_are_skipped() -> None:
    cells = [
        cell("ALLOCATE nonsense", row=2, enabled=False),
        cell("   \n", row=3),
        cell("-- retired rule", row=4),
        cell("", row=5),
    ]
    assert parse_rules(cells) == ([], [])


def test_every_broken_cell_is_reported_in_one_call() -> None:
    cells = [
        cell('ALOCATE "Cloud" TO DEPARTMENTS EVENLY', row=2),
        cell('CHARGE "Storage" FOR "GB-Month" AT 0.12', row=3),
        cell('CHARGE "Cloud FOR "vCPU" AT 1', row=4),
        cell('ALLOCATE "ERP" TO DEPARTMENTS BY 60% "ADM" 40% "FIN"', row=5),
        cell('FORECAST USAGE "x" BY TREND OVER 1.5 PERIODS', row=6),
    ]
    rules, problems = parse_rules(cells)
    assert [r.where for r in rules] == ["Rules!B3", "Rules!B6"]
    assert [p.where for p in problems] == ["Rules!B2", "Rules!B4", "Rules!B5", "Rules!B6"]
    assert all(p.text is not None and p.start is not None for p in problems)


_RULE_CHARS = list('ALOCTEPRS "%,()=<>-19.\n\u201c\u00a0xy')


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(_RULE_CHARS), max_size=40))
def test_any_text_gives_a_rule_or_problems_never_an_exception(text: str) -> None:
    rule, problems = parse_rule(cell(text))
    if rule is None:  # nothing to run: either the cell is blank or we said why
        assert bool(problems) != is_blank(text)
    for problem in problems:
        assert problem.where == "Rules!B7"
        assert problem.start is None or 0 <= problem.start <= len(text)
        problem.render()


_NAMES = st.text(alphabet="abcXYZ -", min_size=1, max_size=8).filter(lambda s: s.strip())


@settings(max_examples=100, deadline=None)
@given(pool=_NAMES, metric=_NAMES, rate=st.decimals(0, 1000, places=2), lower=st.booleans())
def test_generated_charge_rules_round_trip(pool, metric, rate, lower) -> None:
    text = f'CHARGE "{pool}" FOR "{metric}" AT {rate}'
    rule = parsed(text.lower() if lower else text)
    assert rule.pool.key == " ".join(pool.split()).casefold()
    assert rule.pricing.rate == rate


def test_importing_the_package_does_not_build_or_import_the_parser() -> None:
    code = "import sys, costloop.rules; print('lark' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
