"""The department portal over HTTP: scoping, CSRF, cookies, throttling, expiry, audit, reload.

A real run of the demo workbook (one department named with a script tag), a real
SQLite database made by `costloop portal user add`, and the real application
driven through Starlette's test client. Figures are checked against the workbook's
own Bills sheet.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import time
from decimal import Decimal
from pathlib import Path

import httpx
import openpyxl
import postgres_cluster
import pytest
from fastapi.testclient import TestClient
from portal_fixtures import PASSWORDS, PERIOD, SCRIPT_NAME, add_user, add_users, csrf_of, make_book
from programs import PDFTOTEXT, SOFFICE, needs
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError

from costloop.bills.workbook import bill_workbook
from costloop.engine.pipeline.commands import run_book
from costloop.portal.app import CONTENT_SECURITY_POLICY, PortalConfig, create_app
from costloop.portal.store import Store, StoreError, default_url, sign_in_failures


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("portal")
    path = make_book(folder)
    add_users(path)
    return path


@pytest.fixture(scope="session")
def postgres():
    if not postgres_cluster.available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL (initdb, pg_ctl) is missing; .ci/run installs postgresql")
        pytest.skip("needs Debian's postgresql (initdb, pg_ctl)")
    with postgres_cluster.cluster() as base:
        yield base


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    """A fresh, empty portal database: SQLite in a file, or a database of a real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'portal.sqlite'}"
    return postgres_cluster.new_database(request.getfixturevalue("postgres"))


@pytest.fixture
def app(book):
    store = Store(default_url(book))
    yield create_app(PortalConfig(book=book), store)
    store.close()


def client_for(app, address: str = "10.0.0.1") -> TestClient:
    return TestClient(app, client=(address, 50000), follow_redirects=False)


