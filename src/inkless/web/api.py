"""``/api/v1``: JSON for automation, authenticated by API token or by a browser session."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from inkless.app import Node
from inkless.directory.model import Clearance, Office
from inkless.directory.tokens import ApiToken
from inkless.web.api_delivery import InboxMessageOut, inbox_messages
from inkless.web.deps import (
    Caller,
    RowId,
    WebServices,
    api_caller,
    client_address,
    get_node,
    get_services,
    session_api_caller,
)
from inkless.web.pages_sessions import end_sessions
from inkless.web.security import session_ref

router = APIRouter()

CallerDep = Annotated[Caller, Depends(api_caller)]
NodeDep = Annotated[Node, Depends(get_node)]
ServicesDep = Annotated[WebServices, Depends(get_services)]

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing, invalid, expired or revoked credentials"},
    403: {"description": "Authenticated, but not allowed (another office, or a missing CSRF token)"},
}


class OfficeOut(BaseModel):
    """An office of this node."""

    code: str = Field(examples=["civil-affairs"])
    name: str = Field(examples=["民事局"])
    address: str = Field(examples=["civil-affairs@moj"], description="code@node, the delivery address")
    fax_number: str | None = None


class MeOut(BaseModel):
    """The authenticated user and the office they act for."""

    login: str
    display_name: str
    role: str = Field(description="clerk, approver, integrator, admin or operator")
    clearance: int = Field(
        ge=0, le=3, description="0 public, 1 internal, 2 confidential, 3 strictly confidential"
    )
    clearance_label: str = Field(examples=["秘"])
    office: OfficeOut
    auth: str = Field(description="'token' or 'session'")


class InboxOut(BaseModel):
    """The messages addressed to an office, newest first."""

    office: str = Field(description="code@node")
    messages: list[InboxMessageOut] = Field(default_factory=list)


class TokenIn(BaseModel):
    """A token to create, scoped to the caller's office."""

    name: str = Field(min_length=1, max_length=100, examples=["scanner upload"])
    expires_days: int | None = Field(
        default=None, ge=1, le=3650, description="omit for a token that never expires"
    )


class TokenOut(BaseModel):
    """An API token (never its secret)."""

    id: int
    name: str
    office: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    state: str = Field(description="active, expired or revoked")


class NewTokenOut(TokenOut):
    """A token just created; ``token`` is the secret, shown this once."""

    token: str = Field(description="send as 'Authorization: Bearer <token>'; it cannot be shown again")


def _office_out(node: Node, office: Office) -> OfficeOut:
    return OfficeOut(
        code=office.code, name=office.name, address=office.address(node.node_id), fax_number=office.fax_number
    )


def _token_out(token: ApiToken, now: datetime) -> TokenOut:
    return TokenOut(
        id=token.id,
        name=token.name,
        office=token.office_code,
        created_at=token.created_at,
        expires_at=token.expires_at,
        last_used_at=token.last_used_at,
        revoked_at=token.revoked_at,
        state=token.state(now),
    )


@router.get("/me", response_model=MeOut, responses=ERRORS, tags=["directory"])
def me(caller: CallerDep, node: NodeDep) -> MeOut:
    """Who am I: the user behind this token or session, and their office."""
    return MeOut(
        login=caller.user.login,
        display_name=caller.user.display_name,
        role=caller.user.role.value,
        clearance=caller.user.clearance,
        clearance_label=Clearance.LABELS[caller.user.clearance],
        office=_office_out(node, caller.office),
        auth="token" if caller.via_token else "session",
    )


@router.get("/offices", response_model=list[OfficeOut], responses=ERRORS, tags=["directory"])
def offices(caller: CallerDep, node: NodeDep) -> list[OfficeOut]:
    """The directory of this node's offices."""
    return [_office_out(node, o) for o in node.directory.offices()]


@router.get("/offices/{code}/inbox", response_model=InboxOut, responses=ERRORS, tags=["delivery"])
def office_inbox(code: str, caller: CallerDep, node: NodeDep) -> InboxOut:
    """The inbox of the caller's own office (403 for any other office); subjects only where cleared."""
    return InboxOut(office=caller.office.address(node.node_id), messages=inbox_messages(node, caller, code))


@router.get("/tokens", response_model=list[TokenOut], responses=ERRORS, tags=["tokens"])
def list_tokens(caller: CallerDep, node: NodeDep, services: ServicesDep) -> list[TokenOut]:
    """The caller's API tokens, newest first."""
    now = node.clock.now()
    return [_token_out(t, now) for t in services.tokens.list(caller.user.login)]


@router.post("/tokens", response_model=NewTokenOut, status_code=201, responses=ERRORS, tags=["tokens"])
def create_token(
    body: TokenIn, caller: Annotated[Caller, Depends(session_api_caller)], node: NodeDep, services: ServicesDep
) -> NewTokenOut:
    """Create a token for the caller's office (from a browser session only); the secret is returned once."""
    created = services.tokens.create(
        caller.user.login, caller.office.code, body.name, body.expires_days, actor=caller.user.login
    )
    out = _token_out(created.token, node.clock.now())
    return NewTokenOut(**out.model_dump(), token=created.secret)


@router.delete("/tokens/{token_id}", response_model=TokenOut, responses=ERRORS, tags=["tokens"])
def revoke_token(token_id: RowId, caller: CallerDep, node: NodeDep, services: ServicesDep) -> TokenOut:
    """Revoke one of the caller's tokens (404 for tokens of others)."""
    revoked = services.tokens.revoke(token_id, actor=caller.user.login, owner=caller.user.login)
    return _token_out(revoked, node.clock.now())


class SessionOut(BaseModel):
    """One of the caller's browser sessions."""

    ref: str = Field(description="use with DELETE /sessions/{ref}")
    user_agent: str
    client: str = Field(description="the address the browser logged in from")
    created_at: datetime
    last_seen_at: datetime
    current: bool = Field(description="the session this request was made with")


class SessionsEndedOut(BaseModel):
    """How many sessions were signed out."""

    ended: int


@router.get("/sessions", response_model=list[SessionOut], responses=ERRORS, tags=["sessions"])
def list_sessions(caller: CallerDep, node: NodeDep, services: ServicesDep) -> list[SessionOut]:
    """The caller's browser sessions, most recently used first."""
    with node.db.begin() as conn:
        infos = services.sessions.of_user(conn, caller.user.id)
    current = session_ref(caller.session.id) if caller.session else ""
    return [SessionOut(ref=i.ref, user_agent=i.user_agent, client=i.client, created_at=i.created_at,
                       last_seen_at=i.last_seen_at, current=i.ref == current) for i in infos]


@router.delete("/sessions/{ref}", response_model=SessionsEndedOut, responses=ERRORS, tags=["sessions"])
def end_session(ref: str, request: Request, caller: CallerDep, node: NodeDep,
                services: ServicesDep) -> SessionsEndedOut:
    """Sign out one of the caller's sessions (404 if the caller has none of that name)."""
    ended = end_sessions(node, services, caller, client_address(request), ref[:32])
    if not ended:
        raise HTTPException(status_code=404, detail="no such session")
    return SessionsEndedOut(ended=ended)


@router.post("/sessions/end-all", response_model=SessionsEndedOut, responses=ERRORS, tags=["sessions"])
def end_all_sessions(request: Request, caller: CallerDep, node: NodeDep, services: ServicesDep) -> SessionsEndedOut:
    """Sign out everywhere: every browser session of the caller (with a token: all of them)."""
    return SessionsEndedOut(ended=end_sessions(node, services, caller, client_address(request), None))
