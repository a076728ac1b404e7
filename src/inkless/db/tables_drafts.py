"""Form drafts: files a user uploaded with a form that came back with an error, kept for a short while.

A page that refuses a form keeps its uploaded files here and puts the draft's token in the form, so
that the user corrects the typed fields without choosing the files again.
"""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Table

from inkless.db.tables import BLOB, metadata
from inkless.db.types import UTCDateTime

form_drafts = Table(
    "form_drafts",
    metadata,
    # SHA-256 of the token in the form: the database alone does not give a draft away.
    Column("id", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)
Index("ix_form_drafts_expires_at", form_drafts.c.expires_at)

form_draft_files = Table(
    "form_draft_files",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("draft_id", String(64), ForeignKey("form_drafts.id", ondelete="CASCADE"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("name", String(255), nullable=False),
    Column("content_type", String(100), nullable=False),
    Column("size", Integer, nullable=False),
    Column("blob", String(64), nullable=False, info=BLOB),
)
Index("ix_form_draft_files_draft_id", form_draft_files.c.draft_id)
