"""``/api/v1/audit``: the audit log as a transparency log.

Tree heads and proofs are public, like a Certificate Transparency log: they hold
hashes only, and let anyone holding an entry, or an older tree head, check that
the node has not rewritten its history. Entries themselves are for administrators.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field

from inkless.app import Node
from inkless.audit.log import MAX_PAGE
from inkless.errors import NotFoundError, ValidationError
from inkless.web.deps import MAX_ROW_ID, get_node, require_admin

router = APIRouter(prefix="/audit", tags=["audit"])

NodeDep = Annotated[Node, Depends(get_node)]

BAD_REQUEST: dict[int | str, dict[str, Any]] = {
    400: {"description": "A size or index outside the log (the message says which)"}
}
HexHash = Annotated[
    str,
    Field(pattern="^[0-9a-f]{64}$", min_length=64, max_length=64,
          examples=["6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b"]),
]


class TreeHeadOut(BaseModel):
    """A signed tree head: the node vouches that its log had ``tree_size`` entries with ``root_hash``."""

    node_id: str = Field(examples=["moj"])
    tree_size: int = Field(ge=0)
    root_hash: HexHash = Field(description="SHA-256 Merkle tree hash (RFC 9162), hex")
    root_hash_base64: str
    timestamp: datetime = Field(description="When the head was signed (millisecond precision, UTC)")
    timestamp_ms: int = Field(description="The same time in milliseconds since the Unix epoch, as signed")
    signature: str = Field(description="ECDSA P-256 / SHA-256 signature (DER), base64; see docs/audit.md")
    signature_algorithm: str = Field(examples=["ecdsa-p256-sha256"])
    certificate: str = Field(description="The signer's certificate (PEM), issued by the node CA")
    certificate_fingerprint: str = Field(examples=["SHA256:3F2A…"])


class InclusionProofOut(BaseModel):
    """RFC 9162 §2.1.3 inclusion proof: leaf ``leaf_index`` is in the tree of ``tree_size`` entries."""

    leaf_index: int = Field(ge=0)
    tree_size: int = Field(ge=1)
    leaf_hash: HexHash = Field(description="SHA-256(0x00 || entry bytes), hex")
    audit_path: list[str] = Field(description="Sibling hashes, leaf to root, hex")
    root_hash: HexHash = Field(description="The root this proof leads to, hex")


class ConsistencyProofOut(BaseModel):
    """RFC 9162 §2.1.4 consistency proof: the tree of ``first`` entries is a prefix of that of ``second``."""

    first: int = Field(ge=1)
    second: int = Field(ge=1)
    first_root_hash: HexHash
    second_root_hash: HexHash
    consistency_path: list[str] = Field(description="Proof hashes in RFC order, hex")


class AuditEntryOut(BaseModel):
    """One audit entry, read from its hashed bytes."""

    index: int
    at: datetime
    actor: str = Field(examples=["yamada"])
    action: str = Field(examples=["user.created"])
    object_type: str | None = None
    object_id: str | None = None
    digests: dict[str, str] = Field(default_factory=dict)
    details: dict[str, Any] = Field(default_factory=dict)
    leaf_hash: HexHash


class AuditEntriesOut(BaseModel):
    """A page of entries, oldest first, from index ``start`` on."""

    total: int = Field(description="How many entries match the filters")
    start: int
    limit: int
    entries: list[AuditEntryOut]


def _bad_request(exc: ValidationError) -> HTTPException:
    return HTTPException(status_code=400, detail=exc.message)


@router.get(
    "/tree-head",
    response_model=TreeHeadOut,
    summary="The latest signed tree head",
    responses={404: {"description": "No tree head has been signed yet"}},
)
def latest_tree_head(node: NodeDep) -> dict[str, Any]:
    """The latest signed tree head of this node's audit log (public: hashes only)."""
    with node.db.read() as conn:
        head = node.audit.latest_tree_head(conn)
    if head is None:
        raise HTTPException(status_code=404, detail="no tree head has been signed yet")
    return head.to_json()


@router.get(
    "/proof/inclusion",
    response_model=InclusionProofOut,
    summary="Inclusion proof of one entry",
    responses=BAD_REQUEST,
)
def inclusion_proof(
    node: NodeDep,
    index: Annotated[int, Query(le=MAX_ROW_ID, ge=0, description="Index of the entry (0-based)")],
    tree_size: Annotated[
        int | None, Query(le=MAX_ROW_ID, ge=1, description="Size of the tree; default: the latest signed tree head's")
    ] = None,
) -> dict[str, Any]:
    """Audit path from entry ``index`` to the root of the tree of ``tree_size`` entries (public)."""
    with node.db.read() as conn:
        if tree_size is None:
            head = node.audit.latest_tree_head(conn)
            tree_size = head.tree_size if head is not None else None
        try:
            proof = node.audit.inclusion_proof(conn, index, tree_size)
        except ValidationError as exc:
            raise _bad_request(exc) from None
    return proof.to_json()


@router.get(
    "/proof/consistency",
    response_model=ConsistencyProofOut,
    summary="Consistency proof between two tree sizes",
    responses=BAD_REQUEST,
)
def consistency_proof(
    node: NodeDep,
    first: Annotated[int, Query(le=MAX_ROW_ID, ge=1, description="The older tree size")],
    second: Annotated[int, Query(le=MAX_ROW_ID, ge=1, description="The newer tree size (at most the current size)")],
) -> dict[str, Any]:
    """Proof that the tree of ``first`` entries is a prefix of the tree of ``second`` (public)."""
    with node.db.read() as conn:
        try:
            proof = node.audit.consistency_proof(conn, first, second)
        except ValidationError as exc:
            raise _bad_request(exc) from None
    return proof.to_json()


@router.get(
    "/entries",
    response_model=AuditEntriesOut,
    summary="Browse audit entries (administrators)",
    dependencies=[Depends(require_admin)],
    responses={401: {"description": "Not authenticated"}, 403: {"description": "Administrators only"}},
)
def list_entries(
    node: NodeDep,
    start: Annotated[int, Query(le=MAX_ROW_ID, ge=0, description="First entry index")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    action: Annotated[str | None, Query(max_length=64, examples=["user.created"])] = None,
    object_type: Annotated[str | None, Query(max_length=32)] = None,
    object_id: Annotated[str | None, Query(max_length=128)] = None,
    actor: Annotated[str | None, Query(max_length=128)] = None,
) -> dict[str, Any]:
    """Entries from index ``start`` on, oldest first, optionally filtered."""
    filters = {"action": action, "object_type": object_type, "object_id": object_id, "actor": actor}
    with node.db.read() as conn:
        try:
            entries = node.audit.entries(conn, start, limit, **filters)
        except (ValidationError, NotFoundError) as exc:
            raise HTTPException(status_code=400, detail=exc.message) from None
        total = node.audit.count(conn, **filters)
    return {"total": total, "start": start, "limit": limit, "entries": [e.to_json() for e in entries]}


@router.get(
    "/witnesses",
    summary="Witnesses of this log, and the peers this node witnesses (administrators)",
    dependencies=[Depends(require_admin)],
    responses={401: {"description": "Not authenticated"}, 403: {"description": "Administrators only"}},
)
def witnesses(node: NodeDep) -> dict[str, Any]:
    """Newest cosignature per witness; per pinned peer the newest head this node cosigned and its refusals."""
    if node.witness is None:
        return {"node_id": node.node_id, "witnesses": [], "witnessed": []}
    return node.witness.status()
