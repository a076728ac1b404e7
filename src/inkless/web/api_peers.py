"""``/api/v1/peers``: what ``inkless peer`` does, for administrators (API token or session with CSRF token)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from inkless.app import Node
from inkless.directory.peers import Peer, PeerService, RefreshResult
from inkless.errors import AuthenticationError, ConfigurationError, PeerUnreachableError
from inkless.web.deps import Caller, get_node, require_admin

router = APIRouter(tags=["federation"])

AdminDep = Annotated[Caller, Depends(require_admin)]
NodeDep = Annotated[Node, Depends(get_node)]
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing, invalid, expired or revoked credentials"},
    403: {"description": "Not an administrator, or a missing CSRF token"},
}


class PeerIn(BaseModel):
    """A node to pin: its base URL and the CA fingerprint obtained out of band."""

    url: str = Field(max_length=300, examples=["https://inkless.npa.example.jp"])
    fingerprint: str = Field(max_length=120, examples=["SHA256:3F2A…"])


class RefreshOut(BaseModel):
    """The outcome of fetching one peer's signed office directory."""

    node_id: str
    ok: bool
    offices: int
    changed: bool
    error: str | None


class PeerOut(BaseModel):
    """A pinned peer node."""

    node_id: str
    url: str
    fingerprint: str
    added_at: datetime
    last_seen_at: datetime | None
    unreachable_since: datetime | None
    last_error: str | None
    directory_fetched_at: datetime | None
    offices: int


class NewPeerOut(PeerOut):
    """A peer just pinned, with the first directory fetch (fails until the peer pins this node too)."""

    directory: RefreshOut


def _peers(node: Node) -> PeerService:
    if not isinstance(node.peers, PeerService):
        raise ConfigurationError("federation is not available on this node")
    return node.peers


def _out(peer: Peer) -> PeerOut:
    return PeerOut(
        node_id=peer.node_id, url=peer.url, fingerprint=peer.fingerprint, added_at=peer.added_at,
        last_seen_at=peer.last_seen_at, unreachable_since=peer.unreachable_since, last_error=peer.last_error,
        directory_fetched_at=peer.directory_fetched_at, offices=peer.office_count,
    )


def _result(result: RefreshResult) -> RefreshOut:
    return RefreshOut(node_id=result.node_id, ok=result.ok, offices=result.offices, changed=result.changed,
                      error=result.error)


@router.get("/peers", response_model=list[PeerOut], responses=ERRORS)
def list_peers(caller: AdminDep, node: NodeDep) -> list[PeerOut]:
    """The pinned peers, their state and their directories."""
    return [_out(p) for p in _peers(node).all()]


@router.post("/peers", response_model=NewPeerOut, status_code=201, responses=ERRORS)
async def add_peer(body: PeerIn, caller: AdminDep, node: NodeDep) -> NewPeerOut:
    """Pin a node if its CA has this fingerprint (422 naming both fingerprints if not; nothing stored)."""
    try:
        peer, result = await run_in_threadpool(_peers(node).add, body.url, body.fingerprint, caller.user.login)
    except AuthenticationError as exc:
        # The caller is authenticated; it is the peer that failed to prove who it is.
        raise HTTPException(status_code=422, detail=str(exc)) from None
    except PeerUnreachableError as exc:
        raise HTTPException(status_code=502, detail=str(exc)) from None
    return NewPeerOut(**_out(peer).model_dump(), directory=_result(result))


@router.post("/peers/{node_id}/refresh", response_model=RefreshOut, responses=ERRORS)
async def refresh_peer(node_id: str, caller: AdminDep, node: NodeDep) -> RefreshOut:
    """Fetch the peer's signed office directory now."""
    [result] = await run_in_threadpool(_peers(node).refresh, node_id, caller.user.login)
    return _result(result)


@router.delete("/peers/{node_id}", status_code=204, responses=ERRORS)
def remove_peer(node_id: str, caller: AdminDep, node: NodeDep) -> None:
    """Unpin a peer: its requests are refused from now on."""
    _peers(node).remove(node_id, actor=caller.user.login)
