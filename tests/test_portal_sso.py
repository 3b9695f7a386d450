"""Single sign-on against a real OpenID provider: npm's oidc-provider in Node on 127.0.0.1.

The portal (Starlette's test client) sends the browser to the provider, the
provider's own login form signs a user in, and the portal's callback exchanges the
code and checks the ID token against the provider's JWKS — every request a real
HTTP request to the provider. The demo workbook gets a Portal Group column and is
run by the engine; which departments a user sees comes from it and the groups claim.
"""

from __future__ import annotations

import re
import shutil
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import openpyxl
import pytest
from fastapi.testclient import TestClient
from oidc_provider import SECRET, password_of, provider, sign_in_at_provider
from portal_fixtures import PERIOD, SCRIPT_NAME, csrf_of

from costloop.cli import main
from costloop.engine import read_book
from costloop.engine.pipeline.commands import run_book
from costloop.engine.read.names import names_from_book
from costloop.engine.xlsx.file_workbook import FileWorkbook
from costloop.portal.app import PortalConfig, create_app
from costloop.portal.groups import group_names, portal_groups
from costloop.portal.sso import SsoConfig, SsoSetupError
from costloop.portal.store import Store, default_url
from costloop.workbooks import demo_path

PORTAL = "http://testserver"
CALLBACK = f"{PORTAL}/login/sso/callback"
GROUPS = {
    "ADM": "adm-staff",
    "CAS": "cas-billing; dean-office",
    "ENG": "dean-office\nEngineering Staff",
    "MED": 4400,  # a group that is a number: text all the same, never a driver
}


def make_sso_book(folder: Path, groups: dict[str, object] = GROUPS) -> Path:
    """The demo with a Portal Group column (J), run by the engine."""
    book = folder / "demo.xlsx"
    shutil.copyfile(demo_path(), book)
    wb = openpyxl.load_workbook(book)
    sheet = wb["Departments"]
    sheet["J1"] = "Portal Group"
    for row in sheet.iter_rows(min_row=2):
        if row[0].value == "CAS":
            row[1].value = SCRIPT_NAME
        if row[0].value in groups:
            sheet.cell(row[0].row, 10).value = groups[row[0].value]
    wb.save(book)
    assert run_book(book).ok
    return book


def set_groups(book: Path, groups: dict[str, object]) -> None:
    """Rewrite the Portal Group column and run the workbook again."""
    wb = openpyxl.load_workbook(book)
    sheet = wb["Departments"]
    for row in sheet.iter_rows(min_row=2):
        sheet.cell(row[0].row, 10).value = groups.get(row[0].value)
    wb.save(book)
    assert run_book(book).ok


@pytest.fixture(scope="module")
def issuer():
    with provider([CALLBACK]) as url:
        yield url


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> Path:
    return make_sso_book(tmp_path_factory.mktemp("portal-sso"))


def sso_config(issuer: str, client_id: str = "portal") -> SsoConfig:
    return SsoConfig(
        issuer=issuer,
        client_id=client_id,
        client_secret=SECRET,
        scopes="openid profile groups",
        finance_groups=frozenset({"it-finance"}),
    )


@pytest.fixture
def portal(book, issuer):
    """An app factory: the portal over the module's book, as a given client of the provider."""
    stores = []

    def make(client_id: str = "portal", on: Path | None = None):
        store = Store(default_url(on or book))
        stores.append(store)
        config = PortalConfig(book=on or book, sso=sso_config(issuer, client_id))
        return create_app(config, store), store

    yield make
    for store in stores:
        store.close()


def browser(app) -> TestClient:
    return TestClient(app, client=("10.0.0.7", 50000), follow_redirects=False)


def start_sso(client: TestClient):
    token = csrf_of(client.get("/login").text)
    return client.post("/login/sso", data={"csrf_token": token})


