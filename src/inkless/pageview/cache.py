"""Page images cached as blobs: a page is rendered once per document and resolution."""

from __future__ import annotations

import hashlib

from sqlalchemy import exc, insert, select

from inkless.blobs import BlobStore
from inkless.clock import Clock
from inkless.db.engine import Database
from inkless.db.tables_pageview import page_images
from inkless.errors import ValidationError
from inkless.pageview.render import page_count, render_page

# The resolutions the viewer asks for: the page as read in the browser, and enlarged (拡大).
VIEW_DPI = 110
ZOOM_DPI = 220
ALLOWED_DPI = frozenset({VIEW_DPI, ZOOM_DPI})


class PageImages:
    """PNG images of PDF pages, rendered with pdfium and kept as blobs keyed by the document's SHA-256.

    The cache knows nothing of who may see a page: every caller checks access to the document
    first, exactly as for downloading it, and only then asks for its pages.
    """

    def __init__(self, db: Database, blobs: BlobStore, clock: Clock) -> None:
        self._db = db
        self._blobs = blobs
        self._clock = clock

    def count(self, pdf: bytes) -> int:
        """Number of pages of ``pdf`` (NotAPdfError if it is not a readable PDF)."""
        return page_count(pdf)

    def png(self, pdf: bytes, page: int, dpi: int = VIEW_DPI) -> bytes:
        """PNG of page ``page`` (1-based) of ``pdf`` at ``dpi``: from the cache, or rendered and cached."""
        if dpi not in ALLOWED_DPI:
            raise ValidationError(f"page images are made at {sorted(ALLOWED_DPI)} dpi, not {dpi}")
        source = hashlib.sha256(pdf).hexdigest()
        key = (page_images.c.source_sha256 == source, page_images.c.page == page, page_images.c.dpi == dpi)
        with self._db.read() as conn:
            digest = conn.execute(select(page_images.c.png_digest).where(*key)).scalar()
        if digest is not None and self._blobs.exists(digest):
            return self._blobs.get(digest)
        png = render_page(pdf, page, dpi)
        digest = self._blobs.put(png)
        try:
            with self._db.begin() as conn:
                if conn.execute(select(page_images.c.png_digest).where(*key)).scalar() is None:
                    conn.execute(insert(page_images).values(
                        source_sha256=source, page=page, dpi=dpi, png_digest=digest, created_at=self._clock.now()))
        except exc.IntegrityError:
            pass  # another request cached the same page meanwhile: same bytes, same blob
        return png