def signed_in(app, user: str, address: str = "10.0.0.1") -> TestClient:
    client = client_for(app, address)
    token = csrf_of(client.get("/login").text)
    answer = client.post(
        "/login", data={"username": user, "password": PASSWORDS[user], "csrf_token": token}
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    return client


def bills_sheet(book: Path) -> list[dict]:
    wb = openpyxl.load_workbook(book, read_only=True, data_only=True)
    rows = list(wb["Bills"].iter_rows(values_only=True))
    wb.close()
    return [dict(zip(rows[0], r, strict=False)) for r in rows[1:] if r[0] is not None]


def other_departments(book: Path) -> list[str]:
    return sorted({r["Department"] for r in bills_sheet(book)} - {"ADM"})


# --- pages ---------------------------------------------------------------------


def test_home_lists_only_the_users_own_department_with_its_total(app, book):
    page = signed_in(app, "ada").get("/")
    assert page.status_code == 200
    total = sum(Decimal(str(r["Amount"])) for r in bills_sheet(book) if r["Department"] == "ADM")
    assert total == Decimal("13834.83")
    assert '<a href="/d/ADM/2026-03">Mar 2026</a>' in page.text
    assert "USD 13,834.83" in page.text
    for code in other_departments(book):
        assert f"/d/{code}/" not in page.text


def test_finance_sees_every_billed_department(app, book):
    page = signed_in(app, "fin").get("/")
    codes = {r["Department"] for r in bills_sheet(book)}
    assert len(codes) == 25
    assert set(re.findall(r'href="/d/([^/"]+)/2026-03"', page.text)) == codes


def test_the_bill_page_shows_every_line_and_the_total_of_the_bills_sheet(app, book):
    page = signed_in(app, "ada").get(f"/d/ADM/{PERIOD}").text
    rows = [r for r in bills_sheet(book) if r["Department"] == "ADM"]
    assert len(rows) == 7
    for n, row in enumerate(rows, start=1):
        assert f'href="/d/ADM/2026-03/lines/{n}"' in page
        assert f"USD {Decimal(str(row['Amount'])).quantize(Decimal('0.01')):,}" in page
    # The figure, the Accept button's words, the charges table's total row, March in the
    # fiscal year's table and March's actual against its budget.
    assert page.count("USD 13,834.83") == 5
    # The lineage, not the raw rule text: R07's text names other departments' shares.
    assert "share of &#34;Data Center&#34; by usage of &#34;Server Hours&#34;" in page


def test_a_line_shows_the_usage_rows_its_rules_where_selected(app, book):
    """R13 charges AWS Cost WHERE Service IN ("EC2", "S3"): Marketplace rows are not behind it."""
    wb = openpyxl.load_workbook(book, read_only=True, data_only=True)
    usage = [r for r in wb["Usage"].iter_rows(min_row=2, values_only=True) if r[0] == PERIOD]
    wb.close()
    by_dept: dict[str, list] = {}
    for r in usage:
        if r[2] == "AWS Cost":
            by_dept.setdefault(r[1], []).append(r)
    dept = next(d for d, rows in by_dept.items() if {r[4] for r in rows} - {"EC2", "S3"})
    lines = [r for r in bills_sheet(book) if r["Department"] == dept]
    n = next(i for i, r in enumerate(lines, start=1) if r["Rule"] == "R13")
    client = signed_in(app, "fin")
    page = client.get(f"/d/{dept}/{PERIOD}/lines/{n}").text
    table = page[page.index('<table class="usage">') :]
    shown = re.findall(r"<tr><td>2026-03</td>.*?</tr>", table)
    wanted = [r for r in by_dept[dept] if r[4] in ("EC2", "S3")]
    assert len(shown) == len(wanted) >= 1
    assert "Marketplace" not in table
    assert f"Usage rows behind this line ({len(wanted)})" in page
    # htmx asks for the fragment only: no page around it.
    fragment = client.get(f"/d/{dept}/{PERIOD}/lines/{n}", headers={"HX-Request": "true"}).text
    assert fragment.startswith('<article class="line"') and "<html" not in fragment


def test_a_line_shared_by_a_column_says_no_usage_rows_are_behind_it(app):
    page = signed_in(app, "ada").get(f"/d/ADM/{PERIOD}/lines/3").text  # R05, BY Headcount
    assert "Rule <strong>R05</strong> (cell Rules!B6)" in page
    assert "This line is not made from usage rows" in page


def test_downloads_are_the_bill_workbook_and_the_exact_lines(app, book):
    client = signed_in(app, "ada")
    xlsx = client.get(f"/d/ADM/{PERIOD}/bill.xlsx")
    assert xlsx.status_code == 200
    assert xlsx.headers["content-disposition"] == (
        "attachment; filename=\"ADM 2026-03.xlsx\"; filename*=UTF-8''ADM%202026-03.xlsx"
    )
    statement = app.state.bills.current.statement("adm", PERIOD)
    assert xlsx.content == bill_workbook(statement)
    csv = client.get(f"/d/ADM/{PERIOD}/lines.csv")
    assert csv.headers["content-type"] == "text/csv; charset=utf-8"
    lines = csv.content.decode("utf-8-sig").splitlines()
    assert lines[0] == (
        "Period,Department,Name,Pool,Metric,Quantity,Rate,Amount,Rule,Charge Period,Line Type,"
        "Pool Total,Share,Band,Rate Date,Rule Cell,How"
    )
    amounts = [Decimal(line.split(",")[7]) for line in lines[1:]]
    assert sum(amounts) == Decimal("13834.83") and len(amounts) == 7


# --- scoping ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/d/{other}/2026-03",
        "/d/{other}/2026-03/lines/1",
        "/d/{other}/2026-03/lines/999",
        "/d/{other}/2026-03/bill.xlsx",
        "/d/{other}/2026-03/lines.csv",
        "/d/{lower}/2026-03",
        "/d/{lower}/2026-03/bill.xlsx",
        "/d/%20{other}%20/2026-03/lines.csv",
        "/d/{other}/2026-03?department=ADM",
        "/d/ADM/../{other}/2026-03",
        "/d/{other}/2026-02",
        "/d/NOSUCH/2026-03",
        "/d/ADM/2026-02",
        "/d/ADM/2026-03/lines/0",
        "/d/ADM/2026-03/lines/8",
        "/d/ADM/2026-03/lines/1.0",
    ],
)
def test_any_url_of_another_department_answers_404_like_one_that_does_not_exist(app, book, path):
    client = signed_in(app, "ada")
    missing = client.get("/d/NOSUCH/2026-03")
    for other in other_departments(book):
        answer = client.get(path.format(other=other, lower=other.lower()))
        assert answer.status_code == 404, (path, other)
        assert answer.text == missing.text
        # The page's random CSRF token could hold a code by chance ("…HRO…"): not a leak.
        token = re.search(r'"X-CSRF-Token": "([^"]+)"', answer.text).group(1)
        assert other not in answer.text.replace(token, "")


