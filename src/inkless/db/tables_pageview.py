"""Tables of the page viewer: page images rendered from documents, cached as blobs."""

from __future__ import annotations

from sqlalchemy import Column, Integer, PrimaryKeyConstraint, String, Table

from inkless.db.tables import BLOB, metadata
from inkless.db.types import UTCDateTime

# One row per rendered page: the PNG of page ``page`` (1-based) of the PDF whose SHA-256 is
# ``source_sha256``, at ``dpi``. The image is a blob (encrypted at rest like the document);
# who may see it is decided by the page that serves it, exactly as for the document itself.
page_images = Table(
    "page_images",
    metadata,
    Column("source_sha256", String(64), nullable=False),
    Column("page", Integer, nullable=False),
    Column("dpi", Integer, nullable=False),
    Column("png_digest", String(64), nullable=False, info=BLOB),
    Column("created_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("source_sha256", "page", "dpi"),
)
