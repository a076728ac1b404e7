"""Admin console, audit log: search, an entry with its inclusion proof, and "verify now"."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response

from inkless.audit import merkle
from inkless.audit.log import verify_tree_head_signature
from inkless.errors import AuditIntegrityError, NotFoundError
from inkless.web.deps import RowId
from inkless.web.pages_admin import AdminDep, NodeDep, RenderDep, render_console
from inkless.web.render import N_

router = APIRouter(include_in_schema=False)

PAGE = 50
VERIFIED = N_("The whole audit log recomputes: %(entries)s entries, %(heads)s signed tree heads.")
BROKEN = N_(
    "The audit log does not recompute: entry %(index)s does not match its proof. Tell the node "
    "operator at once."
)
BROKEN_SOMEWHERE = N_("The audit log does not recompute. Tell the node operator at once.")
NO_ENTRY = N_("There is no audit entry with that number.")


def _filter(value: str) -> str | None:
    return value.strip()[:128] or None


@router.get("/admin/audit")
def audit_page(request: Request, node: NodeDep, caller: AdminDep, render: RenderDep, action: str = "",
               actor: str = "", object_type: str = "", object_id: str = "", start: RowId | None = None) -> Response:
    """Search the audit log by action, actor and object; newest page first when nothing is filtered."""
    filters = {"action": _filter(action), "actor": _filter(actor), "object_type": _filter(object_type),
               "object_id": _filter(object_id)}
    with node.db.read() as conn:
        size = node.audit.tree_size(conn)
        matching = node.audit.count(conn, **filters)
        if start is None:
            start = max(0, size - PAGE) if not any(filters.values()) else 0
        start = min(max(0, start), max(0, size - 1))
        entries = node.audit.entries(conn, start, PAGE, **filters)
    following = entries[-1].index + 1 if len(entries) == PAGE else None
    previous = max(0, start - PAGE) if start > 0 and not any(filters.values()) else None
    return render_console(request, render, caller, "admin_audit.html", "audit", entries=list(reversed(entries)),
                          size=size, matching=matching, filters={k: v or "" for k, v in filters.items()},
                          following=following, previous=previous, start=start)


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, indent=1) if value else ""


@router.get("/admin/audit/{index}")
def audit_entry(request: Request, index: RowId, node: NodeDep, caller: AdminDep, render: RenderDep) -> Response:
    """One entry, and its inclusion proof in the latest signed tree head that covers it (checked here)."""
    with node.db.read() as conn:
        try:
            entry = node.audit.entry(conn, index)
        except NotFoundError:
            return render_console(request, render, caller, "admin_home.html", "audit", status_code=404,
                                  error=render.gettext(request, NO_ENTRY))
        head = node.audit.latest_tree_head(conn)
        signed = head is not None and head.tree_size > index
        size = head.tree_size if head is not None and signed else node.audit.tree_size(conn)
        proof = node.audit.inclusion_proof(conn, index, size)
    # The proof is checked against the signed root, not only against the root computed with it.
    root = head.root_hash if head is not None and signed else proof.root_hash
    included = merkle.verify_inclusion(proof.index, proof.tree_size, entry.leaf_hash, proof.path, root)
    head_ok = verify_tree_head_signature(head) if head is not None and signed else None
    return render_console(request, render, caller, "admin_audit_entry.html", "audit", entry=entry, proof=proof,
                          head=head if signed else None, included=included, head_ok=head_ok,
                          details=_json(entry.details), digests=_json(entry.digests))


@router.post("/admin/audit/verify")
def audit_verify(request: Request, node: NodeDep, caller: AdminDep, render: RenderDep) -> Response:
    """Recompute the whole log now (every entry, subtree and signed tree head)."""
    try:
        with node.db.read() as conn:
            report = node.audit.verify(conn)
    except AuditIntegrityError as exc:
        text = (render.gettext(request, BROKEN) % {"index": exc.entry_index} if exc.entry_index is not None
                else render.gettext(request, BROKEN_SOMEWHERE))
        return render_console(request, render, caller, "admin_home.html", "audit", status_code=500, error=text)
    message = render.gettext(request, VERIFIED) % {"entries": report.entries, "heads": report.tree_heads}
    return render_console(request, render, caller, "admin_audit_verified.html", "audit", notice=message,
                          root=report.root_hash.hex())
