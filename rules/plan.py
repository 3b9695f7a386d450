"""The plan: rules in the order the engine runs them (docs/rules-language.md).

Pool-to-pool rules run before any rule that spreads a pool they feed
(step-down). Rules whose pools feed each other in a cycle form one reciprocal
step, solved together (T = D + Pᵀ·T); that is allowed only when every rule in
the cycle says RECIPROCAL.
"""

from __future__ import annotations

from dataclasses import dataclass

from costloop.rules.ast import Allocate, Charge, Forecast


@dataclass(frozen=True)
class Step:
    """One allocation step: a single rule, or a reciprocal group solved together."""

    rules: tuple[Allocate, ...]

    @property
    def reciprocal(self) -> bool:
        return len(self.rules) > 1


@dataclass(frozen=True)
class SetAside:
    """A FORECAST rule with a mistake in its own text (an unknown metric or pool, ``TREND
    OVER 1 PERIODS``), left out of the plan: a forecast never holds back the bills, so its
    problems are warnings, and the Forecast sheet marks its rows NOT COMPUTED with ``why``."""

    rule: Forecast
    why: str
    """The first of its problems, as `check` words it."""


@dataclass(frozen=True)
class Plan:
    """The enabled rules in the order the engine runs them. (A forecast's ``BY PLAN``, the
    Budget, is `costloop.rules.ast.ByPlan`.)"""

    allocations: tuple[Step, ...] = ()
    """In dependency order: a pool's spreading step comes after every step feeding it."""
    charges: tuple[Charge, ...] = ()
    forecasts: tuple[Forecast, ...] = ()
    """The FORECAST rules that can run (not those set aside)."""
    set_aside: tuple[SetAside, ...] = ()
    """FORECAST rules not run for a mistake in their text: see `SetAside`."""
