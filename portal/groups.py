"""The Departments sheet's `Portal Group` column: which single sign-on groups see which department.

A cell holds one group, or several separated by ``;`` (or on lines of their own,
Alt+Enter in Excel): ``adm-staff; dean-office``. A semicolon, because group names
from a campus directory often hold commas (``cn=adm,ou=groups,dc=example,dc=edu``)
and spaces (``IT Staff``) but almost never a semicolon. Each name is trimmed and
then compared exactly — case and all — with the names in the identity provider's
groups claim: a group that is almost right gives no access, rather than the access
of a group that merely looks the same. One group may be written on several
departments (a dean's office that sees all its schools).
"""

from __future__ import annotations

import re

import pandas as pd

PORTAL_GROUP = "Portal Group"
"""The Departments column, as docs/contract.md names it."""
SEPARATOR = ";"

_SPLIT = re.compile(r"[;\r\n]")


def group_names(cell: str) -> list[str]:
    """The groups written in one Portal Group cell, in order, blanks dropped."""
    return [name.strip() for name in _SPLIT.split(cell or "") if name.strip()]


def portal_groups(departments: pd.DataFrame) -> dict[str, frozenset[str]]:
    """Group name -> the department keys it sees (empty when the sheet has no such column)."""
    if PORTAL_GROUP not in departments:
        return {}
    seen: dict[str, set[str]] = {}
    for cell, key in zip(departments[PORTAL_GROUP], departments["_key"], strict=True):
        for name in group_names(str(cell or "")):
            seen.setdefault(name, set()).add(key)
    return {name: frozenset(keys) for name, keys in seen.items()}
