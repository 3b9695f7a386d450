"""Order the rules into a Plan: step-down, cycles, reciprocal groups.

The order a finance user sees: docs/rules-language.md#step-down-pools-that-feed-pools.

A pool-to-pool rule runs before any rule that spreads a pool it feeds. Rules
whose pools feed each other form a strongly connected component: allowed only
when every rule in it says RECIPROCAL, and then they are one Step the engine
solves together. Otherwise the cycle is an error naming every pool and cell
in it. Ties keep row order, so a workbook without dependencies runs top down.

Which pools a rule feeds: the pools it names after POOLS; with ``POOLS`` alone
and fixed shares, the pools that get a share; with ``POOLS`` alone and any
other driver, every other pool (any of them may receive).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

from costloop.problems import Problem, Reason, Severity
from costloop.rules.ast import Allocate, Charge, Forecast, Rule, SharesDriver
from costloop.rules.plan import Plan, SetAside, Step

# Past this many pools in one cycle, finding a path through all of them is not
# worth the search: the message lists them instead.
_MAX_PATH_SEARCH = 12


def order(
    rules: list[Rule], pools: dict[str, str], set_aside: Sequence[SetAside] = ()
) -> tuple[Plan, list[Problem]]:
    """The plan: allocation steps in dependency order, charges and forecasts in row order.

    ``set_aside`` (from `costloop.rules.checks.set_aside`): FORECAST rules that are not
    run; the plan keeps them apart, so the Forecast sheet can say why.
    """
    aside = {id(s.rule) for s in set_aside}
    allocations = [r for r in rules if isinstance(r, Allocate)]
    edges = _feeds(allocations, pools)
    components = _components(len(allocations), edges)
    problems = [
        _cycle_problem([allocations[i] for i in c], c, edges, pools)
        for c in components
        if len(c) > 1 and not all(allocations[i].reciprocal for i in c)
    ]
    steps = tuple(
        Step(tuple(allocations[i] for i in component))
        for component in _topological(components, edges)
    )
    plan = Plan(
        allocations=steps,
        charges=tuple(r for r in rules if isinstance(r, Charge)),
        forecasts=tuple(r for r in rules if isinstance(r, Forecast) and id(r) not in aside),
        set_aside=tuple(set_aside),
    )
    return plan, problems


def fed_pools(rule: Allocate, pools: dict[str, str]) -> set[str]:
    """Keys of the pools this rule sends cost to."""
    if not rule.to_pools:
        return set()
    if rule.receivers.pool_names:
        fed = {name.key for name in rule.receivers.pool_names}
    elif isinstance(rule.driver, SharesDriver):
        fed = {share.name.key for share in rule.driver.shares if share.name.key in pools}
    else:
        fed = set(pools)
    fed.discard(rule.pool.key)
    return fed


def _feeds(allocations: list[Allocate], pools: dict[str, str]) -> list[list[int]]:
    """``edges[i]``: the rules (by index) that spread a pool rule ``i`` feeds, in row order."""
    spreaders: dict[str, list[int]] = {}
    for index, rule in enumerate(allocations):
        spreaders.setdefault(rule.pool.key, []).append(index)
    edges: list[list[int]] = []
    for index, rule in enumerate(allocations):
        targets = {
            target
            for pool in fed_pools(rule, pools)
            for target in spreaders.get(pool, ())
            if target != index
        }
        edges.append(sorted(targets))
    return edges


def _components(count: int, edges: list[list[int]]) -> list[list[int]]:
    """Strongly connected components (Tarjan, iterative: a long step-down chain
    must not hit Python's recursion limit). Each component sorted by row."""
    index_of: dict[int, int] = {}
    low: dict[int, int] = {}
    on_stack: set[int] = set()
    stack: list[int] = []
    components: list[list[int]] = []
    counter = 0
    for root in range(count):
        if root in index_of:
            continue
        work = [(root, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                index_of[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            recurse = False
            for position in range(child, len(edges[node])):
                nxt = edges[node][position]
                if nxt not in index_of:
                    work.append((node, position + 1))
                    work.append((nxt, 0))
                    recurse = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index_of[nxt])
            if recurse:
                continue
            if low[node] == index_of[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return components


def _topological(components: list[list[int]], edges: list[list[int]]) -> list[list[int]]:
    """Components so every feeder comes first; among ready ones, the earliest row first."""
    owner = {member: c for c, component in enumerate(components) for member in component}
    successors: list[set[int]] = [set() for _ in components]
    waiting = [0] * len(components)
    for c, component in enumerate(components):
        for member in component:
            for target in edges[member]:
                t = owner[target]
                if t != c and t not in successors[c]:
                    successors[c].add(t)
                    waiting[t] += 1
    ready = [(component[0], c) for c, component in enumerate(components) if waiting[c] == 0]
    heapq.heapify(ready)
    ordered: list[list[int]] = []
    while ready:
        _row, c = heapq.heappop(ready)
        ordered.append(components[c])
        for t in successors[c]:
            waiting[t] -= 1
            if waiting[t] == 0:
                heapq.heappush(ready, (components[t][0], t))
    return ordered


def _cycle_problem(
    rules: list[Allocate], members: list[int], edges: list[list[int]], pools: dict[str, str]
) -> Problem:
    first = rules[0]
    cells = [first.where] + [r.where.rpartition("!")[2] for r in rules[1:]]

    def spelled(rule: Allocate) -> str:
        return f'"{pools.get(rule.pool.key, rule.pool.text)}"'

    path = _cycle_path(members, edges)
    if path is not None:
        by_index = dict(zip(members, rules, strict=True))
        pools_text = " -> ".join(spelled(by_index[i]) for i in [*path, path[0]])
    else:
        pools_text = ", ".join(spelled(r) for r in rules)
    fix = "mark every rule in it RECIPROCAL to solve it"
    unmarked = [r.where.rpartition("!")[2] for r in rules if not r.reciprocal]
    if len(unmarked) < len(rules):
        fix += f"; not yet marked: {', '.join(unmarked)}"
    return Problem(
        code=Reason.CYCLE,
        severity=Severity.ERROR,
        where=", ".join(cells),
        message=f"cycle between pools {pools_text} ({fix})",
        rule_id=first.rule_id,
    )


def _cycle_path(members: Sequence[int], edges: list[list[int]]) -> list[int] | None:
    """A cycle through every member, starting at the first row (depth-first), if small."""
    if len(members) > _MAX_PATH_SEARCH:
        return None
    inside = set(members)
    start = members[0]

    def extend(path: list[int]) -> list[int] | None:
        if len(path) == len(members):
            return path if start in edges[path[-1]] else None
        for nxt in edges[path[-1]]:
            if nxt in inside and nxt not in path:
                found = extend([*path, nxt])
                if found:
                    return found
        return None

    return extend([start])
