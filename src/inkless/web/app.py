"""The web application factory: HTML UI, ``/api/v1``, ``/healthz`` and the node's PKI files."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from inkless import __version__
from inkless.app import Node, node_facts
from inkless.audit.traffic import AnonymousTraffic
from inkless.config import LANGUAGES
from inkless.directory.tokens import ApiTokenService
from inkless.errors import InklessError, RateLimitedError
from inkless.web import api, pages
from inkless.web.deps import LoginGate, LoginRedirect, WebServices
from inkless.web.i18n import LANG_COOKIE, load_all
from inkless.web.limits import BodyGuard
from inkless.web.render import N_, Renderer
from inkless.web.security import LoginThrottle, SessionStore

log = logging.getLogger("inkless.web")

STATIC_DIR = Path(__file__).parent / "static"
API_PREFIX = "/api/v1"

# No inline scripts or styles anywhere in the UI; the QR code is inline SVG markup, not a script.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# Public, cacheable resources; everything else may show personal data and is never stored by caches.
CACHEABLE_PREFIXES = ("/static/", "/pki/", "/healthz")

# The admin console's modules: its menu (pages_admin) and one module per section.
ADMIN_CONSOLE = ("pages_admin", "pages_admin_users", "pages_admin_offices", "pages_admin_peers",
                 "pages_admin_audit", "pages_admin_tokens")

ERROR_TITLES = {
    400: N_("Bad request"),
    401: N_("Not logged in"),
    403: N_("Not allowed"),
    404: N_("Not found"),
    405: N_("Not allowed"),
    408: N_("Request timed out"),
    409: N_("Conflict"),
    413: N_("Too large"),
    422: N_("Invalid input"),
    429: N_("Too many attempts"),
    500: N_("Something went wrong"),
    503: N_("Temporarily unavailable"),
}


SERVER_FAILED = N_("The server could not complete the request.")


def create_app(node: Node) -> FastAPI:
    """The ASGI app serving ``node``."""
    settings = node.settings
    translations = load_all()
    app = FastAPI(
        title="inkless",
        version=__version__,
        description=(
            f"API of the inkless node `{settings.node_id}`. "
            "Authenticate with `Authorization: Bearer <token>` "
            "(an API token scoped to one office) or with a browser session plus the `X-CSRF-Token` header "
            "on state-changing requests. "
            "Numbers start at 1 everywhere: documents of a message, pages of a document, steps of a route "
            "and versions of a route's document (v1 is the first upload)."
        ),
        # No Swagger UI: it loads scripts from a CDN, and a node must work offline under a strict CSP.
        # The OpenAPI document opens in any OpenAPI viewer or generator.
        docs_url=None,
        redoc_url=None,
        openapi_url=f"{API_PREFIX}/openapi.json",
    )
    app.state.node = node
    app.state.web = WebServices(
        sessions=SessionStore(node.db, node.clock, settings.session_minutes),
        throttle=LoginThrottle(
            node.clock,
            settings.login_max_failures,
            settings.login_window_seconds,
            settings.login_backoff_seconds,
            settings.login_address_max_failures,
        ),
        tokens=node.tokens or ApiTokenService(node.db, node.directory, node.audit, node.clock),
        traffic=AnonymousTraffic(
            node.db, node.clock, node.audit, settings.public_requests_per_minute, settings.audit_tally_seconds
        ),
        translations=translations,
    )
    renderer = Renderer(
        translations,
        settings.default_language,
        {"organisation": settings.organisation or settings.node_id, "node_id": settings.node_id},
        timezone=settings.tz,
    )
    app.state.renderer = renderer
    renderer.unread_counter = _unread_counter(node)

    _add_node_routes(app, node)
    from inkless.web import (
        api_delivery,
        api_fax,
        api_routes,
        api_seals,
        pages_delivery,
        pages_fax,
        pages_inbox,
        pages_intake,
        pages_invite,
        pages_routes,
        pages_sessions,
        pages_verify,
        pickers,
    )

    # Peer nodes authenticate every request by its signature: no session, no CSRF token (see docs/federation.md).
    # POST /tsa and the trust bundle are public: no session, no CSRF token.
    included: list[tuple[APIRouter | None, str]] = [
        (pages.router, ""),
        (api.router, API_PREFIX),
        (_optional_router("inkless.web.api_audit"), API_PREFIX),
        (_optional_router("inkless.web.api_federation"), ""),
        (_optional_router("inkless.web.api_peers"), API_PREFIX),
        (api_delivery.router, API_PREFIX),
        (pages_inbox.router, ""),
        (pages_delivery.router, ""),
        (api_seals.router, API_PREFIX),
        (api_seals.public_router, ""),
        (pages_verify.router, ""),
        (api_fax.router, API_PREFIX),
        (pages_fax.router, ""),
        (api_routes.router, API_PREFIX),
        (pages_routes.router, ""),
        (pages_sessions.router, ""),
        (_optional_router("inkless.web.pages_pickup"), ""),
        (_optional_router("inkless.web.pages_notices"), ""),
        (pickers.router, ""),
        (pickers.api_router, API_PREFIX),
        *((importlib.import_module(f"inkless.web.{m}").router, "") for m in ADMIN_CONSOLE),
        (pages_intake.router, ""),
        (pages_invite.router, ""),
        (_optional_router("inkless.web.pages_metrics"), ""),
        (_optional_router("inkless.web.api_metrics"), ""),
    ]
    table: list[tuple[str, APIRoute]] = []
    for router, prefix in included:
        if router is None:
            continue
        app.include_router(router, prefix=prefix)
        table.extend((prefix + route.path, route) for route in router.routes if isinstance(route, APIRoute))
    # Every route with its full path: the login gate and the route-table tests read it.
    app.state.route_table = table
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    refuse = _add_error_handlers(app, renderer)
    # Innermost first: the security headers wrap the body guard's own answers too.
    app.add_middleware(BodyGuard, settings=settings, refuse=refuse, gate=LoginGate(app.state.web, table))
    _add_middleware(app, settings.base_url.startswith("https://"))
    return app


def _optional_router(module: str) -> APIRouter | None:
    try:
        router = importlib.import_module(module).router
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        return None
    assert isinstance(router, APIRouter)
    return router


def _unread_counter(node: Node) -> Callable[[Any], int | None]:
    """Unread messages of the caller's office (None if the node has no delivery service or it fails)."""

    def count(caller: Any) -> int | None:
        if node.delivery is None:
            return None
        from inkless.search.listing import MessageListing

        try:
            return MessageListing(node.delivery, node.settings.tz).unread(caller.office.code, None).total
        except InklessError:
            return None

    return count


