"""The state of a department's bill for a period, as the first page lists it.

The words, in this order, each when it holds (docs/portal.md#the-state-of-a-bill):

- ``issued``: the period is closed (the workbook's `Issued` sheet); the bill is the one
  issued at the close, never recomputed;
- ``corrected in MONTH``: issued, and a later bill of the fiscal year carries Reversal and
  Correction lines of this department whose Charge Period is this period;
- ``disputed``: an open dispute of this department on this period, raised in the portal
  (still Open there) or on the workbook's `Disputes` sheet (Status `Open`);
- ``accepted``: accepted in the portal for the run the bill belongs to (the run that was
  closed, for an issued bill; the workbook's last run, for the open period);
- ``billed``: none of the above: the open period's bill of the last run.
"""

from __future__ import annotations

from dataclasses import dataclass

from costloop.bills.statement import Statement
from costloop.bills.workbook import month_label
from costloop.rules.ast import name_key


@dataclass(frozen=True)
class BillState:
    issued: bool
    corrected_in: tuple[str, ...]
    disputed: bool
    accepted: bool

    @property
    def words(self) -> list[tuple[str, str]]:
        """(CSS name, text) of each word that holds: ``[("issued", "issued"), …]``."""
        out = []
        if self.issued:
            out.append(("issued", "issued"))
        if self.corrected_in:
            out.append(
                ("corrected", "corrected in " + ", ".join(map(month_label, self.corrected_in)))
            )
        if self.disputed:
            out.append(("disputed", "disputed"))
        if self.accepted:
            out.append(("accepted", "accepted"))
        return out or [("billed", "billed")]

    @property
    def text(self) -> str:
        return ", ".join(text for _, text in self.words)


def state_of(
    s: Statement, accepted: set[tuple[str, str]], disputed: set[tuple[str, str]]
) -> BillState:
    """``accepted``: (department key, period) accepted for the bill's own run;
    ``disputed``: those with a dispute still Open in the portal."""
    key = (name_key(s.department), s.period)
    in_workbook = any(d.period == s.period for d in s.open_disputes)
    return BillState(
        issued=s.issued,
        corrected_in=tuple(s.corrected_in),
        disputed=key in disputed or in_workbook,
        accepted=key in accepted,
    )
