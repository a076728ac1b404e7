"""Admin console, peer nodes: pin by comparing fingerprints read aloud, refresh, unpin.

Pinning over the telephone: this page shows this node's own CA fingerprint in groups of four
characters for reading aloud, and the fingerprint the other node presents now. The administrator
types what the other side's administrator reads out; the peer is pinned only if that typed value
equals what the node presents (the peer service compares them again, with nothing stored otherwise).
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from inkless.app import Node
from inkless.directory.peers import PeerService, normalise_fingerprint, normalise_url
from inkless.errors import (
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    DeliveryError,
    InklessError,
    NotFoundError,
    ValidationError,
)
from inkless.web.deps import Caller
from inkless.web.pages_admin import CONFIRM_FIRST, AdminDep, NodeDep, RenderDep, confirmed, explain, render_console
from inkless.web.render import N_, Renderer

router = APIRouter(include_in_schema=False)

BAD_URL = N_("Enter the other node's address, beginning with https:// (or http:// on a test network).")
BAD_FINGERPRINT = N_(
    "Type the fingerprint as the other side reads it: 64 letters and digits (0-9, A-F), spaces "
    "allowed."
)
MISMATCH = N_(
    "The fingerprint you typed is not the one that node presents. Nothing was pinned. Read it "
    "again with the other node's administrator, and check the address."
)
UNREACHABLE = N_(
    "The node at that address could not be reached, or did not answer as an inkless node. "
    "Nothing was pinned."
)
ALREADY = N_("That node is already pinned.")
NOT_PINNED = N_("That node is not pinned.")
REFUSED = N_("The node could not be pinned: its address or its signed document is not right. Nothing was pinned.")
PINNED = N_("Node %(node)s is pinned.")
PINNED_NO_DIRECTORY = N_("Node %(node)s is pinned. Its office directory follows once that node pins this one too.")
REFRESHED = N_("The office directory of %(node)s was refreshed: %(offices)s offices.")
NOT_REFRESHED = N_("The office directory of %(node)s could not be fetched now; it is tried again later.")
UNPINNED = N_("Node %(node)s is unpinned: its requests are refused from now on.")


def grouped(fingerprint: str) -> list[str]:
    """``SHA256:ABCD…`` as groups of four hex digits, for reading aloud."""
    digits = fingerprint.split(":", 1)[-1].replace(":", "")
    return [digits[i:i + 4] for i in range(0, len(digits), 4)]


def _peers(node: Node) -> PeerService:
    if not isinstance(node.peers, PeerService):
        raise ConfigurationError("federation is not available on this node")
    return node.peers


def _page(request: Request, render: Renderer, caller: Caller, node: Node, status_code: int = 200,
          **extra: Any) -> Response:
    with node.db.read() as conn:
        own = node.pki.ca_certificate(conn).fingerprint
    return render_console(request, render, caller, "admin_peers.html", "peers", status_code=status_code,
                          peers=_peers(node).all(), own_groups=grouped(own), grouped=grouped, **extra)


@router.get("/admin/peers")
def peers_page(request: Request, node: NodeDep, caller: AdminDep, render: RenderDep,
               unpinned: str = "") -> Response:
    """Pinned peers, this node's fingerprint for reading aloud, and the first step of pinning another."""
    notice = render.gettext(request, UNPINNED) % {"node": unpinned[:64]} if unpinned else None
    return _page(request, render, caller, node, notice=notice)


@router.post("/admin/peers/inspect")
async def peers_inspect(request: Request, node: NodeDep, caller: AdminDep, render: RenderDep,
                        url: Annotated[str, Form(max_length=300)] = "") -> Response:
    """Step 1: fetch the fingerprint the node at ``url`` presents, to compare it with what is read aloud."""
    try:
        normalise_url(url)
        node_id, presented = await run_in_threadpool(_peers(node).presented, url)
    except InklessError as exc:
        message = explain(render, request, exc, {ValidationError: BAD_URL, DeliveryError: UNREACHABLE})
        return _page(request, render, caller, node, 422, error=message, url=url)
    return _page(request, render, caller, node, candidate={"url": url.strip(), "node_id": node_id,
                                                           "groups": grouped(presented)}, url=url)


def _typed(fingerprint: str) -> str:
    """What the admin typed, as the peer service reads fingerprints (spaces and dashes dropped)."""
    compact = "".join(ch for ch in fingerprint if ch not in " \u3000-\t")
    if not compact.upper().startswith("SHA256:"):
        compact = "SHA256:" + compact
    return normalise_fingerprint(compact)


@router.post("/admin/peers")
async def peers_pin(request: Request, node: NodeDep, caller: AdminDep, render: RenderDep,
                    url: Annotated[str, Form(max_length=300)] = "",
                    fingerprint: Annotated[str, Form(max_length=200)] = "",
                    confirm: Annotated[str, Form(max_length=5)] = "") -> Response:
    """Step 2: pin the node if the fingerprint typed (as read aloud) is the one it presents."""
    service = _peers(node)
    try:
        typed = _typed(fingerprint)
    except ValidationError:
        return _page(request, render, caller, node, 422, url=url, error=render.gettext(request, BAD_FINGERPRINT))
    if not confirmed(confirm):
        return _page(request, render, caller, node, 422, url=url, error=render.gettext(request, CONFIRM_FIRST))
    try:
        peer, result = await run_in_threadpool(service.add, url, typed, caller.user.login)
    except InklessError as exc:
        message = explain(render, request, exc, {AuthenticationError: MISMATCH, ConflictError: ALREADY,
                                                 DeliveryError: UNREACHABLE, ValidationError: REFUSED})
        return _page(request, render, caller, node, exc.http_status if exc.http_status < 500 else 502,
                     url=url, error=message)
    text = PINNED if result.ok else PINNED_NO_DIRECTORY
    return _page(request, render, caller, node, notice=render.gettext(request, text) % {"node": peer.node_id})


@router.post("/admin/peers/{node_id}/refresh")
async def peers_refresh(request: Request, node_id: str, node: NodeDep, caller: AdminDep,
                        render: RenderDep) -> Response:
    """Fetch the peer's signed office directory now."""
    try:
        [result] = await run_in_threadpool(_peers(node).refresh, node_id[:64], caller.user.login)
    except NotFoundError:
        return _page(request, render, caller, node, 404, error=render.gettext(request, NOT_PINNED))
    text = REFRESHED if result.ok else NOT_REFRESHED
    return _page(request, render, caller, node,
                 notice=render.gettext(request, text) % {"node": result.node_id, "offices": result.offices})


@router.post("/admin/peers/{node_id}/unpin")
def peers_unpin(request: Request, node_id: str, node: NodeDep, caller: AdminDep, render: RenderDep,
                confirm: Annotated[str, Form(max_length=5)] = "") -> Response:
    """Unpin a peer (confirmed)."""
    if not confirmed(confirm):
        return _page(request, render, caller, node, 422, error=render.gettext(request, CONFIRM_FIRST))
    try:
        _peers(node).remove(node_id[:64], actor=caller.user.login)
    except NotFoundError:
        return _page(request, render, caller, node, 404, error=render.gettext(request, NOT_PINNED))
    return RedirectResponse("/admin/peers?" + urlencode({"unpinned": node_id[:64]}), status_code=303)
