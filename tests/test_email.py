"""`costloop email` against a real SMTP server (aiosmtpd on 127.0.0.1, in this process).

The server can refuse a recipient (550) and drop the connection in the middle
of a message, so delivery, retries, the send log and reruns are tested the way
they fail in the field.
"""

from __future__ import annotations

import email
import io
import json
import shutil
import smtplib
import socket
from collections import Counter
from decimal import Decimal
from email import policy
from pathlib import Path

import openpyxl
import pytest
from aiosmtpd.controller import Controller
from programs import needs_libreoffice
from test_bills import leaks, stand_in_soffice

from costloop.bills import send_bills
from costloop.bills.delivery import Backoff, is_transient
from costloop.bills.message import check_settings
from costloop.bills.sendlog import SendLog, SendRecord, log_path
from costloop.bills.smtp import smtp_settings, workbook_secrets
from costloop.cli import main
from costloop.engine.model.book import Settings
from costloop.engine.pipeline.commands import run_book
from costloop.workbooks import demo_path

CENT = Decimal("0.01")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
SUBJECT = "State University IT charges for 2026-03"  # the demo's EmailSubject, filled in
FAST = Backoff(first_wait=0.01)
pytestmark = needs_libreoffice
"""A bill goes out with its PDF or not at all, so sending one needs LibreOffice."""