def test_signed_out_requests_go_to_the_sign_in_page(app):
    client = client_for(app)
    for path in ("/", f"/d/ADM/{PERIOD}", f"/d/ADM/{PERIOD}/bill.xlsx"):
        answer = client.get(path)
        assert (answer.status_code, answer.headers["location"]) == (303, "/login")
    htmx = client.get(f"/d/ADM/{PERIOD}/lines/1", headers={"HX-Request": "true"})
    assert (htmx.status_code, htmx.headers["HX-Redirect"]) == (401, "/login")


# --- forms, cookies, headers -----------------------------------------------------


def test_a_form_without_its_csrf_token_is_refused(app):
    client = client_for(app)
    client.get("/login")
    data = {"username": "ada", "password": PASSWORDS["ada"]}
    assert client.post("/login", data=data).status_code == 403
    assert client.post("/login", data=data | {"csrf_token": "forged"}).status_code == 403
    assert "This form has expired or did not come from this site." in (
        client.post("/login", data=data).text
    )
    assert client.get("/").status_code == 303  # not signed in
    signed = signed_in(app, "ada")
    assert signed.post("/logout").status_code == 403
    assert signed.get("/").status_code == 200  # still signed in
    token = csrf_of(signed.get("/").text)
    assert signed.post("/logout", headers={"X-CSRF-Token": token}).status_code == 303
    assert signed.get("/").status_code == 303


def test_the_session_cookie_is_httponly_and_samesite_lax_and_secure_behind_https(book):
    store = Store(default_url(book))
    plain = client_for(create_app(PortalConfig(book=book), store))
    answer = plain.post(
        "/login",
        data={
            "username": "ada",
            "password": PASSWORDS["ada"],
            "csrf_token": csrf_of(plain.get("/login").text),
        },
    )
    header = answer.headers["set-cookie"]
    assert header.startswith("costloop_session=")
    assert "; httponly" in header and "; samesite=lax" in header and "secure" not in header
    secure_app = create_app(PortalConfig(book=book, secure_cookies=True), store)
    https = TestClient(secure_app, base_url="https://portal.example", follow_redirects=False)
    https.get("/login")
    answer = https.post(
        "/login",
        data={
            "username": "ada",
            "password": PASSWORDS["ada"],
            "csrf_token": csrf_of(https.get("/login").text),
        },
    )
    assert answer.status_code == 303
    assert "; secure" in answer.headers["set-cookie"]
    store.close()


def test_sessions_expire(book):
    store = Store(default_url(book))
    app = create_app(PortalConfig(book=book, session_length=dt.timedelta(seconds=1)), store)
    client = signed_in(app, "ada")
    assert client.get("/").status_code == 200
    time.sleep(1.2)
    answer = client.get("/")
    assert (answer.status_code, answer.headers["location"]) == (303, "/login")
    store.close()


def test_every_answer_carries_a_content_security_policy_and_no_page_has_inline_script(app):
    client = signed_in(app, "ada")
    for path in ("/", f"/d/ADM/{PERIOD}", f"/d/ADM/{PERIOD}/lines/2", "/nowhere", "/login"):
        answer = client.get(path)
        assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
        scripts = re.findall(r"<script[^>]*>", answer.text)
        assert all('src="/static/' in s for s in scripts), scripts
        assert not re.search(r"<[^>]+\son[a-z]+=", answer.text)  # no onclick= and the like


