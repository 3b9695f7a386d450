"""Sending one message with retries: transient failures wait and try again, permanent ones stop.

Transient: the server answered 4xx ("try again later"), the connection dropped
or timed out, or it could not be opened. Permanent: a 5xx answer (unknown
recipient, message refused, login refused) or a TLS failure (an untrusted
certificate), which no retry will change. Between attempts the wait doubles
(1 s, 2 s, 4 s by default). When no session can be opened at all, the caller
is told, so the remaining departments are not each put through the same waits.
"""

from __future__ import annotations

import smtplib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage

from costloop.bills.smtp import Connection, SessionError


@dataclass(frozen=True)
class Backoff:
    attempts: int = 4
    """Tries in all, the first included."""
    first_wait: float = 1.0
    factor: float = 2.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)

    def waits(self) -> list[float]:
        return [self.first_wait * self.factor**n for n in range(self.attempts - 1)]


@dataclass
class Delivery:
    """How sending one message went."""

    sent: bool
    attempts: int
    error: str = ""
    refused: dict[str, str] = field(default_factory=dict)
    """Recipients the server refused while accepting others (address -> its answer)."""
    server_failed: bool = False
    """No session could be opened (connect, TLS, login): the others will not fare better."""


def _code(exc: BaseException) -> int | None:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        # Retry only if every refusal was temporary.
        return max(codes) if codes else None
    return getattr(exc, "smtp_code", None)


def is_transient(exc: BaseException) -> bool:
    """A failure worth another try."""
    if isinstance(exc, ssl.SSLError):
        return False  # an untrusted certificate or a TLS mismatch will not mend itself
    if isinstance(exc, smtplib.SMTPServerDisconnected | smtplib.SMTPConnectError):
        return True
    code = _code(exc)
    if code is not None:
        return 400 <= code < 500
    # Connection refused, reset, timed out. SMTPException is an OSError too: one without
    # a code is a missing feature (no STARTTLS, AUTH or SMTPUTF8), which no retry adds.
    return isinstance(exc, OSError) and not isinstance(exc, smtplib.SMTPException)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        parts = [
            f"{address}: {code} {_text(reply)}" for address, (code, reply) in exc.recipients.items()
        ]
        return "recipient refused (" + "; ".join(parts) + ")"
    code = getattr(exc, "smtp_code", None)
    if code is not None:
        return f"{code} {_text(getattr(exc, 'smtp_error', b''))}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def send_with_retry(connection: Connection, message: EmailMessage, backoff: Backoff) -> Delivery:
    """Send ``message``; retry transient failures with a doubling wait."""
    waits = backoff.waits()
    attempt = 0
    while True:
        attempt += 1
        try:
            refused = connection.send(message)
        except (smtplib.SMTPException, OSError, SessionError) as exc:
            connection.reset()  # the session's state is unknown: start clean
            cause = exc.cause if isinstance(exc, SessionError) else exc
            if is_transient(cause) and attempt <= len(waits):
                backoff.sleep(waits[attempt - 1])
                continue
            # Could not even open a session (connect, TLS, login): the next department
            # would fail the same way, after the same waits.
            return Delivery(
                False, attempt, _describe(cause), server_failed=isinstance(exc, SessionError)
            )
        return Delivery(
            True,
            attempt,
            refused={a: f"{code} {_text(reply)}" for a, (code, reply) in refused.items()},
        )
