"""Finance's answers to the portal's disputes, read back from the workbook after a run.

`costloop disputes pull` wrote each portal dispute into the Disputes sheet as
``PORTAL-<number>``; finance sets its Status (and, accepting it, the Resolution, the
amount credited) and runs. The run the portal shows then has the sheet's rows and,
for an accepted dispute, its `Credit memo` line on the bill of the next open period
(the dispute id in its Rule). `sheet_answers` takes both from the billed year when
the snapshot is built; `shown` puts them beside the portal's own disputes, so the
department sees "Accepted: … credit memo on the Apr 2026 bill" or "Rejected" with
finance's note instead of the portal's "Open" for ever.

A dispute not on the sheet yet (not pulled, or pulled after the run shown) keeps the
portal's own status.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from costloop.bills.workbook import month_label
from costloop.engine.model.disputes import ACCEPTED, OPEN, REJECTED
from costloop.engine.model.issued import CREDIT_MEMO
from costloop.portal.pull import note_of, sheet_id
from costloop.portal.store import Dispute
from costloop.rules.ast import name_key


@dataclass(frozen=True)
class SheetAnswer:
    """One Disputes row as of the run shown, and the credit memo it became (if any)."""

    dispute: str
    department: str
    period: str
    status: str
    resolution: Decimal | None
    note: str
    credited_on: str | None
    """The period of the bill that carries its credit memo (None: none in the year shown)."""
    credit: Decimal | None
    """The credit memo's amount (below zero)."""
    currency: str
    minor_unit: int

    def money(self, amount: Decimal) -> str:
        return f"{self.currency} {amount:,.{self.minor_unit}f}"


@dataclass(frozen=True)
class Shown:
    """What a department (and finance) read in a dispute's Status cell."""

    status: str
    detail: str = ""
    note: str = ""
    """Finance's note; blank while the Note is still the department's own words."""


def sheet_answers(year) -> dict[str, SheetAnswer]:
    """Dispute id key -> its row and credit memo, from a `BilledYear` (bills.source)."""
    credits: dict[tuple[str, str], tuple[str, Decimal]] = {}
    for period, frame in sorted(year.by_period.items()):
        if "Line Type" not in frame:
            continue
        memos = frame[frame["Line Type"] == CREDIT_MEMO]
        for rule, department, amount in zip(
            memos["Rule"], memos["Department"], memos["Amount"], strict=True
        ):
            credits[(name_key(str(rule)), name_key(str(department)))] = (period, Decimal(amount))
    settings = year.book.settings
    answers = {}
    for d in year.disputes:
        credit = credits.get((name_key(d.dispute), name_key(d.department)))
        answers[name_key(d.dispute)] = SheetAnswer(
            dispute=d.dispute,
            department=d.department,
            period=d.period,
            status=d.status,
            resolution=d.resolution,
            note=d.note,
            credited_on=credit[0] if credit else None,
            credit=credit[1] if credit else None,
            currency=settings.currency,
            minor_unit=settings.minor_unit,
        )
    return answers


def _shown(dispute: Dispute, answer: SheetAnswer | None) -> Shown:
    # The row must be this dispute's: same department and period (an id typed by hand
    # that happens to read PORTAL-7 for another department is not its answer).
    if (
        answer is None
        or name_key(answer.department) != dispute.department_key
        or answer.period != dispute.period
    ):
        return Shown(dispute.status)
    note = "" if answer.note.strip() == note_of(dispute).strip() else answer.note
    if answer.status == ACCEPTED and answer.resolution is not None:
        credited = answer.money(answer.resolution)
        if answer.credit is not None:
            memo, where = answer.money(answer.credit), month_label(answer.credited_on)
            detail = f"{credited} credited: credit memo {memo} on the {where} bill"
        else:
            detail = f"{credited} credited on an earlier bill"
        return Shown(ACCEPTED, detail, note)
    if answer.status == REJECTED:
        return Shown(REJECTED, "" if note else "finance left no note", note)
    return Shown(OPEN, f"with finance (Disputes sheet, {answer.dispute})", note)


def shown(disputes: list[Dispute], answers: dict[str, SheetAnswer]) -> dict[int, Shown]:
    """The portal's dispute number -> what its Status cell says, as of the run shown."""
    return {d.number: _shown(d, answers.get(name_key(sheet_id(d.number)))) for d in disputes}


def still_disputed(
    open_rows: list[tuple[int, str, str]], answers: dict[str, SheetAnswer]
) -> set[tuple[str, str]]:
    """(department key, period) of each bill with a portal dispute finance has not yet
    answered (Accepted or Rejected) on the Disputes sheet, of the rows `Store.open_disputes`
    gives: a bill whose disputes are all answered is no longer "disputed"."""
    out = set()
    for number, key, period in open_rows:
        answer = answers.get(name_key(sheet_id(number)))
        answered = (
            answer is not None
            and name_key(answer.department) == key
            and answer.period == period
            and answer.status != OPEN
        )
        if not answered:
            out.add((key, period))
    return out
