"""Usage rows pasted twice: a warning naming both rows, grouped when there are many.

Two rows that say the same usage are both billed. A meter export pasted twice,
or a month appended again, doubled a department's bill with exit 0. Which rows
are "the same" (docs/contract.md#errors):

- with a ``Reference`` column, rows with the same Period, Department, Metric,
  Service and Reference (a reference names one reading; a different quantity
  under it is a correction pasted beside the original, still billed twice);
- a row with a blank Reference, and every row when there is no Reference
  column, repeats another only when every column is the same.

Names compare as names do everywhere (ignoring case and extra spaces). The rows
are compared as integer codes, one factorisation per column, so a million rows
take a few vectorised passes and never a Python loop per row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from costloop.problems import GROUP_AFTER, Problem, Reason, Severity
from costloop.rules.ast import name_key

SHOWN_PAIRS = 3
"""Pairs named in the one warning that stands for many."""
SAME_KEY = "the same Period, Department, Metric, Service and Reference"
WHOLE_ROW = "the same value in every column"

_NAMED = ("Metric", "Service")
_CONTRACT = {"Period", "Department", "Metric", "Quantity", "Service", "Reference"}


def _codes(values: np.ndarray, as_names: bool) -> np.ndarray:
    """An integer per row, equal where the values are equal (names: by `name_key`); 0 is blank."""
    codes, uniques = pd.factorize(values)
    if as_names and len(uniques):
        # Few distinct names: key each one once, then re-code the rows through them.
        keys = [name_key(u) if isinstance(u, str) else u for u in uniques]
        codes = np.where(codes < 0, -1, pd.factorize(np.asarray(keys, dtype=object))[0][codes])
    return np.asarray(codes, dtype=np.int64) + 1


def _combined(columns: list[np.ndarray]) -> np.ndarray:
    """One code per row for the tuple of codes, in order of first appearance."""
    combined = np.zeros(len(columns[0]), dtype=np.int64)
    for codes in columns:
        # Both factors are below the row count, so the product stays well inside int64.
        combined = pd.factorize(combined * (int(codes.max(initial=0)) + 1) + codes)[0]
    return combined.astype(np.int64, copy=False)


def _columns(usage: pd.DataFrame, has_reference: bool, exact: bool) -> list[np.ndarray]:
    """The compared columns as integers per row: codes (``exact``) or 64-bit hashes.

    Names (metric, service) are codes of their name keys either way; a reference, a
    quantity and an extra column, which may have a distinct value per row, are hashed
    for the first pass (hashing a million strings costs half of factorising them).
    """
    department = usage["_key"] if "_key" in usage else usage["Department"].map(name_key)
    keyed = [
        _codes(usage["Period"].to_numpy(dtype=object), as_names=False),
        _codes(department.to_numpy(dtype=object), as_names=False),
        *(_codes(usage[c].to_numpy(dtype=object), as_names=True) for c in _NAMED if c in usage),
    ]
    extras = [c for c in usage.columns if c not in _CONTRACT and not str(c).startswith("_")]
    many = [usage["Reference"].to_numpy(dtype=object), usage["Quantity"].to_numpy()]
    many += [usage[c].to_numpy() for c in extras]
    if exact:
        many = [_codes(values, as_names=False) for values in many]
    else:
        many = [pd.util.hash_array(values, categorize=False).view(np.int64) for values in many]
    # A reference is an ID, compared as typed (trimmed): keying a million distinct
    # references as names would cost more than the whole comparison.
    reference, whole = many[0], many[1:]
    if has_reference:
        # Rows with a Reference are the same reading whatever the quantity says.
        referenced = usage["Reference"].to_numpy(dtype=object) != ""
        whole = [np.where(referenced, 0, codes + 1) for codes in whole]
    return [*keyed, reference, *whole]


_MIX = np.uint64(0x9E3779B97F4A7C15)


def _maybe_repeated(usage: pd.DataFrame, has_reference: bool) -> np.ndarray:
    """Rows that may repeat another: equal 64-bit hashes (a superset, checked exactly next)."""
    mixed = np.zeros(len(usage), dtype=np.uint64)
    for column in _columns(usage, has_reference, exact=False):
        hashed = pd.util.hash_array(column.view(np.uint64) if column.dtype == np.int64 else column)
        mixed = (mixed * _MIX) ^ hashed  # wraps around modulo 2**64, as a hash should
    return pd.Series(mixed).duplicated(keep=False).to_numpy()


def _maybe_by_one_column(usage: pd.DataFrame, has_reference: bool) -> np.ndarray:
    """Rows sharing their Reference (or, without one, their Quantity) with another row.

    One hashed column costs a tenth of the full comparison, and in a meter export
    nearly every row has its own reference or reading, so few rows go further.
    """
    column = usage["Reference"] if has_reference else usage["Quantity"]
    hashed = pd.util.hash_array(column.to_numpy(), categorize=False)
    if has_reference:
        # A row without a Reference is compared whole: its quantity decides.
        blank = usage["Reference"].to_numpy(dtype=object) == ""
        quantity = pd.util.hash_array(usage["Quantity"].to_numpy())
        hashed = np.where(blank, quantity, hashed)
    return pd.Series(hashed).duplicated(keep=False).to_numpy()


def repeated_usage(usage: pd.DataFrame, sheet: str, has_reference: bool) -> list[Problem]:
    """A warning per Usage row that repeats an earlier one; one warning for more than a few."""
    if len(usage) < 2:
        return []
    # Narrowed in steps, each keeping every row of a repeated group (so "first" stays
    # first): the one column that tells most rows apart, all columns hashed, then exact.
    for narrow in (_maybe_by_one_column, _maybe_repeated):
        maybe = narrow(usage, has_reference)
        if not maybe.any():
            return []
        usage = usage[maybe] if not maybe.all() else usage
    combined = _combined(_columns(usage, has_reference, exact=True))
    repeats = pd.Series(combined).duplicated().to_numpy()
    if not repeats.any():
        return []
    # Codes count up in order of first appearance: the k-th new code is at firsts[k].
    firsts = np.flatnonzero(~repeats)
    rows = usage["_row"].to_numpy()
    at = np.flatnonzero(repeats)
    head = at[: GROUP_AFTER + 1]
    pairs = list(zip(rows[head].tolist(), rows[firsts[combined[head]]].tolist(), strict=True))
    # A row with a Reference repeats by its key; one without (or with no column) by every cell.
    referenced = usage["Reference"].to_numpy(dtype=object)[at] != ""
    if not has_reference or not referenced.any():
        basis = WHOLE_ROW
    elif referenced.all():
        basis = SAME_KEY
    else:
        basis = f"{SAME_KEY}, or every column where the Reference is blank"
    fix = "if it was pasted twice, delete one of the two rows"
    if len(at) <= GROUP_AFTER:
        out = []
        for i, (row, first) in zip(at.tolist(), pairs, strict=True):
            own = SAME_KEY if has_reference and usage["Reference"].iat[i] != "" else WHOLE_ROW
            out.append(
                Problem(
                    Reason.DUPLICATE_ROW,
                    Severity.WARNING,
                    f"{sheet}!A{row}",
                    f"this row repeats {sheet}!A{first} ({own}: {_shown(usage, i)}), so both "
                    f"are billed; {fix}",
                )
            )
        return out
    shown = ", ".join(f"A{row} repeats A{first}" for row, first in pairs[:SHOWN_PAIRS])
    low, high = int(rows[at].min()), int(rows[at].max())
    return [
        Problem(
            Reason.DUPLICATE_ROW,
            Severity.WARNING,
            f"{sheet}!A{low}:A{high}",
            f"{len(at):,} Usage rows repeat an earlier row ({basis}), so both are billed; "
            f"first {shown} …; if they were pasted twice, delete the repeats",
        )
    ]


def _shown(usage: pd.DataFrame, i: int) -> str:
    """The repeated row's Period, Department, Metric and, when filled, Service and Reference."""
    row = usage.iloc[i]
    parts = [str(row["Period"]), str(row["Department"]), str(row["Metric"])]
    for column in ("Service", "Reference"):
        if column in usage and row[column]:
            parts.append(f"{column} {row[column]}")
    return ", ".join(parts)