def _add_node_routes(app: FastAPI, node: Node) -> None:
    @app.get("/healthz", tags=["node"])
    def healthz() -> JSONResponse:
        """Liveness and identity for a load balancer: node id, database reachable, worker heartbeats, version.

        503 when the database cannot be read: this process can do nothing useful, take it out. Workers
        are reported, not required: a web process serves while the workers are restarted.
        """
        from inkless.metrics.openmetrics import worker_heartbeats

        try:
            facts = node_facts(node)
            workers = worker_heartbeats(node)
        except InklessError as exc:
            log.warning("health check failed: %s", exc)
            return JSONResponse(
                {
                    "status": "unavailable",
                    "node_id": node.node_id,
                    "database": node.settings.backend,
                    "database_reachable": False,
                    "version": __version__,
                },
                status_code=503,
            )
        return JSONResponse(
            {
                "status": "ok",
                "node_id": facts["node_id"],
                "database": facts["database"],
                "database_reachable": True,
                "blobs": "database" if node.settings.blobs_in_database else "files",
                "workers_alive": sum(1 for w in workers if w["alive"]),
                "workers": workers,
                "version": facts["version"],
            }
        )

    @app.get(
        "/pki/ca.pem",
        tags=["node"],
        response_class=Response,
        responses={200: {"content": {"application/x-pem-file": {}}}},
    )
    def ca_pem() -> Response:
        """The node CA certificate (PEM): the trust anchor of every certificate this node issues."""
        from cryptography import x509

        with node.db.begin() as conn:
            der = node.pki.ca_certificate(conn).der
        pem = x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
        return Response(pem, media_type="application/x-pem-file")

    @app.get(
        "/pki/crl",
        tags=["node"],
        response_class=Response,
        responses={200: {"content": {"application/pkix-crl": {}}}},
    )
    def crl() -> Response:
        """The node CA's current certificate revocation list (DER); every certificate points here."""
        with node.db.begin() as conn:
            der = node.pki.crl(conn).public_bytes(serialization.Encoding.DER)
        return Response(der, media_type="application/pkix-crl")


# Browsers remember for two years to reach this host (and its subdomains) over https only.
HSTS = "max-age=63072000; includeSubDomains"


def _add_middleware(app: FastAPI, https: bool) -> None:
    app.add_middleware(SecurityHeaders, https=https)


