"""Sample PDFs for approval-route tests: a short letter (room at the bottom) and a page filled to the bottom."""

from __future__ import annotations

import io

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter

A4 = (0.0, 0.0, 595.0, 842.0)


def sample_pdf(pages: int = 1, full_last_page: bool = False) -> bytes:
    """A4 pages with a heading and grey text bars; the last one filled to the bottom if asked."""
    writer = PdfFileWriter(init_page_tree=True)
    font = writer.add_object(
        generic.DictionaryObject(
            {
                pdf_name("/Type"): pdf_name("/Font"),
                pdf_name("/Subtype"): pdf_name("/Type1"),
                pdf_name("/BaseFont"): pdf_name("/Helvetica"),
            }
        )
    )
    for number in range(1, pages + 1):
        bottom = 60 if (full_last_page and number == pages) else 560
        bars = "\n".join(f"0.35 g 72 {y} 451 9 re f" for y in range(740, bottom, -18))
        content = f"BT /F1 18 Tf 72 780 Td (Request for approval - page {number}) Tj ET\n{bars}\n".encode()
        stream = writer.add_object(generic.StreamObject(stream_data=content))
        resources = generic.DictionaryObject(
            {pdf_name("/Font"): generic.DictionaryObject({pdf_name("/F1"): font})}
        )
        writer.insert_page(PageObject(contents=stream, media_box=A4, resources=resources))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
