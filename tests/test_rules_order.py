"""Ordering: step-down before spreading, reciprocal groups, cycles, row order on ties."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from costloop.problems import Reason
from costloop.rules import order, parse_rules
from costloop.rules.ast import Allocate, RuleCell, name_key
from costloop.rules.order import fed_pools

POOLS = {name_key(p): p for p in ["A", "B", "C", "D", "E", "F"]}


def rules_of(*texts: str) -> list:
    cells = [RuleCell(f"R{i}", f"Rules!B{i}", t) for i, t in enumerate(texts, start=2)]
    rules, problems = parse_rules(cells)
    assert problems == []
    return rules


def steps(plan) -> list[str]:
    return ["+".join(r.rule_id for r in step.rules) for step in plan.allocations]


def test_no_dependencies_keeps_row_order() -> None:
    rules = rules_of(
        'ALLOCATE "C" TO DEPARTMENTS EVENLY',
        'ALLOCATE "A" TO DEPARTMENTS EVENLY',
        'CHARGE "B" FOR "m" AT 1',
        'ALLOCATE "B" TO DEPARTMENTS EVENLY',
        'FORECAST COST "A" BY PLAN',
    )
    plan, problems = order(rules, POOLS)
    assert problems == []
    assert steps(plan) == ["R2", "R3", "R5"]
    assert [c.rule_id for c in plan.charges] == ["R4"]
    assert [f.rule_id for f in plan.forecasts] == ["R6"]


def test_pool_to_pool_runs_before_the_pool_it_feeds_whatever_the_row() -> None:
    rules = rules_of(
        'ALLOCATE "B" TO DEPARTMENTS EVENLY',
        'ALLOCATE "C" TO DEPARTMENTS EVENLY',
        'ALLOCATE "A" TO POOLS "B" BY COST',
        'ALLOCATE "D" TO POOLS "A" BY COST',
    )
    plan, problems = order(rules, POOLS)
    assert problems == []
    assert steps(plan) == ["R3", "R5", "R4", "R2"]


def test_pools_alone_feeds_every_other_pool() -> None:
    rules = rules_of(
        'ALLOCATE "B" TO DEPARTMENTS EVENLY',
        'ALLOCATE "A" TO POOLS BY USAGE "m"',
    )
    assert fed_pools(rules[1], POOLS) == set(POOLS) - {"a"}
    plan, _ = order(rules, POOLS)
    assert steps(plan) == ["R3", "R2"]


def test_pools_alone_with_fixed_shares_feeds_only_the_shared_pools() -> None:
    rules = rules_of(
        'ALLOCATE "B" TO POOLS "C" BY COST',
        'ALLOCATE "A" TO POOLS BY 50% "C", 50% "D"',
    )
    assert fed_pools(rules[1], POOLS) == {"c", "d"}
    plan, _ = order(rules, POOLS)
    assert steps(plan) == ["R2", "R3"]


def test_reciprocal_cycle_is_one_step_after_its_feeders_and_before_its_receivers() -> None:
    rules = rules_of(
        'ALLOCATE "E" TO DEPARTMENTS EVENLY',
        'ALLOCATE "B" TO POOLS "C", "E" BY USAGE "m" RECIPROCAL',
        'ALLOCATE "C" TO POOLS "B" AND DEPARTMENTS BY USAGE "m" RECIPROCAL',
        'ALLOCATE "A" TO POOLS "B" BY COST',
    )
    plan, problems = order(rules, POOLS)
    assert problems == []
    assert steps(plan) == ["R5", "R3+R4", "R2"]
    assert plan.allocations[1].reciprocal


def test_cycle_without_reciprocal_names_every_pool_and_cell() -> None:
    rules = rules_of(
        'ALLOCATE "A" TO POOLS "B" BY COST',
        'ALLOCATE "C" TO DEPARTMENTS EVENLY',
        'ALLOCATE "B" TO POOLS "A" BY COST',
    )
    _plan, problems = order(rules, POOLS)
    assert [p.code for p in problems] == [Reason.CYCLE]
    assert problems[0].render() == (
        'Rules!B2, B4: cycle between pools "A" -> "B" -> "A"'
        " (mark every rule in it RECIPROCAL to solve it)"
    )


def test_a_long_step_down_chain_does_not_hit_the_recursion_limit() -> None:
    count = 3000
    pools = {f"p{i}": f"P{i}" for i in range(count)}
    texts = [f'ALLOCATE "P{i}" TO POOLS "P{i + 1}" BY COST' for i in range(count - 1)]
    rules = rules_of(*reversed(texts))
    plan, problems = order(rules, pools)
    assert problems == []
    assert [step.rules[0].pool.text for step in plan.allocations] == [
        f"P{i}" for i in range(count - 1)
    ]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.sets(st.integers(0, 5), max_size=3)), max_size=6))
def test_every_feeder_runs_before_the_rule_it_feeds(spec) -> None:
    names = "ABCDEF"
    texts, seen = [], set()
    for pool, targets in spec:
        if pool in seen:
            continue
        seen.add(pool)
        receivers = [names[t] for t in sorted(targets) if t != pool]
        if receivers:
            listed = ", ".join(f'"{r}"' for r in receivers)
            texts.append(f'ALLOCATE "{names[pool]}" TO POOLS {listed} BY COST RECIPROCAL')
        else:
            texts.append(f'ALLOCATE "{names[pool]}" TO DEPARTMENTS EVENLY')
    rules = rules_of(*texts) if texts else []
    plan, problems = order(rules, POOLS)
    assert problems == []  # every rule is RECIPROCAL, so any cycle is a group
    position = {r.rule_id: i for i, step in enumerate(plan.allocations) for r in step.rules}
    assert sorted(position) == sorted(r.rule_id for r in rules)
    for rule in rules:
        assert isinstance(rule, Allocate)
        for other in rules:
            if other.pool.key in fed_pools(rule, POOLS):
                assert position[rule.rule_id] <= position[other.rule_id]