def sso_sign_in(client: TestClient, issuer: str, user: str):
    """The whole sign-in, as a browser does it; the portal's answer to the callback."""
    start = start_sso(client)
    assert start.status_code == 302
    return client.get(sign_in_at_provider(start, issuer, user, password_of(user)))


def home_codes(client: TestClient) -> set[str]:
    page = client.get("/")
    assert page.status_code == 200
    return set(re.findall(r'href="/d/([^/"]+)/2026-03"', page.text))


def last_audit(store: Store, n: int = 1):
    return store.audit_rows()[-n:]


def sign_in_row(store: Store):
    return next(r for r in reversed(store.audit_rows()) if r.action == "sign-in")


# --- the whole flow ---------------------------------------------------------------


def test_login_page_offers_single_sign_on_as_a_csrf_form_beside_local_accounts(portal, issuer):
    app, _ = portal()
    page = browser(app).get("/login")
    assert page.status_code == 200
    sso_form = re.search(
        r'<form class="sso" method="post" action="/login/sso">(.*?)</form>', page.text, re.S
    )
    assert sso_form and 'name="csrf_token"' in sso_form.group(1)
    assert "Sign in with single sign-on" in sso_form.group(1)
    assert 'action="/login"' in page.text  # the local form stays, below
    # The button's POST is answered by a redirect to the provider: the CSP lets it go there.
    assert f"form-action 'self' {issuer};" in page.headers["content-security-policy"]


def test_starting_a_sign_in_needs_the_pages_csrf_token(portal):
    app, _ = portal()
    client = browser(app)
    client.get("/login")
    refused = client.post("/login/sso", data={})
    assert refused.status_code == 403
    assert "This form has expired or did not come from this site." in refused.text


def test_the_redirect_carries_state_nonce_and_a_pkce_challenge(portal, issuer):
    app, _ = portal()
    start = start_sso(browser(app))
    assert start.status_code == 302
    query = parse_qs(urlsplit(start.headers["location"]).query)
    assert query["client_id"] == ["portal"]
    assert query["redirect_uri"] == [CALLBACK]
    assert query["response_type"] == ["code"]
    assert query["scope"] == ["openid profile groups"]
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) == 43  # base64url of a SHA-256
    assert len(query["state"][0]) >= 20 and len(query["nonce"][0]) >= 20


def test_sign_in_through_the_provider_shows_the_users_own_department_only(portal, issuer, book):
    app, store = portal()
    client = browser(app)
    landed = sso_sign_in(client, issuer, "ada")
    assert landed.status_code == 303 and landed.headers["location"] == "/"
    assert home_codes(client) == {"ADM"}
    bill = client.get(f"/d/ADM/{PERIOD}")
    assert bill.status_code == 200 and "USD 13,834.83" in bill.text
    assert "ada" in bill.text  # the signed-in user's name, from preferred_username
    for other in ("CAS", "ENG", "MED", "BUS"):
        for path in (
            f"/d/{other}/{PERIOD}",
            f"/d/{other}/{PERIOD}/lines/1",
            f"/d/{other}/{PERIOD}/lines.csv",
            f"/d/{other}/{PERIOD}/bill.xlsx",
        ):
            answer = client.get(path)
            assert answer.status_code == 404, path
            assert "There is no such bill." in answer.text
    assert client.get("/finance/disputes").status_code == 404
    sign_in = sign_in_row(store)
    assert sign_in.user_name == "ada"
    assert sign_in.address == "10.0.0.7"
    assert sign_in.detail == "single sign-on (sub ada); groups used: adm-staff; sees ADM"


def test_a_group_written_on_several_departments_sees_each(portal, issuer):
    app, store = portal()
    client = browser(app)
    assert sso_sign_in(client, issuer, "dean").status_code == 303
    assert home_codes(client) == {"CAS", "ENG"}
    assert client.get(f"/d/ADM/{PERIOD}").status_code == 404
    assert sign_in_row(store).detail == (
        "single sign-on (sub dean); groups used: dean-office; sees CAS, ENG"
    )


