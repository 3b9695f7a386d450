"""The Usage rows behind a bill line, selected as the engine selected them.

A front end (the portal's drill-down) shows a department which of its usage rows
a line was made from. It must pick them exactly as the rule did — the rule's
metric and its WHERE conditions on Usage columns — so the selection goes through
the chargeback's own condition test rather than a second copy of it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from costloop.engine.chargeback.drivers import condition_mask, frame_column
from costloop.rules.ast import Allocate, Charge, Statement, UsageDriver, name_key


def usage_metric(rule: Statement | None) -> str | None:
    """The metric name key a rule reads from Usage, or None (fixed shares, a column, evenly)."""
    if isinstance(rule, Charge):
        return rule.metric.key
    if isinstance(rule, Allocate) and isinstance(rule.driver, UsageDriver):
        return rule.driver.metric.key
    return None


def usage_behind(rule: Statement | None, usage: pd.DataFrame) -> pd.DataFrame | None:
    """The rows of ``usage`` (one department's, one period's) the rule's line was made from.

    None when the rule is not driven by usage rows at all. WHERE conditions on
    Departments columns decide whether the department is billed, not which rows
    count, so only the conditions on Usage columns narrow the rows here.
    """
    metric = usage_metric(rule)
    if metric is None:
        return None
    if usage.empty or "Metric" not in usage:
        return usage.iloc[:0]
    mask = np.array([name_key(str(m)) == metric for m in usage["Metric"]], dtype=bool)
    for cond in getattr(rule, "where_clause", ()):
        column = frame_column(usage, cond.column.key)
        if column is not None:
            mask &= condition_mask(usage, column, cond)
    return usage[mask].reset_index(drop=True)
