"""The portal's web application: FastAPI pages rendered on the server, htmx for the drill-down.

Every page and download goes through `_statement`, which answers 404 unless the
signed-in account may see that department — the same 404, with the same body, as
for a department or period that does not exist, so a URL cannot even tell another
department's bill exists. Scoping lives here on the server, never in the page.
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Form, Request
from fastapi.exceptions import HTTPException
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.convertors import Convertor, register_url_convertor
from starlette.datastructures import MutableHeaders
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from costloop.bills.pdf import PDF_TYPE
from costloop.bills.statement import Statement
from costloop.bills.workbook import XLSX_TYPE, bill_workbook
from costloop.errors import PortalError
from costloop.portal import resolutions, sso, views
from costloop.portal.accounts import sign_in
from costloop.portal.charts import CHARTS, SVG_TYPE, ChartCache
from costloop.portal.disputes import DisputeRefused, new_dispute
from costloop.portal.focus import focus_csv
from costloop.portal.snapshot import Bills, Snapshot
from costloop.portal.sso import SsoConfig
from costloop.portal.states import state_of
from costloop.portal.store import REASONS, Acceptance, Account, Store, now
from costloop.portal.templating import page_templates
from costloop.rules.ast import name_key

STATIC = Path(__file__).resolve().parent / "static"
SESSION_COOKIE = "costloop_session"
CSRF_FIELD, CSRF_HEADER = "csrf_token", "X-CSRF-Token"
DEFAULT_SESSION = dt.timedelta(hours=8)

# No inline script or style anywhere: htmx is a file of the package, configured by a
# <meta> tag, and the pages' look is one stylesheet.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class _Period(Convertor):
    """``YYYY-MM`` in a URL: a department code may hold ``/``, a period never does."""

    regex = r"\d{4}-\d{2}"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("period", _Period())


class SecurityHeaders:
    """The security headers on every answer (a header the page set itself is kept).

    A plain ASGI middleware: Starlette's ``@app.middleware("http")`` passes every
    response through a task group and a memory stream, which under 50 sessions was a
    third of the server's time.
    """

    def __init__(self, app: ASGIApp, headers: dict[str, str]):
        self.app = app
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for header, value in self.headers.items():
                    headers.setdefault(header, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _run_of(snapshot: Snapshot, key: tuple[str, str]) -> str | None:
    """The run a (department key, period) bill belongs to, if the snapshot has it."""
    found = snapshot.statement(*key)
    return None if found is None else found.run.run_id


class SignInNeeded(PortalError):
    """The request has no live session: send the browser to /login."""


@dataclass(frozen=True)
class PortalConfig:
    book: Path
    secure_cookies: bool = False
    """Mark the session cookie Secure (served behind HTTPS: ``--proxy-headers``)."""
    session_length: dt.timedelta = DEFAULT_SESSION
    """A session ends this long after sign-in, however busy it is."""
    check_every: float = 1.0
    """Seconds between looks at the workbook file for a change."""
    sso: SsoConfig | None = None
    """Single sign-on (portal/sso.py), from the COSTLOOP_OIDC_* environment variables."""


def create_app(config: PortalConfig, store: Store, bills: Bills | None = None) -> FastAPI:
    bills = bills or Bills(config.book, check_every=config.check_every)
    templates = page_templates()  # the same templates the static export renders
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    # LibreOffice makes each PDF; a burst of downloads waits for a slot rather than
    # starting a LibreOffice per request.
    pdf_slots = threading.BoundedSemaphore(2)
    charts = ChartCache()
    app.state.bills = bills
    app.state.store = store
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    headers = dict(SECURITY_HEADERS)
    if config.sso:
        headers["Content-Security-Policy"] = sso.content_security_policy(
            CONTENT_SECURITY_POLICY, config.sso
        )

    # --- helpers ---------------------------------------------------------
    def address(request: Request) -> str:
        return request.client.host if request.client else ""

    def csrf_token(request: Request) -> str:
        token = request.session.get("csrf")
        if not token:
            token = request.session["csrf"] = secrets.token_urlsafe(32)
        return token

    def check_csrf(request: Request, submitted: str | None) -> None:
        expected = request.session.get("csrf")
        given = submitted or request.headers.get(CSRF_HEADER) or ""
        if not expected or not hmac.compare_digest(expected.encode(), given.encode()):
            raise HTTPException(403, "This form has expired or did not come from this site.")

    def account_of(request: Request) -> Account:
        user = request.session.get("user")
        expires = request.session.get("expires", 0)
        if not user or time.time() >= expires:
            request.session.clear()
            raise SignInNeeded
        if request.session.get("sso") is not None and config.sso:
            return sso.account(config.sso, request.session, bills.get())
        account = store.account(user)
        if account is None:  # the account was removed while signed in
            request.session.clear()
            raise SignInNeeded
        return account

    def render(request: Request, name: str, status: int = 200, **context) -> HTMLResponse:
        context.setdefault("account", None)
        context.setdefault("sso", config.sso is not None)
        snapshot: Snapshot = context.pop("snapshot", None) or bills.current
        page = templates.get_template(name).render(
            csrf=csrf_token(request), stamp=snapshot.stamp, problems=bills.problems, **context
        )
        return HTMLResponse(page, status_code=status)

    def statement_for(account: Account, dept: str, period: str) -> tuple[Snapshot, Statement]:
        """The bill, if this account may see it; 404 alike for 'not yours' and 'not there'.

        The request keeps the snapshot it started with, so a reload in between cannot
        pair a line of one run with the rules of the next.
        """
        key = name_key(dept)
        snapshot = bills.get()
        found = snapshot.statement(key, period)
        if found is None or not account.may_see(key):
            raise HTTPException(404, "There is no such bill.")
        return snapshot, found

    def may_act(account: Account, s: Statement) -> bool:
        """Disputing and accepting are the department's own acts, not finance's."""
        return name_key(s.department) in account.departments

    def line_context(snapshot: Snapshot, account: Account, s: Statement, n: int) -> dict:
        row = snapshot.page(s, views.line_rows)[n - 1]
        rule = snapshot.rules.get(row.rule)
        return {
            "snapshot": snapshot,
            "account": account,
            "s": s,
            "line": row,
            "usage": snapshot.page(s, views.usage_of_line, rule),
            "line_period_url": (
                views.period_url(s, row.charge_period)
                if snapshot.statement(name_key(s.department), row.charge_period) is not None
                else ""
            ),
            "bill_url": views.dept_url(s),
            "may_act": may_act(account, s),
            "reasons": REASONS,
        }

    def dispute_list(snapshot: Snapshot, s: Statement) -> dict:
        """The department's disputes of this bill and earlier ones (a credit comes on a
        later bill), each with finance's answer from the workbook, for disputes_list.html."""
        raised = [d for d in store.disputes(name_key(s.department)) if d.period <= s.period]
        return {"disputes": raised, "answers": resolutions.shown(raised, snapshot.answers)}

    def audit(request: Request, account: Account, action: str, s: Statement, detail: str = ""):
        store.audit(account.user_name, address(request), action, s.department, s.period, detail)

    # --- errors and headers ----------------------------------------------
    @app.exception_handler(SignInNeeded)
    async def _to_login(request: Request, _exc: SignInNeeded):
        if request.headers.get("HX-Request"):
            return Response(status_code=401, headers={"HX-Redirect": "/login"})
        return RedirectResponse("/login", status_code=303)

    @app.exception_handler(HTTPException)
    async def _error(request: Request, exc: HTTPException):
        message = exc.detail if exc.status_code in (403, 404, 429, 503) else "Something went wrong."
        if exc.status_code == 405:
            message = "That is not how this page is used."
        return render(request, "error.html", exc.status_code, message=message)

    app.add_middleware(SecurityHeaders, headers=headers)

    # SessionMiddleware wraps the header middleware, so its cookie is set on every answer.
    app.add_middleware(
        SessionMiddleware,
        secret_key=store.session_secret(),
        session_cookie=SESSION_COOKIE,
        max_age=int(config.session_length.total_seconds()),
        same_site="lax",
        https_only=config.secure_cookies,
    )

    # --- signing in and out ----------------------------------------------
    @app.get("/login", response_class=HTMLResponse)
    def login_page(request: Request):
        if request.session.get("user") and time.time() < request.session.get("expires", 0):
            return RedirectResponse("/", status_code=303)
        return render(request, "login.html")

    @app.post("/login")
    def login(
        request: Request,
        username: str = Form(""),
        password: str = Form(""),
        csrf_token_: str | None = Form(None, alias=CSRF_FIELD),
    ):
        check_csrf(request, csrf_token_)
        where = address(request)
        answer = sign_in(store, username, password, where)
        if answer.throttled_for is not None:
            store.audit(username, where, "sign-in refused", detail="too many failures")
            minutes = max(1, round(answer.throttled_for.total_seconds() / 60))
            message = (
                f"Too many failed sign-ins for this user from this address. "
                f"Try again in {minutes} minute{'s' if minutes != 1 else ''}."
            )
            return render(request, "login.html", 429, error=message, username=username)
        if answer.account is None:
            store.audit(username, where, "sign-in failed")
            return render(
                request, "login.html", 401, error="Wrong user name or password.", username=username
            )
        # A new session on sign-in: a session id planted before sign-in is worth nothing.
        request.session.clear()
        request.session["user"] = answer.account.user_name
        request.session["expires"] = time.time() + config.session_length.total_seconds()
        request.session["csrf"] = secrets.token_urlsafe(32)
        store.audit(answer.account.user_name, where, "sign-in")
        return RedirectResponse("/", status_code=303)

    @app.post("/logout")
    def logout(request: Request, csrf_token_: str | None = Form(None, alias=CSRF_FIELD)):
        check_csrf(request, csrf_token_)
        user = request.session.get("user")
        if user:
            store.audit(user, address(request), "sign-out")
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    if config.sso:  # before the catch-all 404 route below
        sso.install(
            app,
            config.sso,
            store,
            bills.get,
            render,
            check_csrf,
            address,
            config.session_length.total_seconds(),
        )

    # --- pages -------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse)
    def home(request: Request):
        account = account_of(request)
        snapshot = bills.get()
        shown = []
        # A department user's own keys only; finance every billed department.
        keys = snapshot.department_keys()
        if not account.finance:
            keys = [k for k in keys if k in account.departments]
        bills_of = [[snapshot.statement(k, p) for p in snapshot.periods_of(k)] for k in keys]
        # Accepted is per run: a closed period's bill is the closing run's, the open one the
        # last run's; one query per run shown (at most the year's closed periods and one).
        accepted, disputed = set(), set()
        for run_id in sorted({s.run.run_id for periods in bills_of for s in periods}):
            accepted_in_run, disputed = store.states(run_id)
            accepted |= {k for k in accepted_in_run if _run_of(snapshot, k) == run_id}
        # A portal dispute finance has answered on the Disputes sheet no longer counts.
        disputed = resolutions.still_disputed(store.open_disputes(), snapshot.answers)
        for periods in bills_of:
            shown.append(
                (
                    periods[-1],
                    [(s, views.dept_url(s), state_of(s, accepted, disputed)) for s in periods],
                )
            )
        summary = None
        if account.finance and snapshot.ok:
            period = snapshot.stamp.period
            summary = views.run_summary(
                [s for periods in bills_of for s in periods if s.period == period]
            )
        store.audit(account.user_name, address(request), "view", detail="/")
        return render(
            request,
            "home.html",
            snapshot=snapshot,
            account=account,
            departments=shown,
            summary=summary,
        )

    @app.get("/d/{dept:path}/{period:period}/lines/{line}", response_class=HTMLResponse)
    def line_page(request: Request, dept: str, period: str, line: str):
        account = account_of(request)
        snapshot, s = statement_for(account, dept, period)
        if not re.fullmatch(r"[1-9][0-9]{0,8}", line) or int(line) > len(s.lines):
            raise HTTPException(404, "There is no such bill.")
        n = int(line)
        audit(request, account, "view", s, f"line {n}")
        fragment = bool(request.headers.get("HX-Request"))
        return render(
            request,
            "line_fragment.html" if fragment else "line.html",
            **line_context(snapshot, account, s, n),
        )

    @app.post("/d/{dept:path}/{period:period}/disputes")
    def raise_dispute(
        request: Request,
        dept: str,
        period: str,
        line: str = Form(""),
        reason: str = Form(""),
        amount: str = Form(""),
        comment: str = Form(""),
        csrf_token_: str | None = Form(None, alias=CSRF_FIELD),
    ):
        account = account_of(request)
        check_csrf(request, csrf_token_)
        snapshot, s = statement_for(account, dept, period)
        if not re.fullmatch(r"[1-9][0-9]{0,8}", line) or int(line) > len(s.lines):
            raise HTTPException(404, "There is no such bill.")
        n = int(line)
        if not may_act(account, s):
            raise HTTPException(403, "Only the department's own users can dispute its bill.")
        fragment = bool(request.headers.get("HX-Request"))
        try:
            dispute = new_dispute(s, s.run.run_id, account.user_name, n, reason, amount, comment)
        except DisputeRefused as refused:
            context = line_context(snapshot, account, s, n)
            context["form"] = {"reason": reason, "amount": amount, "comment": comment}
            return render(
                request,
                "line_fragment.html" if fragment else "line.html",
                422,
                dispute_error=str(refused),
                **context,
            )
        number = store.raise_dispute(dispute)
        audit(
            request,
            account,
            "dispute",
            s,
            f"dispute {number}: line {n}, {dispute.reason}, {dispute.amount}",
        )
        if fragment:
            context = line_context(snapshot, account, s, n)
            return render(
                request, "line_fragment.html", raised=number, **context, **dispute_list(snapshot, s)
            )
        return RedirectResponse(f"{views.dept_url(s)}#disputes", status_code=303)

    @app.post("/d/{dept:path}/{period:period}/accept")
    def accept(
        request: Request,
        dept: str,
        period: str,
        csrf_token_: str | None = Form(None, alias=CSRF_FIELD),
    ):
        account = account_of(request)
        check_csrf(request, csrf_token_)
        _, s = statement_for(account, dept, period)
        if not may_act(account, s):
            raise HTTPException(403, "Only the department's own users can accept its bill.")
        accepted = Acceptance(
            at=now(),
            user_name=account.user_name,
            department_key=name_key(s.department),
            department=s.department,
            period=s.period,
            run_id=s.run.run_id,  # an issued bill is the closing run's, not today's
            total=s.total,
        )
        if store.accept(accepted):
            audit(request, account, "accept", s, f"run {accepted.run_id}, {s.total}")
        return RedirectResponse(views.dept_url(s), status_code=303)

    @app.get("/finance/disputes", response_class=HTMLResponse)
    def finance_disputes(request: Request):
        account = account_of(request)
        if not account.finance:
            raise HTTPException(404, "There is no such page.")
        store.audit(account.user_name, address(request), "view", detail="/finance/disputes")
        raised = store.disputes()
        answers = resolutions.shown(raised, bills.get().answers)
        return render(
            request, "finance_disputes.html", account=account, disputes=raised, answers=answers
        )

    @app.get("/d/{dept:path}/{period:period}/bill.xlsx")
    def bill_xlsx(request: Request, dept: str, period: str):
        account = account_of(request)
        _, s = statement_for(account, dept, period)
        data = bill_workbook(s)
        audit(request, account, "download", s, "bill.xlsx")
        disposition = views.attachment(f"{s.file_stem}.xlsx")
        return Response(data, media_type=XLSX_TYPE, headers={"Content-Disposition": disposition})

    @app.get("/d/{dept:path}/{period:period}/bill.pdf")
    def bill_pdf(request: Request, dept: str, period: str):
        account = account_of(request)
        _, s = statement_for(account, dept, period)
        data, why = views.bill_pdf(s, pdf_slots)
        if data is None:
            raise HTTPException(503, why)
        audit(request, account, "download", s, "bill.pdf")
        disposition = views.attachment(f"{s.file_stem}.pdf")
        return Response(data, media_type=PDF_TYPE, headers={"Content-Disposition": disposition})

    @app.get("/d/{dept:path}/{period:period}/focus.csv")
    def focus(request: Request, dept: str, period: str):
        account = account_of(request)
        _, s = statement_for(account, dept, period)
        audit(request, account, "download", s, "focus.csv")
        disposition = views.attachment(f"{s.file_stem} FOCUS.csv")
        return Response(
            focus_csv(s),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": disposition},
        )

    @app.get("/d/{dept:path}/{period:period}/lines.csv")
    def lines_csv(request: Request, dept: str, period: str):
        account = account_of(request)
        _, s = statement_for(account, dept, period)
        audit(request, account, "download", s, "lines.csv")
        disposition = views.attachment(f"{s.file_stem}.csv")
        return Response(
            views.lines_csv(s),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": disposition},
        )

    @app.get("/d/{dept:path}/{period:period}", response_class=HTMLResponse)
    def bill_page(request: Request, dept: str, period: str):
        account = account_of(request)
        snapshot, s = statement_for(account, dept, period)
        audit(request, account, "view", s)
        return render(
            request,
            "bill.html",
            snapshot=snapshot,
            account=account,
            s=s,
            bill_url=views.dept_url(s),
            may_act=may_act(account, s),
            accepted=store.acceptance(name_key(s.department), s.period, s.run.run_id),
            **dispute_list(snapshot, s),
            # Worked out once per snapshot: the same for every request of this bill.
            **snapshot.page(s, views.bill_sections, snapshot),
        )

    @app.get("/d/{dept:path}/{period:period}/{chart}.svg")
    def chart_svg(request: Request, dept: str, period: str, chart: str):
        """A chart of the bill as SVG, made once per run (scoped like the bill: 404)."""
        account = account_of(request)
        snapshot, s = statement_for(account, dept, period)
        if chart not in CHARTS:
            raise HTTPException(404, "There is no such page.")
        svg = charts.svg(snapshot, name_key(s.department), s, chart)
        return Response(svg, media_type=SVG_TYPE)

    @app.get("/{anything:path}")
    def not_found(request: Request, anything: str):
        raise HTTPException(404, "There is no such page.")

    return app
