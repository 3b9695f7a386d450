"""`costloop email BOOK [--dry-run DIR] [--resend]`: each department its bill, by email.

Every department billed in the last run that has an `Email` gets one message
with its workbook and the PDF of its Summary attached — both or none: a department
whose PDF could not be made is failed, never sent its workbook alone. Departments
without an Email are listed, not failed. One department's failure never stops the others;
the summary counts sent, failed, skipped and already sent, and any failure
makes the command exit 1.

The send log next to the workbook makes a rerun safe: a bill already sent is
not sent again, and a bill that changed since it was sent (same period and
department, different content) is held back with a message until ``--resend``
says to send the corrected one.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from pathlib import Path

from costloop.bills.commands import Bill, write_bills
from costloop.bills.delivery import Backoff, Delivery, send_with_retry
from costloop.bills.message import Attachment, build_message, check_settings, parse_addresses
from costloop.bills.pdf import PDF_TYPE
from costloop.bills.sendlog import FAILED, SENT, SendLog, SendRecord, log_path, sha256
from costloop.bills.smtp import Connection, SmtpSettings, smtp_settings, workbook_secrets
from costloop.bills.source import BilledYear, load_billed_year
from costloop.bills.statement import Statement, build_statements
from costloop.bills.workbook import XLSX_TYPE
from costloop.problems import Problem, Reason, Reported, Severity, has_errors


@dataclass
class EmailReport(Reported):
    """What `send_bills` did, department by department."""

    sent: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """Billed departments without an Email (listed, not failed)."""
    already_sent: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    """Departments whose bill differs from the one already sent (held back, no --resend)."""
    written: list[Path] = field(default_factory=list)
    """With --dry-run: the .eml files."""
    problems: list[Problem] = field(default_factory=list)
    period: str | None = None
    run_id: str | None = None
    dry_run: Path | None = None
    send_log: Path | None = None

    def lines(self) -> list[str]:
        if self.period is None:
            return ["FAILED: nothing was sent"]
        head = f"Period {self.period} (run {self.run_id}): "
        if self.dry_run is not None:
            out = [
                head + f"dry run, {len(self.written)} message(s) written to {self.dry_run}; "
                "nothing was sent"
            ]
        else:
            out = [
                head + f"{len(self.sent)} sent, {len(self.failed)} failed, "
                f"{len(self.skipped)} skipped (no Email), {len(self.already_sent)} already sent"
                + (f", {len(self.changed)} changed since sent" if self.changed else "")
            ]
        for label, names in (
            ("sent", self.sent),
            ("failed", self.failed),
            ("changed since sent, held back (use --resend)", self.changed),
            ("already sent", self.already_sent),
            ("skipped, no Email", self.skipped),
        ):
            if names:
                out.append(f"  {label}: {', '.join(names)}")
        if self.send_log is not None and self.dry_run is None:
            out.append(f"  send log: {self.send_log}")
        return out


_Addressed = tuple[Statement, list[Address]]
"""A department's statement and the addresses it goes to."""
_Ready = tuple[Bill, Statement, list[Address]]
"""... and its files, workbook and PDF, made."""


def _problem(where: str, message: str, code: Reason = Reason.NO_DATA) -> Problem:
    return Problem(code, Severity.ERROR, where, message)


def _attachments(bill: Bill) -> list[Attachment]:
    """The workbook and its PDF: a bill without its PDF never gets this far (`_with_files`)."""
    if bill.pdf is None:
        raise ValueError(f"{bill.workbook.name} has no PDF; it must not be sent")
    return [
        Attachment(bill.workbook.name, bill.workbook.read_bytes(), XLSX_TYPE),
        Attachment(bill.pdf.name, bill.pdf.read_bytes(), PDF_TYPE),
    ]


