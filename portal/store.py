"""The portal's own database: accounts, sign-in failures, disputes, acceptances, the audit log.

The workbook stays the source of truth for bills; this database holds only what the
portal itself knows. SQLite beside the workbook by default (``BOOK.portal.sqlite``),
any SQLAlchemy URL with ``--db``.

The schema is created from SQLAlchemy's metadata and stamped in a one-row
``schema_version`` table rather than managed by Alembic: there is one version so
far, and a migration tool with its own folder of scripts is more machinery than one
``CREATE TABLE`` set needs. A database stamped with a version this code does not
know is refused (never written to), so an older costloop cannot damage a newer
portal's data; the first schema change brings the first migration with it.

The audit log is append-only in the database itself: triggers refuse any UPDATE or
DELETE of its rows, so not even a bug in the portal can rewrite what it recorded.

Every page view writes an audit row, so the audit write is the portal's busiest
statement. A request returns only once its row is committed, but the rows of
requests that arrive together are committed together (`_GroupCommit`): one
transaction and one flush to disk for a burst of views, where forty request
threads each committing alone queued on SQLite's single writer lock, whose busy
handler sleeps between tries (milliseconds that became the slowest pages).
"""

from __future__ import annotations

import datetime as dt
import secrets
import threading
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError

from costloop.errors import PortalError

SCHEMA_VERSION = 1

metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, nullable=False),
)