def test_htmx_and_its_licence_are_served_from_the_package(app):
    client = client_for(app)
    js = client.get("/static/htmx.min.js")
    assert js.status_code == 200 and b"htmx" in js.content[:2000]
    assert client.get("/static/htmx-LICENSE.txt").text.startswith("Zero-Clause BSD")


def test_a_script_in_a_department_name_is_shown_as_text(app):
    for user in ("cas", "fin"):
        client = signed_in(app, user)
        for path in ("/", f"/d/CAS/{PERIOD}", f"/d/CAS/{PERIOD}/lines/1"):
            page = client.get(path).text
            assert SCRIPT_NAME not in page
            assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page, path


# --- sign-in throttling ------------------------------------------------------------


def test_sign_in_is_refused_after_five_failures_per_user_and_address(tmp_path, book, db_url):
    copy = tmp_path / "demo.xlsx"
    shutil.copyfile(book, copy)
    db = db_url
    add_users(copy, db=db)
    store = Store(db)
    app = create_app(PortalConfig(book=copy), store)

    def attempt(user, password, address="10.0.0.9"):
        client = client_for(app, address)
        token = csrf_of(client.get("/login").text)
        return client.post(
            "/login", data={"username": user, "password": password, "csrf_token": token}
        )

    for _ in range(5):
        wrong = attempt("ada", "not-the-password")
        assert wrong.status_code == 401
        assert "Wrong user name or password." in wrong.text
    refused = attempt("ada", PASSWORDS["ada"])  # the right password, but too late
    assert refused.status_code == 429
    assert (
        "Too many failed sign-ins for this user from this address. Try again in 15 minutes."
        in refused.text
    )
    assert attempt("ada", PASSWORDS["ada"], address="10.0.0.10").status_code == 303
    assert attempt("cas", PASSWORDS["cas"]).status_code == 303
    # Fifteen minutes later (the failures aged in the database) the user may try again.
    with store.engine.begin() as conn:
        for row in conn.execute(select(sign_in_failures)).all():
            conn.execute(
                update(sign_in_failures)
                .where(sign_in_failures.c.id == row.id)
                .values(at=row.at - dt.timedelta(minutes=15))
            )
    assert attempt("ada", PASSWORDS["ada"]).status_code == 303
    actions = [(r.user_name, r.action) for r in store.audit_rows()]
    assert actions.count(("ada", "sign-in failed")) == 5
    assert actions.count(("ada", "sign-in refused")) == 1
    store.close()


# --- the audit log ---------------------------------------------------------------


def test_the_audit_log_records_sign_ins_views_and_downloads_and_cannot_be_rewritten(
    tmp_path, book, db_url
):
    copy = tmp_path / "demo.xlsx"
    shutil.copyfile(book, copy)
    db = db_url
    add_users(copy, db=db)
    store = Store(db)
    app = create_app(PortalConfig(book=copy), store)
    client = client_for(app, "10.1.2.3")
    token = csrf_of(client.get("/login").text)
    client.post("/login", data={"username": "ada", "password": "wrong", "csrf_token": token})
    client = signed_in(app, "ada", "10.1.2.3")
    client.get(f"/d/ADM/{PERIOD}")
    client.get(f"/d/ADM/{PERIOD}/lines/2")
    client.get(f"/d/ADM/{PERIOD}/bill.xlsx")
    client.get(f"/d/ADM/{PERIOD}/lines.csv")
    client.get("/d/ENG/2026-03")  # refused: not recorded as a view of ENG
    rows = [
        (r.user_name, r.address, r.action, r.department, r.period, r.detail)
        for r in store.audit_rows()
    ]
    assert rows == [
        ("ada", "10.1.2.3", "sign-in failed", "", "", ""),
        ("ada", "10.1.2.3", "sign-in", "", "", ""),
        ("ada", "10.1.2.3", "view", "ADM", PERIOD, ""),
        ("ada", "10.1.2.3", "view", "ADM", PERIOD, "line 2"),
        ("ada", "10.1.2.3", "download", "ADM", PERIOD, "bill.xlsx"),
        ("ada", "10.1.2.3", "download", "ADM", PERIOD, "lines.csv"),
    ]
    for statement in ("UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log"):
        with (
            pytest.raises(DBAPIError, match="the audit log is append-only"),
            store.engine.begin() as conn,
        ):
            conn.execute(text(statement))
    assert len(store.audit_rows()) == 6
    store.close()