def test_the_finance_group_sees_every_department_and_the_dispute_queue(portal, issuer, book):
    app, store = portal()
    client = browser(app)
    assert sso_sign_in(client, issuer, "finn").status_code == 303
    assert len(home_codes(client)) == 25
    assert client.get("/finance/disputes").status_code == 200
    assert client.get(f"/d/MED/{PERIOD}").status_code == 200
    assert sign_in_row(store).detail == (
        "single sign-on (sub finn); groups used: it-finance; sees every department (finance)"
    )


def test_a_user_whose_groups_see_no_department_gets_a_page_that_says_so(portal, issuer):
    app, store = portal()
    client = browser(app)
    answer = sso_sign_in(client, issuer, "nobody")
    assert answer.status_code == 403
    assert "No department for nobody" in answer.text
    assert "none of your groups is given a department in the portal" in answer.text
    assert "Your groups (groups claim): all-staff, library-readers." in answer.text
    assert "Portal Group" in answer.text
    # Not signed in: the portal is not shown, empty or otherwise.
    assert client.get("/").status_code == 303
    row = last_audit(store)[0]
    assert (row.user_name, row.action) == ("nobody", "sign-in refused")
    assert row.detail == (
        "single sign-on (sub nobody): no department for groups: all-staff, library-readers"
    )


# --- refused sign-ins ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("client_id", "message", "detail"),
    [
        (
            "portal-wrong-audience",
            "The sign-in token was issued for another application, not this portal "
            "(client id portal-wrong-audience); it was refused.",
            "InvalidClaimError",
        ),
        (
            "portal-expired",
            "The sign-in token has expired: check that this server's clock and the "
            "sign-in service's agree, then sign in again.",
            "ExpiredTokenError",
        ),
        (
            "portal-wrong-nonce",
            "The sign-in token belongs to another sign-in (its nonce does not match); "
            "it was refused. Start again from the sign-in page.",
            "InvalidClaimError",
        ),
        (
            "portal-forged",
            "The sign-in token is not signed by a key the sign-in service publishes "
            "(its JWKS); it was refused.",
            "BadSignatureError",
        ),
    ],
)
def test_an_id_token_that_fails_a_check_is_refused_with_a_page_and_an_audit_row(
    portal, issuer, client_id, message, detail
):
    app, store = portal(client_id)
    client = browser(app)
    answer = sso_sign_in(client, issuer, "ada")
    assert answer.status_code == 401
    assert "Sign-in refused" in answer.text
    assert message.replace("'", "&#39;") in answer.text
    assert client.get("/").status_code == 303  # no session came of it
    row = last_audit(store)[0]
    assert (row.user_name, row.action, row.address) == (
        "(single sign-on)",
        "sign-in failed",
        "10.0.0.7",
    )
    assert row.detail.startswith(f"single sign-on: ID token refused: {detail}")


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return urlunsplit(parts._replace(query=urlencode(query)))


def test_a_callback_whose_state_is_not_this_sessions_is_refused(portal, issuer):
    app, store = portal()
    client = browser(app)
    start = start_sso(client)
    back = sign_in_at_provider(start, issuer, "ada", password_of("ada"))
    answer = client.get(_with_query(back, state="a-state-this-portal-never-sent"))
    assert answer.status_code == 401
    assert "its state does not match" in answer.text
    assert last_audit(store)[0].detail == "single sign-on: state does not match the session"
    # Login CSRF: the right code and state, but in another browser (the attacker's
    # callback URL opened in the victim's session) signs nobody in.
    other = browser(app)
    other.get("/login")
    assert other.get(back).status_code == 401
    assert other.get("/").status_code == 303
    # And a callback is good once: the state is spent after its first use.
    assert client.get(back).status_code == 303
    assert client.get(back).status_code == 401


