"""`costloop disputes pull BOOK`: the portal's disputes into the workbook's Disputes sheet.

Finance answers disputes where it answers everything else, in the workbook. Each
dispute a department raised in the portal becomes a Disputes row, Status Open, its
id ``PORTAL-<number>`` (the portal's dispute number, shown to the department), so a
second pull adds nothing and the answer can be found again: after finance sets Status
and Resolution and runs, the portal reads the sheet and the run's credit memos back
(`costloop.portal.resolutions`).

The row's Note holds what the department wrote, with who raised it and on which line;
finance may replace it with its own note, which the portal then shows the department.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from costloop.engine.pipeline.dispute_intake import Intake, RaisedDispute, add_disputes
from costloop.engine.xlsx.write_guard import refuse_unwritable
from costloop.portal.store import Dispute, Store, StoreError, default_url
from costloop.problems import Problem, Reason, Reported, Severity

PREFIX = "PORTAL-"
_ID = re.compile(r"^\s*PORTAL-(\d+)\s*$", re.IGNORECASE)
PULLED_BY = "costloop disputes pull"
"""The audit log's user for a pull (a command, not a signed-in person)."""


def sheet_id(number: int) -> str:
    """The portal's dispute 7 is ``PORTAL-7`` on the Disputes sheet."""
    return f"{PREFIX}{number}"


def number_of(dispute_id: str) -> int | None:
    """``PORTAL-7`` -> 7; None for a dispute finance typed in itself."""
    found = _ID.match(dispute_id or "")
    return int(found.group(1)) if found else None


def note_of(dispute: Dispute) -> str:
    """The Note a pull writes: the department's words, who raised it and on which line."""
    said = dispute.comment or "no comment"
    by = f"raised in the portal by {dispute.user_name}, line {dispute.line}, rule {dispute.rule}"
    return f"{said} ({by})"


def raised(dispute: Dispute) -> RaisedDispute:
    return RaisedDispute(
        dispute=sheet_id(dispute.number),
        department=dispute.department,
        period=dispute.period,
        pool=dispute.pool,
        reason=dispute.reason,
        amount=dispute.amount,
        note=note_of(dispute),
        raised=dispute.at.date(),
    )


@dataclass
class PullReport(Reported):
    """What a pull did, for the command line."""

    book: Path
    db_url: str
    intake: Intake | None = None
    in_portal: int = 0
    problems: list[Problem] = field(default_factory=list)

    def lines(self) -> list[str]:
        intake = self.intake
        if not self.ok or intake is None:
            return [f"FAILED: no dispute was added to {self.book.name}; nothing was changed"]
        if not intake.added:
            if not self.in_portal:
                return ["Nothing to pull: no dispute has been raised in the portal"]
            return [
                f"Nothing to pull: the portal's {self.in_portal} dispute(s) are all on the "
                f"{intake.sheet} sheet already"
            ]
        made = f" (a new {intake.sheet} sheet)" if intake.made_sheet else ""
        out = [f"Pulled {len(intake.added)} dispute(s) from the portal into {intake.sheet}{made}:"]
        for d, where in intake.added:
            out.append(
                f"  {d.dispute}  {d.department}  {d.period}  {d.pool}  {d.reason}  "
                f"{d.amount:,}  -> {where}"
            )
        if intake.already:
            out.append(f"{len(intake.already)} were on the sheet already (pulled before)")
        out.append(
            "Answer each on the sheet (Status Accepted with a Resolution, or Rejected with a "
            f"Note), then run `costloop run {self.book.name}`: the portal shows the answers "
            "after the run"
        )
        return out


def _sqlite_file(url: str) -> Path | None:
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


def pull_disputes(book: Path, db_url: str | None = None) -> PullReport:
    """Add every portal dispute not yet on the Disputes sheet to it (docs/portal.md)."""
    url = db_url or default_url(book)
    report = PullReport(book=book, db_url=url)
    refuse_unwritable(book)  # before the database is even opened
    database = _sqlite_file(url)
    if database is not None and not database.exists():
        report.problems.append(
            Problem(
                Reason.NO_DATA,
                Severity.ERROR,
                url,
                f"there is no portal database at {database}; give the database `costloop "
                "serve` uses with --db URL",
            )
        )
        return report
    try:
        store = Store(url)
    except StoreError as exc:
        report.problems.append(Problem(Reason.NO_DATA, Severity.ERROR, url, str(exc)))
        return report
    try:
        disputes = store.disputes()
        report.in_portal = len(disputes)
        by_id = {sheet_id(d.number): d for d in disputes}
        report.intake = add_disputes(book, [raised(d) for d in disputes])
        report.problems += report.intake.problems
        for new, where in report.intake.added:
            d = by_id[new.dispute]
            store.audit(PULLED_BY, "", "dispute pulled", d.department, d.period,
                        f"dispute {d.number} -> {where}")  # fmt: skip
    finally:
        store.close()
    return report
