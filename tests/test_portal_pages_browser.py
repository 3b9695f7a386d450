"""The bill page's charts in a real browser under the portal's Content-Security-Policy.

Debian's chromium (Playwright, `executable_path`; never `playwright install`) opens the
closed demo's bills: both chart images must load (a decoded image has a width) and the
browser must report no CSP violation, so the SVG needs no inline style or script.
Screenshots go to $COSTLOOP_SCREENSHOTS when set (docs/images/ is made from them).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest
import uvicorn
from portal_fixtures import add_user
from test_portal_pages import PASSWORD, copy_closed_demo

from costloop.portal.app import PortalConfig, create_app
from costloop.portal.store import Store, default_url

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = os.environ.get("COSTLOOP_SCREENSHOTS")

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and not os.environ.get("CI"),
    reason="needs Debian's chromium (apt-get install chromium); CI installs it",
)
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("portal-pages-browser")
    book = copy_closed_demo(folder)
    assert add_user(book, "eng", "--department", "ENG", password=PASSWORD.format("eng")) == 0
    store = Store(default_url(book))
    app = create_app(PortalConfig(book=book), store)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", folder
    server.should_exit = True
    thread.join(10)
    store.close()


def _shot(page, folder: Path, name: str, full: bool = True) -> None:
    where = Path(SCREENSHOTS) if SCREENSHOTS else folder
    where.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(where / f"{name}.png"), full_page=full)


def test_the_charts_load_under_the_csp_and_the_states_show(served):
    base, folder = served
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        console: list[str] = []
        page.on("console", lambda m: console.append(m.text))
        page.goto(f"{base}/")
        page.fill("input[name=username]", "eng")
        page.fill("input[name=password]", PASSWORD.format("eng"))
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/")
        states = page.locator("td.state").all_inner_texts()
        assert states == ["issued, corrected in Mar 2026", "billed"]
        page.set_viewport_size({"width": 1200, "height": 320})
        _shot(page, folder, "portal-home-states", full=False)
        page.set_viewport_size({"width": 1200, "height": 900})

        page.click("table.departments a[href='/d/ENG/2026-03']")
        page.wait_for_url(f"{base}/d/ENG/2026-03")
        page.wait_for_load_state("networkidle")
        images = page.locator("img.chart")
        assert images.count() == 2
        for i in range(2):
            size = images.nth(i).evaluate("img => [img.complete, img.naturalWidth]")
            assert size[0] is True and size[1] > 600, size  # loaded and decoded
        assert page.locator("table.corrections tfoot").inner_text().split("\t")[:2] == [
            "Total corrections to earlier periods",
            "USD 5,211.31",
        ]
        assert "USD -120.00" in page.locator("table.credits").inner_text()
        page.evaluate("document.getElementById('corrections').scrollIntoView()")
        _shot(page, folder, "portal-bill-corrections", full=False)
        page.evaluate("document.getElementById('why').scrollIntoView()")
        _shot(page, folder, "portal-bill-why-chart", full=False)
        page.evaluate("document.getElementById('budget').scrollIntoView()")
        _shot(page, folder, "portal-bill-budget", full=False)

        # The Charge Period of a correction links to the bill it corrects, as issued.
        page.locator("table.corrections a[href='/d/ENG/2026-02']").first.click()
        page.wait_for_url(f"{base}/d/ENG/2026-02")
        page.wait_for_load_state("networkidle")
        assert page.locator("p.issued-note").inner_text().startswith(
            "Feb 2026 is closed: this is the bill as it was issued on 2026-03-03 17:00:00 UTC"
        )
        assert page.locator("img.chart").nth(0).evaluate("img => img.naturalWidth") > 600
        _shot(page, folder, "portal-bill-issued", full=False)
        assert [m for m in console if "Content Security Policy" in m] == []
        browser.close()
