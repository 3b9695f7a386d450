"""The portal in a real browser: Debian's chromium driven by Playwright, uvicorn on 127.0.0.1.

Sign in, open the bill, drill into a line (htmx swaps the line in without a page
load), download the bill workbook and the lines — and the browser itself enforces
the Content-Security-Policy, so a page that needed an inline script would break here.

Playwright is pointed at the system's chromium (`executable_path`); it never
downloads a browser (`playwright install` is not used anywhere).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import openpyxl
import pytest
import uvicorn
from portal_fixtures import PASSWORDS, PERIOD, SCRIPT_NAME, add_users, make_book

from costloop.bills.workbook import bill_workbook
from costloop.portal.app import PortalConfig, create_app
from costloop.portal.store import Store, default_url

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = os.environ.get("COSTLOOP_SCREENSHOTS")
"""A folder to keep the screenshots in (docs/images/ is made from them); else tmp."""

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and not os.environ.get("CI"),
    reason="needs Debian's chromium (apt-get install chromium); CI installs it",
)
sync_api = pytest.importorskip("playwright.sync_api")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("portal-browser")
    book = make_book(folder)
    add_users(book)
    store = Store(default_url(book))
    app = create_app(PortalConfig(book=book), store)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", proxy_headers=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", app, store, folder
    server.should_exit = True
    thread.join(10)
    store.close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def _shot(page, folder: Path, name: str) -> Path:
    where = Path(SCREENSHOTS) if SCREENSHOTS else folder
    where.mkdir(parents=True, exist_ok=True)
    path = where / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def _sign_in(page, base: str, user: str) -> None:
    page.goto(f"{base}/")
    assert page.url == f"{base}/login"
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORDS[user])
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


def test_sign_in_open_a_bill_drill_into_a_line_and_download(served, browser):
    base, app, _store, folder = served
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if m.type == "error" else None)
    _sign_in(page, base, "ada")
    _shot(page, folder, "portal-home")
    assert page.locator("table.departments tbody tr").count() == 1
    page.click("text=Mar 2026")
    page.wait_for_url(f"{base}/d/ADM/{PERIOD}")
    assert page.locator("dd.total").inner_text() == "USD 13,834.83"
    assert page.locator("table.lines tbody tr").count() == 7
    _shot(page, folder, "portal-bill")

    # The drill-down: htmx fetches the line and swaps it in; the address bar follows.
    page.click("table.lines tbody tr:nth-child(2) a")
    page.wait_for_selector("#line-detail article.line")
    assert page.url == f"{base}/d/ADM/{PERIOD}/lines/2"
    detail = page.locator("#line-detail")
    assert "Rule R04 (cell Rules!B5)" in detail.inner_text()
    assert detail.locator("table.usage tbody tr").count() == 1
    assert "Server Hours" in detail.locator("table.usage").inner_text()
    assert page.locator("table.lines").count() == 1  # the same page, not a new one
    _shot(page, folder, "portal-line")

    with page.expect_download() as got:
        page.click("text=Bill workbook (.xlsx)")
    download = got.value
    assert download.suggested_filename == "ADM 2026-03.xlsx"
    saved = folder / "downloaded.xlsx"
    download.save_as(saved)
    statement = app.state.bills.current.statement("adm", PERIOD)
    assert saved.read_bytes() == bill_workbook(statement)
    summary = openpyxl.load_workbook(saved, read_only=True)["Summary"]
    assert any("ADM" in str(v) for row in summary.iter_rows(values_only=True) for v in row if v)

    with page.expect_download() as got:
        page.click("text=Bill lines (.csv)")
    assert got.value.suggested_filename == "ADM 2026-03.csv"

    # Another department's bill, typed into the address bar: the server says 404.
    answer = page.goto(f"{base}/d/ENG/{PERIOD}")
    assert answer.status == 404
    assert page.locator("h1").inner_text() == "There is no such bill."
    assert [v for v in violations if "Content Security Policy" in v] == []
    context.close()


def test_raise_a_dispute_on_a_line_and_accept_the_bill(served, browser):
    base, _app, store, folder = served
    context = browser.new_context()
    page = context.new_page()
    _sign_in(page, base, "ada")
    page.goto(f"{base}/d/ADM/{PERIOD}")
    page.click("table.lines tbody tr:nth-child(6) a")  # Storage, GB-Month at the rate card
    form = page.locator("#line-detail section.dispute form")
    form.locator("select[name=reason]").select_option("Rate")
    form.locator("input[name=amount]").fill("262.68")  # a cent more than the line
    form.locator("textarea[name=comment]").fill("The tier above 10,000 GB should apply.")
    form.locator("button[type=submit]").click()
    page.wait_for_selector("#line-detail p.error")
    assert page.locator("#line-detail p.error").inner_text() == (
        "the line is USD 262.67; a dispute can be for at most that"
    )
    assert page.locator("textarea[name=comment]").input_value() == (
        "The tier above 10,000 GB should apply."
    )
    page.locator("input[name=amount]").fill("20.00")
    page.locator("#line-detail button[type=submit]").click()
    page.wait_for_selector("#line-detail p.done")
    assert (
        page.locator("#line-detail p.done").inner_text().startswith("Dispute 1 raised on line 6.")
    )
    # The bill's list of disputes is brought up to date in the same answer (out of band).
    assert "USD 20.00" in page.locator("#disputes-list table.disputes").inner_text()
    _shot(page, folder, "portal-dispute")
    [dispute] = store.disputes()
    assert (dispute.line, dispute.reason, str(dispute.amount)) == (6, "Rate", "20.00")

    page.click("text=Accept this bill")
    page.wait_for_selector("p.accepted")
    assert page.locator("p.accepted").inner_text().startswith("Accepted by ada on ")
    assert "USD 20.00" in page.locator("table.disputes").inner_text()
    page.goto(f"{base}/")
    # Accepting answers no dispute: the bill is both (docs/portal.md#the-state-of-a-bill).
    assert page.locator("td.state").inner_text() == "disputed, accepted"
    context.close()


def test_a_script_in_a_department_name_does_not_run_in_the_browser(served, browser):
    base, _app, _store, folder = served
    context = browser.new_context()
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    _sign_in(page, base, "cas")
    page.goto(f"{base}/d/CAS/{PERIOD}")
    assert page.locator("h1").inner_text().startswith(SCRIPT_NAME)
    _shot(page, folder, "portal-script-name")
    assert dialogs == []
    context.close()


def test_signing_out_ends_the_session(served, browser):
    base, _app, store, _folder = served
    context = browser.new_context()
    page = context.new_page()
    _sign_in(page, base, "fin")
    assert page.locator("table.departments tbody tr").count() == 25
    page.click("text=Sign out")
    page.wait_for_url(f"{base}/login")
    page.goto(f"{base}/d/ADM/{PERIOD}")
    assert page.url == f"{base}/login"
    actions = [r.action for r in store.audit_rows() if r.user_name == "fin"]
    assert actions[-2:] == ["view", "sign-out"]
    context.close()
