"""The fax header line: ``YYYY/MM/DD HH:MM  FROM name  number  P.n/m`` across the top of each page.

Like a fax machine, the header is stamped at transmission time over the top
band of the page (the band is cleared first; documents keep a top margin far
larger than the ~4 mm band). Japanese office names are drawn with the node's
Japanese font (IPAex, found through fontconfig like seal imprints are).
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from inkless.errors import FaxError, FontNotFoundError
from inkless.fax import imaging
from inkless.fonts import FontStyle, find_japanese_font

# Height of the header band and its type at 204 dpi square pixels (≈ 4.5 mm and 3 mm).
BAND_PX = 36
FONT_PX = 24
LEFT_MARGIN_PX = 40


@lru_cache(maxsize=4)
def _font(size: int) -> ImageFont.FreeTypeFont:
    # A Gothic (sans) face survives 1-bit thresholding at 3 mm; thin Mincho strokes break up.
    try:
        source = find_japanese_font(FontStyle.GOTHIC)
    except FontNotFoundError as exc:
        raise FaxError(f"cannot draw the fax header line: {exc}") from None
    return ImageFont.truetype(str(source.path), size=size, index=source.index)


def header_line(when: datetime, sender: str, page: int, pages: int) -> str:
    """The header text for one page; ``sender`` is the office's name and fax number."""
    return f"{when:%Y/%m/%d %H:%M}  FROM {sender}  P.{page}/{pages}"


def render_band(text: str, width: int, y_dpi: int) -> Image.Image:
    """The header band as a 1-bit image ``width`` pixels wide at 204×``y_dpi`` dpi."""
    band = Image.new("L", (width, BAND_PX), 255)
    draw = ImageDraw.Draw(band)
    draw.text((LEFT_MARGIN_PX, (BAND_PX - FONT_PX) // 2), text, font=_font(FONT_PX), fill=0)
    rows = max(1, round(BAND_PX * y_dpi / imaging.X_DPI))
    if rows != BAND_PX:
        band = band.resize((width, rows), Image.Resampling.LANCZOS)
    return band.point(lambda v: 255 if v >= 160 else 0, mode="1")


def stamp_pages(pages: list[Image.Image], y_dpis: list[int], sender: str, when: datetime) -> list[Image.Image]:
    """Copies of ``pages`` with the header line drawn over their top band."""
    out: list[Image.Image] = []
    total = len(pages)
    for number, (page, y_dpi) in enumerate(zip(pages, y_dpis, strict=True), start=1):
        stamped = page.convert("1").copy()
        band = render_band(header_line(when, sender, number, total), stamped.width, y_dpi)
        stamped.paste(band, (0, 0))
        out.append(stamped)
    return out


def stamp_tiff(tiff: bytes, sender: str, when: datetime, *, compression: str = "g4") -> bytes:
    """A TIFF-F with the header line stamped on every page (the input is validated first)."""
    pages = imaging.read_tiff(tiff)
    images = [imaging.page_image(p) for p in pages]
    dpis = [p.y_dpi for p in pages]
    return imaging.encode_tiff(stamp_pages(images, dpis, sender, when), y_dpi=dpis, compression=compression)
