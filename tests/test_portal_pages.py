"""The portal's pages over the closed demo: states, issued bills, corrections, credits, why, budget.

`workbooks/demo-closed.xlsx`, run by the engine: February 2026 closed (the Issued sheet),
a late February meter reading of ENG's billed in March as Data Center reversals and
corrections, ENG's accepted dispute D-2026-017 credited in March (−120.00), MED's dispute
D-2026-018 still Open on the Disputes sheet. Every amount is checked to the cent against
the workbook's own sheets or an independent run of it.
"""

from __future__ import annotations

import io
import re
import shutil
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from fastapi.testclient import TestClient
from portal_fixtures import add_user, csrf_of

from costloop.engine.pipeline.commands import run_book
from costloop.engine.xlsx.file_workbook import FileWorkbook
from costloop.portal import charts
from costloop.portal.app import PortalConfig, create_app
from costloop.portal.store import Store, default_url
from costloop.workbooks import closed_demo_path

USERS = {"eng": "ENG", "med": "MED", "bks": "BKS"}
PASSWORD = "a-password-for-{}"
CLOSED_RUN = "demo0226run1"  # the run February was closed with (Issued!Run ID)


def copy_closed_demo(folder: Path) -> Path:
    book = folder / "demo-closed.xlsx"
    shutil.copyfile(closed_demo_path(), book)
    assert run_book(book).ok
    return book


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> Path:
    return copy_closed_demo(tmp_path_factory.mktemp("portal-pages"))


@pytest.fixture
def app(tmp_path, book):
    """A fresh portal database for each test (acceptances and disputes start empty)."""
    mine = tmp_path / book.name
    shutil.copyfile(book, mine)
    for user, dept in USERS.items():
        assert add_user(mine, user, "--department", dept, password=PASSWORD.format(user)) == 0
    assert add_user(mine, "fin", "--finance", password=PASSWORD.format("fin")) == 0
    store = Store(default_url(mine))
    yield create_app(PortalConfig(book=mine), store)
    store.close()


def signed_in(app, user: str) -> TestClient:
    client = TestClient(app, client=("10.0.0.9", 50000), follow_redirects=False)
    token = csrf_of(client.get("/login").text)
    form = {"username": user, "password": PASSWORD.format(user), "csrf_token": token}
    assert client.post("/login", data=form).status_code == 303
    return client


