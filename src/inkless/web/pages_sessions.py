"""The user's own browser sessions: where they are logged in, sign out one of them, or everywhere."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import RedirectResponse

from inkless.app import Node
from inkless.audit.model import AuditEvent
from inkless.web.deps import Caller, WebServices, client_address, get_node, get_services, page_caller
from inkless.web.pages import RendererDep, clear_session_cookie
from inkless.web.render import N_
from inkless.web.security import session_ref

router = APIRouter(include_in_schema=False)

NodeDep = Annotated[Node, Depends(get_node)]
ServicesDep = Annotated[WebServices, Depends(get_services)]
CallerDep = Annotated[Caller, Depends(page_caller)]

ENDED = N_("The session was signed out.")


def end_sessions(node: Node, services: WebServices, caller: Caller, client: str, ref: str | None,
                 keep: str | None = None) -> int:
    """End the caller's session ``ref`` (or every one but ``keep``), audited; returns how many ended."""
    with node.db.begin() as conn:
        ended = services.sessions.end_of_user(conn, caller.user.id, ref=ref, keep=keep)
        if ended:
            node.audit.record(conn, AuditEvent(
                actor=caller.user.login, action="auth.sessions_ended", object_type="user",
                object_id=caller.user.login, details={"client": client, "count": ended, "all": ref is None}))
    return ended


@router.get("/sessions")
def sessions_page(request: Request, node: NodeDep, caller: CallerDep, services: ServicesDep,
                  render: RendererDep) -> Response:
    """The caller's sessions: browser, address, login time and last use (JST)."""
    with node.db.begin() as conn:
        infos = services.sessions.of_user(conn, caller.user.id)
    current = session_ref(caller.session.id) if caller.session else ""
    rows = [{"info": info, "current": info.ref == current} for info in infos]
    notice = render.gettext(request, ENDED) if "ended" in request.query_params else None
    return render.render(request, "sessions.html", caller=caller, csrf_token=caller.session.csrf_token
                         if caller.session else "", sessions=rows, notice=notice)


@router.post("/sessions/{ref}/end")
def end_one(request: Request, ref: str, node: NodeDep, caller: CallerDep, services: ServicesDep) -> Response:
    """Sign out one of the caller's sessions (their own current one included)."""
    end_sessions(node, services, caller, client_address(request), ref[:32])
    if caller.session is not None and session_ref(caller.session.id) == ref:
        response = RedirectResponse("/login", status_code=303)
        clear_session_cookie(response, node)
        return response
    return RedirectResponse("/sessions?ended=1", status_code=303)


@router.post("/sessions/end-all")
def end_all(request: Request, node: NodeDep, caller: CallerDep, services: ServicesDep) -> Response:
    """Sign out everywhere: every session of the caller, this one too."""
    end_sessions(node, services, caller, client_address(request), None)
    response = RedirectResponse("/login", status_code=303)
    clear_session_cookie(response, node)
    return response

