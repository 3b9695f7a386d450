"""The send log: what was emailed, to whom, for which run, next to the workbook.

One JSON object a line in ``<workbook>.sendlog.jsonl``, appended and flushed
to disk after every message, so a crash loses nothing already sent. Each
record carries the run ID (from the Run Log), the period, the department, the
recipients, a hash of what the bill says and a SHA-256 of every attachment.

Reading it answers, for a department and period: was this bill sent already
(skip it), or was a *different* bill sent (say so, and send only with
``--resend``)?
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from costloop.problems import Problem, Reason, Severity

SENT, FAILED = "sent", "failed"


def log_path(book: Path) -> Path:
    """``budget.xlsx`` -> ``budget.xlsx.sendlog.jsonl`` in the same folder."""
    return book.with_name(book.name + ".sendlog.jsonl")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


@dataclass
class SendRecord:
    run_id: str
    period: str
    department: str
    to: list[str]
    """Who got it (when sent: the addresses the server accepted)."""
    bill_hash: str
    status: str
    """``sent`` or ``failed``."""
    time: str = field(default_factory=now)
    attachments: dict[str, str] = field(default_factory=dict)
    """File name -> SHA-256 of its bytes."""
    message_id: str = ""
    error: str = ""
    attempts: int = 1
    total: str = ""
    """The bill's total as sent (``USD 1,234.56``): a corrected bill shows it beside the new."""


class SendLog:
    """The records of one workbook's send log."""

    def __init__(self, path: Path):
        self.path = path
        self.records: list[SendRecord] = []
        self.problems: list[Problem] = []
        if path.is_file():
            self._load()

    def _load(self) -> None:
        names = SendRecord.__dataclass_fields__
        for number, line in enumerate(self.path.read_text("utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                self.records.append(SendRecord(**{k: v for k, v in data.items() if k in names}))
            except (ValueError, TypeError):
                # A line cut short by a crash: everything before it still counts.
                self.problems.append(
                    Problem(
                        Reason.BAD_VALUE,
                        Severity.WARNING,
                        f"{self.path.name}, line {number}",
                        "this send log line is unreadable and was ignored",
                    )
                )

    def last_sent(self, period: str, department: str) -> SendRecord | None:
        """The latest record of a bill sent to this department for this period, any run."""
        for record in reversed(self.records):
            if (
                record.status == SENT
                and record.period == period
                and record.department == department
            ):
                return record
        return None

    def received(self, period: str, department: str, bill_hash: str) -> set[str]:
        """Addresses (casefolded) that were sent this very bill: a rerun need not send again."""
        return {
            address.casefold()
            for record in self.records
            if record.status == SENT
            and (record.period, record.department, record.bill_hash)
            == (period, department, bill_hash)
            for address in record.to
        }

    def writable(self) -> Problem | None:
        """A problem if the log cannot be written: then nothing may be sent (it would be lost)."""
        try:
            with self.path.open("a", encoding="utf-8"):
                pass
        except OSError as exc:
            return Problem(
                Reason.BAD_VALUE,
                Severity.ERROR,
                str(self.path),
                f"cannot write the send log ({exc.strerror or exc}); without it a rerun could "
                "not tell what was sent, so nothing was sent. Make the workbook's folder "
                "writable",
            )
        return None

    def append(self, record: SendRecord) -> None:
        """Add a record and make it durable before the next message goes."""
        self.records.append(record)
        line = json.dumps(asdict(record), ensure_ascii=False, sort_keys=True) + "\n"
        with self.path.open("a+b") as handle:
            handle.seek(0, os.SEEK_END)
            if handle.tell():
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":
                    # A crash cut the last line short: start this record on a line of
                    # its own, or it would be lost with the broken one (and sent again).
                    line = "\n" + line
            handle.write(line.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
