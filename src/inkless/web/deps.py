"""FastAPI dependencies shared by every router: the node, its web services, and who is asking.

A caller is either a browser session (cookie) or an API token (``Authorization:
Bearer``). Every state-changing request made with a session cookie must carry
the session's CSRF token (form field ``csrf_token`` or header ``X-CSRF-Token``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
from annotated_types import Interval
from babel.support import Translations
from fastapi import Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.dependencies.models import Dependant
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from starlette.routing import compile_path
from starlette.types import Scope

from inkless.app import Node
from inkless.audit.traffic import AnonymousTraffic
from inkless.directory.model import Office, User
from inkless.directory.tokens import ApiTokenService
from inkless.errors import AuthenticationError, RateLimitedError
from inkless.web.render import N_
from inkless.web.security import LoginThrottle, SessionStore, Stage, WebSession, csrf_matches

SESSION_COOKIE = "inkless_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Where each unfinished login stage continues.
# Ids, indexes and page numbers in paths and queries fit the database's INTEGER: a 30-digit number is
# refused with 422 by validation instead of overflowing in the database driver (500).
MAX_ROW_ID = 2**31 - 1
RowId = Annotated[int, Interval(ge=0, le=MAX_ROW_ID)]
STAGE_PAGES = {
    Stage.TOTP: "/login/totp",
    Stage.ENROL: "/login/enrol",
    Stage.PASSWORD: "/login/password",
}


@dataclass
class WebServices:
    """What the web layer keeps beside the node: sessions, login throttle, tokens, catalogs."""

    sessions: SessionStore
    throttle: LoginThrottle
    tokens: ApiTokenService
    traffic: AnonymousTraffic
    translations: dict[str, Translations]


@dataclass(frozen=True)
class Caller:
    """Who is asking: a user acting for an office, through a browser session or an API token."""

    user: User
    office: Office
    session: WebSession | None = None
    via_token: bool = False


class LoginRedirect(Exception):
    """A page needs a logged-in user: send the browser to ``location`` instead."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


def get_node(request: Request) -> Node:
    """The node this app serves (set by the app factory on ``app.state.node``)."""
    node = request.app.state.node
    assert isinstance(node, Node)
    return node


def get_services(request: Request) -> WebServices:
    """The web services built by the app factory."""
    services = request.app.state.web
    assert isinstance(services, WebServices)
    return services


def admit_anonymous(request: Request, endpoint: str) -> None:
    """Count an anonymous request to a public endpoint; 429 with Retry-After when its client is over the limit."""
    services = get_services(request)
    try:
        services.traffic.admit(endpoint, client_address(request))
    except RateLimitedError as exc:
        raise HTTPException(
            status_code=429,
            detail=N_("Too many requests. Try again in a minute."),
            headers={"Retry-After": str(exc.retry_after)},
        ) from None


def client_address(request: Request) -> str:
    """The client's IP address as seen by this process (used for rate limiting and sessions)."""
    return request.client.host if request.client else "unknown"


async def submitted_csrf(request: Request) -> str | None:
    """The CSRF token sent with a request: the header, or the hidden field of a submitted form."""
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    if request.method in SAFE_METHODS:
        return None
    if request.cookies.get(SESSION_COOKIE) is None or request.headers.get("authorization"):
        # No session to protect (a stranger, or a caller with a token): the body is not read for a
        # token nobody will check, so that a route can look things up before it takes an upload.
        return None
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        # Starlette caches the parsed form, so the route's Form() parameters still see it.
        value = (await request.form()).get(CSRF_FIELD)
        return value if isinstance(value, str) else None
    return None


# Where the login gate leaves what it found, so that the route's dependencies do not look it up again.
_SESSION_STATE = "inkless_session"
_TOKEN_STATE = "inkless_token_caller"  # noqa: S105 - a dict key, not a secret


