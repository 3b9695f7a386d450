"""The ITFM sheets of a run — Forecast, Variance, Compliance — which never hold back the bills.

The bills are what departments pay for the period; the forecast, the plan
against actual and the compliance review are advice about the months to come.
So nothing that goes wrong while making these three sheets fails the run
(docs/contract.md#errors): a problem they report is a warning, and a sheet that
could not be computed at all — an unexpected failure inside it — is written as
one `NOT COMPUTED` row saying why, with a warning at that row, while Bills,
Journal and Recovery are written as normal. A sheet that could not be made is
never left out or left blank, where an empty Forecast would read as "nothing
to forecast".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import pandas as pd

from costloop.engine.itfm.compliance import compliance
from costloop.engine.itfm.forecast import forecast
from costloop.engine.itfm.variance import variance
from costloop.engine.model.book import Book
from costloop.engine.model.result import Result
from costloop.engine.model.sheets import (
    BILLS,
    COMPLIANCE,
    COMPLIANCE_COLUMNS,
    FORECAST,
    FORECAST_COLUMNS,
    VARIANCE,
    VARIANCE_COLUMNS,
)
from costloop.problems import Problem, Reason, Severity
from costloop.rules.plan import Plan

NOT_COMPUTED = "NOT COMPUTED"


@dataclass
class ItfmSheets:
    """Each sheet's frame and columns by its base name, and the stage's warnings."""

    sheets: dict[str, tuple[pd.DataFrame, list[str]]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


def _not_computed_row(sheet: str, why: str) -> dict:
    """The one row a sheet that could not be computed shows, in that sheet's own columns."""
    text = f"{NOT_COMPUTED}: {why}; see Rule Check — the bills are not affected"
    if sheet == FORECAST:
        return {"Kind": NOT_COMPUTED, "Method": text}
    if sheet == VARIANCE:
        return {"Kind": NOT_COMPUTED, "Name": text, "Status": NOT_COMPUTED}
    return {"Check": NOT_COMPUTED, "Status": NOT_COMPUTED, "Finding": text}


def _guarded(
    sheet: str,
    columns: list[str],
    make: Callable[[], tuple[pd.DataFrame, list[Problem]]],
    shown_as: str,
) -> tuple[pd.DataFrame, list[Problem]]:
    """``make()``, with its errors as warnings; a failure inside it as a NOT COMPUTED row."""
    try:
        frame, problems = make()
    except Exception as exc:  # a defect or unforeseen data: the bills are still right
        why = f"{type(exc).__name__}: {exc}"
        row = _not_computed_row(sheet, why)
        frame = pd.DataFrame([{c: row.get(c) for c in columns}], columns=columns, dtype=object)
        problem = Problem(
            Reason.NOT_COMPUTED,
            Severity.WARNING,
            f"{shown_as}!A2",
            f"the {shown_as} sheet could not be computed ({why}), so it shows one "
            f"{NOT_COMPUTED} row; Bills, Journal and Recovery are complete and not affected. "
            "Please report this, with the workbook if you can",
        )
        return frame, [problem]
    return frame, [replace(p, severity=Severity.WARNING) if p.is_error else p for p in problems]


def itfm_sheets(
    book: Book,
    plan: Plan,
    result: Result,
    period: str,
    names: dict[str, str],
    closed: dict | None = None,
) -> ItfmSheets:
    """Forecast, Variance and Compliance for the billed ``period``; never an error.

    ``names`` maps each base sheet name to the name it is written under (a
    scenario's `Forecast@NAME`), so a warning points at the sheet the user sees.
    """
    out = ItfmSheets()

    def add(sheet, columns, make) -> None:
        frame, problems = _guarded(sheet, columns, make, names.get(sheet, sheet))
        out.sheets[sheet] = (frame, columns)
        out.problems.extend(problems)

    add(
        FORECAST,
        FORECAST_COLUMNS,
        lambda: forecast(
            book,
            plan.forecasts,
            plan.charges,
            result.recovery,
            period,
            bills=result.bills,
            flows=result.pool_flows,
            year_charges=result.year_charges,
            set_aside=plan.set_aside,
        ),
    )
    # Variance takes closed periods' actuals and usage as issued (pipeline/ledger.py).
    add(VARIANCE, VARIANCE_COLUMNS, lambda: variance(book, period, closed))
    compliance_sheet = names.get(COMPLIANCE, COMPLIANCE)
    add(
        COMPLIANCE,
        COMPLIANCE_COLUMNS,
        lambda: compliance(
            book,
            result.recovery,
            result.year_charges,
            period,
            plan.charges,
            compliance_sheet,
            names.get(BILLS, BILLS),
        ),
    )
    return out
