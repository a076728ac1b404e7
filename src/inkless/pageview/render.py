"""Rendering one page of a PDF to PNG with pdfium (no web or database types)."""

from __future__ import annotations

import io

from inkless.errors import NotFoundError
from inkless.pdfium_lock import PDFIUM_LOCK

# Never larger than this on a side, whatever the page size: a poster-size page stays a sane image.
MAX_PX = 2400


class NotAPdfError(NotFoundError):
    """The document cannot be read as a PDF, so it has no pages to show."""


def page_count(data: bytes) -> int:
    """Number of pages of a PDF; NotAPdfError if pdfium cannot read it."""
    import pypdfium2 as pdfium  # type: ignore[import-untyped, unused-ignore]

    with PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError:
            raise NotAPdfError("the document is not a readable PDF") from None
        try:
            return len(pdf)
        finally:
            pdf.close()


def render_page(data: bytes, page: int, dpi: int, max_px: int = MAX_PX) -> bytes:
    """PNG of page ``page`` (1-based) at ``dpi``; NotFoundError if the PDF has no such page."""
    import pypdfium2 as pdfium  # type: ignore[import-untyped, unused-ignore]

    # pdfium is not thread-safe, not even across documents: the lock shared with the fax imaging.
    with PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError:
            raise NotAPdfError("the document is not a readable PDF") from None
        try:
            if not 1 <= page <= len(pdf):
                raise NotFoundError(f"the document has no page {page} (pages are numbered from 1 to {len(pdf)})")
            # Seal imprints are signature widgets: pdfium draws them only with forms initialised.
            pdf.init_forms()
            pdf_page = pdf[page - 1]
            try:
                width, height = pdf_page.get_size()
                scale = min(dpi / 72, max_px / max(width, height, 1))
                image = pdf_page.render(scale=scale, may_draw_forms=True).to_pil()
            finally:
                pdf_page.close()
        finally:
            pdf.close()
    out = io.BytesIO()
    # Encoding runs outside the lock: other threads may render meanwhile.
    image.convert("RGB").save(out, format="PNG", optimize=False)
    return out.getvalue()