def _session_of(request: Request, services: WebServices) -> WebSession | None:
    state = request.scope.setdefault("state", {})
    if _SESSION_STATE not in state:
        state[_SESSION_STATE] = services.sessions.load(request.cookies.get(SESSION_COOKIE))
    session = state[_SESSION_STATE]
    assert session is None or isinstance(session, WebSession)
    return session


def _bearer_secret(request: Request) -> str | None:
    """The secret of ``Authorization: Bearer``; 401 for another scheme; None without the header."""
    authorization = request.headers.get("authorization")
    if not authorization:
        return None
    scheme, _, secret = authorization.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise HTTPException(
            status_code=401, detail="use 'Authorization: Bearer <token>'", headers={"WWW-Authenticate": "Bearer"}
        )
    return secret.strip()


def _token_caller(request: Request, services: WebServices, secret: str) -> tuple[User, Office]:
    state = request.scope.setdefault("state", {})
    if _TOKEN_STATE not in state:
        try:
            state[_TOKEN_STATE] = services.tokens.authenticate(secret)
        except AuthenticationError as exc:
            raise HTTPException(status_code=401, detail=str(exc), headers={"WWW-Authenticate": "Bearer"}) from None
    found: tuple[User, Office] = state[_TOKEN_STATE]
    return found


def browser_session(
    request: Request,
    services: Annotated[WebServices, Depends(get_services)],
    csrf: Annotated[str | None, Depends(submitted_csrf)],
) -> WebSession | None:
    """The session of the cookie, whatever its stage; 403 for a state change without the right CSRF token."""
    session = _session_of(request, services)
    if (
        session is not None
        and request.method not in SAFE_METHODS
        and not csrf_matches(session.csrf_token, csrf)
    ):
        # The cookie alone proves nothing: another site can make the browser send it.
        raise HTTPException(status_code=403, detail=N_("CSRF token missing or wrong"))
    return session


CROSS_SITE = N_("This form was sent from another site. Open this node's login page and try again.")
ALREADY_LOGGED_IN = N_("You are already logged in. Log out first to log in as someone else.")


def same_origin(request: Request, node: Annotated[Node, Depends(get_node)]) -> None:
    """403 for a form posted from another site (login CSRF): the login steps carry no session yet.

    Browsers say where a form comes from: ``Sec-Fetch-Site`` (same-origin, or none when typed or
    bookmarked), or, in browsers without it, ``Origin`` ("null" is refused: a hostile page can make its
    own origin "null"; ours sends the real one under ``Referrer-Policy: same-origin``). A request with
    neither (a script) is let through; the node's public origin and the host the browser addressed
    both count as this site.
    """
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        # Set by the browser itself and trusted first: the page's referrer policy cannot change it.
        if fetch_site in ("same-origin", "none"):
            return
        raise HTTPException(status_code=403, detail=CROSS_SITE)
    origin = request.headers.get("origin")
    if origin is None:
        return
    base = httpx.URL(node.settings.base_url)
    addressed = f"{request.url.scheme}://{request.headers.get('host', '')}"
    ours = {f"{base.scheme}://{base.netloc.decode('ascii')}", addressed}
    if origin not in ours:
        raise HTTPException(status_code=403, detail=CROSS_SITE)


def not_logged_in(request: Request, services: Annotated[WebServices, Depends(get_services)]) -> None:
    """409 for a login over a live session: one login never silently replaces another."""
    session = _session_of(request, services)
    if session is not None and session.stage == Stage.ACTIVE:
        raise HTTPException(status_code=409, detail=ALREADY_LOGGED_IN)


def _caller_of_session(node: Node, session: WebSession) -> Caller:
    user = node.directory.user_by_id(session.user_id)
    if not user.active or user.locked:
        raise AuthenticationError("this account is disabled")
    return Caller(user=user, office=node.directory.office(user.office_code), session=session)


def page_caller(
    node: Annotated[Node, Depends(get_node)],
    session: Annotated[WebSession | None, Depends(browser_session)],
) -> Caller:
    """The logged-in user of an HTML page; unfinished or missing logins are redirected."""
    if session is None:
        raise LoginRedirect("/login")
    if session.stage != Stage.ACTIVE:
        raise LoginRedirect(STAGE_PAGES[session.stage])
    return _caller_of_session(node, session)


