"""Tables of approval routes (稟議/回覧): routes, their steps and approvers, every PDF revision, and events."""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Column, Date, ForeignKey, Index, Integer, String, Table, Text, UniqueConstraint

from inkless.db.tables import BLOB, metadata
from inkless.db.types import UTCDateTime

routes = Table(
    "routes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("office_id", Integer, ForeignKey("offices.id"), nullable=False),
    Column("starter_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("document_name", String(200), nullable=False),
    Column("state", String(24), nullable=False),
    # 0-based index of the active step; NULL once every step is stamped or the route is rejected.
    Column("current_step", Integer, nullable=True),
    # The revision (route_documents.revision) that is the document now.
    Column("revision", Integer, nullable=False),
    # The PDF as uploaded, before the approval strip was added.
    Column("original_digest", String(64), nullable=False, info=BLOB),
    Column("strip_page", Integer, nullable=False),
    # Where the finished document goes (an office address), and the message that took it there.
    Column("deliver_to", String(200), nullable=True),
    Column("delivered_message_id", String(64), nullable=True),
    Column("office_sealed_by", Integer, ForeignKey("users.id"), nullable=True),
    # 差し戻し to the starter: the 0-based step that returned the route, while it waits for a corrected
    # version (``state`` stays in_progress; the domain reads this as the state ``returned``).
    Column("returned_step", Integer, nullable=True),
    # The document version the route is on (1 = as first uploaded; each corrected upload adds one).
    Column("version", Integer, nullable=False, server_default="1"),
    # Where a corrected version resumes: 'step' (the step that returned it) or 'start' (step 1).
    Column("resume_from", String(8), nullable=False, server_default="step"),
    # The procedure the route belongs to (metrics count its seals against it).
    Column("procedure_code", String(64), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    CheckConstraint(
        "state IN ('in_progress', 'awaiting_office_seal', 'completed', 'rejected')", name="state"
    ),
)
Index("ix_routes_office_id_state", routes.c.office_id, routes.c.state)

route_steps = Table(
    "route_steps",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("route_id", Integer, ForeignKey("routes.id", ondelete="CASCADE"), nullable=False),
    Column("idx", Integer, nullable=False),
    Column("title", String(32), nullable=False),
    Column("deadline", Date, nullable=True),
    Column("state", String(16), nullable=False),
    # The revision the step started from: returning to this step restarts the document there.
    Column("base_revision", Integer, nullable=True),
    CheckConstraint("state IN ('waiting', 'active', 'done')", name="state"),
    UniqueConstraint("route_id", "idx", name="uq_route_steps_route_idx"),
)

step_approvers = Table(
    "step_approvers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("step_id", Integer, ForeignKey("route_steps.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("position", Integer, nullable=False),
    # The empty signature field of this approver's box in the approval strip.
    Column("field_name", String(64), nullable=False),
    Column("stamped_revision", Integer, nullable=True),
    Column("stamped_at", UTCDateTime, nullable=True),
    Column("seal_kind", String(16), nullable=True),
    UniqueConstraint("step_id", "user_id", name="uq_step_approvers_step_user"),
)
Index("ix_step_approvers_user_id", step_approvers.c.user_id)

# Every revision of the document, oldest first; a return adds a revision that points at an older blob.
route_documents = Table(
    "route_documents",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("route_id", Integer, ForeignKey("routes.id", ondelete="CASCADE"), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("blob_digest", String(64), nullable=False, info=BLOB),
    Column("kind", String(16), nullable=False),
    Column("actor_id", Integer, ForeignKey("users.id"), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint("kind IN ('strip', 'stamp', 'restart', 'version', 'office_seal', 'lta')", name="kind"),
    UniqueConstraint("route_id", "revision", name="uq_route_documents_route_revision"),
)

# What happened, in order: start, stamps, returns with their comments, rejection, office seal.
route_events = Table(
    "route_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("route_id", Integer, ForeignKey("routes.id", ondelete="CASCADE"), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("actor_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("action", String(16), nullable=False),
    Column("step_idx", Integer, nullable=True),
    Column("to_step", Integer, nullable=True),
    Column("revision", Integer, nullable=True),
    Column("seal_kind", String(16), nullable=True),
    Column("comment", Text, nullable=True),
    CheckConstraint(
        "action IN ('started', 'stamped', 'returned', 'resubmitted', 'rejected', 'office_sealed')", name="action"
    ),
)
Index("ix_route_events_route_id", route_events.c.route_id)

# Every version of the document the starter uploaded (v1 at the start, v2, v3 … after each 差し戻し):
# the upload as it was, its page count and SHA-256, and the revision it became with its approval strip.
route_versions = Table(
    "route_versions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("route_id", Integer, ForeignKey("routes.id", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("original_digest", String(64), nullable=False, info=BLOB),
    Column("pages", Integer, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("actor_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("comment", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("route_id", "version", name="uq_route_versions_route_version"),
)
