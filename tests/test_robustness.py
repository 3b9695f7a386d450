"""Whatever a user types into the input sheets, a run ends in problems, never an exception.

Hypothesis takes the demo workbook's input sheets and overwrites random cells
with the kinds of values people really type or paste (text, negative and huge
numbers, Excel errors, dates, blanks, stray rule fragments). The run must
return an outcome; a failed one writes only Rule Check and Run Log, and every
problem says where it is.
"""

from __future__ import annotations

import datetime as dt
import functools
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from costloop.engine.model.sheets import INPUT_SHEETS, OUTPUT_SHEETS
from costloop.engine.pipeline.run import run_workbook
from costloop.engine.workbook.host import ExcelError, OutputSheet
from costloop.engine.xlsx.file_workbook import FileWorkbook
from costloop.problems import Reason
from costloop.workbooks import demo_path

# A cell (`Usage!D12`, `Rules!B3, B5`), a command-line option, or a whole sheet.
LOCATION = re.compile(
    r"^([^!]+![A-Z]+\d+|--\w+|(" + "|".join(map(re.escape, INPUT_SHEETS + OUTPUT_SHEETS)) + r")$)"
)


class MemoryWorkbook:
    """The Workbook interface over grids in memory."""

    def __init__(self, grids: dict[str, list[list[object]]]):
        self.grids = grids
        self.owned: set[str] = set()
        self.written: list[str] = []

    def sheet_names(self) -> list[str]:
        return list(self.grids)

    def read_sheet(self, name: str) -> list[list[object]]:
        return [list(row) for row in self.grids[name]]

    def owned_sheets(self) -> set[str]:
        return set(self.owned)

    def replace_sheets(self, sheets: list[OutputSheet], output=None) -> None:
        for sheet in sheets:
            self.grids[sheet.name] = [list(sheet.columns), *map(list, sheet.rows)]
            self.owned.add(sheet.name)
            self.written.append(sheet.name)


@functools.cache
def demo_grids() -> dict[str, list[list[object]]]:
    demo = FileWorkbook(demo_path())
    return {name: demo.read_sheet(name) for name in INPUT_SHEETS}


typed_values = st.one_of(
    st.none(),
    st.text(max_size=12),
    st.sampled_from(["n/a", "-", "TBD", "2026-13", "1,000", "$12", "  ", "Cloud", "ADM"]),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([ExcelError("#REF!"), ExcelError("#DIV/0!"), ExcelError("#N/A")]),
    st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2100, 12, 31)),
    st.sampled_from(
        [
            'ALLOCATE "Cloud" TO',
            'CHARGE "Storage" FOR "GB-Month" AT -1',
            'FORECAST USAGE "GB-Month" BY TREND OVER 99 PERIODS',
            '"unclosed',
            "--",
        ]
    ),
)

edits = st.lists(
    st.tuples(
        st.sampled_from(INPUT_SHEETS),
        st.integers(min_value=0, max_value=40),
        st.integers(min_value=0, max_value=7),
        typed_values,
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits)
def test_any_typed_input_ends_in_located_problems_not_an_exception(changes):
    grids = {name: [list(row) for row in grid] for name, grid in demo_grids().items()}
    for sheet, row, col, value in changes:
        grid = grids[sheet]
        while len(grid) <= row:
            grid.append([None] * len(grid[0]))
        cells = grid[row]
        cells.extend([None] * (col + 1 - len(cells)))
        cells[col] = value
    wb = MemoryWorkbook(grids)
    outcome = run_workbook(wb, label="fuzz")
    if outcome.ok:
        assert set(wb.written) == set(OUTPUT_SHEETS)
    else:
        assert set(wb.written) <= {"Rule Check", "Run Log"}
        assert outcome.errors
    for problem in outcome.problems:
        assert LOCATION.match(problem.where), problem.where
        assert problem.message
        # A crash inside Forecast, Variance or Compliance becomes a NOT_COMPUTED warning so
        # the bills still go out (engine/pipeline/itfm_sheets.py); typed input must not crash.
        assert problem.code is not Reason.NOT_COMPUTED, problem.message