def api_caller(
    request: Request,
    node: Annotated[Node, Depends(get_node)],
    services: Annotated[WebServices, Depends(get_services)],
    csrf: Annotated[str | None, Depends(submitted_csrf)],
) -> Caller:
    """The caller of an API route: a bearer token, or else a fully logged-in browser session."""
    secret = _bearer_secret(request)
    if secret is not None:
        user, office = _token_caller(request, services, secret)
        return Caller(user=user, office=office, via_token=True)
    session = browser_session(request, services, csrf)
    if session is None or session.stage != Stage.ACTIVE:
        raise HTTPException(
            status_code=401, detail="authentication required", headers={"WWW-Authenticate": "Bearer"}
        )
    return _caller_of_session(node, session)


def session_api_caller(caller: Annotated[Caller, Depends(api_caller)]) -> Caller:
    """An API caller with a browser session: 403 for an API token, before its request body is validated.

    A leaked token must not be able to mint successors that outlive its revocation.
    """
    if caller.via_token:
        raise HTTPException(status_code=403, detail="API tokens are created from a browser session or the CLI")
    return caller


def require_admin(caller: Annotated[Caller, Depends(api_caller)]) -> Caller:
    """Allow only an authenticated administrator (session or API token)."""
    if not caller.user.role.administers:
        raise HTTPException(status_code=403, detail=N_("administrators only"))
    return caller


def require_own_office(caller: Caller, office_code: str) -> None:
    """403 unless ``office_code`` is the caller's office: nobody reads other offices' mail, admins too."""
    if caller.office.code != office_code:
        raise HTTPException(status_code=403, detail=N_("You may only open the pages of your own office."))


def _calls(dependant: Dependant) -> set[Any]:
    found = {dependant.call}
    for sub in dependant.dependencies:
        found |= _calls(sub)
    return found


class LoginGate:
    """Refuses a request with a body to a route that needs a login, before the body is read.

    FastAPI reads a route's body before it runs the route's dependencies, so the login check of
    ``api_caller`` / ``page_caller`` alone would come after a stranger's upload was parsed. The gate
    runs the same checks first, for every route whose dependencies include one of them, and leaves
    what it found for those dependencies. CSRF tokens are still checked by the route (they may be a
    form field, which is only read once the caller is known).
    """

    def __init__(self, services: WebServices, routes: list[tuple[str, APIRoute]]) -> None:
        self._services = services
        self._rules: list[tuple[re.Pattern[str], frozenset[str], str]] = []
        for path, route in routes:
            calls = _calls(route.dependant)
            kind = "api" if api_caller in calls else "page" if page_caller in calls else None
            if kind is not None:
                self._rules.append((compile_path(path)[0], frozenset(route.methods or ()), kind))

    def kind(self, method: str, path: str) -> str | None:
        """'api' or 'page' if the route of ``method path`` needs a login, else None."""
        for pattern, methods, kind in self._rules:
            if method in methods and pattern.match(path):
                return kind
        return None

    async def __call__(self, scope: Scope) -> Response | None:
        kind = self.kind(scope["method"], scope["path"])
        if kind is None:
            return None
        request = Request(scope)
        if kind == "api":
            try:
                secret = _bearer_secret(request)
                if secret is not None:
                    await run_in_threadpool(_token_caller, request, self._services, secret)
                    return None
            except HTTPException as exc:
                return JSONResponse({"detail": exc.detail}, status_code=401, headers=exc.headers)
        session = await run_in_threadpool(_session_of, request, self._services)
        if session is not None and session.stage == Stage.ACTIVE:
            return None
        if kind == "api":
            return JSONResponse(
                {"detail": "authentication required"}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
        location = "/login" if session is None else STAGE_PAGES[session.stage]
        return RedirectResponse(location, status_code=303)
