"""Golden tests of the rules language: rule text in, readable AST or messages out.

The expected outputs live in ``tests/golden/rules/*.golden`` so a reviewer
reads a behaviour change as a diff. To regenerate them after an intended
change, run::

    COSTLOOP_UPDATE_GOLDENS=1 pytest tests/test_rules_golden.py

and read the diff before committing. Off by default: a normal run only compares.
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import pytest

from costloop.rules import Names, check, order, parse_rules
from costloop.rules.ast import RuleCell, name_key
from costloop.rules.printer import print_rule

GOLDEN_DIR = Path(__file__).parent / "golden" / "rules"
UPDATE = os.environ.get("COSTLOOP_UPDATE_GOLDENS") == "1"


def _keyed(*spellings: str) -> dict[str, str]:
    return {name_key(s): s for s in spellings}


# The workbook the message cases are checked against.
NAMES = Names(
    pools=_keyed(
        "Cloud",
        "Storage",
        "Data Center",
        "Network",
        "Service Desk",
        "HR Services",
        "IT Management",
        "Facilities",
        "ERP",
        "Security",
        "Virtual Servers",
    ),
    departments=_keyed("ADM", "FIN", "HR", "POL", "PW"),
    metrics=_keyed("vCPU-Hours", "GB-Month", "Server Hours", "HR Tickets", "VM-Month", "Endpoints"),
    department_columns=_keyed(
        "Department", "Fund", "Name", "Headcount", "Square Feet", "Billable", "Cost Center"
    ),
    numeric_department_columns=frozenset({"headcount", "square feet"}),
    usage_columns=_keyed("Period", "Department", "Metric", "Quantity", "Service", "Reference"),
)

# --- parse cases: every statement form, and what Excel does to typed text ----

PARSE_CASES: dict[str, str] = {
    "allocate_by_column": 'ALLOCATE "Service Desk" TO DEPARTMENTS BY Headcount',
    "allocate_by_usage": 'ALLOCATE "Data Center" TO DEPARTMENTS BY USAGE "Server Hours"',
    "allocate_evenly_where": 'ALLOCATE "Network" TO DEPARTMENTS EVENLY WHERE Fund = "General"',
    "allocate_fixed_shares": 'ALLOCATE "ERP" TO DEPARTMENTS BY 60% "ADM", 30% "FIN", 10% "HR"',
    "allocate_shares_to_pools": (
        'ALLOCATE "Facilities" TO POOLS BY 70% "Data Center", 30% "Network"'
    ),
    "allocate_named_pools_by_cost": (
        'ALLOCATE "IT Management" TO POOLS "Data Center", "Network", "Service Desk" BY COST'
    ),
    "allocate_pools_and_departments": (
        'ALLOCATE "Administration" TO POOLS "Maintenance" AND DEPARTMENTS BY USAGE "Staff Hours"'
    ),
    "allocate_reciprocal": (
        'ALLOCATE "HR Services" TO POOLS "IT Management" AND DEPARTMENTS'
        ' BY USAGE "HR Tickets" RECIPROCAL'
    ),
    "allocate_if_no_usage_evenly": (
        'ALLOCATE "Security" TO DEPARTMENTS BY USAGE "Endpoints" IF NO USAGE EVENLY'
    ),
    "allocate_if_no_usage_keep": (
        'ALLOCATE "Security" TO DEPARTMENTS BY USAGE "Endpoints" IF NO USAGE KEEP'
    ),
    "allocate_if_no_usage_fail": 'ALLOCATE "Security" TO DEPARTMENTS EVENLY IF NO USAGE FAIL',
    "allocate_every_other_pool": 'ALLOCATE "IT Management" TO POOLS BY USAGE "Server Hours"',
    "allocate_every_comparison": (
        'ALLOCATE "Network" TO DEPARTMENTS EVENLY WHERE Headcount > 10 AND Headcount >= 11'
        ' AND Headcount < 500 AND Headcount <= 499 AND Fund <> "IT" AND Fund = "General"'
    ),
    "allocate_where_in_list": (
        'ALLOCATE "Network" TO DEPARTMENTS BY Headcount WHERE Fund IN ("General", "Water", 101)'
    ),
    "allocate_clauses_any_order": (
        'ALLOCATE "HR Services" TO POOLS "IT Management" BY USAGE "HR Tickets"'
        ' RECIPROCAL IF NO USAGE KEEP WHERE Fund = "IT"'
    ),
    "allocate_departments_and_pools": (
        'ALLOCATE "Facilities" TO DEPARTMENTS AND POOLS "Data Center"'
        ' BY 50% "ADM", 50% "Data Center"'
    ),
    "allocate_bracketed_column": 'ALLOCATE "Facilities" TO DEPARTMENTS BY [Square Feet]',
    "allocate_by_evenly": 'ALLOCATE "Network" TO DEPARTMENTS BY EVENLY',
    "charge_fixed_rate": 'CHARGE "Storage" FOR "GB-Month" AT 0.12',
    "charge_rate_card": 'CHARGE "Virtual Servers" FOR "VM-Month" AT RATE CARD',
    "charge_tiered": (
        'CHARGE "Cloud" FOR "vCPU-Hours" TIERED FIRST 1000 AT 0.05, NEXT 9000 AT 0.04,'
        " ABOVE AT 0.03"
    ),
    "charge_tiered_two_bands": 'CHARGE "Cloud" FOR "vCPU-Hours" TIERED FIRST 500 AT 1, ABOVE AT .5',
    "charge_where": (
        'CHARGE "Cloud Pass-through" FOR "AWS Cost" AT 1.05 WHERE Service IN ("EC2", "S3")'
    ),
    "forecast_trend": 'FORECAST USAGE "vCPU-Hours" BY TREND OVER 6 PERIODS',
    "forecast_growth": 'FORECAST USAGE "GB-Month" BY GROWTH 2% PER PERIOD',
    "forecast_growth_decimal": 'FORECAST USAGE "GB-Month" BY GROWTH 1.5 % PER PERIODS',
    "forecast_cost_trend": 'FORECAST COST "Cloud" BY TREND OVER 3 PERIODS',
    "forecast_plan": 'FORECAST COST "Data Center" BY PLAN',
    "forecast_run_rate_default": 'FORECAST USAGE "vCPU-Hours" BY RUN RATE',
    "forecast_run_rate_over": 'FORECAST USAGE "vCPU-Hours" BY RUN RATE OVER 1 PERIOD',
    "lower_case_keywords": 'allocate "Network" to departments by headcount where fund = "General"',
    "mixed_case_keywords": 'Charge "Storage" For "GB-Month" At Rate Card',
    "curly_quotes": "ALLOCATE \u201cService Desk\u201d TO DEPARTMENTS BY Headcount",
    "non_breaking_spaces": 'ALLOCATE\u00a0"Service Desk"\u00a0TO DEPARTMENTS\u2007BY Headcount',
    "name_with_inner_nbsp": 'CHARGE "Data\u00a0Center" FOR "Server\u00a0Hours" AT 2',
    "trailing_newline": 'CHARGE "Storage" FOR "GB-Month" AT 0.12\n',
    "crlf_multi_line": 'ALLOCATE "ERP" TO DEPARTMENTS\r\nBY 60% "ADM",\r\n   40% "FIN"\r\n',
    "comment_at_end": 'CHARGE "Storage" FOR "GB-Month" AT 0.12 -- agreed with finance 2024',
    "comment_lines": (
        '-- storage is billed per GB\nCHARGE "Storage" FOR "GB-Month" -- metric\nAT 0.12'
    ),
    "dashes_inside_name": 'CHARGE "Storage--Tier 2" FOR "GB-Month" AT 0.12',
    "padded_name": 'CHARGE "  Storage " FOR "GB-Month" AT 0.12',
    "excel_cr_escape": 'CHARGE "Storage" FOR "GB-Month"_x000D_\nAT 0.12',
    "column_named_like_keyword": 'ALLOCATE "Cloud" TO DEPARTMENTS EVENLY WHERE Plan = "Gold"',
}

# --- message cases: the mistakes finance users make, and what they are told ----

Row = str | tuple[str, str]
"""A Rules row: the rule text (ID R<row>), or (ID, rule text)."""

MESSAGE_CASES: dict[str, list[Row]] = {
    "misspelled_statement": ['ALOCATE "Cloud" TO DEPARTMENTS BY Headcount'],
    "misspelled_driver_before_metric": ['ALLOCATE "Cloud" TO DEPARTMENTS BY usgae "vCPU-Hours"'],
    "misspelled_driver_alone": ['ALLOCATE "Cloud" TO DEPARTMENTS BY usgae'],
    "misspelled_receivers": ['ALLOCATE "Cloud" TO DEPARTMENT BY Headcount'],
    "misspelled_option": [
        'ALLOCATE "Security" TO DEPARTMENTS BY USAGE "Endpoints" IF NO USAGE KEPE'
    ],
    "misspelled_and_in_where": [
        'ALLOCATE "Network" TO DEPARTMENTS EVENLY WHERE Fund = "G" ADN Service = "x"'
    ],
    "misspelled_forecast_method": ['FORECAST USAGE "vCPU-Hours" BY TRND OVER 3 PERIODS'],
    "rate_card_run_together": ['CHARGE "Virtual Servers" FOR "VM-Month" AT RATECARD'],
    "unclosed_quote": ['ALLOCATE "Cloud TO DEPARTMENTS BY Headcount'],
    "single_quotes": ["ALLOCATE 'Service Desk' TO DEPARTMENTS BY Headcount"],
    "curly_single_quotes": ["ALLOCATE \u2018Service Desk\u2019 TO DEPARTMENTS BY Headcount"],
    "unquoted_pool_name": ["ALLOCATE Service Desk TO DEPARTMENTS BY Headcount"],
    "unquoted_where_value": ['ALLOCATE "Network" TO DEPARTMENTS EVENLY WHERE Fund = General'],
    "quoted_column": ['ALLOCATE "Network" TO DEPARTMENTS EVENLY WHERE "Fund" = "General"'],
    "missing_to": ['ALLOCATE "Cloud" DEPARTMENTS BY Headcount'],
    "missing_by": ['ALLOCATE "Cloud" TO DEPARTMENTS USAGE "vCPU-Hours"'],
    "missing_driver": ['ALLOCATE "Cloud" TO DEPARTMENTS'],
    "missing_for": ['CHARGE "Storage" AT 0.12'],
    "missing_metric": ['ALLOCATE "Cloud" TO DEPARTMENTS BY USAGE'],
    "missing_pool_name": ["ALLOCATE TO DEPARTMENTS BY Headcount"],
    "keyword_in_the_wrong_place": ["FIRST 1000 AT 0.05"],
    "missing_statement_keyword": ['"Cloud" TO DEPARTMENTS BY Headcount'],
    "missing_percent_sign": ['ALLOCATE "ERP" TO DEPARTMENTS BY 60 "ADM", 40% "FIN"'],
    "missing_comma_between_shares": ['ALLOCATE "ERP" TO DEPARTMENTS BY 60% "ADM" 40% "FIN"'],
    "missing_comma_between_tiers": [
        'CHARGE "Cloud" FOR "vCPU-Hours" TIERED FIRST 1000 AT 0.05 NEXT 9000 AT 0.04, ABOVE AT 0.03'
    ],
    "missing_comma_between_pools": ['ALLOCATE "IT Management" TO POOLS "Cloud" "Network" BY COST'],
    "missing_periods_word": ['FORECAST USAGE "vCPU-Hours" BY TREND OVER 3'],
    "missing_growth_percent": ['FORECAST USAGE "GB-Month" BY GROWTH 2 PER PERIOD'],
    "tiers_without_above": [
        'CHARGE "Cloud" FOR "vCPU-Hours" TIERED FIRST 1000 AT 0.05, NEXT 9000 AT 0.04'
    ],
    "above_not_last": [
        'CHARGE "Cloud" FOR "vCPU-Hours" TIERED FIRST 1000 AT 0.05, ABOVE AT 0.03,'
        " NEXT 9000 AT 0.04"
    ],
    "tier_of_zero_width": ['CHARGE "Cloud" FOR "vCPU-Hours" TIERED FIRST 0 AT 0.05, ABOVE AT 0.03'],
    "thousands_separator": [
        'CHARGE "Cloud" FOR "vCPU-Hours" TIERED FIRST 1,000 AT 0.05, ABOVE AT 0.03'
    ],
    "number_with_text": ['CHARGE "Storage" FOR "GB-Month" AT 0.12USD'],
    "currency_sign": ['CHARGE "Storage" FOR "GB-Month" AT $0.12'],
    "negative_number": ['ALLOCATE "Network" TO DEPARTMENTS EVENLY WHERE Headcount > -1'],
    "empty_in_list": ['ALLOCATE "Network" TO DEPARTMENTS EVENLY WHERE Fund IN ()'],
    "trailing_comma": ['ALLOCATE "ERP" TO DEPARTMENTS BY 60% "ADM", 40% "FIN",'],
    "double_equals": ['ALLOCATE "Network" TO DEPARTMENTS EVENLY WHERE Fund == "General"'],
    "bang_equals": ['ALLOCATE "Network" TO DEPARTMENTS EVENLY WHERE Fund != "IT"'],
    "semicolon_at_end": ['CHARGE "Storage" FOR "GB-Month" AT 0.12;'],
    "two_rules_in_one_cell": [
        'CHARGE "Storage" FOR "GB-Month" AT 0.12\nCHARGE "Cloud" FOR "vCPU-Hours" AT 0.05'
    ],
    "empty_name": ['ALLOCATE "" TO DEPARTMENTS BY Headcount'],
    "where_given_twice": [
        'ALLOCATE "Network" TO DEPARTMENTS EVENLY WHERE Fund = "G" WHERE Service = "x"'
    ],
    "fractional_periods": ['FORECAST USAGE "vCPU-Hours" BY TREND OVER 2.5 PERIODS'],
    "percent_with_space_is_fine": ['ALLOCATE "ERP" TO DEPARTMENTS BY 60 % "ADM", 40 % "FIN"'],
    "lower_case_keywords_are_fine": ['allocate "ERP" to departments by 60% "ADM", 40% "FIN"'],
    "shares_at_90": ['ALLOCATE "ERP" TO DEPARTMENTS BY 60% "ADM", 30% "FIN"'],
    "shares_over_100": ['ALLOCATE "ERP" TO DEPARTMENTS BY 60.5% "ADM", 40% "FIN"'],
    "share_named_twice": ['ALLOCATE "ERP" TO DEPARTMENTS BY 50% "ADM", 50% "adm"'],
    "unknown_department_share": ['ALLOCATE "ERP" TO DEPARTMENTS BY 60% "ADN", 40% "FIN"'],
    "share_names_a_pool_for_departments": [
        'ALLOCATE "ERP" TO DEPARTMENTS BY 60% "Cloud", 40% "FIN"'
    ],
    "share_to_unlisted_pool": [
        'ALLOCATE "Facilities" TO POOLS "Data Center" BY 70% "Data Center", 30% "Network"'
    ],
    "unknown_pool_did_you_mean": ['ALLOCATE "Servce Desk" TO DEPARTMENTS BY Headcount'],
    "unknown_pool_no_match": ['ALLOCATE "Telephony" TO DEPARTMENTS BY Headcount'],
    "unknown_metric_did_you_mean": ['CHARGE "Cloud" FOR "vCPU-Hrs" AT 0.05'],
    "unknown_column_did_you_mean": ['ALLOCATE "Service Desk" TO DEPARTMENTS BY Headcont'],
    "unknown_column_no_match": ['ALLOCATE "Service Desk" TO DEPARTMENTS BY Laptops'],
    "unknown_where_column": ['ALLOCATE "Network" TO DEPARTMENTS EVENLY WHERE Fnd = "General"'],
    "column_with_spaces_unbracketed": ['ALLOCATE "Facilities" TO DEPARTMENTS BY Square_Feet'],
    "not_numeric_driver": ['ALLOCATE "Network" TO DEPARTMENTS BY Fund'],
    "column_driver_to_pools": ['ALLOCATE "Facilities" TO POOLS "Network" BY Headcount'],
    "by_cost_to_departments": ['ALLOCATE "IT Management" TO DEPARTMENTS BY COST'],
    "pool_allocates_to_itself": ['ALLOCATE "Network" TO POOLS "Network", "Cloud" BY COST'],
    "forecast_unknown_pool": ['FORECAST COST "Clod" BY PLAN'],
    "trend_over_no_periods": ['FORECAST COST "Cloud" BY TREND OVER 0 PERIODS'],
    "run_rate_over_no_periods": ['FORECAST COST "Cloud" BY RUN RATE OVER 0 PERIODS'],
    "trend_over_one_period": ['FORECAST USAGE "vCPU-Hours" BY TREND OVER 1 PERIOD'],
    "duplicate_id": [
        ("R1", 'CHARGE "Storage" FOR "GB-Month" AT 0.12'),
        ("R2", 'CHARGE "Cloud" FOR "vCPU-Hours" AT 0.05'),
        ("r1", 'CHARGE "Virtual Servers" FOR "VM-Month" AT RATE CARD'),
    ],
    "missing_id": [("", 'CHARGE "Storage" FOR "GB-Month" AT 0.12')],
    "pool_allocated_twice": [
        'ALLOCATE "Network" TO DEPARTMENTS EVENLY WHERE Fund = "General"',
        'ALLOCATE "Network" TO DEPARTMENTS BY Headcount WHERE Fund = "Water"',
    ],
    "charged_and_allocated": [
        'CHARGE "Storage" FOR "GB-Month" AT 0.12',
        'ALLOCATE "Storage" TO DEPARTMENTS BY Headcount',
    ],
    "cycle": [
        'ALLOCATE "HR Services" TO POOLS "IT Management" AND DEPARTMENTS BY USAGE "HR Tickets"',
        'ALLOCATE "Cloud" TO DEPARTMENTS BY USAGE "vCPU-Hours"',
        'ALLOCATE "IT Management" TO POOLS "HR Services", "Cloud" BY COST',
    ],
    "cycle_of_three": [
        'ALLOCATE "Facilities" TO POOLS "Network" BY COST',
        'ALLOCATE "Network" TO POOLS "Data Center" BY COST',
        'ALLOCATE "Data Center" TO POOLS "Facilities" BY COST',
    ],
    "cycle_partly_reciprocal": [
        'ALLOCATE "HR Services" TO POOLS "IT Management" AND DEPARTMENTS BY USAGE "HR Tickets"'
        " RECIPROCAL",
        'ALLOCATE "IT Management" TO POOLS "HR Services" AND DEPARTMENTS BY Headcount',
    ],
    "cycle_fully_reciprocal_is_fine": [
        'ALLOCATE "HR Services" TO POOLS "IT Management" AND DEPARTMENTS BY USAGE "HR Tickets"'
        " RECIPROCAL",
        'ALLOCATE "IT Management" TO POOLS "HR Services" AND DEPARTMENTS BY USAGE "Server Hours"'
        " RECIPROCAL",
    ],
    "several_broken_rules_at_once": [
        'ALLOCATE "Cloud" TO DEPARTMENTS BY usgae "vCPU-Hours"',
        'ALLOCATE "ERP" TO DEPARTMENTS BY 60% "ADM", 30% "FIM"',
        'CHARGE "Storage" FOR "GB-Mnth" AT 0.12',
        'CHARGE "Cloud" FOR "vCPU-Hours" TIERED FIRST 1000 AT 0.05, NEXT 9000 AT 0.04',
        'FORECAST COST "Clod" BY TREND OVER 1 PERIOD',
    ],
}


# --- running a case -------------------------------------------------------------


def _cells(rows: list[Row]) -> list[RuleCell]:
    cells = []
    for number, row in enumerate(rows, start=2):
        rule_id, text = row if isinstance(row, tuple) else (f"R{number}", row)
        cells.append(RuleCell(rule_id, f"Rules!B{number}", text, id_where=f"Rules!A{number}"))
    return cells


def render_parse(text: str) -> str:
    rules, problems = parse_rules(_cells([text]))
    lines = [p.render() for p in problems]
    lines.extend(print_rule(rule) for rule in rules)
    return "\n".join(lines)


def render_messages(rows: list[Row]) -> str:
    cells = _cells(rows)
    rules, problems = parse_rules(cells)
    problems += check(rules, NAMES, cells)
    plan, ordering = order(rules, NAMES.pools)
    problems += ordering
    rendered = [f"[{p.severity} {p.code}] {p.render()}" for p in problems]
    steps = " ; ".join("+".join(r.rule_id for r in step.rules) for step in plan.allocations)
    if steps:
        rendered.append(f"(allocation steps: {steps})")
    return "\n".join(rendered) or "(no problems)"


def _shown(text: str) -> str:
    """The input as a reader can see it: invisible and look-alike characters escaped."""
    out = []
    for char in text:
        odd = char not in " " and (
            unicodedata.category(char)[0] in "CZ" or char in "\u201c\u201d\u2018\u2019"
        )
        out.append(f"\\u{ord(char):04x}" if odd else char)
    return "".join(out)


# --- golden files ----------------------------------------------------------------


def _golden_text(cases: dict, render) -> dict[str, str]:
    blocks = {}
    for name, case in cases.items():
        rows = case if isinstance(case, list) else [case]
        shown = "\n".join(
            _shown(row if isinstance(row, str) else f"[{row[0]}] {row[1]}") for row in rows
        )
        blocks[name] = f"{shown}\n---\n{render(case)}"
    return blocks


def _read_golden(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    blocks: dict[str, str] = {}
    for chunk in path.read_text("utf-8").split("=== ")[1:]:
        name, _, body = chunk.partition("\n")
        blocks[name.strip()] = body.rstrip("\n")
    return blocks


def _write_golden(path: Path, blocks: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"=== {n}\n{b}\n\n" for n, b in blocks.items()), "utf-8")


def _golden_case(filename: str, cases: dict, render, name: str) -> None:
    path = GOLDEN_DIR / filename
    actual = _golden_text({name: cases[name]}, render)[name]
    if UPDATE:
        blocks = _read_golden(path)
        blocks[name] = actual
        _write_golden(path, {n: blocks[n] for n in cases if n in blocks})
        return
    expected = _read_golden(path).get(name)
    assert expected is not None, f"no golden for {name}: run with COSTLOOP_UPDATE_GOLDENS=1"
    assert actual == expected


@pytest.mark.parametrize("name", list(PARSE_CASES))
def test_parse_golden(name: str) -> None:
    _golden_case("parse.golden", PARSE_CASES, render_parse, name)


@pytest.mark.parametrize("name", list(MESSAGE_CASES))
def test_message_golden(name: str) -> None:
    _golden_case("messages.golden", MESSAGE_CASES, render_messages, name)


def test_every_parse_case_parses_cleanly() -> None:
    for name, text in PARSE_CASES.items():
        rules, problems = parse_rules(_cells([text]))
        assert problems == [], name
        assert len(rules) == 1, name


def test_at_least_thirty_mistakes_are_pinned() -> None:
    mistakes = [n for n, rows in MESSAGE_CASES.items() if render_messages(rows) != "(no problems)"]
    assert len(mistakes) >= 30


def test_goldens_have_no_stale_cases() -> None:
    for filename, cases in (("parse.golden", PARSE_CASES), ("messages.golden", MESSAGE_CASES)):
        assert set(_read_golden(GOLDEN_DIR / filename)) <= set(cases), filename
