"""The portal's CSV downloads guard against formula injection (OWASP "CSV Injection").

A department named ``=HYPERLINK(…)`` and a dispute id (the credit memo's Rule) typed as
``=D17``: opened in Excel, the CSV must show them as text, not run them. Numbers stay
numbers, the credit memo's -120 included.
"""

from __future__ import annotations

import csv
import io

import pytest
from closed_books import PERIOD, make_closed_book, set_text
from fastapi.testclient import TestClient
from portal_fixtures import add_user, csrf_of

from costloop.portal.app import PortalConfig, create_app
from costloop.portal.focus import FOCUS_COLUMNS
from costloop.portal.store import Store, default_url
from costloop.portal.views import csv_cell, csv_text

EVIL_NAME = '=HYPERLINK("http://evil.example/","click")'


def _edit(wb) -> None:
    for row in wb["Departments"].iter_rows(min_row=2):
        if row[0].value == "ENG":
            set_text(row[1], EVIL_NAME)
    disputes = wb["Disputes"]
    assert disputes["A2"].value == "D-2026-017"  # the accepted dispute: ENG's credit memo
    set_text(disputes["A2"], "=D17")


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    book = make_closed_book(tmp_path_factory.mktemp("csv"), _edit)
    assert add_user(book, "eng", "--department", "ENG", password="eng-password-1") == 0
    store = Store(default_url(book))
    client = TestClient(create_app(PortalConfig(book=book), store), follow_redirects=False)
    token = csrf_of(client.get("/login").text)
    answer = client.post(
        "/login", data={"username": "eng", "password": "eng-password-1", "csrf_token": token}
    )
    assert answer.status_code == 303
    yield client
    store.close()


def _rows(answer) -> list[dict[str, str]]:
    assert answer.status_code == 200
    text = answer.content.decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("=1+2", "'=1+2"),
        ("+1", "'+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("Cloud", "Cloud"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_text_that_starts_like_a_formula_gets_a_quote(text, shown):
    assert csv_text(text) == shown


def test_numbers_are_never_quoted():
    from decimal import Decimal

    assert csv_cell(Decimal("-120.00")) == "-120.00"
    assert csv_cell(-3) == "-3"
    assert csv_cell(None) == ""
    assert csv_cell("-120.00") == "'-120.00"  # text that looks like a number is still text


def test_lines_csv_quotes_the_name_and_the_rule_but_not_the_credit(client):
    rows = _rows(client.get(f"/d/ENG/{PERIOD}/lines.csv"))
    # Charges carry the name as it is now; February's reversals the name as issued.
    assert {r["Name"] for r in rows if r["Line Type"] == "Charge"} == {"'" + EVIL_NAME}
    credit = [r for r in rows if r["Line Type"] == "Credit memo"]
    assert len(credit) == 1
    assert credit[0]["Rule"] == "'=D17"
    assert credit[0]["Amount"] == "-120"
    assert credit[0]["Charge Period"] == "2026-02"
    # Every other amount is a plain number too: none starts with a quote.
    assert not [r["Amount"] for r in rows if r["Amount"].startswith("'")]
    assert any(r["Amount"].startswith("-") for r in rows)  # the reversals of February


def test_focus_csv_quotes_the_name_and_keeps_billed_cost_a_number(client):
    rows = _rows(client.get(f"/d/ENG/{PERIOD}/focus.csv"))
    assert list(rows[0]) == FOCUS_COLUMNS
    assert {r["BillingAccountName"] for r in rows} == {"'" + EVIL_NAME}
    assert {r["SubAccountName"] for r in rows} == {"'" + EVIL_NAME}
    credits = [r for r in rows if r["BilledCost"] == "-120"]
    assert len(credits) == 1 and credits[0]["ChargeCategory"] == "Credit"
    assert '"costloop-rule": "=D17"' in credits[0]["Tags"]  # inside JSON, which starts with {
    assert not [r for r in rows if r["BilledCost"].startswith("'")]