# --- reloading the workbook ------------------------------------------------------


def test_a_new_run_is_picked_up_and_an_unrunnable_edit_keeps_the_last_run(tmp_path, book):
    copy = tmp_path / "demo.xlsx"
    shutil.copyfile(book, copy)
    db = f"sqlite:///{tmp_path / 'reload.sqlite'}"
    add_users(copy, db=db)
    store = Store(db)
    app = create_app(PortalConfig(book=copy, check_every=0), store)
    bills = app.state.bills
    first = bills.current.stamp.run_id
    finance = signed_in(app, "fin")
    assert run_book(copy, period="2026-02").ok
    during = finance.get("/")  # answered at once, from the old run, while the new one loads
    assert during.status_code == 200
    bills.wait()
    second = bills.current.stamp.run_id
    assert second != first and bills.current.stamp.period == "2026-02"
    assert f"Bills of run {second}" in finance.get("/").text
    assert finance.get("/d/ADM/2026-02").status_code == 200
    assert finance.get("/d/ADM/2026-03").status_code == 404

    # An input edited after the run: the bills stay those of the run, and finance is told.
    wb = openpyxl.load_workbook(copy)
    wb["Usage"]["D2"].value = 12345
    wb.save(copy)
    finance.get("/")
    bills.wait()
    assert bills.current.stamp.run_id == second
    page = finance.get("/").text
    assert "The workbook changed and cannot be shown yet." in page
    assert f"The portal still shows run {second}." in page
    assert "the inputs changed since run" in page
    assert "cannot be shown yet" not in signed_in(app, "ada").get("/").text
    store.close()


# --- the commands ------------------------------------------------------------------


def test_user_add_refuses_a_duplicate_a_short_password_and_an_unknown_department(
    tmp_path, book, capsys, db_url
):
    copy = tmp_path / "demo.xlsx"
    shutil.copyfile(book, copy)
    db = db_url
    assert add_user(copy, "ada", "--department", "adm", db=db) == 0
    assert f"Added portal user ada, who sees ADM; database {db}" in capsys.readouterr().out
    assert add_user(copy, "ADA", "--finance", db=db) == 1
    assert (
        f"{db}: there is already a portal user ADA; nothing was changed" in capsys.readouterr().out
    )
    assert add_user(copy, "bea", "--department", "ADM", password="short", db=db) == 1
    assert "the password must be at least 8 characters" in capsys.readouterr().out
    assert add_user(copy, "bea", "--department", "XYZ", password="long-enough", db=db) == 1
    assert (
        'Departments!A1: "XYZ" is not a Department code on the Departments sheet'
        in capsys.readouterr().out
    )
    for options in (["--department", "ADM", "--finance"], []):
        with pytest.raises(SystemExit) as usage:
            add_user(copy, "bea", *options, db=db)
        assert usage.value.code == 2
    store = Store(db)
    assert store.account("bea") is None
    assert store.account("Ada").departments == frozenset({"adm"})
    store.close()


def test_the_default_database_is_beside_the_workbook(book):
    assert default_url(book) == f"sqlite:///{book.resolve()}.portal.sqlite"
    assert Path(f"{book.resolve()}.portal.sqlite").exists()


# --- costloop serve, the real command ------------------------------------------------


def _serve(book: Path, db: str, *options: str):
    import socket
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "costloop.cli",
            "serve",
            str(book),
            "--port",
            str(port),
            "--db",
            db,
            *options,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{base}/login", timeout=1)
            return process, base
        except httpx.TransportError:
            assert process.poll() is None, process.stdout.read()
            assert time.monotonic() < deadline, "costloop serve did not start"
            time.sleep(0.1)


def _stop(process) -> int:
    import signal

    process.send_signal(signal.SIGINT)
    return process.wait(20)


