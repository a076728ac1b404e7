"""Test documents for the fax bridge: a 3-page PDF with a known Japanese phrase, made with reportlab."""

from __future__ import annotations

import io
from pathlib import Path

JAPANESE_PHRASE = "災害対策本部からのお知らせ"

_FONT_FILES = (
    Path("/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf"),
    Path("/usr/share/fonts/truetype/ipaexfont-gothic/ipaexg.ttf"),
    Path("/usr/share/fonts/opentype/ipaexfont-mincho/ipaexm.ttf"),
)


def _japanese_font() -> str:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    if "IPAexGothic" not in pdfmetrics.getRegisteredFontNames():
        for path in _FONT_FILES:
            if path.exists():
                pdfmetrics.registerFont(TTFont("IPAexGothic", str(path)))
                break
        else:
            raise RuntimeError("no IPAex font installed (fonts-ipaexfont-gothic)")
    return "IPAexGothic"


def three_page_pdf(*, photo: bool = False) -> bytes:
    """A4, 3 pages: page 1 carries JAPANESE_PHRASE in large type; pages 2-3 text and rules."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    font = _japanese_font()
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A4, invariant=True)
    width, height = A4
    c.setFont(font, 30)
    c.drawString(60, height - 140, JAPANESE_PHRASE)
    c.setFont(font, 14)
    for i, line in enumerate(("令和8年11月30日", "各位", "避難所の開設について下記のとおりお知らせします。")):
        c.drawString(60, height - 200 - 26 * i, line)
    if photo:
        # A smooth grey ramp stands in for a photograph: it must be dithered, not thresholded.
        steps = 64
        for s in range(steps):
            c.setFillGray(s / (steps - 1))
            c.rect(60 + s * 7, 200, 7, 250, stroke=0, fill=1)
        c.setFillGray(0)
    c.showPage()
    for page in (2, 3):
        c.setFont(font, 14)
        c.drawString(60, height - 80, f"第{page}頁  Page {page} of 3")
        for row in range(30):
            text = f"{row + 1:02d}  The quick brown fox jumps over the lazy dog. 0123456789"
            c.drawString(60, height - 120 - 22 * row, text)
        c.rect(50, 50, width - 100, height - 100)
        c.showPage()
    c.save()
    return buf.getvalue()


def long_pdf(pages: int = 20) -> bytes:
    """A plain multi-page text document for benchmarks."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    font = _japanese_font()
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A4, invariant=True)
    _, height = A4
    for page in range(pages):
        c.setFont(font, 12)
        for row in range(45):
            text = f"{page + 1}-{row + 1:02d} 災害対策本部 The quick brown fox jumps over the lazy dog."
            c.drawString(50, height - 60 - 16 * row, text)
        c.showPage()
    c.save()
    return buf.getvalue()


def simple_fax_tiff(pages: int = 1, *, rows: int = 800) -> bytes:
    """A quick TIFF-F for real-time line tests: short pages (``rows`` at 196 dpi) of bars and page marks.

    Each page differs (its number is drawn as that many blocks), so a swapped or repeated page shows.
    """
    from PIL import Image, ImageDraw

    from inkless.fax import imaging

    images = []
    for page in range(pages):
        image = Image.new("1", (1728, rows), 1)
        draw = ImageDraw.Draw(image)
        draw.rectangle((40, 40, 1688, rows - 40), outline=0, width=6)
        for bar in range(8):
            y = 120 + bar * 70
            if y + 30 < rows - 60:
                draw.rectangle((120, y, 120 + 180 * (bar + 1), y + 30), fill=0)
        for mark in range(page + 1):
            draw.rectangle((1500 - mark * 80, 70, 1550 - mark * 80, 110), fill=0)
        draw.text((130, rows - 110), f"inkless test page {page + 1} of {pages}", fill=0)
        images.append(image)
    return imaging.encode_tiff(images)
