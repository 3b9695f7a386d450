"""`costloop serve BOOK` and `costloop portal user add BOOK USER`: the portal's commands."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from costloop.engine import read_book
from costloop.engine.xlsx.file_workbook import FileWorkbook
from costloop.portal.accounts import hash_password
from costloop.portal.store import Store, StoreError, default_url
from costloop.problems import Problem, Reason, Reported, Severity
from costloop.rules.ast import name_key

MIN_PASSWORD = 8


@dataclass
class UserReport(Reported):
    """What `add_user` did."""

    user: str
    db_url: str
    departments: list[str] = field(default_factory=list)
    finance: bool = False
    problems: list[Problem] = field(default_factory=list)

    def lines(self) -> list[str]:
        if not self.ok:
            return [f"FAILED: user {self.user} was not added"]
        sees = "every department (finance)" if self.finance else ", ".join(self.departments)
        return [f"Added portal user {self.user}, who sees {sees}; database {self.db_url}"]


def _error(where: str, message: str) -> Problem:
    return Problem(Reason.NO_DATA, Severity.ERROR, where, message)


def department_codes(book: Path) -> tuple[dict[str, str] | None, list[Problem]]:
    """Department name key -> its code as written in Departments."""
    found, problems = read_book(FileWorkbook(book))
    if found is None:
        return None, [p for p in problems if p.is_error]
    codes = {}
    for code in found.departments["Department"]:
        codes.setdefault(name_key(str(code)), str(code).strip())
    return codes, []


def add_user(
    book: Path,
    user: str,
    password: str,
    departments: list[str],
    finance: bool,
    db_url: str | None = None,
) -> UserReport:
    """Add a local account that sees the given departments (or every one, for finance)."""
    url = db_url or default_url(book)
    report = UserReport(user=user.strip(), db_url=url, finance=finance)
    if not report.user:
        report.problems.append(_error("USER", "give a user name that is not blank"))
    if len(password) < MIN_PASSWORD:
        report.problems.append(
            _error(
                "standard input",
                f"the password must be at least {MIN_PASSWORD} characters; give it on "
                "standard input (one line)",
            )
        )
    if departments:
        codes, problems = department_codes(book)
        report.problems += problems
        for wanted in departments if codes is not None else []:
            code = codes.get(name_key(wanted))
            if code is None:
                report.problems.append(
                    _error(
                        "Departments!A1",
                        f'"{wanted}" is not a Department code on the Departments sheet; '
                        "give the code as written in its Department column",
                    )
                )
            else:
                report.departments.append(code)
    if report.problems:
        return report
    try:
        store = Store(url)
    except StoreError as exc:
        report.problems.append(_error(url, str(exc)))
        return report
    try:
        if store.user_exists(report.user):
            report.problems.append(
                _error(url, f"there is already a portal user {report.user}; nothing was changed")
            )
            return report
        keys = [name_key(code) for code in report.departments]
        store.add_user(report.user, hash_password(password), finance, keys)
    finally:
        store.close()
    return report


def serve(
    book: Path,
    host: str,
    port: int,
    db_url: str | None,
    proxy_headers: bool,
    forwarded_allow_ips: str,
) -> None:
    """Run the portal with uvicorn until interrupted."""
    import uvicorn

    from costloop.portal.app import PortalConfig, create_app
    from costloop.portal.snapshot import Bills, load_elsewhere
    from costloop.portal.sso import SsoConfig

    sso = SsoConfig.from_environment()  # before the database: a bad setting changes nothing
    store = Store(db_url or default_url(book))
    # The first load in a worker process too: what running the year needs on the way
    # (most of a gigabyte at a million usage rows) is then never the server's own.
    bills = Bills(book, loader=load_elsewhere)
    config = PortalConfig(book=book, secure_cookies=proxy_headers, sso=sso)
    app = create_app(config, store, bills)
    uvicorn.run(
        app,
        host=host,
        port=port,
        # Forwarded headers only when asked: trusting them unasked would let any client
        # claim another address and walk around the sign-in throttle.
        proxy_headers=proxy_headers,
        forwarded_allow_ips=forwarded_allow_ips if proxy_headers else None,
        server_header=False,
        log_level="info",
    )
