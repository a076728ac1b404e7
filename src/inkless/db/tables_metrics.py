"""Migration metrics: the procedure catalogue (手続一覧) and its version history."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from inkless.db.tables import metadata
from inkless.db.types import UTCDateTime

# The current state of each procedure; every change also writes a row to procedure_versions.
procedures = Table(
    "procedures",
    metadata,
    Column("code", String(64), primary_key=True),
    Column("name", String(300), nullable=False),
    Column("ministry", String(200), nullable=False),
    # The office of this node that handles the procedure (NULL: node-wide).
    Column("office_code", String(64), nullable=True),
    Column("legal_basis", Text, nullable=False),
    # none / mitome / jitsuin / official (なし / 認印 / 実印 / 公印)
    Column("seal_required", String(16), nullable=False),
    Column("fax_or_paper_allowed", Boolean, nullable=False),
    Column("retired", Boolean, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("updated_by", String(128), nullable=False),
)
Index("ix_procedures_office_code", procedures.c.office_code)

# Every version of every procedure: who changed what, when (the audit log holds the same facts, signed).
procedure_versions = Table(
    "procedure_versions",
    metadata,
    Column("code", String(64), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("name", String(300), nullable=False),
    Column("ministry", String(200), nullable=False),
    Column("office_code", String(64), nullable=True),
    Column("legal_basis", Text, nullable=False),
    Column("seal_required", String(16), nullable=False),
    Column("fax_or_paper_allowed", Boolean, nullable=False),
    Column("retired", Boolean, nullable=False),
    # created / changed / retired / restored
    Column("change", String(16), nullable=False),
    # The field names that differ from the previous version, comma-separated.
    Column("changed_fields", Text, nullable=False),
    Column("changed_at", UTCDateTime, nullable=False),
    Column("changed_by", String(128), nullable=False),
    Column("audit_index", BigInteger, nullable=True),
)

# Roll-ups: one counter per period (ISO week "2026-W49" or month "2026-12", both in Asia/Tokyo), office,
# procedure and metric, kept in the same transaction as the event that changes it (see metrics.rollup).
# Office "" is a fax no office was found for yet; procedure "" is 未分類 (not classified).
metrics_rollup = Table(
    "metrics_rollup",
    metadata,
    Column("period", String(10), primary_key=True),
    Column("office_code", String(64), primary_key=True),
    Column("procedure_code", String(64), primary_key=True),
    Column("metric", String(24), primary_key=True),
    Column("value", BigInteger, nullable=False),
)
# Covers the dashboards' sums per period and metric (node-wide) without reading the table.
Index("ix_metrics_rollup_period_metric", metrics_rollup.c.period, metrics_rollup.c.metric, metrics_rollup.c.value)

# What inkless does not see: paper a clerk received (紙で受付) or sealed by hand (紙で押印), counted by hand.
metrics_paper_records = Table(
    "metrics_paper_records",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("office_code", String(64), nullable=False),
    Column("procedure_code", String(64), nullable=True),
    Column("day", Date, nullable=False),
    Column("received", Integer, nullable=False),
    Column("sealed", Integer, nullable=False),
    Column("recorded_by", String(128), nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
)
Index("ix_metrics_paper_records_day", metrics_paper_records.c.day)

# Targets an administrator sets, e.g. FAX枚数を2027年3月までに90%削減 (office NULL: node-wide).
metrics_targets = Table(
    "metrics_targets",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("office_code", String(64), nullable=True),
    Column("measure", String(24), nullable=False),
    Column("reduction_percent", Integer, nullable=False),
    Column("baseline_from", Date, nullable=False),
    Column("baseline_to", Date, nullable=False),
    Column("deadline", Date, nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# The procedure an office last chose for a counterpart (a fax number, an office address, an e-mail address),
# offered again on the next compose or fax to it (see metrics.memory).
procedure_memory = Table(
    "procedure_memory",
    metadata,
    Column("office_id", Integer, ForeignKey("offices.id"), primary_key=True),
    Column("counterpart", String(300), primary_key=True),
    Column("procedure_code", String(64), nullable=False),
    Column("chosen_by", String(64), nullable=False),
    Column("chosen_at", UTCDateTime, nullable=False),
)

# Which procedure an inbound fax belongs to: by the number called (DID), the sender's station id (TSI) or
# number (CID), or a keyword in the OCR text of page 1; tried in priority order, first match wins.
procedure_rules = Table(
    "procedure_rules",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(8), nullable=False),
    Column("pattern", String(128), nullable=False),
    Column("procedure_code", String(64), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint("kind IN ('did', 'tsi', 'cid', 'keyword')", name="kind"),
    UniqueConstraint("kind", "pattern", name="uq_procedure_rules_kind_pattern"),
)

# Each worker process says it is alive (OpenMetrics shows the age of the last beat per worker).
metrics_heartbeats = Table(
    "metrics_heartbeats",
    metadata,
    Column("worker", String(128), primary_key=True),
    Column("started_at", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
)

# Nodes this node sends its signed weekly aggregates to (peers or a hub), chosen by an administrator.
metrics_aggregate_targets = Table(
    "metrics_aggregate_targets",
    metadata,
    Column("node_id", String(32), primary_key=True),
    Column("added_by", String(128), nullable=False),
    Column("added_at", UTCDateTime, nullable=False),
)

# The sending side: each weekly aggregate sent (or being sent) to each target, so that the worker sends a
# week once per target and again only when its counts changed (a corrected re-send); failures back off.
metrics_aggregate_sends = Table(
    "metrics_aggregate_sends",
    metadata,
    Column("target", String(32), primary_key=True),
    Column("week", String(10), primary_key=True),
    Column("state", String(8), nullable=False),
    # SHA-256 of the counts the target last accepted (NULL until one was accepted).
    Column("sent_digest", String(64), nullable=True),
    Column("sent_at", UTCDateTime, nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=True),
    Column("claimed_until", UTCDateTime, nullable=True),
    Column("last_result", Text, nullable=True),
    CheckConstraint("state IN ('pending', 'sent', 'failed')", name="state"),
)

# Aggregates received (on a hub), one per node and week: the latest verified one; a corrected re-send
# replaces it (audited).
metrics_aggregates = Table(
    "metrics_aggregates",
    metadata,
    Column("node_id", String(32), primary_key=True),
    Column("week", String(10), primary_key=True),
    Column("organisation", String(200), nullable=False),
    Column("issued_at", UTCDateTime, nullable=False),
    Column("counts", Text, nullable=False),  # JSON: metric -> value, and the procedure headline
    Column("jws", Text, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("replaced", Integer, nullable=False),
)
