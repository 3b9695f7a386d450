"""The SMTP connection: settings from the environment only, never from the workbook.

A workbook is copied, emailed and left on shared drives, so a password typed
into its Settings is refused (with the cell to clear) rather than used.
``COSTLOOP_SMTP_HOST``, ``_PORT``, ``_USER``, ``_PASSWORD`` and ``_SECURITY``
(``none``, ``starttls`` or ``ssl``; default ``starttls``) configure the server.
"""

from __future__ import annotations

import ipaddress
import os
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage

from costloop.engine.model.book import Settings
from costloop.errors import EmailError
from costloop.problems import Problem, Reason, Severity

ENV = "COSTLOOP_SMTP_"
SECURITY = ("none", "starttls", "ssl")
DEFAULT_PORTS = {"none": 25, "starttls": 587, "ssl": 465}
_SECRET_WORDS = ("password", "passwd", "pwd", "secret")


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    security: str
    user: str = ""
    password: str = ""
    timeout: float = 30.0

    def describe(self) -> str:
        return f"{self.host}:{self.port} ({self.security})"


def _env_problem(name: str, message: str) -> Problem:
    return Problem(Reason.BAD_SETTING, Severity.ERROR, f"environment {ENV}{name}", message)


def smtp_settings(
    env: Mapping[str, str] | None = None,
) -> tuple[SmtpSettings | None, list[Problem]]:
    """The server to send through, from ``COSTLOOP_SMTP_*``; problems name the variable."""
    env = os.environ if env is None else env
    host = env.get(f"{ENV}HOST", "").strip()
    if not host:
        return None, [
            _env_problem(
                "HOST",
                f"no mail server: set {ENV}HOST (and {ENV}PORT, {ENV}USER, {ENV}PASSWORD, "
                f"{ENV}SECURITY as your server needs), or use --dry-run DIR to write the "
                "messages as .eml files",
            )
        ]
    security = env.get(f"{ENV}SECURITY", "starttls").strip().lower() or "starttls"
    if security not in SECURITY:
        return None, [_env_problem("SECURITY", f"must be none, starttls or ssl, got {security!r}")]
    port_text = env.get(f"{ENV}PORT", "").strip()
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            return None, [_env_problem("PORT", f"must be a port number, got {port_text!r}")]
        port = int(port_text)
    else:
        port = DEFAULT_PORTS[security]
    user = env.get(f"{ENV}USER", "")
    password = env.get(f"{ENV}PASSWORD", "")
    if password and not user:
        return None, [_env_problem("USER", f"{ENV}PASSWORD is set but {ENV}USER is not")]
    if password and security == "none" and not _is_loopback(host):
        return None, [
            _env_problem(
                "SECURITY",
                f"none would send {ENV}PASSWORD unencrypted to {host}; set it to starttls "
                "or ssl (a relay on this computer, 127.0.0.1, may use none)",
            )
        ]
    return SmtpSettings(host, port, security, user, password), []


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def workbook_secrets(settings: Settings) -> list[Problem]:
    """A password (or anything like one) in Settings: refused, with the cell to clear."""
    problems = []
    for key, value in settings.raw.items():
        if value.strip() and _names_a_secret(key):
            problems.append(
                Problem(
                    Reason.BAD_SETTING,
                    Severity.ERROR,
                    settings.cells.get(key, "Settings!A1"),
                    "a password does not belong in the workbook (it travels with every copy); "
                    f"clear this cell and set {ENV}PASSWORD in the environment instead. "
                    "Nothing was sent",
                )
            )
    return problems


def _names_a_secret(key: str) -> bool:
    """``SMTP Password``, ``SmtpPassword``, ``ClientSecret``, ``PasswordSMTP``; not
    ``Billing Secretary`` (a secret word as a whole word, or ending or opening the key)."""
    compact = "".join(key.split())
    return (
        any(word in _SECRET_WORDS for word in key.split())
        or compact.endswith(_SECRET_WORDS)
        or compact.startswith(("password", "passwd", "pwd"))
    )


class SessionError(EmailError):
    """Opening the session failed (connect, TLS or login): the server's failure, not a message's."""

    def __init__(self, cause: BaseException):
        super().__init__(str(cause))
        self.cause = cause


class Connection:
    """One SMTP session, opened on first use and reopened after a drop."""

    def __init__(self, settings: SmtpSettings):
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None

    def _open(self) -> smtplib.SMTP:
        s = self.settings
        context = ssl.create_default_context()
        if s.security == "ssl":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                s.host, s.port, timeout=s.timeout, context=context
            )
        else:
            smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        try:
            if s.security == "starttls":
                smtp.starttls(context=context)
            if s.user:
                smtp.login(s.user, s.password)
        except BaseException:
            self._close(smtp)
            raise
        return smtp

    @staticmethod
    def _close(smtp: smtplib.SMTP) -> None:
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()

    def send(self, message: EmailMessage) -> dict:
        """Send; returns the refused recipients (empty when all accepted)."""
        if self._smtp is None:
            try:
                self._smtp = self._open()
            except (smtplib.SMTPException, OSError) as exc:
                raise SessionError(exc) from exc
        return self._smtp.send_message(message)

    def reset(self) -> None:
        """Forget the session (after an error): the next send opens a new one."""
        if self._smtp is not None:
            smtp, self._smtp = self._smtp, None
            self._close(smtp)

    def close(self) -> None:
        self.reset()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
