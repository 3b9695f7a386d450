"""The engine: read a Book, order the rules, allocate, charge, forecast, write back.

The facade front ends use (docs/architecture.md): `read_book`, `check_workbook`,
`run_workbook` and their `Outcome`. The stages live in the rooms below this package
(model, workbook, xlsx, read, chargeback, itfm, pipeline, recalc).

Names are resolved on first use (PEP 562), so importing one room — the survey's
second process imports `costloop.engine.xlsx.survey` — does not load every stage.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from costloop.engine.pipeline.run import Outcome, check_workbook, run_workbook
    from costloop.engine.read.reader import read_book

_FACADE = {
    "read_book": "costloop.engine.read.reader",
    "check_workbook": "costloop.engine.pipeline.run",
    "run_workbook": "costloop.engine.pipeline.run",
    "Outcome": "costloop.engine.pipeline.run",
}

__all__ = ["Outcome", "check_workbook", "read_book", "run_workbook"]


def __getattr__(name: str) -> object:
    if name in _FACADE:
        return getattr(import_module(_FACADE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
