"""The HTML UI: login (password, TOTP or enrolment, password change), API tokens, logout."""

from __future__ import annotations

from typing import Annotated

import segno
from fastapi import APIRouter, Depends, Form, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from inkless.app import Node
from inkless.audit.model import AuditEvent
from inkless.directory.model import User
from inkless.directory.passwords import check_password_strength
from inkless.errors import AuthenticationError, InklessError, RateLimitedError, ValidationError
from inkless.web.deps import (
    SESSION_COOKIE,
    STAGE_PAGES,
    Caller,
    LoginRedirect,
    RowId,
    WebServices,
    browser_session,
    client_address,
    get_node,
    get_services,
    not_logged_in,
    page_caller,
    same_origin,
)
from inkless.web.render import N_, Renderer
from inkless.web.security import Stage, WebSession

router = APIRouter(include_in_schema=False)

NodeDep = Annotated[Node, Depends(get_node)]
ServicesDep = Annotated[WebServices, Depends(get_services)]
SessionDep = Annotated[WebSession | None, Depends(browser_session)]
CallerDep = Annotated[Caller, Depends(page_caller)]

# Messages shown to users; the catalogs translate them.
WRONG_CREDENTIALS = N_("Wrong login or password.")
WRONG_CODE = N_("Wrong or already used one-time code.")
PASSWORDS_DIFFER = N_("The two passwords are not the same.")
PASSWORD_UNCHANGED = N_("Choose a password different from the first-login password.")
TOO_MANY_ATTEMPTS = N_("Too many failed attempts. Try again in %(minutes)s minutes.")


def renderer(request: Request) -> Renderer:
    """The app's HTML renderer."""
    value = request.app.state.renderer
    assert isinstance(value, Renderer)
    return value


RendererDep = Annotated[Renderer, Depends(renderer)]


def _secure_cookies(node: Node) -> bool:
    return node.settings.base_url.startswith("https://")


def set_session_cookie(response: Response, node: Node, token: str) -> None:
    """The session cookie: HttpOnly, SameSite=Lax, Secure when the node is served over https."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=_secure_cookies(node),
        path="/",
        # No Max-Age: the cookie ends with the browser. The server still ends the session when it is
        # idle too long or reaches session_minutes.
    )


def clear_session_cookie(response: Response, node: Node) -> None:
    """Tell the browser to forget the session cookie."""
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=_secure_cookies(node)
    )


def _redirect(location: str) -> RedirectResponse:
    return RedirectResponse(location, status_code=303)


def _inbox_url(user: User) -> str:
    return f"/offices/{user.office_code}/inbox"


def _next_stage(user: User) -> Stage:
    return Stage.PASSWORD if user.must_change_password else Stage.ACTIVE


def _stage_url(stage: Stage, user: User) -> str:
    return _inbox_url(user) if stage == Stage.ACTIVE else STAGE_PAGES[stage]


def _wait_message(render: Renderer, request: Request, exc: RateLimitedError) -> str:
    minutes = max(1, (exc.retry_after + 59) // 60)
    return render.gettext(request, TOO_MANY_ATTEMPTS) % {"minutes": minutes}


def _require_stage(session: WebSession | None, stage: Stage) -> WebSession:
    if session is None:
        raise LoginRedirect("/login")
    if session.stage != stage:
        raise LoginRedirect(STAGE_PAGES.get(session.stage, "/"))
    return session


# --- entry ------------------------------------------------------------------------------


@router.get("/")
def index(node: NodeDep, session: SessionDep) -> RedirectResponse:
    """The user's inbox, or the next login step."""
    if session is None:
        return _redirect("/login")
    if session.stage != Stage.ACTIVE:
        return _redirect(STAGE_PAGES[session.stage])
    return _redirect(_inbox_url(node.directory.user_by_id(session.user_id)))


# --- step 1: login and password --------------------------------------------------------


@router.get("/login")
def login_form(request: Request, node: NodeDep, session: SessionDep, render: RendererDep) -> Response:
    """The login form (or the inbox, for someone already logged in)."""
    if session is not None and session.stage == Stage.ACTIVE:
        return _redirect(_inbox_url(node.directory.user_by_id(session.user_id)))
    return render.render(request, "login.html", login="")