def _due(statement, addresses, log: SendLog, resend: bool, report: EmailReport) -> list:
    """Whom to send this bill, by the send log: not those who have it, nor (changed) anyone.

    An address the server refused while taking the others', or one added since,
    has not had this bill, so a rerun sends it to just that address.
    """
    code = statement.department
    earlier = log.last_sent(statement.period, code)
    if earlier is None:
        return addresses
    bill_hash = statement.content_hash()
    if earlier.bill_hash == bill_hash:
        have = log.received(statement.period, code, bill_hash)
        missing = [a for a in addresses if a.addr_spec.casefold() not in have]
        if not missing:
            report.already_sent.append(code)
        return missing
    if resend:
        return addresses
    report.changed.append(code)
    was = f" (total {earlier.total})" if earlier.total else ""
    report.problems.append(
        _problem(
            statement.email_cell,
            f"{code}'s bill for {statement.period} differs from the one sent to it on "
            f"{earlier.time} UTC (run {earlier.run_id}){was}; it was not sent again. Its "
            f"total is now {statement.money(statement.total)}. Run "
            "`costloop email BOOK --resend` to send the corrected bill",
        )
    )
    return []


def _replaces(statement, log: SendLog) -> str | None:
    """The total of the different bill sent before for the same period (None: none sent)."""
    earlier = log.last_sent(statement.period, statement.department)
    if earlier is None or earlier.bill_hash == statement.content_hash():
        return None
    return earlier.total or "as sent before"


@dataclass
class _Mailing:
    """What every message of one `costloop email` shares."""

    year: BilledYear
    from_address: Address
    report: EmailReport
    dry_run: Path | None
    server: SmtpSettings | None
    backoff: Backoff


def send_bills(
    book: Path,
    dry_run: Path | None = None,
    *,
    resend: bool = False,
    backoff: Backoff | None = None,
    env: dict[str, str] | None = None,
) -> EmailReport:
    """`costloop email`: send (or with ``dry_run`` write as .eml) every department's bill."""
    report = EmailReport(dry_run=dry_run)
    mailing = _prepare(book, dry_run, env, report, backoff or Backoff())
    if mailing is None:
        return report  # nothing is sent while any of it is wrong
    to_send = _addressed(build_statements(mailing.year), report)
    log = SendLog(log_path(book))
    report.send_log = log.path
    report.problems += log.problems
    if dry_run is None:
        unwritable = log.writable()
        if unwritable is not None:
            report.problems.append(unwritable)
            return report
        to_send = _not_yet_received(to_send, log, resend, report)
    with tempfile.TemporaryDirectory(prefix="costloop-email-") as tmp:
        # Files only for what goes out: a rerun that sends nothing starts no LibreOffice.
        complete = _with_files(to_send, Path(tmp), report)
        if dry_run is not None:
            _write_messages(complete, mailing)
        else:
            _send_messages(complete, mailing, log)
    return report


def _prepare(
    book: Path,
    dry_run: Path | None,
    env: dict[str, str] | None,
    report: EmailReport,
    backoff: Backoff,
) -> _Mailing | None:
    """The billed year, the sender and the mail server; None (problems said) when any is
    wrong."""
    if dry_run is not None and dry_run.exists() and not dry_run.is_dir():
        report.problems.append(
            _problem(str(dry_run), "--dry-run names a file, not a folder; give a folder")
        )
        return None
    year, problems = load_billed_year(book)
    report.problems += problems
    if year is None:
        return None
    settings = year.book.settings
    report.problems += workbook_secrets(settings)
    report.problems += check_settings(settings)
    server = None
    if dry_run is None:
        server, env_problems = smtp_settings(env)
        report.problems += env_problems
    if has_errors(report.problems):
        return None
    report.period, report.run_id = year.period, year.stamp.run_id
    from_address = parse_addresses(settings.email_from)[0]
    return _Mailing(year, from_address, report, dry_run, server, backoff)


def _addressed(statements: list[Statement], report: EmailReport) -> list[_Addressed]:
    """Each statement with its addresses; those without an Email are skipped, those with
    a malformed one failed at its cell."""
    to_send = []
    for statement in statements:
        if not statement.email:
            report.skipped.append(statement.department)
            continue
        addresses = parse_addresses(statement.email)
        if not addresses:
            report.failed.append(statement.department)
            report.problems.append(
                _problem(
                    statement.email_cell,
                    f"{statement.email!r} is not an email address; type one address "
                    "(or several separated by ;)",
                    Reason.BAD_VALUE,
                )
            )
            continue
        to_send.append((statement, addresses))
    return to_send


def _not_yet_received(
    to_send: list[_Addressed], log: SendLog, resend: bool, report: EmailReport
) -> list[_Addressed]:
    """Only the addresses that have not had this bill (by the send log)."""
    due = [(statement, _due(statement, to, log, resend, report)) for statement, to in to_send]
    return [(statement, to) for statement, to in due if to]