class SecurityHeaders:
    """The security headers (and the language cookie) on every answer, added as the answer starts.

    A plain ASGI middleware rather than ``@app.middleware("http")``: Starlette's BaseHTTPMiddleware runs every
    chunk of a request body through a task group of its own, which cost a tenth of the receiving server's
    time for each envelope a peer streams in.
    """

    def __init__(self, app: ASGIApp, https: bool) -> None:
        self.app = app
        self.https = https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        path = request.url.path
        lang = request.query_params.get("lang")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                # A route may set a stricter policy (a sender's document is served under "sandbox").
                headers.setdefault("Content-Security-Policy", CSP)
                headers["X-Frame-Options"] = "DENY"
                headers["X-Content-Type-Options"] = "nosniff"
                # No referrer leaves for other sites; same-origin requests keep a real Origin header (with
                # "no-referrer" browsers send "Origin: null", which the login steps cannot tell from a hostile page).
                headers["Referrer-Policy"] = "same-origin"
                if self.https:
                    headers["Strict-Transport-Security"] = HSTS
                if not path.startswith(CACHEABLE_PREFIXES):
                    headers["Cache-Control"] = "no-store"
                if lang in LANGUAGES:
                    # The language link in the header sets the choice for the following pages too.
                    cookie = Response()
                    cookie.set_cookie(LANG_COOKIE, str(lang), max_age=365 * 24 * 3600, samesite="lax", path="/")
                    headers.append("set-cookie", cookie.headers["set-cookie"])
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _is_api(request: Request) -> bool:
    return request.url.path.startswith(API_PREFIX + "/") or request.url.path == API_PREFIX


def _add_error_handlers(
    app: FastAPI, renderer: Renderer
) -> Callable[[Scope, StarletteHTTPException], Awaitable[Response]]:
    def error_page(
        request: Request, status: int, message: str | None, headers: dict[str, str] | None = None,
        *, text: str | None = None,
    ) -> Response:
        title = renderer.gettext(request, ERROR_TITLES.get(status, ERROR_TITLES[500]))
        # Only catalogue sentences reach the page: a framework's English detail ("Method Not Allowed") is
        # left out where the reader's language has no translation of it; the title still says what happened.
        if text is None and message:
            text = renderer.translated(renderer.language(request), message)
        response = renderer.render(
            request, "error.html", status_code=status, title=title, message=text, status=status
        )
        for key, value in (headers or {}).items():
            response.headers[key] = value
        return response

    @app.exception_handler(LoginRedirect)
    async def login_redirect(request: Request, exc: LoginRedirect) -> Response:
        if _is_api(request):
            return JSONResponse({"detail": "authentication required"}, status_code=401)
        return RedirectResponse(exc.location, status_code=303)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(exc.headers or {})
        if _is_api(request):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)
        detail = getattr(exc, "page_detail", exc.detail)
        return error_page(request, exc.status_code, str(detail) if detail else None, headers)

    @app.exception_handler(InklessError)
    async def inkless_error(request: Request, exc: InklessError) -> Response:
        status = exc.http_status
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimitedError) else {}
        if status >= 500:
            log.error("%s on %s %s: %s", type(exc).__name__, request.method, request.url.path, exc)
        if _is_api(request):
            # str() may say more than the translatable message (which field, which character).
            # Server-side failures get a generic message: details belong in the log, not in the browser.
            return JSONResponse({"detail": str(exc) if status < 500 else SERVER_FAILED}, status_code=status,
                                headers=headers)
        # The page says it in the reader's language (the service's sentence from the catalogue, or its kind).
        return error_page(request, status, None, headers, text=renderer.error_text(request, exc))

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> Response:
        # A bug: the browser gets the error page in its language (not the server's plain-text English);
        # the traceback goes to the log (the server error middleware logs it after this answer).
        if _is_api(request):
            return JSONResponse({"detail": SERVER_FAILED}, status_code=500)
        return error_page(request, 500, SERVER_FAILED)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        if _is_api(request):
            return JSONResponse({"detail": _plain_errors(exc)}, status_code=422)
        return error_page(request, 422, N_("The form was not filled in correctly."))

    async def refuse(scope: Scope, exc: StarletteHTTPException) -> Response:
        """An error answered outside any route (the body guard): as the HTTP error handler would."""
        return await http_error(Request(scope), exc)

    return refuse


def _plain_errors(exc: RequestValidationError) -> list[dict[str, object]]:
    # Pydantic's error dicts may hold the rejected input; echo only where and what, never a password.
    return [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
