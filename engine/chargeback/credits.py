"""Credit memos: an accepted dispute credited in the open period, once (docs/audit.md).

Each `Accepted` dispute not yet credited in a closed period (`Issued` remembers
the Dispute id of every credit memo it issued) becomes one `Credit memo` line in the
billed period: its department and pool, the disputed period as Charge Period, the
Resolution as a negative Amount and the Dispute id in Rule. Its journal entry is the
department's entry with ``-D<dispute>`` (a credit swaps debit and credit, as any
negative line does), and its memo names the dispute, its reason and the entry it
credits.
"""

from __future__ import annotations

import pandas as pd

from costloop.engine.chargeback.drivers import Drivers
from costloop.engine.chargeback.journal import build_journal
from costloop.engine.model.disputes import ACCEPTED, Dispute
from costloop.engine.model.issued import CREDIT_MEMO, Issued
from costloop.engine.model.sheets import BILL_COLUMNS, JOURNAL_COLUMNS
from costloop.rules.ast import name_key


def due(disputes: list[Dispute], issued: Issued, billed: str) -> list[Dispute]:
    """The accepted disputes the billed period credits: not credited yet, of an earlier period."""
    done = issued.credited_disputes()
    return [
        d
        for d in disputes
        if d.status == ACCEPTED and name_key(d.dispute) not in done and d.period < billed
    ]


def credit_memos(
    drivers: Drivers, disputes: list[Dispute], issued: Issued, billed: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Bills lines and journal lines (with helper columns Charge Period, Line Type)."""
    lines, journals = [], []
    for dispute in due(disputes, issued, billed):
        dep = drivers.departments.get(name_key(dispute.department))
        line = {
            "Period": billed,
            "Department": dep.code if dep else dispute.department,
            "Name": dep.name if dep else "",
            "Pool": dispute.pool,
            "Metric": None,
            "Quantity": None,
            "Rate": None,
            "Amount": -dispute.resolution,
            "Rule": dispute.dispute,
            "Charge Period": dispute.period,
            "Line Type": CREDIT_MEMO,
        }
        frame = pd.DataFrame([line], columns=BILL_COLUMNS)
        journal = build_journal(drivers, frame, billed)
        original = issued.entry_of(dispute.period, dispute.department, dispute.pool)
        journal["Entry"] = [f"{e}-D{dispute.dispute}" for e in journal["Entry"]]
        journal["Memo"] = (
            f"Credit memo {dispute.dispute} ({dispute.reason}) for {dispute.period} "
            f"{dispute.pool}, crediting {original or 'the issued bill'}"
            + (f" — {dispute.note}" if dispute.note else "")
        )
        journal["Rule"] = dispute.dispute
        journal["Charge Period"] = dispute.period
        journal["Line Type"] = CREDIT_MEMO
        lines.append(frame)
        journals.append(journal)
    if not lines:
        return (
            pd.DataFrame([], columns=BILL_COLUMNS),
            pd.DataFrame([], columns=[*JOURNAL_COLUMNS, "Charge Period", "Line Type"]),
        )
    return pd.concat(lines, ignore_index=True), pd.concat(journals, ignore_index=True)
