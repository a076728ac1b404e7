"""Blobs kept in the database (``blob_store = "database"``, the default on PostgreSQL).

A blob is one ``blobs`` row and its ``blob_chunks``, each chunk sealed under the node master key
exactly as a chunk of a blob file is (same associated data: file id, position, last or not). Chunks
are written under a temporary key and renamed to the blob's address in the transaction that adds
the ``blobs`` row, so a reader never sees half a blob.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, String, Table

from inkless.db.tables import metadata
from inkless.db.types import UTCDateTime

blobs = Table(
    "blobs",
    metadata,
    Column("digest", String(64), primary_key=True),  # hex SHA-256 of the clear bytes
    Column("size", BigInteger, nullable=False),  # clear bytes
    Column("chunks", Integer, nullable=False),
    Column("file_id", LargeBinary(16), nullable=True),  # None: chunks stored in clear (no master key)
    Column("stored_at", UTCDateTime, nullable=False),  # last (re)written: the collector's grace period
)
Index("ix_blobs_stored_at", blobs.c.stored_at)

blob_chunks = Table(
    "blob_chunks",
    metadata,
    # The blob's address, or a temporary key (``upload-…``) while it is being written.
    Column("digest", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("data", LargeBinary, nullable=False),
)