def test_the_providers_own_refusal_is_shown_not_a_500(portal):
    app, store = portal()
    client = browser(app)
    client.get("/login")
    answer = client.get("/login/sso/callback?error=access_denied&error_description=User+cancelled")
    assert answer.status_code == 401
    assert "The sign-in service did not sign you in: User cancelled." in answer.text
    assert last_audit(store)[0].detail == (
        "single sign-on: the provider answered access_denied: User cancelled"
    )


def test_a_provider_that_cannot_be_reached_is_a_clear_503(book, tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'p.sqlite'}")
    config = PortalConfig(book=book, sso=sso_config("http://127.0.0.1:9"))  # nothing listens
    client = browser(create_app(config, store))
    answer = start_sso(client)
    assert answer.status_code == 503
    assert "The sign-in service at http://127.0.0.1:9 cannot be reached (ConnectError)" in (
        answer.text
    )
    store.close()


# --- the workbook's mapping --------------------------------------------------------


def test_a_changed_mapping_applies_to_a_signed_in_user_after_the_next_run(portal, issuer, tmp_path):
    book = make_sso_book(tmp_path, {"ADM": "adm-staff"})
    app, store = portal(on=book)
    client = browser(app)
    assert sso_sign_in(client, issuer, "ada").status_code == 303
    assert home_codes(client) == {"ADM"}
    # Finance moves the group to BUS and runs the workbook; the portal reloads it.
    set_groups(book, {"BUS": "adm-staff"})
    app.state.bills.reload()
    assert home_codes(client) == {"BUS"}
    assert client.get(f"/d/ADM/{PERIOD}").status_code == 404
    # Then takes it away: the session ends on a page that says why.
    set_groups(book, {"BUS": "bus-staff"})
    app.state.bills.reload()
    answer = client.get("/")
    assert answer.status_code == 403 and "No department for ada" in answer.text
    assert client.get("/").status_code == 303
    row = last_audit(store)[0]
    assert (row.action, row.detail) == (
        "sign-out",
        "single sign-on: no department for groups: adm-staff",
    )


def test_groups_only_at_the_userinfo_endpoint_are_read_from_there(book, tmp_path):
    with provider([CALLBACK], groups_in="userinfo") as url:
        store = Store(f"sqlite:///{tmp_path / 'p.sqlite'}")
        client = browser(create_app(PortalConfig(book=book, sso=sso_config(url)), store))
        assert sso_sign_in(client, url, "cas").status_code == 303
        assert home_codes(client) == {"CAS"}
        store.close()


def test_portal_group_is_read_as_text_never_a_driver_and_warns_nothing(book, tmp_path):
    found, problems = read_book(FileWorkbook(book))
    plain = tmp_path / "plain.xlsx"
    shutil.copyfile(demo_path(), plain)
    # The same problems (the demo's own warnings, if any) as without the column.
    assert [(p.where, p.message) for p in problems] == [
        (p.where, p.message) for p in read_book(FileWorkbook(plain))[1]
    ]
    column = found.departments.set_index("Department")["Portal Group"]
    assert column["MED"] == "4400"
    assert column["ENG"] == "dean-office\nEngineering Staff"
    assert column["BUS"] == ""
    assert "portal group" not in names_from_book(found).numeric_department_columns
    assert portal_groups(found.departments) == {
        "adm-staff": frozenset({"adm"}),
        "cas-billing": frozenset({"cas"}),
        "dean-office": frozenset({"cas", "eng"}),
        "Engineering Staff": frozenset({"eng"}),
        "4400": frozenset({"med"}),
    }


def test_group_names_split_on_semicolons_and_lines_and_keep_commas_and_case():
    assert group_names(" adm-staff ;; Dean Office\r\ncn=it,ou=groups ") == [
        "adm-staff",
        "Dean Office",
        "cn=it,ou=groups",
    ]
    assert group_names("") == []


# --- configuration ------------------------------------------------------------------