settings = Table(
    "portal_settings",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    # The user name folded to lower case: ``Ada`` and ``ada`` are one account.
    Column("user_key", String(200), nullable=False, unique=True),
    Column("user_name", String(200), nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("finance", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

user_departments = Table(
    "user_departments",
    metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    # The department's name key, as the engine compares department codes.
    Column("department_key", String(200), primary_key=True),
)

sign_in_failures = Table(
    "sign_in_failures",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_key", String(200), nullable=False, index=True),
    Column("address", String(100), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("user_name", String(200), nullable=False),
    Column("address", String(100), nullable=False),
    Column("action", String(40), nullable=False),
    Column("department", String(200), nullable=False, default=""),
    Column("period", String(7), nullable=False, default=""),
    Column("detail", Text, nullable=False, default=""),
)

disputes = Table(
    "disputes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("user_name", String(200), nullable=False),
    Column("department_key", String(200), nullable=False, index=True),
    Column("department", String(200), nullable=False),
    Column("period", String(7), nullable=False),
    Column("run_id", String(64), nullable=False),
    Column("line", Integer, nullable=False),
    Column("pool", String(200), nullable=False),
    Column("rule", String(64), nullable=False),
    Column("reason", String(20), nullable=False),
    # Money as its exact decimal text: SQLite would keep a NUMERIC as a float.
    Column("amount", String(40), nullable=False),
    Column("comment", Text, nullable=False, default=""),
    Column("status", String(20), nullable=False, default="Open"),
)

acceptances = Table(
    "acceptances",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("user_name", String(200), nullable=False),
    Column("department_key", String(200), nullable=False),
    Column("department", String(200), nullable=False),
    Column("period", String(7), nullable=False),
    Column("run_id", String(64), nullable=False),
    Column("total", String(40), nullable=False),
    # One acceptance of one department's bill of one run.
    UniqueConstraint("department_key", "period", "run_id"),
)

_APPEND_ONLY = {
    "sqlite": [
        "CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log "
        "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
        "CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log "
        "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger AS $$ "
        "BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$ LANGUAGE plpgsql",
        "DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log",
        "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
    ],
}


class StoreError(PortalError):
    """The portal database cannot be used (a newer schema, an unknown database)."""


def default_url(book: Path) -> str:
    """``budget.xlsx`` -> ``sqlite:////abs/path/budget.xlsx.portal.sqlite``."""
    path = book.resolve().with_name(book.name + ".portal.sqlite")
    return f"sqlite:///{path}"


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(value: dt.datetime) -> dt.datetime:
    # SQLite gives back naive datetimes; every time stored here is UTC.
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class Account:
    """A signed-in user: who, and which departments the server lets them see."""

    user_name: str
    finance: bool
    departments: frozenset[str]
    """Department name keys; every department when ``finance``."""

    def may_see(self, department_key: str) -> bool:
        return self.finance or department_key in self.departments


@dataclass(frozen=True)
class AuditRow:
    at: dt.datetime
    user_name: str
    address: str
    action: str
    department: str
    period: str
    detail: str


REASONS = ("Rate", "Volume", "Allocation", "Duplicate", "Other")
"""A dispute's reason codes (the Disputes sheet's, issue 18)."""


@dataclass(frozen=True)
class Dispute:
    """A department's question about one line of its bill, as raised in the portal."""

    at: dt.datetime
    user_name: str
    department_key: str
    department: str
    period: str
    run_id: str
    line: int
    pool: str
    rule: str
    reason: str
    amount: Decimal
    comment: str
    status: str = "Open"
    number: int | None = None


@dataclass(frozen=True)
class Acceptance:
    """A department's acceptance of its bill of one run."""

    at: dt.datetime
    user_name: str
    department_key: str
    department: str
    period: str
    run_id: str
    total: Decimal


class _GroupCommit:
    """Audit rows written in batches, each request waiting until its own row is committed.

    The first request to arrive while nothing is being written writes every row queued
    so far in one transaction; requests arriving meanwhile queue theirs for the next
    batch. A request is told its row is in the database only after the commit that
    holds it, and if that commit fails, every request of the batch gets the error: no
    action goes unrecorded while its page is shown.
    """

    def __init__(self, engine: Engine):
        self._engine = engine
        self._ready = threading.Condition()
        self._queued: list[_Entry] = []
        self._writing = False

    def write(self, row: dict) -> None:
        entry = _Entry(row)
        with self._ready:
            self._queued.append(entry)
            while not entry.done and self._writing:
                self._ready.wait()
            if entry.done:
                entry.raise_error()
                return
            self._writing = True
            batch, self._queued = self._queued, []
        error: BaseException | None = None
        try:
            with self._engine.begin() as conn:
                conn.execute(insert(audit_log), [e.row for e in batch])
        except BaseException as exc:  # every request of the batch must hear of it
            error = exc
        with self._ready:
            for e in batch:
                e.done, e.error = True, error
            self._writing = False
            self._ready.notify_all()
        entry.raise_error()


class _Entry:
    __slots__ = ("done", "error", "row")

    def __init__(self, row: dict):
        self.row, self.done, self.error = row, False, None

    def raise_error(self) -> None:
        if self.error is not None:
            raise self.error


def _dispute(row) -> Dispute:
    return Dispute(
        at=_aware(row["at"]),
        user_name=row["user_name"],
        department_key=row["department_key"],
        department=row["department"],
        period=row["period"],
        run_id=row["run_id"],
        line=row["line"],
        pool=row["pool"],
        rule=row["rule"],
        reason=row["reason"],
        amount=Decimal(row["amount"]),
        comment=row["comment"],
        status=row["status"],
        number=row["id"],
    )


class Store:
    """One portal database, its schema checked (and created when empty) on opening."""

    def __init__(self, url: str):
        self.url = url
        # The kind of database is checked from the URL, before any driver is loaded.
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise StoreError(
                f"{url!r} is not a database URL; give sqlite:///PATH or "
                "postgresql+psycopg://USER@HOST/DATABASE"
            ) from None
        if parsed.get_backend_name() not in _APPEND_ONLY:
            raise StoreError(
                f"{parsed.render_as_string(hide_password=True)}: the portal keeps its data in "
                "SQLite or PostgreSQL; give a sqlite:/// or postgresql:// URL"
            )
        sqlite = parsed.get_backend_name() == "sqlite"
        # SQLite connections are files opened in this process: keep one per request
        # thread (anyio runs at most 40 at once) rather than open, set up and close
        # one beyond the default five for every request of a busy minute.
        pool = {"pool_size": 40, "max_overflow": 10} if sqlite else {}
        self.engine: Engine = create_engine(url, future=True, **pool)
        if sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._ensure_schema()
        self._audit = _GroupCommit(self.engine)

    def _ensure_schema(self) -> None:
        dialect = self.engine.dialect.name
        with self.engine.begin() as conn:
            metadata.create_all(conn)
            found = conn.execute(select(schema_version.c.version)).scalars().all()
            if not found:
                conn.execute(insert(schema_version).values(version=SCHEMA_VERSION))
            elif max(found) > SCHEMA_VERSION:
                raise StoreError(
                    f"the portal database is at schema version {max(found)}, newer than this "
                    f"costloop knows ({SCHEMA_VERSION}); upgrade costloop"
                )
            for statement in _APPEND_ONLY[dialect]:
                conn.execute(text(statement))

    # --- the key that signs session cookies -------------------------------
    def session_secret(self) -> str:
        """A random key made once and kept, so sessions survive a restart of the server."""
        with self.engine.begin() as conn:
            value = conn.execute(
                select(settings.c.value).where(settings.c.key == "session_secret")
            ).scalar()
            if value is None:
                value = secrets.token_urlsafe(48)
                conn.execute(insert(settings).values(key="session_secret", value=value))
            return value

    # --- accounts ---------------------------------------------------------
    def user_exists(self, user_name: str) -> bool:
        with self.engine.connect() as conn:
            found = conn.execute(
                select(users.c.id).where(users.c.user_key == user_key(user_name))
            ).first()
        return found is not None

    def add_user(
        self, user_name: str, password_hash: str, finance: bool, departments: list[str]
    ) -> None:
        with self.engine.begin() as conn:
            user_id = conn.execute(
                insert(users).values(
                    user_key=user_key(user_name),
                    user_name=user_name,
                    password_hash=password_hash,
                    finance=finance,
                    created_at=now(),
                )
            ).inserted_primary_key[0]
            for key in dict.fromkeys(departments):
                conn.execute(insert(user_departments).values(user_id=user_id, department_key=key))

    def password_hash(self, user_name: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(
                select(users.c.password_hash).where(users.c.user_key == user_key(user_name))
            ).scalar()

    def account(self, user_name: str) -> Account | None:
        # One query (the user and its departments, joined): it runs on every request.
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(users.c.user_name, users.c.finance, user_departments.c.department_key)
                .select_from(users.outerjoin(user_departments))
                .where(users.c.user_key == user_key(user_name))
            ).all()
        if not rows:
            return None
        keys = frozenset(r.department_key for r in rows if r.department_key is not None)
        return Account(rows[0].user_name, bool(rows[0].finance), keys)

    # --- sign-in throttling -------------------------------------------------
    def recent_failures(self, user_name: str, address: str, since: dt.datetime) -> int:
        with self.engine.connect() as conn:
            return conn.execute(
                select(func.count())
                .select_from(sign_in_failures)
                .where(
                    sign_in_failures.c.user_key == user_key(user_name),
                    sign_in_failures.c.address == address,
                    sign_in_failures.c.at > since,
                )
            ).scalar_one()

    def oldest_failure(self, user_name: str, address: str, since: dt.datetime) -> dt.datetime:
        with self.engine.connect() as conn:
            value = conn.execute(
                select(func.min(sign_in_failures.c.at)).where(
                    sign_in_failures.c.user_key == user_key(user_name),
                    sign_in_failures.c.address == address,
                    sign_in_failures.c.at > since,
                )
            ).scalar()
        return _aware(value) if value is not None else now()

    def record_failure(self, user_name: str, address: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(sign_in_failures).values(
                    user_key=user_key(user_name), address=address, at=now()
                )
            )

    def clear_failures(self, user_name: str, address: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                delete(sign_in_failures).where(
                    sign_in_failures.c.user_key == user_key(user_name),
                    sign_in_failures.c.address == address,
                )
            )

    # --- the audit log ------------------------------------------------------
    def audit(
        self,
        user_name: str,
        address: str,
        action: str,
        department: str = "",
        period: str = "",
        detail: str = "",
    ) -> None:
        """Record an action; returns once the row is committed (with others of the moment)."""
        self._audit.write(
            {
                "at": now(),
                "user_name": user_name,
                "address": address,
                "action": action,
                "department": department,
                "period": period,
                "detail": detail,
            }
        )

    def audit_rows(self) -> list[AuditRow]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    audit_log.c.at,
                    audit_log.c.user_name,
                    audit_log.c.address,
                    audit_log.c.action,
                    audit_log.c.department,
                    audit_log.c.period,
                    audit_log.c.detail,
                ).order_by(audit_log.c.id)
            ).all()
        return [AuditRow(_aware(r[0]), *r[1:]) for r in rows]

    # --- disputes and acceptances --------------------------------------------
    def raise_dispute(self, dispute: Dispute) -> int:
        """Store a dispute; returns its number."""
        with self.engine.begin() as conn:
            return conn.execute(
                insert(disputes).values(
                    at=dispute.at,
                    user_name=dispute.user_name,
                    department_key=dispute.department_key,
                    department=dispute.department,
                    period=dispute.period,
                    run_id=dispute.run_id,
                    line=dispute.line,
                    pool=dispute.pool,
                    rule=dispute.rule,
                    reason=dispute.reason,
                    amount=str(dispute.amount),
                    comment=dispute.comment,
                    status=dispute.status,
                )
            ).inserted_primary_key[0]

    def disputes(self, department_key: str | None = None, period: str | None = None):
        """Disputes, oldest first; of one department (and period) when given."""
        query = select(disputes).order_by(disputes.c.id)
        if department_key is not None:
            query = query.where(disputes.c.department_key == department_key)
        if period is not None:
            query = query.where(disputes.c.period == period)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [_dispute(r) for r in rows]

    def accept(self, acceptance: Acceptance) -> bool:
        """Record that a department accepted its bill of a run; False if it already had."""
        with self.engine.begin() as conn:
            if self._acceptance(
                conn, acceptance.department_key, acceptance.period, acceptance.run_id
            ):
                return False
            conn.execute(
                insert(acceptances).values(
                    at=acceptance.at,
                    user_name=acceptance.user_name,
                    department_key=acceptance.department_key,
                    department=acceptance.department,
                    period=acceptance.period,
                    run_id=acceptance.run_id,
                    total=str(acceptance.total),
                )
            )
        return True

    def states(self, run_id: str) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
        """(accepted, with an open dispute): (department key, period) pairs, two queries."""
        with self.engine.connect() as conn:
            accepted = conn.execute(
                select(acceptances.c.department_key, acceptances.c.period).where(
                    acceptances.c.run_id == run_id
                )
            ).all()
            disputed = conn.execute(
                select(disputes.c.department_key, disputes.c.period)
                .where(disputes.c.status == "Open")
                .distinct()
            ).all()
        return {tuple(r) for r in accepted}, {tuple(r) for r in disputed}

    def open_disputes(self) -> list[tuple[int, str, str]]:
        """(number, department key, period) of every dispute the portal holds Open: the
        first page asks which of them finance has answered on the Disputes sheet."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(disputes.c.id, disputes.c.department_key, disputes.c.period).where(
                    disputes.c.status == "Open"
                )
            ).all()
        return [tuple(r) for r in rows]

    def acceptance(self, department_key: str, period: str, run_id: str) -> Acceptance | None:
        with self.engine.connect() as conn:
            return self._acceptance(conn, department_key, period, run_id)

    @staticmethod
    def _acceptance(conn, department_key: str, period: str, run_id: str) -> Acceptance | None:
        row = (
            conn.execute(
                select(acceptances).where(
                    acceptances.c.department_key == department_key,
                    acceptances.c.period == period,
                    acceptances.c.run_id == run_id,
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        return Acceptance(
            at=_aware(row["at"]),
            user_name=row["user_name"],
            department_key=row["department_key"],
            department=row["department"],
            period=row["period"],
            run_id=row["run_id"],
            total=Decimal(row["total"]),
        )

    def close(self) -> None:
        self.engine.dispose()


def user_key(user_name: str) -> str:
    return user_name.strip().casefold()


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # Foreign keys on (SQLite's default is off); WAL so readers never wait on the writer.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()