def _login_over_http(base: str, headers: dict) -> httpx.Response:
    # The session cookie is sent back by hand: behind the proxy it is Secure, and the
    # test talks plain HTTP to the portal as the proxy does (a browser would use HTTPS).
    with httpx.Client(base_url=base, headers=headers) as client:
        page = client.get("/login")
        session = page.headers["set-cookie"].split(";")[0]
        return client.post(
            "/login",
            data={
                "username": "ada",
                "password": PASSWORDS["ada"],
                "csrf_token": csrf_of(page.text),
            },
            headers={"Cookie": session},
        )


@pytest.mark.parametrize("proxied", [False, True])
def test_costloop_serve_trusts_forwarded_headers_only_with_proxy_headers(
    tmp_path, book, proxied, db_url
):
    copy = tmp_path / "demo.xlsx"
    shutil.copyfile(book, copy)
    db = db_url
    add_users(copy, db=db)
    process, base = _serve(copy, db, *(["--proxy-headers"] if proxied else []))
    try:
        forwarded = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
        answer = _login_over_http(base, forwarded)
        assert answer.status_code == 303
        cookie = answer.headers["set-cookie"]
        assert ("; secure" in cookie) is proxied
        assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert "server" not in answer.headers
    finally:
        assert _stop(process) == 0
    store = Store(db)
    signed = [r.address for r in store.audit_rows() if r.action == "sign-in"]
    store.close()
    assert signed == ["203.0.113.7" if proxied else "127.0.0.1"]


# --- disputes and acceptance ---------------------------------------------------------


@pytest.fixture
def fresh(tmp_path, book, db_url):
    """An app over a copy of the book with its own, empty, database."""
    copy = tmp_path / "demo.xlsx"
    shutil.copyfile(book, copy)
    db = db_url
    add_users(copy, db=db)
    store = Store(db)
    yield create_app(PortalConfig(book=copy, check_every=0), store), store, copy
    store.close()


def _dispute(client, dept="ADM", token=None, htmx=True, **fields):
    token = token if token is not None else csrf_of(client.get("/").text)
    data = {"line": "2", "reason": "Volume", "amount": "100.25", "comment": ""} | fields
    headers = {"HX-Request": "true"} if htmx else {}
    return client.post(
        f"/d/{dept}/{PERIOD}/disputes", data=data | {"csrf_token": token}, headers=headers
    )


def test_a_department_raises_a_dispute_on_a_line_and_its_bill_shows_it(fresh):
    app, store, _ = fresh
    ada = signed_in(app, "ada")
    answer = _dispute(ada, comment="We ran 1,200 server hours, not 1,483.")
    assert answer.status_code == 200
    assert "Dispute 1 raised on line 2." in answer.text
    assert answer.text.startswith('<article class="line" id="line-2">')
    [d] = store.disputes()
    assert (d.number, d.department, d.period, d.line, d.pool, d.rule) == (
        1,
        "ADM",
        PERIOD,
        2,
        "Data Center",
        "R04",
    )
    assert (d.reason, d.amount, d.comment, d.status, d.user_name) == (
        "Volume",
        Decimal("100.25"),
        "We ran 1,200 server hours, not 1,483.",
        "Open",
        "ada",
    )
    assert d.run_id == app.state.bills.current.stamp.run_id
    bill = ada.get(f"/d/ADM/{PERIOD}").text
    assert '<td>Volume</td><td class="num">USD 100.25</td>' in bill
    home = ada.get("/").text
    assert '<td class="state"><span class="state-disputed">disputed</span></td>' in home
    # Without htmx the form still works: a plain POST, then back to the bill.
    plain = _dispute(ada, htmx=False, line="6", reason="Rate", amount="12")
    assert (plain.status_code, plain.headers["location"]) == (303, "/d/ADM/2026-03#disputes")
    assert [x.amount for x in store.disputes("adm", PERIOD)] == [Decimal("100.25"), Decimal(12)]
    audit = [(r.action, r.detail) for r in store.audit_rows() if r.action == "dispute"]
    assert audit == [
        ("dispute", "dispute 1: line 2, Volume, 100.25"),
        ("dispute", "dispute 2: line 6, Rate, 12"),
    ]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"amount": "4173.82"}, "the line is USD 4,173.81; a dispute can be for at most that"),
        ({"amount": "10.005"}, "give the amount to at most 2 decimal places (USD)"),
        ({"amount": "-5"}, "give an amount above zero: the part of the line you dispute"),
        ({"amount": "lots"}, "&#34;lots&#34; is not an amount; give the amount you dispute"),
        ({"reason": "Mood"}, "choose a reason: Rate, Volume, Allocation, Duplicate, Other"),
        (
            {"reason": "Other"},
            "say in the comment what is wrong when the reason is &#34;Other&#34;",
        ),
        ({"comment": "x" * 2001}, "keep the comment to 2000 characters"),
    ],
)
def test_a_dispute_the_form_gets_wrong_is_refused_with_what_to_change(fresh, fields, message):
    app, store, _ = fresh
    answer = _dispute(signed_in(app, "ada"), **fields)
    assert answer.status_code == 422
    assert f'<p class="error" role="alert">{message}' in answer.text
    assert store.disputes() == []


