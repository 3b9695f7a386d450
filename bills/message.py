"""The email carrying one department's bill: sender, recipients, templated text, attachments.

Subject and body come from the Settings keys `EmailSubject` and `EmailBody`
with the placeholders {department} (its name, else its code), {code},
{period}, {total} and {organization}; the sender is `EmailFrom`. Templates are
checked before anything is sent, so a typo in a placeholder is a located
message rather than a hundred emails with ``{totl}`` in them.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, make_msgid

from costloop.bills.statement import Statement
from costloop.engine.model.book import Settings
from costloop.problems import Problem, Reason, Severity

PLACEHOLDERS = ("department", "code", "period", "total", "organization")
DEFAULT_SUBJECT = "IT charges for {period}: {department}"
DEFAULT_BODY = (
    "Dear {department},\n\n"
    "attached are your IT charges for {period}: {total}.\n"
    "The workbook lists every charge, the rule behind it and the usage that drove it.\n\n"
    "{organization}"
)


@dataclass(frozen=True)
class Attachment:
    filename: str
    data: bytes
    mime: str
    """``maintype/subtype``, e.g. ``application/pdf``."""


def _problem(where: str, message: str) -> Problem:
    return Problem(Reason.BAD_SETTING, Severity.ERROR, where, message)


def _setting_cell(settings: Settings, key: str) -> str:
    return settings.cells.get(key, "Settings!A1")


def _check_template(text: str, where: str, key: str) -> list[Problem]:
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
    except ValueError as exc:
        return [
            _problem(
                where,
                f"{key} is not a valid template ({exc}); write placeholders as {{period}}, "
                "and a literal brace as {{ or }}",
            )
        ]
    unknown = [f for f in fields if f not in PLACEHOLDERS]
    if unknown:
        known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
        return [_problem(where, f"{key} has the unknown placeholder {{{unknown[0]}}}; use {known}")]
    try:
        # Every value is text ("USD 1,234.56"), so a number format such as {total:,.2f}
        # or a nested {width} would fail only when the first message is built.
        text.format(**dict.fromkeys(PLACEHOLDERS, ""))
    except (ValueError, KeyError, IndexError) as exc:
        return [
            _problem(
                where,
                f"{key} cannot be filled in ({exc}); write placeholders plainly, as "
                "{period} or {total}, without a format after a colon",
            )
        ]
    return []


def sender(settings: Settings) -> tuple[Address | None, list[Problem]]:
    """The `EmailFrom` address, or a located problem."""
    where = _setting_cell(settings, "emailfrom")
    written = settings.email_from.strip()
    if not written:
        return None, [
            _problem(
                where,
                "there is no sender: add the Settings key EmailFrom with the address bills "
                "are sent from, e.g. itfinance@example.edu",
            )
        ]
    addresses = parse_addresses(written)
    if len(addresses) != 1:
        return None, [_problem(where, f"EmailFrom must be one email address, got {written!r}")]
    return addresses[0], []


def check_settings(settings: Settings) -> list[Problem]:
    """Every problem with EmailFrom, EmailSubject and EmailBody, before anything is sent."""
    _, problems = sender(settings)
    for key, label in (("emailsubject", "EmailSubject"), ("emailbody", "EmailBody")):
        text = getattr(settings, f"email_{key[5:]}")
        if text:
            problems += _check_template(text, _setting_cell(settings, key), label)
    return problems


def parse_addresses(text: str) -> list[Address]:
    """``a@x.org; Finance <b@x.org>`` -> addresses; empty if any part is not an address."""
    parts = [p.strip() for p in text.replace(";", ",").split(",") if p.strip()]
    out = []
    for display, address in getaddresses(parts):
        local, at, domain = address.partition("@")
        if not at or not local or "." not in domain or any(c.isspace() for c in address):
            return []
        try:
            out.append(Address(display_name=display, addr_spec=address))
        except (ValueError, IndexError):
            return []
    return out


def template_values(statement: Statement) -> dict[str, str]:
    return {
        "department": statement.display_name,
        "code": statement.department,
        "period": statement.period,
        "total": statement.money(statement.total),
        "organization": statement.organization,
    }


def build_message(
    statement: Statement,
    settings: Settings,
    from_address: Address,
    to: list[Address],
    attachments: list[Attachment],
    replaces: str | None = None,
) -> EmailMessage:
    """The department's email, ready for `smtplib` or a ``.eml`` file.

    ``replaces`` is the total of the bill sent before for the same period, when this
    one corrects it: the subject then starts with "Corrected" and the body gives both
    totals, so nobody has to compare two attachments to see what changed.
    """
    values = template_values(statement)
    subject_template = settings.email_subject or (
        ("{organization}: " if statement.organization else "") + DEFAULT_SUBJECT
    )
    message = EmailMessage()
    message["From"] = from_address
    message["To"] = to
    subject = " ".join(subject_template.format(**values).split())
    if replaces is not None:
        subject = f"Corrected: {subject} (was {replaces}, now {values['total']})"
    message["Subject"] = subject
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid("costloop", domain=from_address.domain or None)
    message["X-Costloop-Run"] = statement.run.run_id
    body = (settings.email_body or DEFAULT_BODY).format(**values).strip() + "\n"
    if replaces is not None:
        body = (
            f"This bill corrects the one sent before for {statement.period}: its total was "
            f"{replaces} and is now {values['total']}.\n\n" + body
        )
    message.set_content(body)
    for attachment in attachments:
        maintype, subtype = attachment.mime.split("/", 1)
        message.add_attachment(
            attachment.data, maintype=maintype, subtype=subtype, filename=attachment.filename
        )
    return message
