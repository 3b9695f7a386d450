"""Names as typed: one spelling for each name (its first), and every name the sheets hold.

The first occurrence (sheets in contract order: Departments, Budget, Actuals,
Usage, Rates; rows top-down) is the spelling used everywhere. The names seen
include those in rows left out for a problem, so the rule checks add no false
"unknown pool" to the row's own error.
"""

from __future__ import annotations

import pandas as pd

from costloop.engine.model.values import cell_text
from costloop.engine.read.cell_checks import is_unreadable
from costloop.engine.read.grid import InputSheet
from costloop.rules.ast import name_key


def canonicalise(frames: list[tuple[pd.DataFrame, str]]) -> None:
    """Every name in the spelling of its first occurrence (frames in contract order)."""
    first: dict[str, str] = {}
    for frame, column in frames:
        if column not in frame or frame.empty:
            continue
        values = frame[column].to_numpy(dtype=object)
        uniques = pd.unique(values)
        spelling: dict[str, str] = {}
        for name in uniques:
            if name:
                spelling[name] = first.setdefault(name_key(name), name)
        if any(a != b for a, b in spelling.items()):
            frame[column] = [spelling.get(v, v) for v in values]


_NAME_CELLS = {
    "departments": (("Departments", "department"),),
    "pools": (("Budget", "pool"), ("Actuals", "pool")),
    "metrics": (("Usage", "metric"), ("Budget", "metric"), ("Rates", "metric")),
}
"""Which cells hold the names of each kind that rules and Usage refer to."""


def names_in_cells(usable: dict[str, InputSheet]) -> tuple[dict[str, dict[str, str]], set[str]]:
    """Every name of each kind as typed, rows left out for a problem included; and the kinds
    with a name cell that has no value (an Excel error, a formula with no calculated value).

    A row rejected for its amount still names its pool: checking names against
    the good rows only would add a false "unknown pool" to the real error. And
    when a name cell cannot be read at all, which names exist is unknown, so
    "unknown name" checks of that kind stand down (the cell's own error stops the run).
    """
    seen: dict[str, dict[str, str]] = {kind: {} for kind in _NAME_CELLS}
    unreadable: set[str] = set()
    for kind, places in _NAME_CELLS.items():
        for logical, key in places:
            sheet = usable.get(logical)
            if sheet is None or key not in sheet.cells:
                continue
            for value in pd.unique(sheet.cells[key]):
                if is_unreadable(value):
                    unreadable.add(kind)
                    continue
                name = cell_text(value)
                if name:
                    seen[kind].setdefault(name_key(name), name)
    return seen, unreadable