def text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def home_rows(client) -> list[tuple[str, str, str]]:
    """(period, state, total) of each row of the first page."""
    page = client.get("/").text
    body = page[page.index("<tbody>") : page.index("</tbody>")]
    rows = []
    for row in re.findall(r"<tr>(.*?)</tr>", body, re.S):
        cells = [text(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        rows.append((cells[1], cells[2].replace(" ,", ","), cells[3]))
    return rows


def table(page: str, css: str) -> list[list[str]]:
    """The body rows of ``<table class="… css …">`` as text cells (the tfoot row last)."""
    found = re.search(rf'<table class="[^"]*\b{css}\b[^"]*">(.*?)</table>', page, re.S)
    assert found, f"no table .{css}"
    inner = found.group(1)
    inner = inner[inner.index("</thead>") :]
    return [
        [text(c) for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S)]
        for row in re.findall(r"<tr>(.*?)</tr>", inner, re.S)
    ]


def sheet(book: Path, name: str) -> list[dict]:
    grid = FileWorkbook(book).read_sheet(name)
    return [dict(zip(grid[0], r, strict=False)) for r in grid[1:]]


def money(value) -> Decimal:
    return Decimal(repr(value) if isinstance(value, float) else str(value)).quantize(
        Decimal("0.01")
    )


# --- the first page: each period with its state ------------------------------------------


def test_an_issued_period_corrected_later_and_the_open_period_billed(app):
    assert home_rows(signed_in(app, "eng")) == [
        ("Feb 2026", "issued, corrected in Mar 2026", "USD 117,131.36"),
        ("Mar 2026", "billed", "USD 118,882.75"),
    ]


def test_a_period_with_an_open_dispute_on_the_disputes_sheet_is_disputed(app):
    # D-2026-018 (MED, 2026-02, Status Open) is on the workbook's Disputes sheet.
    assert home_rows(signed_in(app, "med")) == [
        ("Feb 2026", "issued, corrected in Mar 2026, disputed", "USD 173,778.90"),
        ("Mar 2026", "billed", "USD 177,093.92"),
    ]


def test_an_issued_period_no_later_bill_corrects_is_just_issued(app, book):
    # BKS has no Server Hours: the late Data Center reading leaves its share alone.
    changed = [r for r in sheet(book, "Bills") if r["Line Type"] in ("Reversal", "Correction")]
    assert "BKS" not in {r["Department"] for r in changed}
    assert home_rows(signed_in(app, "bks")) == [
        ("Feb 2026", "issued", "USD 3,979.81"),
        ("Mar 2026", "billed", "USD 4,496.61"),
    ]


def test_accepting_an_issued_bill_is_for_the_run_that_closed_it(app):
    eng = signed_in(app, "eng")
    token = csrf_of(eng.get("/d/ENG/2026-02").text)
    answer = eng.post("/d/ENG/2026-02/accept", data={"csrf_token": token})
    assert (answer.status_code, answer.headers["location"]) == (303, "/d/ENG/2026-02")
    accepted = app.state.store.acceptance("eng", "2026-02", CLOSED_RUN)
    assert (accepted.user_name, accepted.total) == ("eng", Decimal("117131.36"))
    assert home_rows(eng) == [
        ("Feb 2026", "issued, corrected in Mar 2026, accepted", "USD 117,131.36"),
        ("Mar 2026", "billed", "USD 118,882.75"),
    ]
    eng.post("/d/ENG/2026-03/accept", data={"csrf_token": token})
    assert home_rows(eng)[1] == ("Mar 2026", "accepted", "USD 118,882.75")


def test_a_dispute_raised_in_the_portal_makes_the_open_period_disputed(app):
    eng = signed_in(app, "eng")
    token = csrf_of(eng.get("/d/ENG/2026-03").text)
    form = {"line": "2", "reason": "Rate", "amount": "10.00", "comment": "", "csrf_token": token}
    assert eng.post("/d/ENG/2026-03/disputes", data=form).status_code == 303
    assert home_rows(eng)[1] == ("Mar 2026", "disputed", "USD 118,882.75")


def test_finance_sees_the_open_periods_corrections_net_and_credits(app, book):
    page = signed_in(app, "fin").get("/").text
    bills = sheet(book, "Bills")
    assert sum(money(r["Amount"]) for r in bills) == Decimal("1073175.02")
    assert text(re.search(r'<p class="summary".*?</p>', page, re.S).group(0)) == (
        "Mar 2026, the open period: 25 departments billed USD 1,073,175.02; corrections of "
        "earlier periods: 30 lines, net USD 0.00; credits: 1 line, USD -120.00."
    )
    assert len(re.findall(r'href="/d/[^/"]+/2026-02"', page)) == 25


# --- the bill page ----------------------------------------------------------------------


def test_the_open_bill_shows_charges_corrections_and_credits_apart(app, book):
    page = signed_in(app, "eng").get("/d/ENG/2026-03").text
    mine = [r for r in sheet(book, "Bills") if r["Department"] == "ENG"]
    charges = [r for r in mine if r["Line Type"] == "Charge"]
    assert len(table(page, "charges")) == len(charges) + 1 == 14
    assert table(page, "charges")[-1] == ["Charges of this period", "USD 113,791.44", ""]
    assert sum(money(r["Amount"]) for r in charges) == Decimal("113791.44")
    assert table(page, "corrections") == [
        ["14", "Data Center", "Feb 2026", "Reversal", "-16,113", "USD -50,421.94",
         "R04 Rules!B5", "takes back the Data Center charge of Feb 2026 as it was issued"],
        ["15", "Data Center", "Feb 2026", "Correction", "18,273", "USD 55,633.25",
         "R04 Rules!B5", "the Data Center charge of Feb 2026 as it is now, from the corrected "
         "inputs"],
        ["Total corrections to earlier periods", "USD 5,211.31", ""],
    ]  # fmt: skip
    # The Charge Period links to the bill it corrects, as issued.
    assert '<td><a href="/d/ENG/2026-02">Feb 2026</a></td>' in page
    assert table(page, "credits") == [
        ["16", "Cloud", "Feb 2026", "USD -120.00",
         "dispute D-2026-017 (Rate for USD 250.00) on Cloud, Feb 2026, accepted: USD 120.00 "
         "credited. vCPU-Hours billed at the old tier; credit agreed with the department"],
        ["Total credits", "USD -120.00", ""],
    ]  # fmt: skip
    assert "Total of this bill: <strong>USD 118,882.75</strong>" in page
    assert sum(money(r["Amount"]) for r in mine) == Decimal("118882.75")


def test_the_why_table_is_the_emailed_summarys(app):
    eng = signed_in(app, "eng")
    page = eng.get("/d/ENG/2026-03").text
    summary = openpyxl.load_workbook(io.BytesIO(eng.get("/d/ENG/2026-03/bill.xlsx").content))
    cells = [
        [c for c in row if c is not None] for row in summary["Summary"].iter_rows(values_only=True)
    ]
    start = next(i for i, r in enumerate(cells) if r == ["Why it changed (Feb 2026 to Mar 2026)"])
    assert '<h2 id="why">Why it changed (Feb 2026 to Mar 2026)</h2>' in page
    assert cells[start + 1] == ["Pool", "Last period", "This period", "Volume", "Rate", "Share"]
    shown = table(page, "why")
    # Row for row, the workbook's figures (to the cent) are the page's.
    for row, sheet_row in zip(shown, cells[start + 2 :], strict=False):
        assert row[0] == sheet_row[0]
        assert row[1:] == [
            f"USD {Decimal(repr(v)).quantize(Decimal('0.01')):,}" for v in sheet_row[1:]
        ]
    assert len(shown) == 10
    assert shown[3] == [
        "Data Center", "USD 50,421.94", "USD 49,928.07", "USD 0.00", "USD -288.74", "USD -205.13",
    ]  # fmt: skip


def test_a_closed_periods_bill_is_the_one_on_the_issued_sheet(app, book):
    page = signed_in(app, "eng").get("/d/ENG/2026-02").text
    issued = [
        r
        for r in sheet(book, "Issued")
        if r["Record"] == "Bill" and r["Department"] == "ENG" and r["Closed Period"] == "2026-02"
    ]
    assert len(issued) == 13 and sum(money(r["Amount"]) for r in issued) == Decimal("117131.36")
    rows = table(page, "charges")
    assert [r[5] for r in rows[:-1]] == [f"USD {money(r['Amount']):,}" for r in issued]
    assert rows[-1] == ["Total", "USD 117,131.36", ""]
    assert text(re.search(r'<p class="issued-note".*?</p>', page, re.S).group(0)) == (
        "Feb 2026 is closed: this is the bill as it was issued on 2026-03-03 17:00:00 UTC "
        f"(run {CLOSED_RUN}), never recomputed. What changed since is billed as corrections "
        "in Mar 2026 ."
    )
    assert 'class="lines corrections"' not in page and 'class="lines credits"' not in page
    # The fiscal year as it stood at the close: March not billed yet.
    assert table(page, "months")[8] == ["Mar 2026", "not billed yet"]


def test_a_correction_line_points_at_its_own_months_usage(app):
    page = signed_in(app, "eng").get("/d/ENG/2026-03/lines/15").text
    assert text(re.search(r'<p class="empty">This line is for.*?</p>', page, re.S).group(0)) == (
        "This line is for Feb 2026, so it is made from that month's usage, not Mar 2026's: "
        "the Feb 2026 bill shows its usage rows."
    )
    assert '<a href="/d/ENG/2026-02">the Feb 2026 bill</a>' in page
    memo = text(signed_in(app, "eng").get("/d/ENG/2026-03/lines/16").text)
    assert "A credit memo for Feb 2026: it settles the accepted dispute D-2026-017" in memo


# --- budget share against actual -----------------------------------------------------------


def test_budget_against_actual_by_month_and_year_to_date(app):
    rows = table(signed_in(app, "eng").get("/d/ENG/2026-03").text, "budget")
    assert len(rows) == 10  # July to March, then the year to date
    assert rows[7] == ["Feb 2026", "USD 120,127.50", "USD 122,222.67", "USD 2,095.17"]
    assert rows[8] == ["Mar 2026", "USD 112,905.93", "USD 113,791.44", "USD 885.51"]
    assert rows[9] == ["Year to date", "USD 1,010,040.80", "USD 1,022,501.52", "USD 12,460.72"]
    # February's actual is its issued bill, its reversal and correction, and the credit memo.
    assert Decimal("117131.36") - Decimal("50421.94") + Decimal("55633.25") - 120 == Decimal(
        "122222.67"
    )


def test_the_budget_is_the_bill_at_cost_basis_budget(tmp_path):
    """An independent check: the workbook run for real with Settings CostBasis BUDGET bills
    ENG's March charges at exactly the budget the page shows."""
    book = tmp_path / "budget.xlsx"
    shutil.copyfile(closed_demo_path(), book)
    wb = openpyxl.load_workbook(book)
    for row in wb["Settings"].iter_rows(min_row=2):
        if row[0].value == "CostBasis":
            row[1].value = "BUDGET"
    wb.save(book)
    assert run_book(book).ok
    march = [
        r
        for r in sheet(book, "Bills")
        if r["Department"] == "ENG" and r["Line Type"] == "Charge" and r["Period"] == "2026-03"
    ]
    assert sum(money(r["Amount"]) for r in march) == Decimal("112905.93")


# --- the charts ---------------------------------------------------------------------------


def test_the_charts_are_svg_without_style_or_script_and_made_once_per_run(app, monkeypatch):
    made = []
    real = charts.render_svg
    monkeypatch.setattr(charts, "render_svg", lambda s, kind: made.append(kind) or real(s, kind))
    eng = signed_in(app, "eng")
    page = eng.get("/d/ENG/2026-03").text
    assert '<img class="chart" src="/d/ENG/2026-03/months.svg"' in page
    assert '<img class="chart" src="/d/ENG/2026-03/budget.svg"' in page
    for kind in ("months", "budget"):
        answer = eng.get(f"/d/ENG/2026-03/{kind}.svg")
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "image/svg+xml"
        svg = answer.text
        assert svg.startswith("<svg ") and "style=" not in svg and "<script" not in svg
        assert ">Mar 2026</text>" in svg
        assert eng.get(f"/d/ENG/2026-03/{kind}.svg").content == answer.content
    assert made == ["months", "budget"]  # the second answer of each came from the cache
    assert (
        ">Your bills by month, FY 2025-07 to 2026-06 (USD)</text>"
        in eng.get("/d/ENG/2026-02/months.svg").text
    )


@pytest.mark.parametrize(
    "path",
    [
        "/d/ENG/2026-03/months.svg",
        "/d/ENG/2026-02/budget.svg",
        "/d/eng/2026-03/budget.svg",
        "/d/MED/2026-03/chart.svg",
        "/d/MED/2026-04/months.svg",
        "/d/ENG/2026-03/months.svg?department=MED",
    ],
)
def test_a_chart_of_another_department_answers_404_like_one_that_does_not_exist(app, path):
    med = signed_in(app, "med")
    answer = med.get(path)
    assert answer.status_code == 404
    assert "<h1>There is no such" in answer.text


def test_the_own_chart_answers_and_signed_out_goes_to_sign_in(app):
    assert signed_in(app, "med").get("/d/MED/2026-03/months.svg?x=1").status_code == 200
    anonymous = TestClient(app, follow_redirects=False).get("/d/MED/2026-03/months.svg")
    assert (anonymous.status_code, anonymous.headers["location"]) == (303, "/login")


def test_the_chart_cache_keeps_the_most_recent_charts_of_the_current_run_only(app, monkeypatch):
    made = []
    monkeypatch.setattr(charts, "render_svg", lambda s, kind: made.append(kind) or b"<svg/>")
    cache = charts.ChartCache(limit=2)
    snapshot = app.state.bills.current
    eng = [snapshot.statement("eng", p) for p in ("2026-02", "2026-03")]
    for s in (*eng, eng[0]):  # Feb, Mar, Feb again: from the cache
        cache.svg(snapshot, "eng", s, "months")
    assert (made, len(cache)) == (["months", "months"], 2)
    cache.svg(snapshot, "eng", eng[1], "budget")  # a third: Mar's months chart is dropped
    cache.svg(snapshot, "eng", eng[0], "months")
    cache.svg(snapshot, "eng", eng[1], "months")
    assert made == ["months", "months", "budget", "months"]
    cache.svg(object(), "eng", eng[1], "months")  # another run: nothing of the old one
    assert (len(made), len(cache)) == (5, 1)


def test_a_department_gone_from_the_departments_sheet_keeps_its_issued_bill(tmp_path):
    """BKS taken off Departments (and Usage) after February closed: the run reverses its
    February lines in March, and the portal still loads and shows both bills."""
    book = tmp_path / "gone.xlsx"
    shutil.copyfile(closed_demo_path(), book)
    wb = openpyxl.load_workbook(book)
    for name in ("Departments", "Usage"):
        ws = wb[name]
        column = [c.value for c in ws[1]].index("Department") + 1
        for r in reversed(range(2, ws.max_row + 1)):
            if ws.cell(r, column).value == "BKS":
                ws.delete_rows(r)
    wb.save(book)
    assert run_book(book).ok
    assert add_user(book, "fin", "--finance", password=PASSWORD.format("fin")) == 0
    store = Store(default_url(book))
    try:
        app = create_app(PortalConfig(book=book), store)
        fin = signed_in(app, "fin")
        rows = [r for r in home_rows(fin) if r[0] == "Feb 2026"]
        assert len(rows) == 25
        february = fin.get("/d/BKS/2026-02").text
        assert "<h1>University Bookstore" in february
        assert table(february, "charges")[-1] == ["Total", "USD 3,979.81", ""]
        march = fin.get("/d/BKS/2026-03").text
        assert table(march, "corrections")[-1] == [
            "Total corrections to earlier periods", "USD -3,979.81", "",
        ]  # fmt: skip
    finally:
        store.close()