def test_no_dispute_or_acceptance_without_the_csrf_token_or_for_another_department(fresh):
    app, store, _ = fresh
    ada = signed_in(app, "ada")
    assert _dispute(ada, token="").status_code == 403
    assert ada.post(f"/d/ADM/{PERIOD}/accept").status_code == 403
    token = csrf_of(ada.get("/").text)
    for other in ("ENG", "eng", "NOSUCH"):
        assert _dispute(ada, dept=other, token=token).status_code == 404
        answer = ada.post(f"/d/{other}/{PERIOD}/accept", data={"csrf_token": token})
        assert answer.status_code == 404
    assert _dispute(ada, token=token, line="99").status_code == 404
    # Finance sees every bill but does not dispute or accept for a department.
    fin = signed_in(app, "fin")
    refused = _dispute(fin)
    assert refused.status_code == 403
    assert "Only the department&#39;s own users can dispute its bill." in refused.text
    assert store.disputes() == []
    assert store.acceptance("adm", PERIOD, app.state.bills.current.stamp.run_id) is None


def test_a_department_accepts_its_bill_of_this_run_once(fresh):
    app, store, book = fresh
    ada = signed_in(app, "ada")
    run_id = app.state.bills.current.stamp.run_id
    token = csrf_of(ada.get(f"/d/ADM/{PERIOD}").text)
    for _ in range(2):
        answer = ada.post(f"/d/ADM/{PERIOD}/accept", data={"csrf_token": token})
        assert (answer.status_code, answer.headers["location"]) == (303, "/d/ADM/2026-03")
    accepted = store.acceptance("adm", PERIOD, run_id)
    assert (accepted.user_name, accepted.total) == ("ada", Decimal("13834.83"))
    bill = ada.get(f"/d/ADM/{PERIOD}").text
    shown = f"Accepted by ada on {accepted.at:%Y-%m-%d %H:%M} UTC (USD 13,834.83, run {run_id})."
    assert shown in bill
    assert "Accept this bill" not in bill
    home = ada.get("/").text
    assert '<td class="state"><span class="state-accepted">accepted</span></td>' in home
    assert [r.detail for r in store.audit_rows() if r.action == "accept"] == [
        f"run {run_id}, 13834.83"
    ]
    # A new run is a new bill: the acceptance was of the old one.
    assert run_book(book).ok
    ada.get("/")
    app.state.bills.wait()
    assert app.state.bills.current.stamp.run_id != run_id
    assert "Accept this bill" in ada.get(f"/d/ADM/{PERIOD}").text


def test_finance_sees_every_dispute_and_departments_do_not(fresh):
    app, _store, _ = fresh
    _dispute(signed_in(app, "ada"), comment="too many hours")
    _dispute(signed_in(app, "cas"), dept="CAS", line="1", reason="Allocation", amount="3")
    page = signed_in(app, "fin").get("/finance/disputes").text
    rows = re.findall(r"<tr><td>(\d+)</td><td>([^<]+)</td>", page)
    assert rows == [("1", "ADM"), ("2", "CAS")]
    for user in ("ada", "cas"):
        assert signed_in(app, user).get("/finance/disputes").status_code == 404


