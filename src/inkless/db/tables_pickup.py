"""Secure pickup (outbound to an e-mail address): one row per e-mail recipient of a sent message, and the
files a recipient replied with.

Only hashes of the link token, the one-time code and the browser session are stored. The code is also
kept sealed under the node master key when the clerk gave a mobile number (to read it out on the
phone), and erased once used.
"""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Integer, LargeBinary, String, Table, Text

from inkless.db.tables import BLOB, metadata
from inkless.db.types import UTCDateTime

pickups = Table(
    "pickups",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("message_id", String(36), ForeignKey("messages.id"), nullable=False),
    Column("office_id", Integer, ForeignKey("offices.id"), nullable=False),
    Column("sender_login", String(64), nullable=False),
    Column("recipient", String(254), nullable=False),
    Column("mobile", String(32), nullable=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("notified_at", UTCDateTime, nullable=True),
    Column("opened_at", UTCDateTime, nullable=True),
    Column("downloaded_at", UTCDateTime, nullable=True),
    Column("replied_at", UTCDateTime, nullable=True),
    Column("bounced_at", UTCDateTime, nullable=True),
    Column("bounce_detail", Text, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
    Column("locked_at", UTCDateTime, nullable=True),
    Column("code_hash", String(64), nullable=True),
    Column("code_enc", LargeBinary, nullable=True),
    Column("code_expires_at", UTCDateTime, nullable=True),
    Column("code_tries", Integer, nullable=False),
    Column("session_hash", String(64), nullable=True),
    Column("session_expires_at", UTCDateTime, nullable=True),
)
Index("ix_pickups_message_id", pickups.c.message_id)

# A file a pickup recipient sent back (checked by content; stored in the blob store, encrypted at rest).
pickup_replies = Table(
    "pickup_replies",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("pickup_id", Integer, ForeignKey("pickups.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("content_type", String(100), nullable=False),
    Column("sha256", String(64), nullable=False, info=BLOB),
    Column("size", Integer, nullable=False),
    Column("comment_enc", LargeBinary, nullable=True),
    Column("received_at", UTCDateTime, nullable=False),
    # The reply in the sender office's inbox (source 'pickup', reply_to the sent message): one per reply.
    Column("inbox_message_id", String(36), nullable=True),
)
Index("ix_pickup_replies_pickup_id", pickup_replies.c.pickup_id)

# Per-office pickup settings (link lifetime); offices without a row use pickup_expiry_days.
pickup_office_settings = Table(
    "pickup_office_settings",
    metadata,
    Column("office_id", Integer, ForeignKey("offices.id"), primary_key=True),
    Column("expiry_days", Integer, nullable=False),
)
