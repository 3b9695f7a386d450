"""Single sign-on: OpenID Connect through Authlib, groups mapped to departments by `Portal Group`.

The authorization-code flow with state, nonce and PKCE (S256), all kept by Authlib
in the signed session cookie between the two legs, so a callback that did not start
in this browser's session is refused (no login CSRF: an attacker cannot finish their
own sign-in in someone else's browser). Starting a sign-in is a form POST with the
page's CSRF token, so another site cannot start one either.

The ID token is checked by Authlib against the provider's JWKS (its signature) and
here for its issuer, its audience (the portal's client id: Authlib alone only checks
``azp``), its expiry (a minute's leeway for clocks) and the nonce. Any failure is a
page that says what was wrong and an audit row — never a 500.

Which departments an SSO user sees is worked out on every request from the groups
the provider gave at sign-in and the `Portal Group` column of the run the portal
shows (portal/groups.py): a mapping changed in the workbook applies from the next
run onwards, to users already signed in too; a group taken away at the provider
applies at the next sign-in. The session keeps only the user's groups that mean
something to the portal (named in Portal Group, or the finance group), so it stays
small however many groups a campus directory gives a person.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
from authlib.integrations.base_client.errors import MismatchingStateError, OAuthError
from authlib.integrations.starlette_client import OAuth
from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from joserfc.errors import BadSignatureError, ClaimError, ExpiredTokenError, JoseError
from starlette.concurrency import run_in_threadpool

from costloop.errors import EXIT_USAGE, PortalError
from costloop.portal.groups import SEPARATOR, group_names
from costloop.portal.snapshot import Snapshot
from costloop.portal.store import Account, Store

CALLBACK = "/login/sso/callback"
LEEWAY = 60
"""Seconds of clock difference allowed between this server and the provider."""

ENVIRONMENT = {
    "COSTLOOP_OIDC_ISSUER": "the provider's issuer URL (discovery at "
    "ISSUER/.well-known/openid-configuration)",
    "COSTLOOP_OIDC_CLIENT_ID": "the portal's client id at the provider",
    "COSTLOOP_OIDC_CLIENT_SECRET": "the portal's client secret at the provider",
    "COSTLOOP_OIDC_GROUPS_CLAIM": "the claim that lists the user's groups (default groups)",
    "COSTLOOP_OIDC_FINANCE_GROUP": "the group whose members are finance (several: separate "
    "them with ;)",
    "COSTLOOP_OIDC_SCOPES": "the scopes asked for (default openid profile email)",
    "COSTLOOP_OIDC_REDIRECT_BASE": "the portal's public URL, as the browser sees it "
    "(behind a reverse proxy)",
}
"""The environment variables single sign-on reads (docs/portal.md#single-sign-on)."""
_REQUIRED = ("COSTLOOP_OIDC_ISSUER", "COSTLOOP_OIDC_CLIENT_ID", "COSTLOOP_OIDC_CLIENT_SECRET")


class SsoSetupError(PortalError):
    """The COSTLOOP_OIDC_* environment variables are incomplete or wrong (exit 2)."""

    exit_code = EXIT_USAGE


class SignInRefused(PortalError):
    """A single sign-on that ended without a session; its message is for the user."""

    def __init__(self, message: str, status: int = 401, detail: str = "", user: str = ""):
        super().__init__(message)
        self.status = status
        self.detail = detail or message
        self.user = user


class NoDepartment(PortalError):
    """A signed-in SSO user none of whose groups sees a department (any more)."""

    def __init__(self, user: str, groups: list[str]):
        super().__init__(user)
        self.user = user
        self.groups = groups


def _loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def _http_url(name: str, value: str) -> str:
    """An https URL (plain http only on this machine, for trying things out)."""
    parts = urlsplit(value)
    if parts.scheme == "https" and parts.hostname:
        return value.rstrip("/")
    if parts.scheme == "http" and _loopback(parts.hostname):
        return value.rstrip("/")
    raise SsoSetupError(
        f"{name}={value!r}: give an https:// URL (plain http:// only for 127.0.0.1 or localhost)"
    )


@dataclass(frozen=True)
class SsoConfig:
    """Where the provider is and who the portal is there (never read from the workbook)."""

    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    groups_claim: str = "groups"
    finance_groups: frozenset[str] = frozenset()
    scopes: str = "openid profile email"
    redirect_base: str | None = None
    """The portal's public base URL; None: the URL the request came in on."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "issuer", _http_url("COSTLOOP_OIDC_ISSUER", self.issuer))
        if self.redirect_base:
            base = _http_url("COSTLOOP_OIDC_REDIRECT_BASE", self.redirect_base)
            object.__setattr__(self, "redirect_base", base)
        if "openid" not in self.scopes.split():
            raise SsoSetupError(
                f"COSTLOOP_OIDC_SCOPES={self.scopes!r} must include openid (sign-in is "
                "OpenID Connect)"
            )

    @property
    def origin(self) -> str:
        parts = urlsplit(self.issuer)
        return f"{parts.scheme}://{parts.netloc}"

    @classmethod
    def from_environment(cls, env: Mapping[str, str] = os.environ) -> SsoConfig | None:
        """The config from COSTLOOP_OIDC_*; None when none of the three is set."""
        given = {k: env.get(k, "").strip() for k in ENVIRONMENT}
        if not any(given[k] for k in _REQUIRED):
            return None
        missing = [k for k in _REQUIRED if not given[k]]
        if missing:
            raise SsoSetupError(
                f"single sign-on needs {', '.join(missing)} too (set all of "
                f"{', '.join(_REQUIRED)}, or none for local accounts only)"
            )
        return cls(
            issuer=given["COSTLOOP_OIDC_ISSUER"],
            client_id=given["COSTLOOP_OIDC_CLIENT_ID"],
            client_secret=given["COSTLOOP_OIDC_CLIENT_SECRET"],
            groups_claim=given["COSTLOOP_OIDC_GROUPS_CLAIM"] or "groups",
            finance_groups=frozenset(group_names(given["COSTLOOP_OIDC_FINANCE_GROUP"])),
            scopes=given["COSTLOOP_OIDC_SCOPES"] or "openid profile email",
            redirect_base=given["COSTLOOP_OIDC_REDIRECT_BASE"] or None,
        )


def content_security_policy(policy: str, config: SsoConfig) -> str:
    """The pages' policy with the provider's origin allowed as a form's target: the
    sign-in button's POST is answered by a redirect there, and browsers hold a form's
    redirects to ``form-action`` too."""
    return policy.replace("form-action 'self'", f"form-action 'self' {config.origin}")


def account(config: SsoConfig, session: Mapping, snapshot: Snapshot) -> Account:
    """The signed-in SSO user's account, from their groups and the shown run's mapping."""
    sso = session["sso"]
    groups = list(sso.get("groups", ()))
    finance = any(g in config.finance_groups for g in groups)
    departments = frozenset(k for g in groups for k in snapshot.groups.get(g, ()))
    # Without any good run there is no mapping yet: that is the workbook's problem to
    # show (to finance), not a sign that this user lost their department.
    if not finance and not departments and snapshot.ok:
        raise NoDepartment(session.get("user", ""), groups)
    return Account(session["user"], finance, departments)


def _codes(snapshot: Snapshot, keys: frozenset[str]) -> str:
    """The departments' codes as written in the workbook (for the audit log)."""
    codes = []
    for key in sorted(keys):
        periods = snapshot.periods_of(key)
        codes.append(snapshot.statement(key, periods[-1]).department if periods else key)
    return ", ".join(codes)


def _user_name(claims: Mapping) -> str:
    for claim in ("preferred_username", "email", "sub"):
        value = claims.get(claim)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def _groups_of(claims: Mapping, claim: str) -> list[str] | None:
    """The groups claim as a list of names; None when the claim is not there."""
    value = claims.get(claim)
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise SignInRefused(
        f"The sign-in service sent a {claim} claim that is not a list of group names; "
        "ask the portal's administrator to check COSTLOOP_OIDC_GROUPS_CLAIM.",
        detail=f"single sign-on: the {claim} claim is not a list of names",
    )


def _why_token_refused(exc: JoseError, config: SsoConfig) -> str:
    """The user's sentence for an ID token that did not pass (the detail is in the log)."""
    if isinstance(exc, ExpiredTokenError):
        return (
            "The sign-in token has expired: check that this server's clock and the "
            "sign-in service's agree, then sign in again."
        )
    if isinstance(exc, BadSignatureError):
        return (
            "The sign-in token is not signed by a key the sign-in service publishes "
            "(its JWKS); it was refused."
        )
    if isinstance(exc, ClaimError):
        claim = exc.claim
        if claim == "aud":
            return (
                f"The sign-in token was issued for another application, not this portal "
                f"(client id {config.client_id}); it was refused."
            )
        if claim == "iss":
            return f"The sign-in token was not issued by {config.issuer}; it was refused."
        if claim == "nonce":
            return (
                "The sign-in token belongs to another sign-in (its nonce does not match); "
                "it was refused. Start again from the sign-in page."
            )
        return f"The sign-in token's {claim} claim is wrong; it was refused."
    return f"The sign-in token could not be read ({exc.error}); it was refused."


class SingleSignOn:
    """The OpenID Connect client of one portal, and its two routes."""

    def __init__(self, config: SsoConfig):
        self.config = config
        self.oauth = OAuth()
        self.client = self.oauth.register(
            name="sso",
            client_id=config.client_id,
            client_secret=config.client_secret,
            server_metadata_url=f"{config.issuer}/.well-known/openid-configuration",
            client_kwargs={"scope": config.scopes, "code_challenge_method": "S256"},
        )

    def redirect_uri(self, request: Request) -> str:
        base = self.config.redirect_base or str(request.base_url).rstrip("/")
        return base + CALLBACK

    async def metadata(self) -> dict:
        metadata = await self.client.load_server_metadata()
        if metadata.get("issuer", "").rstrip("/") != self.config.issuer:
            # OpenID Connect Discovery: the document must name the issuer it was asked for.
            raise SignInRefused(
                f"The sign-in service at {self.config.issuer} describes itself as issuer "
                f"{metadata.get('issuer')!r}; check COSTLOOP_OIDC_ISSUER.",
                status=503,
            )
        endpoint = urlsplit(metadata.get("authorization_endpoint", ""))
        if f"{endpoint.scheme}://{endpoint.netloc}" != self.config.origin:
            raise SignInRefused(
                "The sign-in service's authorization endpoint is on another site than its "
                f"issuer ({metadata.get('authorization_endpoint')}); the portal only sends "
                f"browsers to {self.config.origin}.",
                status=503,
            )
        return metadata

    async def start(self, request: Request):
        try:
            await self.metadata()
            return await self.client.authorize_redirect(request, self.redirect_uri(request))
        except httpx.HTTPError as exc:
            raise SignInRefused(
                f"The sign-in service at {self.config.issuer} cannot be reached "
                f"({type(exc).__name__}); try again in a moment.",
                status=503,
            ) from exc

    async def finish(self, request: Request) -> tuple[str, str, list[str]]:
        """(user name, subject, groups) of a callback whose ID token passed every check."""
        error = request.query_params.get("error")
        if error:
            said = request.query_params.get("error_description") or error
            raise SignInRefused(
                f"The sign-in service did not sign you in: {said}.",
                detail=f"single sign-on: the provider answered {error}: {said}",
            )
        claims_options = {
            "iss": {"essential": True, "value": self.config.issuer},
            "aud": {"essential": True, "value": self.config.client_id},
            "exp": {"essential": True},
            "sub": {"essential": True},
        }
        try:
            await self.metadata()
            token = await self.client.authorize_access_token(
                request, claims_options=claims_options, leeway=LEEWAY
            )
        except MismatchingStateError as exc:
            raise SignInRefused(
                "This sign-in did not start from this browser's sign-in page, or it took "
                "too long (its state does not match). Start again from the sign-in page.",
                detail="single sign-on: state does not match the session",
            ) from exc
        except OAuthError as exc:
            raise SignInRefused(
                f"The sign-in service refused to complete the sign-in ({exc.error}: "
                f"{exc.description}). Start again from the sign-in page.",
                detail=f"single sign-on: token request refused: {exc.error}",
            ) from exc
        except JoseError as exc:
            raise SignInRefused(
                _why_token_refused(exc, self.config),
                detail=f"single sign-on: ID token refused: {type(exc).__name__} {exc}",
            ) from exc
        except httpx.HTTPError as exc:
            raise SignInRefused(
                f"The sign-in service at {self.config.issuer} cannot be reached "
                f"({type(exc).__name__}); try again in a moment.",
                status=503,
            ) from exc
        claims = token.get("userinfo")
        if not claims:
            raise SignInRefused(
                "The sign-in service sent no ID token; the portal signs in with OpenID "
                "Connect only.",
                detail="single sign-on: no ID token",
            )
        groups = _groups_of(claims, self.config.groups_claim)
        if groups is None:
            groups = await self._groups_from_userinfo(token, claims)
        return _user_name(claims), claims["sub"], groups

    async def _groups_from_userinfo(self, token: dict, claims: Mapping) -> list[str]:
        """Many providers put groups at the UserInfo endpoint only, not in the ID token."""
        try:
            info = await self.client.userinfo(token=token)
        except (httpx.HTTPError, OAuthError) as exc:
            raise SignInRefused(
                "The sign-in service's user information could not be read; try again.",
                status=503,
                detail=f"single sign-on: userinfo failed: {type(exc).__name__}",
            ) from exc
        if info.get("sub") != claims["sub"]:
            # OpenID Connect Core 5.3.2: UserInfo of another subject must not be used.
            raise SignInRefused(
                "The sign-in service's user information is of another user; it was refused.",
                detail="single sign-on: userinfo sub differs from the ID token's",
            )
        return _groups_of(info, self.config.groups_claim) or []


def install(
    app: FastAPI,
    config: SsoConfig,
    store: Store,
    current: Callable[[], Snapshot],
    render: Callable[..., HTMLResponse],
    check_csrf: Callable[[Request, str | None], None],
    address: Callable[[Request], str],
    session_seconds: float,
) -> SingleSignOn:
    """Add /login/sso (start) and /login/sso/callback (finish) to the portal."""
    sso = SingleSignOn(config)

    async def audit(request: Request, user: str, action: str, detail: str) -> None:
        # The database call off the event loop, as the portal's other routes make theirs.
        await run_in_threadpool(store.audit, user, address(request), action, detail=detail)

    async def refused(request: Request, exc: SignInRefused) -> HTMLResponse:
        await audit(request, exc.user or "(single sign-on)", "sign-in failed", exc.detail)
        return render(request, "sso_refused.html", exc.status, message=str(exc))

    def no_department(request: Request, user: str, groups: list[str]) -> HTMLResponse:
        return render(
            request,
            "no_department.html",
            403,
            user=user,
            groups=groups,
            claim=config.groups_claim,
            separator=SEPARATOR,
        )

    @app.exception_handler(NoDepartment)
    async def _no_department(request: Request, exc: NoDepartment):
        # The workbook's mapping changed under a signed-in user: their session ends here.
        groups = ", ".join(exc.groups) or "none"
        await audit(
            request, exc.user, "sign-out", f"single sign-on: no department for groups: {groups}"
        )
        request.session.clear()
        return no_department(request, exc.user, exc.groups)

    @app.post("/login/sso")
    async def sso_start(request: Request, csrf_token: str | None = Form(None)):
        check_csrf(request, csrf_token)
        try:
            return await sso.start(request)
        except SignInRefused as exc:
            return await refused(request, exc)

    @app.get(CALLBACK)
    async def sso_callback(request: Request):
        try:
            user, subject, groups = await sso.finish(request)
        except SignInRefused as exc:
            return await refused(request, exc)
        snapshot = current()
        meaningful = set(snapshot.groups) | config.finance_groups
        kept = sorted(g for g in dict.fromkeys(groups) if g in meaningful)
        session = {"user": user, "sso": {"sub": subject, "groups": kept}}
        try:
            signed_in = account(config, session, snapshot)
        except NoDepartment:
            listed = ", ".join(groups) or "none"
            await audit(
                request,
                user,
                "sign-in refused",
                f"single sign-on (sub {subject}): no department for groups: {listed}",
            )
            return no_department(request, user, groups)
        if not snapshot.ok and not signed_in.finance:
            # No good run yet, so no mapping to read; finance may come in and see why.
            why = SignInRefused(
                "The portal has no bills to show yet (the workbook has no good run); "
                "try again later.",
                status=503,
                detail="single sign-on: the workbook has no good run",
                user=user,
            )
            return await refused(request, why)
        # A new session on sign-in, as for a local account (the state keys go with it).
        request.session.clear()
        request.session.update(session)
        request.session["expires"] = time.time() + session_seconds
        request.session["csrf"] = secrets.token_urlsafe(32)
        if signed_in.finance:
            sees = "every department (finance)"
        else:
            sees = _codes(snapshot, signed_in.departments)
        await audit(
            request,
            user,
            "sign-in",
            f"single sign-on (sub {subject}); groups used: {', '.join(kept)}; sees {sees}",
        )
        return RedirectResponse("/", status_code=303)

    return sso
