"""Header rows that are not where costloop reads them, and columns left without a header.

Row 1 is the header row (docs/contract.md#general-rules-for-input-sheets). Two
ways a real sheet breaks that, both of which used to bill wrong or say the wrong thing:

- a title or a blank line above the headers: every required column was "missing
  from row 1", one message per column, none saying what to do. The headers are
  found in a row below and named once: "the headers are in row 2 of Usage; delete row 1".
- a column with data and no header, most often a merged header cell (``B1:C1``
  merged shows its text over both columns, but only ``B1`` holds it): the column
  was ignored without a word, so a Name column went missing and bills showed codes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from costloop.engine.model.values import cell_text as _text
from costloop.engine.model.values import is_blank as _is_blank
from costloop.engine.workbook.host import column_letter
from costloop.problems import Problem, Reason, Severity

SEARCH_ROWS = 20
"""How far below row 1 headers are looked for: a title block, not a data row far down."""


def headers_below(
    sheet: str,
    body: Sequence[np.ndarray],
    required: Sequence[str],
    key_of: Callable[[str], str],
) -> Problem | None:
    """One problem when the row 1 headers are missing but a row below holds every required one.

    ``body`` is the sheet below row 1 as columns, ``key_of`` turns a header's text into
    the key the required columns are known by.
    """
    if not body:
        return None
    wanted = {key_of(column) for column in required}
    height = min(max(len(column) for column in body), SEARCH_ROWS)
    for i in range(height):
        cells = [column[i] for column in body if i < len(column)]
        keys = {key_of(_text(cell)) for cell in cells if not _is_blank(cell)}
        if wanted <= keys:
            row = i + 2  # body row 0 is sheet row 2
            above = "row 1" if row == 2 else f"rows 1 to {row - 1}"
            return Problem(
                Reason.HEADER_ROW,
                Severity.ERROR,
                f"{sheet}!A1",
                f"the headers are in row {row} of {sheet}; delete {above} "
                f"(costloop reads the headers from row 1)",
            )
    return None


def unheaded_columns(
    sheet: str, header_row: Sequence[object], body: Sequence[np.ndarray], blank_mask
) -> list[Problem]:
    """A warning per column that holds values below a blank header cell (its data is ignored).

    ``blank_mask`` is the reader's vectorised blank test, so a million-row column
    is judged in one pass.
    """
    problems: list[Problem] = []
    for index, column in enumerate(body):
        header = header_row[index] if index < len(header_row) else None
        if not _is_blank(header):
            continue
        count = int((~blank_mask(column)).sum())
        if not count:
            continue
        letter = column_letter(index)
        values = f"{count:,} value{'s' if count != 1 else ''}"
        message = (
            f"column {letter} has {values} but no header, so costloop ignores "
            f"{'them' if count != 1 else 'it'}; type a header in {letter}1"
        )
        before = header_row[index - 1] if 0 < index <= len(header_row) else None
        if not _is_blank(before):
            previous = column_letter(index - 1)
            message += (
                f' (if {previous}1 "{_text(before)}" is merged across {letter}1, unmerge it: '
                f"a merged cell keeps its text in {previous}1 only)"
            )
        problems.append(Problem(Reason.NO_HEADER, Severity.WARNING, f"{sheet}!{letter}1", message))
    return problems
