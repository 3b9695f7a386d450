"""Static checks beyond the message goldens: clean books stay clean, IDs, severities."""

from __future__ import annotations

from costloop.problems import Reason, Severity
from costloop.rules import Names, check, check_ids, order, parse_rules, set_aside
from costloop.rules.ast import RuleCell, name_key


def keyed(*spellings: str) -> dict[str, str]:
    return {name_key(s): s for s in spellings}


REFERENCE_RULES = [
    'ALLOCATE "Service Desk" TO DEPARTMENTS BY Headcount',
    'ALLOCATE "Data Center" TO DEPARTMENTS BY USAGE "Server Hours"',
    'ALLOCATE "Network" TO DEPARTMENTS EVENLY WHERE Fund = "General"',
    'ALLOCATE "ERP" TO DEPARTMENTS BY 60% "ADM", 30% "FIN", 10% "HR"',
    'ALLOCATE "Facilities" TO POOLS BY 70% "Data Center", 30% "Network"',
    'ALLOCATE "IT Management" TO POOLS "Data Center", "Network", "Service Desk" BY COST',
    'ALLOCATE "Administration" TO POOLS "Maintenance" AND DEPARTMENTS BY USAGE "Staff Hours"',
    'ALLOCATE "HR Services" TO POOLS "IT Management" AND DEPARTMENTS BY USAGE "HR Tickets"'
    " RECIPROCAL",
    'ALLOCATE "Security" TO DEPARTMENTS BY USAGE "Endpoints" IF NO USAGE EVENLY',
    'CHARGE "Storage" FOR "GB-Month" AT 0.12',
    'CHARGE "Virtual Servers" FOR "VM-Month" AT RATE CARD',
    'CHARGE "Cloud" FOR "vCPU-Hours" TIERED FIRST 1000 AT 0.05, NEXT 9000 AT 0.04, ABOVE AT 0.03',
    'CHARGE "Cloud Pass-through" FOR "AWS Cost" AT 1.05 WHERE Service IN ("EC2", "S3")',
    'FORECAST USAGE "vCPU-Hours" BY TREND OVER 6 PERIODS',
    'FORECAST USAGE "GB-Month" BY GROWTH 2% PER PERIOD',
    'FORECAST COST "Cloud" BY TREND OVER 3 PERIODS',
    'FORECAST COST "Data Center" BY PLAN',
]

REFERENCE_NAMES = Names(
    pools=keyed(
        "Service Desk",
        "Data Center",
        "Network",
        "ERP",
        "Facilities",
        "IT Management",
        "Administration",
        "Maintenance",
        "HR Services",
        "Security",
        "Storage",
        "Virtual Servers",
        "Cloud",
        "Cloud Pass-through",
    ),
    departments=keyed("ADM", "FIN", "HR"),
    metrics=keyed(
        "Server Hours",
        "Staff Hours",
        "HR Tickets",
        "Endpoints",
        "GB-Month",
        "VM-Month",
        "vCPU-Hours",
        "AWS Cost",
    ),
    department_columns=keyed("Department", "Fund", "Headcount"),
    numeric_department_columns=frozenset({"headcount"}),
    usage_columns=keyed("Period", "Department", "Metric", "Quantity", "Service"),
)


def cells_of(*texts: str, ids: list[str] | None = None) -> list[RuleCell]:
    ids = ids or [f"R{i}" for i in range(len(texts))]
    return [
        RuleCell(rule_id, f"Rules!B{i}", text, id_where=f"Rules!A{i}")
        for i, (rule_id, text) in enumerate(zip(ids, texts, strict=True), start=2)
    ]


def test_every_spec_example_is_clean_against_its_workbook() -> None:
    cells = cells_of(*REFERENCE_RULES)
    rules, problems = parse_rules(cells)
    assert problems == []
    assert check(rules, REFERENCE_NAMES, cells) == []


def test_an_empty_workbook_makes_every_name_unknown() -> None:
    rules, _ = parse_rules(cells_of(*REFERENCE_RULES))
    problems = check(rules, Names())
    codes = {p.code for p in problems}
    assert {Reason.UNKNOWN_POOL, Reason.UNKNOWN_METRIC, Reason.UNKNOWN_COLUMN} <= codes
    assert all(p.where.startswith("Rules!B") for p in problems)