def test_a_database_of_a_newer_schema_or_an_unknown_kind_is_refused(tmp_path, book, capsys):
    db = f"sqlite:///{tmp_path / 'newer.sqlite'}"
    Store(db).close()
    store = Store(db)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE schema_version SET version = 99"))
    store.close()
    with pytest.raises(StoreError, match="schema version 99, newer than this costloop knows"):
        Store(db)
    # The command line says it in one line and exits 1, never a traceback.
    assert add_user(book, "zed", "--finance", db=db) == 1
    assert capsys.readouterr().out == (
        f"{db}: the portal database is at schema version 99, newer than this costloop knows "
        "(1); upgrade costloop\nFAILED: user zed was not added\n"
    )
    with pytest.raises(StoreError, match="give a sqlite:/// or postgresql:// URL"):
        Store("mysql+pymysql://nobody@127.0.0.1/nothing")
    with pytest.raises(StoreError, match=re.escape("'portal.db' is not a database URL")):
        Store("portal.db")


@needs(LibreOffice=SOFFICE, pdftotext=PDFTOTEXT)
def test_the_bill_pdf_is_the_summary_made_by_libreoffice_for_the_own_department_only(app, tmp_path):
    client = signed_in(app, "ada")
    answer = client.get(f"/d/ADM/{PERIOD}/bill.pdf")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/pdf"
    assert answer.headers["content-disposition"].startswith(
        'attachment; filename="ADM 2026-03.pdf"'
    )
    assert answer.content.startswith(b"%PDF-")
    pdf = tmp_path / "bill.pdf"
    pdf.write_bytes(answer.content)
    words = subprocess.run(
        [PDFTOTEXT, "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "Admissions & Enrollment" in words
    assert "13,834.83" in words
    assert "College of Engineering" not in words
    assert client.get(f"/d/ENG/{PERIOD}/bill.pdf").status_code == 404


def test_focus_csv_is_the_bill_lines_as_focus_rows_summing_to_the_bill(app, book):
    import csv as csv_module

    client = signed_in(app, "ada")
    answer = client.get(f"/d/ADM/{PERIOD}/focus.csv")
    assert answer.status_code == 200
    assert "ADM 2026-03 FOCUS.csv" in answer.headers["content-disposition"]
    rows = list(csv_module.DictReader(answer.content.decode("utf-8").splitlines()))
    sheet = [r for r in bills_sheet(book) if r["Department"] == "ADM"]
    assert len(rows) == len(sheet) == 7
    assert sum(Decimal(r["BilledCost"]) for r in rows) == Decimal("13834.83")
    for row, line in zip(rows, sheet, strict=True):
        assert Decimal(row["BilledCost"]) == Decimal(str(line["Amount"])).quantize(Decimal("0.01"))
        assert row["EffectiveCost"] == row["BilledCost"]
        assert (row["ServiceName"], row["SubAccountId"]) == (line["Pool"], "ADM")
        assert json.loads(row["Tags"])["costloop-rule"] == line["Rule"]
    storage = rows[5]
    assert (storage["ConsumedQuantity"], storage["ConsumedUnit"]) == ("3283.4", "GB-Month")
    assert (storage["PricingUnit"], storage["ContractedUnitPrice"]) == ("GB-Month", "0.08")
    assert rows[0]["PricingUnit"] == ""  # an allocated share has no unit price
    assert {r["BillingPeriodStart"] for r in rows} == {"2026-03-01T00:00:00Z"}
    assert {r["BillingPeriodEnd"] for r in rows} == {"2026-04-01T00:00:00Z"}
    assert {r["ChargeCategory"] for r in rows} == {"Usage"}
    assert {r["BillingCurrency"] for r in rows} == {"USD"}
    assert client.get(f"/d/ENG/{PERIOD}/focus.csv").status_code == 404
