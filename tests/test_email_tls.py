"""`costloop email` over TLS with a login, against aiosmtpd with a throw-away certificate.

The client verifies certificates with Python's default trust store; the test
trusts its self-signed certificate through ``SSL_CERT_FILE`` (which the
default store honours), the way a site trusts an internal CA.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from programs import SOFFICE, needs
from test_email import FAST, Mailbox, emails, free_port

from costloop.bills import send_bills

OPENSSL = shutil.which("openssl")
# openssl makes the certificate; LibreOffice the PDF every bill goes out with.
pytestmark = needs(openssl=OPENSSL, LibreOffice=SOFFICE)  # an error under CI
USER, PASSWORD = "itfinance", "correct horse"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *(OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _authenticate(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and (
        _text(auth_data.login),
        _text(auth_data.password),
    ) == (USER, PASSWORD)
    return AuthResult(success=ok, handled=False)  # not handled: aiosmtpd answers 535 itself


def _server_context(certificate) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


@pytest.fixture
def starttls_server(certificate):
    mailbox = Mailbox()
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=_server_context(certificate),
        require_starttls=True,
        auth_required=True,
        authenticator=_authenticate,
    )
    controller.start()
    mailbox.port = controller.port
    yield mailbox
    controller.stop()


def _env(port: int, security: str, password: str = PASSWORD) -> dict[str, str]:
    return {
        "COSTLOOP_SMTP_HOST": "127.0.0.1",
        "COSTLOOP_SMTP_PORT": str(port),
        "COSTLOOP_SMTP_SECURITY": security,
        "COSTLOOP_SMTP_USER": USER,
        "COSTLOOP_SMTP_PASSWORD": password,
    }


def test_starttls_and_login_deliver_every_bill(book, starttls_server, certificate, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    report = send_bills(book, env=_env(starttls_server.port, "starttls"), backoff=FAST)
    assert report.ok, report.problems
    assert len(report.sent) == 23
    assert sorted(a for rcpts, _ in starttls_server.messages for a in rcpts) == sorted(
        emails(book).values()
    )


def test_a_wrong_password_fails_once_not_once_per_department(
    book, starttls_server, certificate, monkeypatch
):
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    env = _env(starttls_server.port, "starttls", password="wrong")
    report = send_bills(book, env=env, backoff=FAST)
    assert not report.ok and report.sent == [] and len(report.failed) == 23
    errors = [p.message for p in report.problems if p.is_error]
    assert "535" in errors[0] and "after 1 attempt(s)" in errors[0]  # permanent: no retry
    assert all("not tried: the mail server failed" in m for m in errors[1:])
    assert starttls_server.messages == []


def test_an_untrusted_certificate_is_refused(book, starttls_server, monkeypatch):
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    report = send_bills(book, env=_env(starttls_server.port, "starttls"), backoff=FAST)
    assert not report.ok and report.sent == []
    first = next(p.message for p in report.problems if p.is_error)
    assert "CERTIFICATE_VERIFY_FAILED" in first and "after 1 attempt(s)" in first
    assert starttls_server.messages == []


# aiosmtpd warns about AUTH without STARTTLS; with implicit TLS the session is encrypted.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_implicit_tls(book, certificate, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    mailbox = Mailbox()
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=free_port(),
        ssl_context=_server_context(certificate),
        auth_required=True,
        auth_require_tls=False,  # the whole session is TLS already
        authenticator=_authenticate,
    )
    controller.start()
    try:
        report = send_bills(book, env=_env(controller.port, "ssl"), backoff=FAST)
    finally:
        controller.stop()
    assert report.ok, report.problems
    assert len(mailbox.messages) == 23