def test_ids_are_checked_only_when_cells_are_given() -> None:
    cells = cells_of('CHARGE "Storage" FOR "GB-Month" AT 1', 'CHARGE "Cloud" FOR "vCPU-Hours" AT 1',
                     ids=["X", "x"])  # fmt: skip
    rules, _ = parse_rules(cells)
    assert check(rules, REFERENCE_NAMES) == []
    assert [p.code for p in check(rules, REFERENCE_NAMES, cells)] == [Reason.DUPLICATE_ID]


def test_a_forecast_rule_with_a_mistake_is_a_warning_and_set_aside_from_the_plan() -> None:
    """A forecast never holds back the bills: its mistakes warn, and it is not run."""
    cells = cells_of(
        'FORECAST USAGE "vCPU-Hrs" BY TREND OVER 6 PERIODS',
        'FORECAST COST "Cloud" BY TREND OVER 1 PERIODS',
        'FORECAST COST "Data Center" BY PLAN',
        'CHARGE "Storage" FOR "GB-Mnth" AT 0.12',
    )
    rules, _ = parse_rules(cells)
    problems = check(rules, REFERENCE_NAMES, cells)
    assert [(p.severity, p.where, p.character, p.message) for p in problems] == [
        (Severity.WARNING, "Rules!B2", 16,
         'unknown metric "vCPU-Hrs" — did you mean "vCPU-Hours"?'),
        (Severity.WARNING, "Rules!B3", 26,
         "a trend needs at least 2 periods to draw a line through, got 1"),
        # A CHARGE's mistake bills wrong: still an error.
        (Severity.ERROR, "Rules!B5", 22, 'unknown metric "GB-Mnth" — did you mean "GB-Month"?'),
    ]  # fmt: skip
    aside = set_aside(rules, REFERENCE_NAMES)
    assert [(a.rule.rule_id, a.why) for a in aside] == [
        ("R0", 'unknown metric "vCPU-Hrs" — did you mean "vCPU-Hours"?'),
        ("R1", "a trend needs at least 2 periods to draw a line through, got 1"),
    ]
    plan, _ = order(rules, REFERENCE_NAMES.pools, aside)
    assert [f.rule_id for f in plan.forecasts] == ["R2"]
    assert plan.set_aside == aside
    assert [c.rule_id for c in plan.charges] == ["R3"]


def test_disabled_and_blank_rows_do_not_clash_on_ids() -> None:
    cells = [
        RuleCell("R1", "Rules!B2", 'CHARGE "Storage" FOR "GB-Month" AT 1'),
        RuleCell("R1", "Rules!B3", 'CHARGE "Cloud" FOR "vCPU-Hours" AT 1', enabled=False),
        RuleCell("R1", "Rules!B4", "  "),
        RuleCell("", "Rules!B5", "-- a note, not a rule"),
    ]
    assert check_ids(cells) == []


def test_charged_and_allocated_is_a_warning_not_an_error() -> None:
    rules, _ = parse_rules(
        cells_of('CHARGE "Storage" FOR "GB-Month" AT 1', 'ALLOCATE "Storage" TO DEPARTMENTS EVENLY')
    )
    problems = check(rules, REFERENCE_NAMES)
    assert [(p.code, p.severity) for p in problems] == [
        (Reason.CHARGED_AND_ALLOCATED, Severity.WARNING)
    ]
    assert not problems[0].is_error


def test_charged_and_allocated_to_pools_only_is_fine() -> None:
    rules, _ = parse_rules(
        cells_of(
            'CHARGE "Storage" FOR "GB-Month" AT 1',
            'ALLOCATE "Storage" TO POOLS "Cloud" BY COST',
        )
    )
    assert check(rules, REFERENCE_NAMES) == []


def test_shares_may_name_departments_and_pools_when_both_receive() -> None:
    rules, _ = parse_rules(
        cells_of(
            'ALLOCATE "Facilities" TO POOLS "Network" AND DEPARTMENTS BY 50% "Network", 50% "adm"'
        )
    )
    assert check(rules, REFERENCE_NAMES) == []


def test_names_match_case_and_space_insensitively() -> None:
    rules, _ = parse_rules(cells_of('CHARGE "  data   CENTER " FOR "server hours" AT 1'))
    assert check(rules, REFERENCE_NAMES) == []
