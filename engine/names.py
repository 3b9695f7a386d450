"""The workbook's names as the static checks see them (no pandas beyond here)."""

from __future__ import annotations

import pandas as pd

from costloop.engine.book import Book
from costloop.rules.checks import Names

# Columns with a fixed meaning in Departments: not drivers even if numeric.
_DEPARTMENT_FIXED = {"department", "fund", "name", "email", "parent", "billable"}


def names_from_book(book: Book) -> Names:
    """Pools, departments, metrics and columns the rules may name."""
    dept_columns = {
        key: header for key, (header, _letter) in book.columns.get("Departments", {}).items()
    }
    numeric = frozenset(
        key
        for key, header in dept_columns.items()
        if key not in _DEPARTMENT_FIXED
        and header in book.departments
        and pd.api.types.is_numeric_dtype(book.departments[header])
    )
    usage_columns = {
        key: header for key, (header, _letter) in book.columns.get("Usage", {}).items()
    }
    return Names(
        pools=book.pools,
        departments=book.department_names,
        metrics=book.metrics,
        department_columns=dept_columns,
        numeric_department_columns=numeric,
        usage_columns=usage_columns,
    )
