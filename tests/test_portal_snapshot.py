"""What makes the portal fast must not change what it shows or records.

A reloaded snapshot arrives as one pickle per statement and unpickles each on first
use; what a page shows of a statement is worked out once per snapshot; audit rows of
concurrent requests are committed together, each request waiting for its own.
"""

from __future__ import annotations

import pickle
import threading
from pathlib import Path

import pytest
from portal_fixtures import PERIOD, make_book

from costloop.portal import views
from costloop.portal.snapshot import Snapshot, Statements, load_elsewhere, load_snapshot
from costloop.portal.store import Store


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> Path:
    return make_book(tmp_path_factory.mktemp("snapshot"))


@pytest.fixture(scope="module")
def snapshot(book) -> Snapshot:
    return load_snapshot(book)


def test_a_snapshot_sent_from_the_worker_unpickles_each_statement_only_when_asked(snapshot):
    sent = pickle.loads(pickle.dumps(snapshot))
    statements = sent.statements
    assert isinstance(statements, Statements)
    assert list(statements) == list(snapshot.statements)  # same keys, same order
    assert statements._live == {}  # nothing unpickled on arrival
    assert len(statements._packed) == len(snapshot.statements)

    adm = sent.statement("adm", PERIOD)
    assert adm.content_hash() == snapshot.statement("adm", PERIOD).content_hash()
    assert list(statements._live) == [("adm", PERIOD)]
    assert ("adm", PERIOD) not in statements._packed  # its pickle is let go
    assert sent.statement("adm", PERIOD) is adm  # unpickled once
    assert ("cas", PERIOD) in statements and sent.statement("nosuch", PERIOD) is None
    assert sent.periods_of("adm") == snapshot.periods_of("adm")
    assert sent.stamp == snapshot.stamp and sent.rules.keys() == snapshot.rules.keys()


def test_the_reload_worker_sends_the_same_bills(book, snapshot):
    fresh = load_elsewhere(book)
    assert fresh.stamp == snapshot.stamp
    assert list(fresh.statements) == list(snapshot.statements)
    for key in snapshot.statements:
        assert fresh.statements[key].content_hash() == snapshot.statements[key].content_hash()


def test_what_a_page_shows_is_worked_out_once_per_snapshot(snapshot):
    adm = snapshot.statement("adm", PERIOD)
    calls = []

    def build(s):
        calls.append(s.department)
        return views.line_rows(s)

    first = snapshot.page(adm, build)
    assert snapshot.page(adm, build) is first and calls == ["ADM"]
    assert first == views.line_rows(adm)
    cas = snapshot.statement("cas", PERIOD)
    assert snapshot.page(cas, build) != first and calls == ["ADM", "CAS"]
    # A rule is part of the key: each line's rule has its own usage rows.
    rules = list(snapshot.rules.values())
    assert snapshot.page(adm, views.usage_of_line, rules[0]) == views.usage_of_line(adm, rules[0])
    # A new snapshot (a reload, here one sent from the worker) starts with nothing worked out.
    sent = pickle.loads(pickle.dumps(snapshot))
    assert sent._pages == {}
    sent.page(sent.statement("adm", PERIOD), build)
    assert calls == ["ADM", "CAS", "ADM"]


def test_audit_rows_of_concurrent_requests_are_all_committed(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'audit.sqlite'}")
    threads, per_thread = 40, 25

    def views_of(n: int) -> None:
        for i in range(per_thread):
            store.audit(f"user{n}", "127.0.0.1", "view", "ADM", PERIOD, f"line {i}")
        # Once audit() returns, the row is in the database for any other connection.
        assert (f"user{n}", f"line {per_thread - 1}") in seen(store, f"user{n}")

    workers = [threading.Thread(target=views_of, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    rows = store.audit_rows()
    assert len(rows) == threads * per_thread
    assert {(r.user_name, r.detail) for r in rows} == {
        (f"user{n}", f"line {i}") for n in range(threads) for i in range(per_thread)
    }
    store.close()


def seen(store: Store, user: str) -> set[tuple[str, str]]:
    other = Store(store.url)
    try:
        return {(r.user_name, r.detail) for r in other.audit_rows() if r.user_name == user}
    finally:
        other.close()