def _with_files(to_send: list[_Addressed], folder: Path, report: EmailReport) -> list[_Ready]:
    """Each department's workbook and PDF; a department whose PDF could not be made is
    failed (its error is at its Departments cell) and never sent half its bill."""
    bills = write_bills([s for s, _ in to_send], folder)
    report.problems += bills.problems
    ready = []
    for bill, (statement, addresses) in zip(bills.bills, to_send, strict=True):
        if bill.pdf is None:
            report.failed.append(statement.department)
            continue
        ready.append((bill, statement, addresses))
    return ready


def _write_messages(ready: list[_Ready], mailing: _Mailing) -> None:
    """--dry-run: each message as ``DIR/<department> <period>.eml``; nothing is sent."""
    assert mailing.dry_run is not None
    mailing.dry_run.mkdir(parents=True, exist_ok=True)
    for bill, statement, addresses in ready:
        message, _ = _message(bill, statement, addresses, mailing)
        path = mailing.dry_run / f"{statement.file_stem}.eml"
        path.write_bytes(bytes(message))
        mailing.report.written.append(path)


def _message(
    bill: Bill,
    statement: Statement,
    addresses: list[Address],
    mailing: _Mailing,
    replaces: str | None = None,
) -> tuple[EmailMessage, list[Attachment]]:
    """``replaces``: the total of the different bill sent before (a corrected bill)."""
    settings = mailing.year.book.settings
    files = _attachments(bill)
    message = build_message(statement, settings, mailing.from_address, addresses, files, replaces)
    return message, files


def _send_messages(ready: list[_Ready], mailing: _Mailing, log: SendLog) -> None:
    """Send each department its message on one connection, logging each before the next."""
    assert mailing.server is not None
    connection = Connection(mailing.server)
    server_down = ""
    try:
        for bill, statement, addresses in ready:
            message, files = _message(
                bill, statement, addresses, mailing, _replaces(statement, log)
            )
            record = _record(mailing, statement, addresses, message, files)
            if server_down:
                error, attempts = server_down, 0
            else:
                delivery = send_with_retry(connection, message, mailing.backoff)
                error, attempts = delivery.error, delivery.attempts
                _note_refused(delivery, statement, record, mailing.report)
                if delivery.server_failed:
                    # The same server fails the same way for everyone: say so, don't retry.
                    server_down = f"not tried: the mail server failed ({delivery.error})"
            _note_outcome(record, error, attempts, statement, mailing.report)
            log.append(record)
    finally:
        connection.close()


def _record(
    mailing: _Mailing,
    statement: Statement,
    addresses: list[Address],
    message: EmailMessage,
    files: list[Attachment],
) -> SendRecord:
    """The send log's line for this message, before it is sent (status SENT until told)."""
    return SendRecord(
        run_id=mailing.year.stamp.run_id,
        period=statement.period,
        department=statement.department,
        to=[a.addr_spec for a in addresses],
        bill_hash=statement.content_hash(),
        status=SENT,
        attachments={a.filename: sha256(a.data) for a in files},
        message_id=str(message["Message-ID"]),
        total=statement.money(statement.total),
    )


def _note_refused(
    delivery: Delivery, statement: Statement, record: SendRecord, report: EmailReport
) -> None:
    """Sent, but some addresses refused: the log keeps who has the bill, so a rerun sends
    it to the refused ones only."""
    if not (delivery.sent and delivery.refused):
        return
    have_not = {a.casefold() for a in delivery.refused}
    record.to = [a for a in record.to if a.casefold() not in have_not]
    refused = "; ".join(f"{a}: {r}" for a, r in delivery.refused.items())
    report.problems.append(
        Problem(
            Reason.BAD_VALUE,
            Severity.WARNING,
            statement.email_cell,
            f"{statement.department}: the server refused {refused}; the other "
            "address(es) got the bill",
        )
    )


def _note_outcome(
    record: SendRecord, error: str, attempts: int, statement: Statement, report: EmailReport
) -> None:
    code = statement.department
    record.attempts = attempts
    if not error:
        report.sent.append(code)
        return
    record.status, record.error = FAILED, error
    report.failed.append(code)
    report.problems.append(
        _problem(
            statement.email_cell,
            f"{code}: not sent to {', '.join(record.to)} after {attempts} attempt(s): {error}",
        )
    )