class Mailbox:
    """An aiosmtpd handler that keeps what it accepts and fails on request."""

    def __init__(self):
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []
        self.refuse: set[str] = set()
        self.drops = 0
        """Connections still to drop in the middle of a message's DATA."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return f"550 5.1.1 <{address}>: mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.drops:
            self.drops -= 1
            server.transport.close()  # the line goes dead: no reply to the message
            return "421 closing"
        message = email.message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted"

    def recipients(self) -> Counter:
        return Counter(address for rcpts, _ in self.messages for address in rcpts)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server():
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    mailbox.env = {
        "COSTLOOP_SMTP_HOST": "127.0.0.1",
        "COSTLOOP_SMTP_PORT": str(controller.port),
        "COSTLOOP_SMTP_SECURITY": "none",
    }
    yield mailbox
    controller.stop()


@pytest.fixture
def smtp_env(server, monkeypatch):
    for key, value in server.env.items():
        monkeypatch.setenv(key, value)
    return server


def rows(path_or_bytes, sheet: str) -> list[dict]:
    source = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    wb = openpyxl.load_workbook(source, read_only=True, data_only=True)
    grid = list(wb[sheet].iter_rows(values_only=True))
    wb.close()
    return [dict(zip(grid[0], r, strict=False)) for r in grid[1:] if any(v is not None for v in r)]


def billed_totals(book: Path) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {}
    for row in rows(book, "Bills"):
        amount = Decimal(str(row["Amount"])).quantize(CENT)
        totals[row["Department"]] = totals.get(row["Department"], Decimal(0)) + amount
    return totals


def emails(book: Path) -> dict[str, str]:
    """Billed department -> its Email, for those that have one."""
    billed = billed_totals(book)
    return {
        r["Department"]: r["Email"]
        for r in rows(book, "Departments")
        if r["Department"] in billed and r["Email"]
    }


def test_every_department_with_an_email_gets_exactly_one_message_with_its_bill(
    book, smtp_env, capsys
):
    assert main(["email", str(book)]) == 0
    out = capsys.readouterr().out
    assert "23 sent, 0 failed, 2 skipped (no Email), 0 already sent" in out
    assert "skipped, no Email: BKS, PRK" in out

    wanted = emails(book)
    assert len(wanted) == 23 and "BKS" not in wanted and "PRK" not in wanted
    assert smtp_env.recipients() == Counter(wanted.values())
    totals = billed_totals(book)
    by_address = {address: code for code, address in wanted.items()}
    for rcpts, message in smtp_env.messages:
        code = by_address[rcpts[0]]
        assert message["To"] == wanted[code]
        assert message["From"] == "itfinance@stateu.example"
        assert message["Subject"] == SUBJECT
        assert f"USD {totals[code]:,.2f}" in message.get_body(("plain",)).get_content()
        files = {a.get_filename(): a for a in message.iter_attachments()}
        workbook = files[f"{code} 2026-03.xlsx"]
        assert workbook.get_content_type() == XLSX
        lines = rows(workbook.get_content(), "Bills")
        assert sum(Decimal(str(r["Amount"])).quantize(CENT) for r in lines) == totals[code]
        pdf = files[f"{code} 2026-03.pdf"]
        assert pdf.get_content_type() == "application/pdf"
        assert pdf.get_content().startswith(b"%PDF")
        assert len(files) == 2

    log = [json.loads(line) for line in log_path(book).read_text().splitlines()]
    assert sorted(r["department"] for r in log) == sorted(wanted)
    assert {r["status"] for r in log} == {"sent"}
    run_id = {r["Key"]: r["Value"] for r in rows(book, "Run Log")}["Run ID"]
    assert {r["run_id"] for r in log} == {run_id}


def test_a_refused_recipient_and_a_dropped_connection_then_a_rerun_sends_only_the_missing_one(
    book, smtp_env, capsys
):
    wanted = emails(book)
    smtp_env.refuse = {wanted["LAW"]}
    smtp_env.drops = 1  # the first message's connection dies mid-DATA: retried, then sent

    assert main(["email", str(book)]) == 1
    captured = capsys.readouterr().out
    assert "22 sent, 1 failed, 2 skipped (no Email), 0 already sent" in captured
    assert "failed: LAW" in captured
    assert "Departments!" in captured and "550" in captured  # located, with the server's answer
    others = {code: address for code, address in wanted.items() if code != "LAW"}
    assert smtp_env.recipients() == Counter(others.values())  # each exactly once
    assert smtp_env.drops == 0
    log = [json.loads(line) for line in log_path(book).read_text().splitlines()]
    attempts = {r["department"]: (r["status"], r["attempts"]) for r in log}
    assert attempts["ADM"] == ("sent", 2)  # the dropped one, sent on its second attempt
    assert attempts["LAW"] == ("failed", 1)  # 550 is permanent: not retried

    smtp_env.refuse = set()  # the mailbox is fixed
    assert main(["email", str(book)]) == 0
    captured = capsys.readouterr().out
    assert "1 sent, 0 failed, 2 skipped (no Email), 22 already sent" in captured
    assert smtp_env.recipients() == Counter(wanted.values())
    assert smtp_env.messages[-1][0] == [wanted["LAW"]]


def _edited_demo(folder: Path, edit) -> Path:
    """The demo with an input changed before it is run."""
    path = folder / "edited.xlsx"
    shutil.copyfile(demo_path(), path)
    wb = openpyxl.load_workbook(path)
    edit(wb)
    wb.save(path)
    assert run_book(path).ok
    return path


def _more_vms_for_eng(wb) -> None:
    usage = wb["Usage"]
    for row in usage.iter_rows(min_row=2):
        period, department, metric, quantity = (c.value for c in row[:4])
        if (period, department, metric) == ("2026-03", "ENG", "VM-Month"):
            row[3].value = quantity + 2
            return
    raise AssertionError("no ENG VM-Month usage in 2026-03")


def test_a_department_whose_pdf_could_not_be_made_is_never_sent_half_its_bill(
    book, smtp_env, tmp_path, monkeypatch, capsys
):
    """LibreOffice fails ENG's PDF on the first try and on the retry: ENG is failed at its
    Departments cell and gets no message; everyone else gets workbook and PDF."""
    monkeypatch.setenv("COSTLOOP_SOFFICE", str(stand_in_soffice(tmp_path, "ENG 2026-03", 2)))
    assert main(["email", str(book)]) == 1
    out = capsys.readouterr().out
    assert "22 sent, 1 failed, 2 skipped (no Email), 0 already sent" in out
    assert "  failed: ENG" in out
    assert (
        "ENG's bill has its workbook but no PDF (LibreOffice made no PDF of it); it will "
        "not be emailed." in out
    )
    wanted = emails(book)
    assert wanted["ENG"] not in smtp_env.recipients()
    assert len(smtp_env.messages) == 22
    for _, message in smtp_env.messages:
        names = sorted(a.get_filename()[-4:] for a in message.iter_attachments())
        assert names == [".pdf", "xlsx"]
    log = [json.loads(line) for line in log_path(book).read_text().splitlines()]
    assert "ENG" not in {r["department"] for r in log}  # never sent: a rerun will send it

    monkeypatch.delenv("COSTLOOP_SOFFICE")  # LibreOffice works again: ENG alone goes out
    assert main(["email", str(book)]) == 0
    assert "1 sent, 0 failed, 2 skipped (no Email), 22 already sent" in capsys.readouterr().out
    assert smtp_env.recipients()[wanted["ENG"]] == 1


def test_a_changed_bill_is_held_back_until_resend(book, server, tmp_path):
    first = send_bills(book, env=server.env, backoff=FAST)
    assert first.ok and len(first.sent) == 23
    was = billed_totals(book)["ENG"]
    # ENG's VM count is corrected and the workbook run again: only ENG's bill changes.
    corrected = _edited_demo(tmp_path, _more_vms_for_eng)
    shutil.copyfile(corrected, book)

    again = send_bills(book, env=server.env, backoff=FAST)
    assert not again.ok
    assert again.changed == ["ENG"] and again.sent == []
    assert len(again.already_sent) == 22
    (problem,) = [p for p in again.problems if p.is_error]
    assert problem.where.startswith("Departments!")
    assert "differs from the one sent" in problem.message and "--resend" in problem.message
    now = billed_totals(book)["ENG"]
    assert was != now
    # The held-back message gives both totals, so finance sees how far the bill moved.
    assert f"(total USD {was:,.2f}); it was not sent again. Its total is now USD {now:,.2f}" in (
        problem.message
    )
    assert len(server.messages) == 23

    resent = send_bills(book, env=server.env, backoff=FAST, resend=True)
    assert resent.ok and resent.sent == ["ENG"]
    assert server.recipients()[emails(book)["ENG"]] == 2
    _, message = server.messages[-1]
    assert message["Subject"] == (f"Corrected: {SUBJECT} (was USD {was:,.2f}, now USD {now:,.2f})")
    assert (
        message.get_body(("plain",))
        .get_content()
        .startswith(
            f"This bill corrects the one sent before for 2026-03: its total was USD {was:,.2f} and "
            f"is now USD {now:,.2f}."
        )
    )


def test_an_address_refused_beside_an_accepted_one_gets_the_bill_on_a_rerun(server, tmp_path):
    def second_address_for_eng(wb) -> None:
        deps = wb["Departments"]
        header = [c.value for c in deps[1]]
        for row in deps.iter_rows(min_row=2):
            if row[header.index("Department")].value == "ENG":
                email_cell = row[header.index("Email")]
                email_cell.value += "; eng-chair@stateu.example"
                return
        raise AssertionError("no ENG in Departments")

    book = _edited_demo(tmp_path, second_address_for_eng)
    first_address = emails(book)["ENG"].split(";")[0]
    server.refuse = {"eng-chair@stateu.example"}  # a mailbox not set up yet
    first = send_bills(book, env=server.env, backoff=FAST)
    assert first.ok and len(first.sent) == 23  # ENG's first address got it: a warning
    (warning,) = [p for p in first.problems if "eng-chair" in p.message]
    assert not warning.is_error and warning.where.startswith("Departments!")
    assert server.recipients()["eng-chair@stateu.example"] == 0

    server.refuse = set()  # the mailbox now exists
    again = send_bills(book, env=server.env, backoff=FAST)
    assert again.ok and again.sent == ["ENG"] and len(again.already_sent) == 22
    assert server.messages[-1][0] == ["eng-chair@stateu.example"]
    assert server.recipients()[first_address] == 1  # not sent a second time

    third = send_bills(book, env=server.env, backoff=FAST)
    assert third.sent == [] and len(third.already_sent) == 23


def test_dry_run_writes_one_eml_per_department_and_sends_nothing(book, tmp_path):
    folder = tmp_path / "eml"
    report = send_bills(book, dry_run=folder, env={})  # no SMTP settings needed
    assert report.ok, report.problems
    wanted = emails(book)
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{c} 2026-03.eml" for c in wanted)
    message = email.message_from_bytes(
        (folder / "ENG 2026-03.eml").read_bytes(), policy=policy.default
    )
    assert message["To"] == wanted["ENG"] and message["Subject"] == SUBJECT
    assert XLSX in {a.get_content_type() for a in message.iter_attachments()}
    assert not log_path(book).exists()
    assert "nothing was sent" in report.lines()[0]
    # The message itself (headers and text) names no other department either.
    everyone = rows(book, "Departments")
    for code in wanted:
        message = email.message_from_bytes(
            (folder / f"{code} 2026-03.eml").read_bytes(), policy=policy.default
        )
        text = "\n".join(f"{k}: {v}" for k, v in message.items())
        text += message.get_body(("plain",)).get_content()
        text += " ".join(a.get_filename() for a in message.iter_attachments())
        others = [d for d in everyone if d["Department"] != code]
        assert leaks({"message": text}, others) == [], code
        assert leaks({"message": text}, [d for d in everyone if d["Department"] == code])


def test_a_password_in_the_workbook_is_refused_and_nothing_is_sent(server, tmp_path):
    def add_password(wb) -> None:
        settings = wb["Settings"]
        settings.append(["SMTPPassword", "hunter2"])

    book = _edited_demo(tmp_path, add_password)
    row = openpyxl.load_workbook(book)["Settings"].max_row
    report = send_bills(book, env=server.env, backoff=FAST)
    assert not report.ok
    (problem,) = [p for p in report.problems if p.is_error]
    assert problem.where == f"Settings!B{row}"
    assert "COSTLOOP_SMTP_PASSWORD" in problem.message
    assert server.messages == [] and not log_path(book).exists()


def test_an_unreachable_server_fails_every_department_without_stopping_early(book):
    env = {"COSTLOOP_SMTP_HOST": "127.0.0.1", "COSTLOOP_SMTP_PORT": str(free_port())}
    env["COSTLOOP_SMTP_SECURITY"] = "none"
    report = send_bills(book, env=env, backoff=FAST)
    assert not report.ok and report.sent == []
    assert len(report.failed) == 23
    messages = [p.message for p in report.problems if p.is_error]
    assert "after 4 attempt(s)" in messages[0]
    assert all("not tried: the mail server failed" in m for m in messages[1:])
    # Nothing was sent, so a later run sends all of them.
    assert all(r["status"] == "failed" for r in map(json.loads, log_path(book).open()))


def test_a_send_log_that_cannot_be_written_stops_before_sending(book, server):
    log_path(book).mkdir()  # a folder where the log file should be: it cannot be appended to
    report = send_bills(book, env=server.env, backoff=FAST)
    assert not report.ok and report.sent == []
    assert "cannot write the send log" in report.problems[-1].message
    assert server.messages == []


def test_a_record_after_a_line_cut_short_by_a_crash_is_kept(tmp_path):
    """The crash left no newline: the next record must start on a line of its own."""
    path = tmp_path / "book.xlsx.sendlog.jsonl"
    path.write_text('{"run_id": "R1", "period": "2026-03", "depart', encoding="utf-8")
    record = SendRecord("R2", "2026-03", "ENG", ["eng@x.org"], "abc", "sent")
    SendLog(path).append(record)
    again = SendLog(path)
    assert again.records == [record]
    (warning,) = again.problems
    assert warning.where == f"{path.name}, line 1" and not warning.is_error


def test_missing_smtp_settings_say_which_variable(book, monkeypatch, capsys):
    for key in ("HOST", "PORT", "USER", "PASSWORD", "SECURITY"):
        monkeypatch.delenv(f"COSTLOOP_SMTP_{key}", raising=False)
    assert main(["email", str(book)]) == 1
    assert "COSTLOOP_SMTP_HOST" in capsys.readouterr().out


def test_smtp_settings_come_from_the_environment():
    settings, problems = smtp_settings({"COSTLOOP_SMTP_HOST": "mail.example.edu"})
    assert problems == [] and (settings.port, settings.security) == (587, "starttls")
    settings, _ = smtp_settings({"COSTLOOP_SMTP_HOST": "m", "COSTLOOP_SMTP_SECURITY": "SSL"})
    assert (settings.port, settings.security) == (465, "ssl")
    for env, variable in (
        ({"COSTLOOP_SMTP_HOST": "m", "COSTLOOP_SMTP_SECURITY": "tls1"}, "SECURITY"),
        ({"COSTLOOP_SMTP_HOST": "m", "COSTLOOP_SMTP_PORT": "smtp"}, "PORT"),
        ({"COSTLOOP_SMTP_HOST": "m", "COSTLOOP_SMTP_PASSWORD": "x"}, "USER"),
        (
            {
                "COSTLOOP_SMTP_HOST": "mail.example.edu",
                "COSTLOOP_SMTP_SECURITY": "none",
                "COSTLOOP_SMTP_USER": "it",
                "COSTLOOP_SMTP_PASSWORD": "x",
            },
            "SECURITY",
        ),
    ):
        settings, problems = smtp_settings(env)
        assert settings is None and problems[0].where == f"environment COSTLOOP_SMTP_{variable}"


def test_a_password_may_go_unencrypted_only_to_a_relay_on_this_computer():
    env = {"COSTLOOP_SMTP_SECURITY": "none", "COSTLOOP_SMTP_USER": "it"}
    env["COSTLOOP_SMTP_PASSWORD"] = "x"
    for host in ("127.0.0.1", "localhost", "::1"):
        settings, problems = smtp_settings({**env, "COSTLOOP_SMTP_HOST": host})
        assert problems == [] and settings.password == "x"
    _, problems = smtp_settings({**env, "COSTLOOP_SMTP_HOST": "mail.example.edu"})
    assert problems[0].message.startswith("none would send COSTLOOP_SMTP_PASSWORD unencrypted")


def test_any_password_like_setting_is_refused_at_its_cell():
    settings = Settings(
        raw={"smtp password": "s3cret", "emailfrom": "a@b.org", "mail pwd": ""},
        cells={"smtp password": "Settings!B20", "emailfrom": "Settings!B14"},
    )
    (problem,) = workbook_secrets(settings)
    assert problem.where == "Settings!B20"


@pytest.mark.parametrize(
    ("key", "refused"),
    [
        ("smtppassword", True),
        ("clientsecret", True),
        ("passwordsmtp", True),
        ("mail pwd", True),
        ("billing secretary", False),
        ("billingsecretary", False),
        ("approver", False),
    ],
)
def test_only_keys_that_name_a_secret_are_refused(key, refused):
    settings = Settings(raw={key: "x"}, cells={key: "Settings!B9"})
    assert bool(workbook_secrets(settings)) is refused


@pytest.mark.parametrize(
    "subject",
    ["{total:,.2f}", "{period:{width}}", "{department!x}", "{totl}", "{period"],
)
def test_a_template_that_cannot_be_filled_in_is_refused_at_its_cell(subject):
    """Checked before anything is sent: filling it in mid-run would stop the others."""
    settings = Settings(
        email_from="itfinance@example.edu",
        email_subject=subject,
        cells={"emailsubject": "Settings!B15"},
    )
    (problem,) = check_settings(settings)
    assert problem.where == "Settings!B15" and "EmailSubject" in problem.message


def test_which_failures_are_retried():
    assert is_transient(smtplib.SMTPServerDisconnected("gone"))
    assert is_transient(smtplib.SMTPResponseException(421, b"busy"))
    assert is_transient(smtplib.SMTPRecipientsRefused({"a@b.org": (450, b"greylisted")}))
    assert not is_transient(smtplib.SMTPRecipientsRefused({"a@b.org": (550, b"no such user")}))
    assert not is_transient(smtplib.SMTPDataError(554, b"rejected"))
    assert is_transient(ConnectionResetError())
    # SMTPException is an OSError: one without a code (no STARTTLS, no AUTH, no SMTPUTF8 for
    # a non-ASCII address) is the server lacking a feature, which no retry will add.
    assert not is_transient(smtplib.SMTPNotSupportedError("STARTTLS extension not supported"))
    assert not is_transient(smtplib.SMTPException("No suitable authentication method found"))
