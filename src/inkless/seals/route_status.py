"""What a route's status holds: its timeline, its PDF revisions, its uploaded versions, queue items.

Plain data read by the route service and shown by the pages, the API and the CLI (``to_dict`` is
the JSON form of ``inkless route status --json`` and of ``GET /api/v1/routes/{id}``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from inkless.seals.routes import ApprovalRoute, RouteState


@dataclass(frozen=True)
class RouteEvent:
    """One entry of a route's timeline."""

    at: datetime
    actor: str
    action: str  # started, stamped, returned, resubmitted, rejected, office_sealed
    step: int | None = None  # 0-based
    to_step: int | None = None
    revision: int | None = None
    seal_kind: str | None = None
    comment: str | None = None


@dataclass(frozen=True)
class Revision:
    """One stored revision of the route's PDF."""

    revision: int
    digest: str
    kind: str  # strip, stamp, restart, version, office_seal, lta
    actor: str | None
    at: datetime


@dataclass(frozen=True)
class DocumentVersion:
    """One version of the document as its starter uploaded it (v1, then a corrected v2, v3 … after 差し戻し)."""

    version: int
    sha256: str  # of the upload, before the approval strip was added
    pages: int
    revision: int  # the revision it became, with its approval strip
    actor: str
    at: datetime
    comment: str | None = None


@dataclass(frozen=True)
class RouteStatus:
    """A route with its timeline and revisions."""

    route: ApprovalRoute
    events: tuple[RouteEvent, ...]
    revisions: tuple[Revision, ...]
    versions: tuple[DocumentVersion, ...] = ()

    @property
    def return_comment(self) -> RouteEvent | None:
        """The 差し戻し the route now waits on (its comment is the approver's reason), if it is returned."""
        if self.route.state is not RouteState.RETURNED:
            return None
        return next((e for e in reversed(self.events) if e.action == "returned"), None)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of ``inkless route status --json`` and the API."""
        r = self.route
        return {
            "id": r.id,
            "office": r.office_code,
            "starter": r.starter,
            "document_name": r.document_name,
            "state": r.state.value,
            "current_step": None if r.current_step is None else r.current_step + 1,
            "waiting_for": list(r.waiting_for()),
            "revision": r.revision,
            "version": r.version,
            "resume_from": r.resume_from.value,
            "returned_step": None if r.returned_step is None else r.returned_step + 1,
            "strip_page": r.strip_page,
            "office_sealed_by": r.office_sealed_by,
            "deliver_to": r.deliver_to,
            "procedure_code": r.procedure_code,
            "delivered_message_id": r.delivered_message_id,
            "created_at": r.created_at.isoformat(),
            "steps": [
                {
                    "step": st.index + 1,
                    "title": st.title,
                    "state": st.state.value,
                    "deadline": st.deadline.isoformat() if st.deadline else None,
                    "approvers": [
                        {
                            "login": a.login,
                            "field": a.field_name,
                            "stamped": a.stamped,
                            "stamped_at": a.stamped_at.isoformat() if a.stamped_at else None,
                            "seal_kind": a.seal_kind,
                            "revision": a.stamped_revision,
                        }
                        for a in st.approvers
                    ],
                }
                for st in r.steps
            ],
            "events": [
                {
                    "at": e.at.isoformat(),
                    "actor": e.actor,
                    "action": e.action,
                    "step": None if e.step is None else e.step + 1,
                    "to_step": None if e.to_step is None else e.to_step + 1,
                    "revision": e.revision,
                    "seal_kind": e.seal_kind,
                    "comment": e.comment,
                }
                for e in self.events
            ],
            "revisions": [
                {"revision": v.revision, "sha256": v.digest, "kind": v.kind, "actor": v.actor, "at": v.at.isoformat()}
                for v in self.revisions
            ],
            "versions": [
                {"version": v.version, "sha256": v.sha256, "pages": v.pages, "revision": v.revision,
                 "actor": v.actor, "at": v.at.isoformat(), "comment": v.comment}
                for v in self.versions
            ],
        }


@dataclass(frozen=True)
class QueueItem:
    """A route waiting for someone: their box to stamp, or the office seal to press."""

    route: ApprovalRoute
    action: str  # "stamp" or "office_seal"
    step_title: str
    deadline: date | None

    def overdue(self, today: date) -> bool:
        return self.deadline is not None and today > self.deadline
