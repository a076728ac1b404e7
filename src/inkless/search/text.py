"""The text layer of a PDF (a received fax's OCR), for the search index."""

from __future__ import annotations

from inkless.search.grams import MAX_TEXT_CHARS


def pdf_text(data: bytes, max_chars: int = MAX_TEXT_CHARS) -> str:
    """The text of every page, up to ``max_chars``; empty if pdfium cannot read the PDF."""
    import pypdfium2 as pdfium  # type: ignore[import-untyped, unused-ignore]

    from inkless.pdfium_lock import PDFIUM_LOCK

    parts: list[str] = []
    size = 0
    # pdfium is not thread-safe, not even across documents: the lock shared with the renderers.
    with PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError:
            return ""
        try:
            for index in range(len(pdf)):
                if size >= max_chars:
                    break
                page = pdf[index]
                try:
                    textpage = page.get_textpage()
                    try:
                        chunk = str(textpage.get_text_range())
                    finally:
                        textpage.close()
                finally:
                    page.close()
                parts.append(chunk)
                size += len(chunk)
        finally:
            pdf.close()
    return "\n".join(parts)[:max_chars]
