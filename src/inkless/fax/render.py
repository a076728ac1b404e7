"""Documents rendered for the line: PDF pages and an optional cover page as one TIFF-F (204×196, MMR).

The header line (sender, number, date and time, page n/m) is stamped by the line driver at dial
time, as a fax machine does, so that it shows the time of the call rather than of the queueing.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

from PIL import Image, ImageDraw, ImageFont

from inkless import timefmt
from inkless.errors import FaxError

if TYPE_CHECKING:
    from inkless.fax.model import CoverPage, RenderedFax

# An A4 page at fine resolution: 1728 × 2292 (297 mm at 7.7 lines/mm).
COVER_HEIGHT = 2292
COVER_Y_DPI = 196


@lru_cache(maxsize=4)
def fax_font(size: int) -> ImageFont.FreeTypeFont:
    from inkless.errors import FontNotFoundError
    from inkless.fonts import FontStyle, find_japanese_font

    try:
        source = find_japanese_font(FontStyle.MINCHO)
    except FontNotFoundError as exc:
        raise FaxError(f"cannot draw the cover page: {exc}") from None
    return ImageFont.truetype(str(source.path), size, index=source.index)


def cover_image(cover: CoverPage) -> Image.Image:
    """The cover page as a 1-bit fine-resolution bitmap (drawn at 204×196 dpi, so text is 2:1 tall)."""
    # Drawn at 204×204 and squeezed to 196 lines per inch: the same proportions as on paper.
    page = Image.new("L", (1728, round(COVER_HEIGHT * 204 / COVER_Y_DPI)), 255)
    draw = ImageDraw.Draw(page)
    title, body, small = fax_font(110), fax_font(48), fax_font(36)
    draw.text((140, 180), "FAX送信票", font=title, fill=0)
    draw.text((1000, 240), "FAX COVER SHEET", font=small, fill=0)
    draw.line((140, 340, 1588, 340), fill=0, width=6)
    rows = [
        # 和暦 with the Western year, in the office's zone: a cover page is filed with the document.
        ("送信日時 / Date", timefmt.format_document_datetime(cover.sent_at, cover.timezone)),
        ("宛先FAX番号 / To", cover.recipient_number),
        ("送信元 / From", cover.sender_office),
        ("送信元FAX番号 / From No.", cover.sender_number or "-"),
        ("担当者 / Sender", cover.sender_name),
        ("枚数（本票を含む）/ Pages", str(cover.pages)),
        ("件名 / Subject", cover.subject or "-"),
    ]
    if cover.reference:
        # The disaster fallback prints the message id: the recipient matches this paper to the signed original.
        rows.append(("参照番号 / Reference", cover.reference))
    y = 440
    for label, value in rows:
        draw.text((140, y), label, font=small, fill=0)
        draw.text((760, y - 6 if len(value) <= 24 else y), value, font=body if len(value) <= 24 else small, fill=0)
        y += 130
        draw.line((140, y - 30, 1588, y - 30), fill=0, width=2)
    draw.text((140, y + 80), "この送信票を含め全ページが届かない場合は送信元へご連絡ください。", font=small, fill=0)
    if cover.invitation_url:
        _draw_invitation(page, draw, cover.invitation_url, y + 200)
    squeezed = page.resize((1728, COVER_HEIGHT), Image.Resampling.LANCZOS)
    return squeezed.point(lambda v: 255 if v >= 160 else 0).convert("1")


def _draw_invitation(page: Image.Image, draw: ImageDraw.ImageDraw, url: str, top: int) -> None:
    """The invitation block: a sentence, the intake URL in large type, and its QR code to the right."""
    import io

    import segno

    draw.line((140, top, 1588, top), fill=0, width=4)
    draw.text((140, top + 40), "次回からはオンラインで送れます", font=fax_font(64), fill=0)
    draw.text((140, top + 150), "QRコード（右下）を読み取るか、次のアドレスへ:", font=fax_font(36), fill=0)
    # The URL alone on its line, in a size Tesseract and people read at fax resolution.
    size = 52 if len(url) <= 40 else 40
    draw.text((140, top + 230), url, font=fax_font(size), fill=0)
    draw.text((140, top + 320), "You can send documents online next time.", font=fax_font(32), fill=0)
    qr = io.BytesIO()
    segno.make(url, error="m").save(qr, kind="png", scale=10, border=2)
    code = Image.open(io.BytesIO(qr.getvalue())).convert("L")
    side = min(360, code.width)
    page.paste(code.resize((side, side), Image.Resampling.NEAREST), (1588 - side, top + 420))


def render_for_fax(documents: Sequence[bytes], cover: CoverPage | None, *, parallel: bool = True) -> RenderedFax:
    """Render PDFs (and a cover page first, if given) into one multi-page TIFF-F, fine resolution, MMR.

    The documents are measured before anything is drawn, so the cover states the page count; then the
    pages are drawn, thresholded and compressed in the render pool's processes (a long fax) or here
    (``parallel=False``, or one or two pages), with the same result (:meth:`FaxDocuments.write`).
    """
    import dataclasses

    from inkless.fax import imaging
    from inkless.fax.model import RenderedFax
    from inkless.fax.tiff_writer import TiffWriter

    if not documents:
        raise FaxError("the document has no pages")
    with TiffWriter("g4") as writer, imaging.FaxDocuments(documents, fine=True) as pdfs:
        pages = pdfs.fax_pages + (1 if cover is not None else 0)
        if cover is not None:
            writer.add(cover_image(dataclasses.replace(cover, pages=pages)), imaging.FINE_Y_DPI)
        pdfs.write(writer, parallel=parallel)
        return RenderedFax(imaging.finish_tiff(writer), pages)
