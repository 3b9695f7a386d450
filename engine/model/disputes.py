"""Disputes: a department questions a line of an issued bill (docs/contract.md#input-sheets).

The `Disputes` input sheet holds one row per dispute, with a reason code as
ServiceNow's statement disputes have. An `Accepted` dispute becomes a `Credit memo`
line of its `Resolution` in the next open period, once: the credit memo carries the
Dispute id, and when that period closes `Issued` remembers it, so no later run
credits it again. An `Open` dispute is shown on the department's bill; a `Rejected`
one credits nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from costloop.engine.model.sheets import DISPUTES

DISPUTES_SHEET = DISPUTES
DISPUTE_COLUMNS = [
    "Dispute", "Department", "Period", "Pool", "Reason", "Amount", "Status", "Resolution", "Note",
]  # fmt: skip
OPTIONAL_DISPUTE_COLUMNS = ["Raised"]
"""The date the department raised it: checked against Settings DisputeDays."""
REASONS = ("Rate", "Volume", "Allocation", "Duplicate", "Other")
OPEN, ACCEPTED, REJECTED = "Open", "Accepted", "Rejected"
STATUSES = (OPEN, ACCEPTED, REJECTED)
DISPUTE_DAYS = 60
"""Days after a period is issued to contest it (California SAM 8471.5 gives 60)."""


@dataclass(frozen=True)
class Dispute:
    """One row of the Disputes sheet, typed."""

    dispute: str
    department: str
    """The department code, as Departments spells it."""
    period: str
    pool: str
    """The pool, as the Budget or Actuals spell it."""
    reason: str
    amount: Decimal | None
    status: str
    resolution: Decimal | None
    note: str
    raised: dt.date | None
    row: int
    cells: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    """Column -> its cell (``Disputes!H4``), for messages."""
