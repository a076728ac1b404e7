"""The search index: one row of keyed gram tokens per inbox row and per sent message.

Rows are written in the same transaction as the message rows they describe, and never updated.
The full-text structure over ``tokens`` is the engine's own and not described here: on SQLite the
FTS5 tables ``search_fts_inbox`` and ``search_fts_sent`` (external content, kept in step by
triggers), on PostgreSQL a GIN index over ``tokens::tsvector``. Both are created by the
migration; :func:`inkless.db.schema.include_object` tells the schema comparison to leave them out.
"""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Column, ForeignKey, Integer, String, Table, Text

from inkless.db.tables import metadata

search_index = Table(
    "search_index",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("inbox_id", Integer, ForeignKey("inbox.id", ondelete="CASCADE"), nullable=True, unique=True),
    Column("sent_id", String(36), ForeignKey("messages.id", ondelete="CASCADE"), nullable=True, unique=True),
    # Space-separated tokens (see inkless.search.grams): never the text itself.
    Column("tokens", Text, nullable=False),
    CheckConstraint("(inbox_id IS NULL) <> (sent_id IS NULL)", name="one_target"),
)
