"""FastAPI dependencies shared by every router: the node, and who is asking."""

from __future__ import annotations

from fastapi import HTTPException, Request

from inkless.app import Node


def get_node(request: Request) -> Node:
    """The node this app serves (set by the app factory on ``app.state.node``)."""
    node = request.app.state.node
    assert isinstance(node, Node)
    return node


def require_admin(request: Request) -> None:
    """Allow only an authenticated administrator (session or API token)."""
    # Replaced by the real check when authentication lands; until then nobody passes.
    raise HTTPException(status_code=401, detail="authentication required")
