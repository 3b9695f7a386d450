"""Turn result frames into engine-owned sheets (`OutputSheet`), with the formats of
`costloop.engine.model.formats`.

Money stays Decimal all the way into the cell; a missing value (None, NaN,
pd.NA) becomes an empty cell rather than the text "nan".
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from decimal import Decimal

import pandas as pd

from costloop.engine.workbook.host import OutputSheet


def _cell(value: object) -> object:
    kind = type(value)
    if kind is str or kind is int:
        return value
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if kind is float:
        return None if math.isnan(value) else value
    if kind is Decimal:
        return None if value.is_nan() else value
    if hasattr(value, "item") and not isinstance(value, (str, bytes, Decimal)):
        return value.item()  # numpy scalar -> Python scalar
    return value


def frame_to_sheet(
    name: str,
    frame: pd.DataFrame,
    columns: list[str],
    formats: dict[str, str] | None = None,
    row_formats: tuple[str, dict[str, dict[str, str]]] | None = None,
) -> OutputSheet:
    """An owned sheet with exactly ``columns`` (the contract's order) from ``frame``.

    ``row_formats`` is (the column naming a row's kind, {kind: {column: format}}),
    as `costloop.engine.model.formats.row_formats` gives it: a row of such a kind
    shows those columns in those formats instead of the column's.
    """
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name}: result has no column(s) {missing}")
    return OutputSheet(
        name=name,
        columns=list(columns),
        rows=FrameRows(frame, columns),
        formats=dict(formats or {}),
        cell_formats=_cell_formats(frame, row_formats),
    )


def _cell_formats(
    frame: pd.DataFrame, row_formats: tuple[str, dict[str, dict[str, str]]] | None
) -> dict[str, list[str | None]]:
    if not row_formats or row_formats[0] not in frame.columns:
        return {}
    kind_column, by_kind = row_formats
    kinds = frame[kind_column].tolist()
    columns = dict.fromkeys(c for formats in by_kind.values() for c in formats)
    return {
        column: [by_kind.get(kind, {}).get(column) for kind in kinds]
        for column in columns
        if column in frame.columns
    }


class FrameRows(Sequence):
    """A result frame's rows as the tuples an `OutputSheet` holds, made only when asked for.

    The .xlsx writer takes the values column by column (`by_column`) and never needs
    a million Python tuples; other hosts (memory, xlwings) read the rows as usual.
    """

    def __init__(self, frame: pd.DataFrame, columns: list[str]):
        self._series = [frame[c] for c in columns]
        self._length = len(frame)
        self._rows: list[tuple] | None = None

    def by_column(self) -> list[tuple[list[object], set[type]]]:
        """Each column's cell values, top to bottom (None for a missing value), and the
        kinds of value it holds (None aside), known from the frame without a second look."""
        return [_column_values(series) for series in self._series]

    def _all(self) -> list[tuple]:
        if self._rows is None:
            columns = [values for values, _ in self.by_column()]
            self._rows = list(zip(*columns, strict=True))
        return self._rows

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index):
        return self._all()[index]

    def __iter__(self) -> Iterator[tuple]:
        return iter(self._all())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str | bytes):
            return self._all() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal to a list, so unhashable like one

    def __repr__(self) -> str:
        return f"FrameRows({self._length} rows)"


def _column_values(series: pd.Series) -> tuple[list[object], set[type]]:
    # tolist() hands back Python scalars far faster than itertuples.
    values = series.tolist()
    if isinstance(series.dtype, pd.StringDtype):
        # A text column holds str or a missing marker (NaN or pd.NA): no per-cell checks.
        if series.hasnans:
            values = [v if type(v) is str else None for v in values]
        return values, {str}
    kinds = set(map(type, values))
    kinds.discard(type(None))
    if kinds <= {str, int}:
        return values, kinds  # already what a cell holds
    # Money: a NaN Decimal is the one value to turn into a blank. (filter(None, ...) skips
    # None and zeros, neither of them NaN; map and any keep the check out of Python.)
    if kinds == {Decimal} and not any(map(Decimal.is_nan, filter(None, values))):
        return values, kinds
    values = [_cell(v) for v in values]
    return values, {type(v) for v in values} - {type(None)}
