"""Tables of the fax service: the call log, outbound jobs, routing rules, the block list, per-office settings."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from inkless.db.tables import BLOB, metadata
from inkless.db.types import UTCDateTime

# Outbound faxes, scheduled like HylaFAX's send queue (sendfax -t tries, -I interval, -k kill time).
fax_jobs = Table(
    "fax_jobs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("office_id", Integer, ForeignKey("offices.id"), nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("number", String(64), nullable=False),
    # Blob digests: the source PDF and the rendered TIFF-F (every page, header lines stamped).
    Column("document_blob", String(64), nullable=False, info=BLOB),
    Column("tiff_blob", String(64), nullable=False, info=BLOB),
    Column("pages", Integer, nullable=False),
    Column("cover_page", Boolean, nullable=False),
    Column("classification", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("tries", Integer, nullable=False),
    Column("max_tries", Integer, nullable=False),
    Column("interval_s", Integer, nullable=False),
    Column("kill_at", UTCDateTime, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    # A worker that claims the job holds it until then; a crashed worker's claim simply runs out.
    Column("claimed_until", UTCDateTime, nullable=True),
    Column("last_code", Integer, nullable=True),
    Column("last_text", Text, nullable=True),
    # Why the job exists: a clerk's send, or the disaster fallback of a delivery (then outbox_ref names it).
    Column("origin", String(16), nullable=False),
    Column("outbox_ref", String(128), nullable=True),
    Column("report_blob", String(64), nullable=True, info=BLOB),
    # The procedure the clerk chose (metrics count the fax against it).
    Column("procedure_code", String(64), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    CheckConstraint("state IN ('queued', 'sending', 'retrying', 'done', 'failed')", name="state"),
    CheckConstraint("classification BETWEEN 0 AND 1", name="classification"),
    CheckConstraint("origin IN ('clerk', 'fallback')", name="origin"),
)
Index("ix_fax_jobs_state_next", fax_jobs.c.state, fax_jobs.c.next_attempt_at)
Index("ix_fax_jobs_outbox_ref", fax_jobs.c.outbox_ref)

# The call log (HylaFAX's xferfaxlog): one row per call, SEND or RECV, whatever its outcome.
fax_calls = Table(
    "fax_calls",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("direction", String(4), nullable=False),
    Column("line", String(64), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("duration_s", Float, nullable=False),
    # SEND: the number dialled; RECV: the calling number (CID).
    Column("remote_number", String(64), nullable=True),
    # RECV: the number that was called (DID) and the T.30 sub-address.
    Column("called_number", String(64), nullable=True),
    Column("sub_address", String(64), nullable=True),
    # The far end's station id (TSI when it sends, CSI when it receives) and ours.
    Column("remote_ident", String(64), nullable=True),
    Column("local_ident", String(64), nullable=True),
    Column("pages", Integer, nullable=False),
    Column("pages_expected", Integer, nullable=True),
    Column("bit_rate", Integer, nullable=False),
    Column("ecm", Boolean, nullable=False),
    Column("compression", String(16), nullable=False),
    Column("bad_rows", Integer, nullable=False),
    Column("t30_code", Integer, nullable=False),
    Column("t30_text", Text, nullable=False),
    Column("success", Boolean, nullable=False),
    # SEND: done | retry | failed; RECV: delivered | unroutable | blocked | failed.
    Column("status", String(16), nullable=False),
    Column("office_id", Integer, ForeignKey("offices.id"), nullable=True),
    Column("job_id", Integer, ForeignKey("fax_jobs.id"), nullable=True),
    Column("attempt", Integer, nullable=True),
    # RECV: the TIFF exactly as received (stored before anything else), and the searchable PDF.
    Column("tiff_blob", String(64), nullable=True, info=BLOB),
    Column("pdf_blob", String(64), nullable=True, info=BLOB),
    # SEND: the transmission report PDF of this attempt.
    Column("report_blob", String(64), nullable=True, info=BLOB),
    # How the call found its office: did, subaddress, tsi, cid, rule:<id>, admin:<login>.
    Column("routed_by", String(80), nullable=True),
    Column("message_id", String(128), nullable=True),
    Column("resolved_at", UTCDateTime, nullable=True),
    Column("resolved_by", String(64), nullable=True),
    # RECV: whoever converts and deposits the fax holds it until then (a crashed worker's claim runs out).
    Column("claimed_until", UTCDateTime, nullable=True),
    # SIP lines: the media carried (g711 | t38), the SIP Call-ID and the gateway an outbound call used.
    Column("media", String(8), nullable=True),
    Column("call_id", String(128), nullable=True),
    Column("gateway", String(128), nullable=True),
    # SEND: the job's procedure; RECV: from a routing rule or a clerk's classification (NULL: 未分類).
    Column("procedure_code", String(64), nullable=True),
    CheckConstraint("direction IN ('SEND', 'RECV')", name="direction"),
)
Index("ix_fax_calls_started_at", fax_calls.c.started_at)
Index("ix_fax_calls_status", fax_calls.c.status)
Index("ix_fax_calls_job_id", fax_calls.c.job_id)

# Inbound routing rules, tried in priority order (lowest first) after the offices' own fax numbers.
fax_routing_rules = Table(
    "fax_routing_rules",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("pattern", String(128), nullable=False),
    Column("office_id", Integer, ForeignKey("offices.id"), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint("kind IN ('did', 'subaddress', 'tsi', 'cid')", name="kind"),
    UniqueConstraint("kind", "pattern", name="uq_fax_routing_rules_kind_pattern"),
)

# Junk-fax block list: calls whose CID or TSI matches are logged and dropped.
fax_block_list = Table(
    "fax_block_list",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(8), nullable=False),
    Column("pattern", String(128), nullable=False),
    Column("reason", Text, nullable=True),
    Column("created_by", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint("kind IN ('cid', 'tsi')", name="kind"),
    UniqueConstraint("kind", "pattern", name="uq_fax_block_list_kind_pattern"),
)

# Per-office fax settings; an office without a row has the defaults (no fallback, no cover page).
fax_settings = Table(
    "fax_settings",
    metadata,
    Column("office_id", Integer, ForeignKey("offices.id"), primary_key=True, autoincrement=False),
    Column("fallback_enabled", Boolean, nullable=False),
    Column("cover_page_default", Boolean, nullable=False),
    Column("updated_by", String(64), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# Remote numbers whose T.38 failed (refused re-INVITE, or failure in phase B): their next call starts in
# G.711 audio (the softmodem), as gofaxip's softmodemfallback does.
fax_sip_softmodem = Table(
    "fax_sip_softmodem",
    metadata,
    Column("number", String(64), primary_key=True),
    Column("reason", Text, nullable=False),
    Column("learned_at", UTCDateTime, nullable=False),
)