def test_config_from_the_environment_needs_all_three_or_none():
    assert SsoConfig.from_environment({}) is None
    with pytest.raises(SsoSetupError) as missing:
        SsoConfig.from_environment({"COSTLOOP_OIDC_ISSUER": "https://sso.example.edu"})
    assert str(missing.value) == (
        "single sign-on needs COSTLOOP_OIDC_CLIENT_ID, COSTLOOP_OIDC_CLIENT_SECRET too (set all "
        "of COSTLOOP_OIDC_ISSUER, COSTLOOP_OIDC_CLIENT_ID, COSTLOOP_OIDC_CLIENT_SECRET, or none "
        "for local accounts only)"
    )
    config = SsoConfig.from_environment(
        {
            "COSTLOOP_OIDC_ISSUER": "https://sso.example.edu/realms/campus/",
            "COSTLOOP_OIDC_CLIENT_ID": "costloop",
            "COSTLOOP_OIDC_CLIENT_SECRET": "s3cret",
            "COSTLOOP_OIDC_FINANCE_GROUP": "it-finance; controller",
            "COSTLOOP_OIDC_GROUPS_CLAIM": "roles",
            "COSTLOOP_OIDC_REDIRECT_BASE": "https://bills.example.edu/",
        }
    )
    assert config.issuer == "https://sso.example.edu/realms/campus"
    assert config.finance_groups == frozenset({"it-finance", "controller"})
    assert (config.groups_claim, config.scopes) == ("roles", "openid profile email")
    assert config.redirect_base == "https://bills.example.edu"
    assert "s3cret" not in repr(config)


def test_a_plain_http_issuer_is_refused_unless_on_this_machine():
    with pytest.raises(SsoSetupError) as refused:
        SsoConfig(issuer="http://sso.example.edu", client_id="c", client_secret="s")
    assert str(refused.value) == (
        "COSTLOOP_OIDC_ISSUER='http://sso.example.edu': give an https:// URL (plain http:// "
        "only for 127.0.0.1 or localhost)"
    )


def test_serve_with_half_the_settings_is_a_usage_error(book, monkeypatch, capsys):
    monkeypatch.setenv("COSTLOOP_OIDC_ISSUER", "https://sso.example.edu")
    monkeypatch.delenv("COSTLOOP_OIDC_CLIENT_ID", raising=False)
    monkeypatch.delenv("COSTLOOP_OIDC_CLIENT_SECRET", raising=False)
    assert main(["serve", str(book)]) == 2
    assert "single sign-on needs COSTLOOP_OIDC_CLIENT_ID" in capsys.readouterr().err


def test_the_bills_are_the_same_with_or_without_the_column(book, tmp_path):
    plain = tmp_path / "plain.xlsx"
    shutil.copyfile(demo_path(), plain)
    assert run_book(plain).ok

    def totals(path):
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
        rows = list(wb["Bills"].iter_rows(values_only=True))
        wb.close()
        head = rows[0]
        sums: dict[str, Decimal] = {}
        for r in rows[1:]:
            if r[0] is not None:
                row = dict(zip(head, r, strict=False))
                sums[row["Department"]] = sums.get(row["Department"], Decimal(0)) + Decimal(
                    str(row["Amount"])
                )
        return sums

    assert totals(plain) == totals(book)


def test_before_any_good_run_a_department_user_is_told_so_and_finance_comes_in(issuer, tmp_path):
    book = tmp_path / "never-run.xlsx"
    shutil.copyfile(demo_path(), book)  # never run: no bills and no mapping yet
    store = Store(f"sqlite:///{tmp_path / 'p.sqlite'}")
    app = create_app(PortalConfig(book=book, sso=sso_config(issuer)), store)
    ada = browser(app)
    answer = sso_sign_in(ada, issuer, "ada")
    assert answer.status_code == 503
    assert "The portal has no bills to show yet (the workbook has no good run)" in answer.text
    assert ada.get("/").status_code == 303
    finn = browser(app)
    assert sso_sign_in(finn, issuer, "finn").status_code == 303
    home = finn.get("/")
    assert home.status_code == 200
    assert "the workbook has not been run yet" in home.text
    store.close()
