"""A receiving department whose driver cell is blank: a warning at the cell.

``ALLOCATE "Network" TO DEPARTMENTS BY Headcount`` reads a blank Headcount as 0
(a driver column is numbers, a blank is none), so that department got no share
and the others paid it, with exit 0. A typed 0 says "no share" on purpose; a
blank cell says nothing, so it is named, with the money it was left out of.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from costloop.engine.chargeback.drivers import Drivers
from costloop.engine.model.money import format_money
from costloop.problems import Problem, Reason, Severity
from costloop.rules.ast import Allocate


def _blank(values: pd.Series) -> np.ndarray:
    """None, NaN or whitespace-only text (a number column read with blanks as NaN)."""
    blank = values.isna().to_numpy()
    if values.dtype == object:
        texts = np.array([isinstance(v, str) and not v.strip() for v in values], dtype=bool)
        blank = blank | texts  # a new array: pandas may hand back a read-only view
    return blank


def blank_driver_cells(
    drivers: Drivers,
    rule: Allocate,
    header: str | None,
    positions: np.ndarray,
    amount: int,
    period: str,
) -> list[Problem]:
    """A warning per receiving department (at ``positions``) whose ``header`` cell is blank."""
    deps = drivers.book.departments
    if header is None or header not in deps or not len(positions) or amount == 0:
        return []
    blank = _blank(deps[header])
    if not blank.any():
        return []
    receiving = set(drivers.department_keys[positions].tolist())
    pool = drivers.pool_names.get(rule.pool.key, rule.pool.text)
    if rule.reciprocal:
        # The reciprocal solver asks before it knows the amount: name the pool, not a sum.
        spread = f'pool "{pool}"'
    else:
        money = format_money(amount, drivers.minor_unit)
        spread = f'the {money} that {rule.rule_id} spreads from "{pool}" in {period}'
    problems = []
    for key in np.asarray(deps["_key"], dtype=object)[blank].tolist():
        department = drivers.departments.get(key)
        if key not in receiving or department is None or department.row is None:
            continue
        problems.append(
            Problem(
                Reason.BLANK_DRIVER,
                Severity.WARNING,
                drivers.book.cell("Departments", header, department.row),
                f'{header} of "{department.code}" is blank, so {department.code} gets no share '
                f"of {spread} and the other departments pay it; type its {header} "
                f"(0 if it should get no share)",
                rule_id=rule.rule_id,
            )
        )
    return problems
