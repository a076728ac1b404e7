"""Admin console, API tokens: the tokens of the users an administrator manages; revoke them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response

from inkless.errors import ConflictError, InklessError, NotFoundError, PolicyError
from inkless.web.deps import Caller, RowId, WebServices, get_services
from inkless.web.pages_admin import (
    CONFIRM_FIRST,
    NOT_ALLOWED,
    AdminDep,
    NodeDep,
    RenderDep,
    administration,
    confirmed,
    explain,
    render_console,
)
from inkless.web.render import N_, Renderer

router = APIRouter(include_in_schema=False)

REVOKED = N_("Token “%(name)s” of %(login)s is revoked: it stops working at once.")
ALREADY_REVOKED = N_("That token is already revoked.")
NO_TOKEN = N_("There is no such API token.")


def _page(request: Request, render: Renderer, caller: Caller, node: NodeDep, services: WebServices,
          status_code: int = 200, **extra: object) -> Response:
    admin = administration(node)
    offices = {o.code for o in admin.offices(caller.user)}
    now = node.clock.now()
    rows = [{"token": tok, "state": tok.state(now)} for tok in services.tokens.list() if tok.office_code in offices]
    return render_console(request, render, caller, "admin_tokens.html", "tokens", status_code=status_code,
                          tokens=rows, **extra)


@router.get("/admin/tokens")
def tokens_page(request: Request, node: NodeDep, caller: AdminDep, render: RenderDep) -> Response:
    """Every API token of the offices the caller administers."""
    return _page(request, render, caller, node, get_services(request))


@router.post("/admin/tokens/{token_id}/revoke")
def tokens_revoke(request: Request, token_id: RowId, node: NodeDep, caller: AdminDep, render: RenderDep,
                  confirm: Annotated[str, Form(max_length=5)] = "") -> Response:
    """Revoke a token of a user the caller administers (confirmed)."""
    services = get_services(request)
    try:
        token = services.tokens.get(token_id)
        administration(node).check_office(caller.user, token.office_code)
        if not confirmed(confirm):
            return _page(request, render, caller, node, services, 422, error=render.gettext(request, CONFIRM_FIRST))
        services.tokens.revoke(token_id, actor=caller.user.login)
    except InklessError as exc:
        message = explain(render, request, exc, {ConflictError: ALREADY_REVOKED, NotFoundError: NO_TOKEN,
                                                 PolicyError: NOT_ALLOWED})
        return _page(request, render, caller, node, services, exc.http_status, error=message)
    notice = render.gettext(request, REVOKED) % {"name": token.name, "login": token.user_login}
    return _page(request, render, caller, node, services, notice=notice)
