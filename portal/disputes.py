"""A dispute raised on a bill line: what the form may say, checked before it is stored.

The amount is what the department believes it was overcharged on that line: more
than zero, in the workbook's currency to its minor unit, and never more than the
line itself — a dispute for more than was billed could only become a credit that
pays the department for nothing.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from costloop.bills.statement import Statement
from costloop.errors import PortalError
from costloop.portal.store import REASONS, Dispute, now
from costloop.rules.ast import name_key

MAX_COMMENT = 2000


class DisputeRefused(PortalError):
    """The form cannot become a dispute; the message says what to change."""


def _amount(text: str, statement: Statement, line_amount: Decimal) -> Decimal:
    cleaned = text.strip().replace(",", "")
    try:
        amount = Decimal(cleaned)
    except InvalidOperation:
        raise DisputeRefused(
            f'"{text.strip()}" is not an amount; give the amount you dispute, e.g. 120.50'
        ) from None
    if not amount.is_finite() or amount <= 0:
        raise DisputeRefused("give an amount above zero: the part of the line you dispute")
    if amount != amount.quantize(Decimal(1).scaleb(-statement.minor_unit)):
        raise DisputeRefused(
            f"give the amount to at most {statement.minor_unit} decimal places "
            f"({statement.currency})"
        )
    if amount > abs(line_amount):
        raise DisputeRefused(
            f"the line is {statement.money(line_amount)}; a dispute can be for at most that"
        )
    return amount


def new_dispute(
    statement: Statement,
    run_id: str,
    user_name: str,
    line: int,
    reason: str,
    amount: str,
    comment: str,
) -> Dispute:
    """The dispute the form describes, or `DisputeRefused` saying what is wrong."""
    if not 1 <= line <= len(statement.lines):
        raise DisputeRefused("that line is not on this bill")
    row = statement.lines.iloc[line - 1]
    if reason not in REASONS:
        raise DisputeRefused(f"choose a reason: {', '.join(REASONS)}")
    comment = comment.strip()
    if len(comment) > MAX_COMMENT:
        raise DisputeRefused(f"keep the comment to {MAX_COMMENT} characters")
    if reason == "Other" and not comment:
        raise DisputeRefused('say in the comment what is wrong when the reason is "Other"')
    return Dispute(
        at=now(),
        user_name=user_name,
        department_key=name_key(statement.department),
        department=statement.department,
        period=statement.period,
        run_id=run_id,
        line=line,
        pool=str(row["Pool"]),
        rule=str(row["Rule"]),
        reason=reason,
        amount=_amount(amount, statement, Decimal(row["Amount"])),
        comment=comment,
    )
