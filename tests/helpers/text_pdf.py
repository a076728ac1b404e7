"""A one-page PDF with a Japanese text layer (what OCR leaves in a received fax, or a clerk's letter)."""

from __future__ import annotations

import io

from reportlab.lib.pagesizes import A4
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas

from inkless.delivery.report import gothic_font


def text_pdf(text: str) -> bytes:
    """A one-page A4 PDF whose text layer says ``text``."""
    if "IPAexGothic" not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont("IPAexGothic", str(gothic_font())))
    out = io.BytesIO()
    page = canvas.Canvas(out, pagesize=A4, invariant=True)
    page.setFont("IPAexGothic", 14)
    page.drawString(72, 720, text)
    page.showPage()
    page.save()
    return out.getvalue()