@router.post("/login", dependencies=[Depends(same_origin), Depends(not_logged_in)])
def login_submit(
    request: Request,
    node: NodeDep,
    services: ServicesDep,
    render: RendererDep,
    login: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    """Check login and password; on success continue with the TOTP (or enrolment) step."""
    login = login.strip().lower()
    client = client_address(request)
    if not login:
        # No account has an empty name: refused at once, neither hashed nor counted, so that empty
        # submissions cost no CPU and cannot push an address (an office behind NAT) to its limit.
        return render.render(
            request, "login.html", status_code=401, login="", error=render.gettext(request, WRONG_CREDENTIALS)
        )
    try:
        with node.db.begin() as conn:
            attempt = services.throttle.reserve(conn, login, client)
    except RateLimitedError as exc:
        # Refused before the password is even looked at: a right guess must not be confirmed either.
        refused = render.render(
            request, "login.html", status_code=429, login=login, error=_wait_message(render, request, exc)
        )
        refused.headers["Retry-After"] = str(exc.retry_after)
        return refused
    try:
        user = node.directory.check_password(login, password)
    except AuthenticationError:
        record_failed_login(node, services, login, client, "password")
        return render.render(
            request,
            "login.html",
            status_code=401,
            login=login,
            error=render.gettext(request, WRONG_CREDENTIALS),
        )
    stage = Stage.TOTP if user.totp_confirmed else Stage.ENROL
    with node.db.begin() as conn:
        # Housekeeping rides on logins: abandoned sessions and stale attempts are dropped here.
        services.throttle.settle(conn, attempt, success=True)
        services.sessions.purge_expired(conn)
        services.throttle.prune(conn)
        token, _ = services.sessions.start(conn, user.id, stage, client, request.headers.get("user-agent"))
    response = _redirect(STAGE_PAGES[stage])
    set_session_cookie(response, node, token)
    return response


def record_failed_login(node: Node, services: WebServices, login: str, client: str, step: str) -> None:
    """Tally or audit a failed attempt (never the secret tried); it was already counted against the login
    rate limit when it was let through (``LoginThrottle.reserve``)."""
    if not login:
        return
    with node.db.begin() as conn:
        if step == "password":
            # Anyone can fail a password: counted in the anonymous tally, not one permanent entry each.
            services.traffic.note(conn, "login", client, "password-failed")
            return
        # A wrong code comes from someone who knew the password (or holds a session): one entry each.
        node.audit.record(conn, AuditEvent(actor=login[:64], action="auth.login_failed", object_type="user",
                                           object_id=login[:64], details={"client": client, "step": step}))


def check_fresh_totp(node: Node, services: WebServices, login: str, code: str, client: str) -> None:
    """Ask a logged-in user to prove again that they hold the authenticator (office seal), rate-limited."""
    # The office seal speaks for the whole office: a live session or token is not enough.
    with node.db.begin() as conn:
        attempt = services.throttle.reserve(conn, login, client)
    try:
        node.directory.verify_totp(login, code)
    except AuthenticationError:
        record_failed_login(node, services, login, client, "office-seal")
        raise
    with node.db.begin() as conn:
        services.throttle.settle(conn, attempt, success=True)


# --- step 2: TOTP, or enrolment --------------------------------------------------------


@router.get("/login/totp")
def totp_form(request: Request, session: SessionDep, render: RendererDep) -> Response:
    """Ask for the one-time code."""
    current = _require_stage(session, Stage.TOTP)
    return render.render(request, "totp.html", csrf_token=current.csrf_token)


@router.post("/login/totp", dependencies=[Depends(same_origin)])
def totp_submit(
    request: Request,
    node: NodeDep,
    services: ServicesDep,
    session: SessionDep,
    render: RendererDep,
    code: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Accept a one-time code once; finish the login (or continue with the password change)."""
    current = _require_stage(session, Stage.TOTP)
    return _second_factor(request, node, services, render, current, code, enrolment=False)


@router.get("/login/enrol")
def enrol_form(request: Request, node: NodeDep, session: SessionDep, render: RendererDep) -> Response:
    """Show the QR code and secret of the user's TOTP key, and ask for a first code."""
    current = _require_stage(session, Stage.ENROL)
    return _enrol_page(request, node, render, current)


@router.post("/login/enrol", dependencies=[Depends(same_origin)])
def enrol_submit(
    request: Request,
    node: NodeDep,
    services: ServicesDep,
    session: SessionDep,
    render: RendererDep,
    code: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Confirm the authenticator app with a first code."""
    current = _require_stage(session, Stage.ENROL)
    return _second_factor(request, node, services, render, current, code, enrolment=True)


def _enrol_page(
    request: Request,
    node: Node,
    render: Renderer,
    session: WebSession,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    user = node.directory.user_by_id(session.user_id)
    secret = node.directory.totp_secret(user.login)
    # Rendered here as inline SVG: no image request, no third-party QR service sees the secret.
    qr_svg = segno.make(node.directory.totp_uri(user.login), error="m").svg_inline(
        scale=5, dark="#000", light="#fff", omitsize=False
    )
    grouped = " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
    return render.render(
        request,
        "enrol.html",
        status_code=status_code,
        csrf_token=session.csrf_token,
        qr_svg=qr_svg,
        secret=grouped,
        login=user.login,
        error=error,
    )


def _second_factor(
    request: Request,
    node: Node,
    services: WebServices,
    render: Renderer,
    session: WebSession,
    code: str,
    *,
    enrolment: bool,
) -> Response:
    client = client_address(request)
    user = node.directory.user_by_id(session.user_id)
    template = "enrol.html" if enrolment else "totp.html"
    try:
        with node.db.begin() as conn:
            attempt = services.throttle.reserve(conn, user.login, client)
    except RateLimitedError as exc:
        message = _wait_message(render, request, exc)
        if enrolment:
            refused = _enrol_page(request, node, render, session, message, 429)
        else:
            refused = render.render(
                request, template, status_code=429, csrf_token=session.csrf_token, error=message
            )
        refused.headers["Retry-After"] = str(exc.retry_after)
        return refused
    try:
        user = node.directory.verify_totp(user.login, code)
    except AuthenticationError:
        # Wrong codes count like wrong passwords: six digits must not be guessable at leisure.
        record_failed_login(node, services, user.login, client, "enrol" if enrolment else "totp")
        message = render.gettext(request, WRONG_CODE)
        if enrolment:
            return _enrol_page(request, node, render, session, message, 401)
        return render.render(request, template, status_code=401, csrf_token=session.csrf_token, error=message)
    stage = _next_stage(user)
    with node.db.begin() as conn:
        services.throttle.settle(conn, attempt, success=True)
        services.throttle.record(conn, user.login, client, success=True)
        token, _ = services.sessions.advance(conn, session, stage, client)
        node.directory.record_login(user.login, conn)
        # (user.totp_enrolled is recorded by the directory, in the transaction that confirms the code.)
        node.audit.record(
            conn,
            AuditEvent(
                actor=user.login,
                action="auth.login",
                object_type="user",
                object_id=user.login,
                details={"client": client, "must_change_password": user.must_change_password},
            ),
        )
    response = _redirect(_stage_url(stage, user))
    set_session_cookie(response, node, token)
    return response


# --- step 3: first-login password change -----------------------------------------------


@router.get("/login/password")
def password_form(request: Request, session: SessionDep, render: RendererDep) -> Response:
    """Ask for a new password (twice)."""
    current = _require_stage(session, Stage.PASSWORD)
    return render.render(request, "password.html", csrf_token=current.csrf_token)


@router.post("/login/password", dependencies=[Depends(same_origin)])
def password_submit(
    request: Request,
    node: NodeDep,
    services: ServicesDep,
    session: SessionDep,
    render: RendererDep,
    new_password: Annotated[str, Form(max_length=1024)] = "",
    new_password_again: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    """Set the new password and open the full session."""
    current = _require_stage(session, Stage.PASSWORD)
    user = node.directory.user_by_id(current.user_id)
    error: str | None = None
    if new_password != new_password_again:
        error = render.gettext(request, PASSWORDS_DIFFER)
    else:
        try:
            # The directory's rules (length, common passwords, login and office code, patterns)
            # are checked first: they need no password hashing, unlike the comparison below.
            check_password_strength(new_password, user.login, user.office_code)
        except ValidationError as exc:
            error = render.error_text(request, exc)
    if error is None:
        try:
            node.directory.check_password(user.login, new_password)
            error = render.gettext(request, PASSWORD_UNCHANGED)
        except AuthenticationError:
            pass
    if error is None:
        try:
            node.directory.set_password(user.login, new_password, actor=user.login)
        except ValidationError as exc:
            error = render.error_text(request, exc)
    if error is not None:
        return render.render(
            request,
            "password.html",
            status_code=422,
            csrf_token=current.csrf_token,
            error=error,
        )
    client = client_address(request)
    with node.db.begin() as conn:
        token, _ = services.sessions.advance(conn, current, Stage.ACTIVE, client)
    response = _redirect(_inbox_url(user))
    set_session_cookie(response, node, token)
    return response


# --- logout ------------------------------------------------------------------------------


@router.post("/logout")
def logout(request: Request, node: NodeDep, services: ServicesDep, session: SessionDep) -> Response:
    """End the session (the row is deleted, the cookie cleared)."""
    if session is not None:
        with node.db.begin() as conn:
            services.sessions.end(conn, session.id)
            login = node.directory.user_by_id(session.user_id, conn).login
            node.audit.record(
                conn,
                AuditEvent(
                    actor=login,
                    action="auth.logout",
                    object_type="user",
                    object_id=login,
                    details={"client": client_address(request)},
                ),
            )
    response = _redirect("/login")
    clear_session_cookie(response, node)
    return response


# --- the office ----------------------------------------------------------------------------


# The inbox page (/offices/{code}/inbox) is served by inkless.web.pages_delivery.


# --- API tokens ----------------------------------------------------------------------------


TOKENS_NOT_FOR_ROLE = N_("API tokens are for administrators and integrators.")


def token_holder(caller: CallerDep) -> Caller:
    """The caller of the API token pages: 403 for clerks and approvers (their menus do not show tokens)."""
    if not caller.user.role.holds_tokens:
        raise HTTPException(status_code=403, detail=TOKENS_NOT_FOR_ROLE)
    return caller


TokenHolderDep = Annotated[Caller, Depends(token_holder)]


@router.get("/tokens")
def tokens_page(request: Request, caller: TokenHolderDep, services: ServicesDep, render: RendererDep) -> Response:
    """The caller's API tokens, and a form to create one."""
    return _tokens_page(request, caller, services, render)


@router.post("/tokens")
def tokens_create(
    request: Request,
    caller: TokenHolderDep,
    services: ServicesDep,
    render: RendererDep,
    name: Annotated[str, Form(max_length=200)] = "",
    expires_days: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    """Create a token for the caller's office; its secret is shown on this page only."""
    try:
        days = int(expires_days) if expires_days.strip() else None
    except ValueError:
        return _tokens_page(
            request,
            caller,
            services,
            render,
            status_code=422,
            error=render.gettext(request, N_("The expiry must be a number of days.")),
        )
    try:
        created = services.tokens.create(
            caller.user.login, caller.office.code, name, days, actor=caller.user.login
        )
    except InklessError as exc:
        return _tokens_page(
            request,
            caller,
            services,
            render,
            status_code=exc.http_status,
            error=render.error_text(request, exc),
        )
    return _tokens_page(
        request, caller, services, render, new_secret=created.secret, new_name=created.token.name
    )


@router.post("/tokens/{token_id}/revoke")
def tokens_revoke(token_id: RowId, caller: TokenHolderDep, services: ServicesDep) -> Response:
    """Revoke one of the caller's tokens."""
    services.tokens.revoke(token_id, actor=caller.user.login, owner=caller.user.login)
    return _redirect("/tokens")


def _tokens_page(
    request: Request,
    caller: Caller,
    services: WebServices,
    render: Renderer,
    status_code: int = 200,
    **context: object,
) -> HTMLResponse:
    tokens = services.tokens.list(caller.user.login)
    now = request.app.state.node.clock.now()
    rows = [{"token": tok, "state": tok.state(now)} for tok in tokens]
    return render.render(
        request,
        "tokens.html",
        status_code=status_code,
        caller=caller,
        csrf_token=_csrf(caller),
        tokens=rows,
        **context,
    )


def _csrf(caller: Caller) -> str:
    return caller.session.csrf_token if caller.session else ""
