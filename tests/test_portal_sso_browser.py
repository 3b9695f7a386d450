"""Single sign-on in a real browser: Debian's chromium (Playwright), the portal on uvicorn and
oidc-provider in Node, both on 127.0.0.1.

The click on "Sign in with single sign-on" is a form POST answered by a redirect to
the provider; the browser holds that redirect to the page's CSP `form-action`, so
this test fails if the policy does not allow the provider's origin.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest
import uvicorn
from oidc_provider import SECRET, password_of, provider
from portal_fixtures import PERIOD
from test_portal_sso import make_sso_book

from costloop.portal.app import PortalConfig, create_app
from costloop.portal.sso import SsoConfig
from costloop.portal.store import Store, default_url

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = os.environ.get("COSTLOOP_SCREENSHOTS")

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
    folder = tmp_path_factory.mktemp("portal-sso-browser")
    book = make_sso_book(folder)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with provider([f"{base}/login/sso/callback"]) as issuer:
        store = Store(default_url(book))
        sso = SsoConfig(
            issuer=issuer,
            client_id="portal",
            client_secret=SECRET,
            scopes="openid profile groups",
            redirect_base=base,
        )
        app = create_app(PortalConfig(book=book, sso=sso), store)
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        yield base, issuer, store, folder
        server.should_exit = True
        thread.join(10)
        store.close()


def _shot(page, folder: Path, name: str) -> None:
    where = Path(SCREENSHOTS) if SCREENSHOTS else folder
    where.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(where / f"{name}.png"), full_page=True)


def test_click_through_single_sign_on_to_the_own_department(served):
    base, issuer, store, folder = served
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = chromium.new_context().new_page()
            errors: list[str] = []
            page.on(
                "console",
                lambda m: errors.append(f"{m.text} {m.location}") if m.type == "error" else None,
            )
            page.goto(f"{base}/")
            assert page.url == f"{base}/login"
            _shot(page, folder, "portal-sso-login")
            page.click("text=Sign in with single sign-on")
            page.wait_for_url(f"{issuer}/interaction/**")
            assert page.locator("h1").inner_text() == "Campus sign-in"
            page.fill("input[name=login]", "ada")
            page.fill("input[name=password]", password_of("ada"))
            page.click("text=Campus sign in")
            page.wait_for_url(f"{base}/")
            _shot(page, folder, "portal-sso-home")
            assert page.locator("table.departments tbody tr").count() == 1
            assert page.locator("header .who").inner_text() == "ada"
            page.click("text=Mar 2026")
            page.wait_for_url(f"{base}/d/ADM/{PERIOD}")
            assert page.locator("dd.total").inner_text() == "USD 13,834.83"
            # No CSP violation on the way (the favicon's 404 is the only other error).
            assert [e for e in errors if "Content Security Policy" in e] == []
            # Another department's bill, typed into the address bar: the same 404.
            answer = page.goto(f"{base}/d/CAS/{PERIOD}")
            assert answer.status == 404
            assert "There is no such bill." in page.locator("h1").inner_text()
        finally:
            chromium.close()
    sign_in = next(r for r in reversed(store.audit_rows()) if r.action == "sign-in")
    assert (sign_in.user_name, sign_in.address) == ("ada", "127.0.0.1")
    assert sign_in.detail == "single sign-on (sub ada); groups used: adm-staff; sees ADM"
