"""A Japanese OCR test set as a received fax: headings, body text and a table, with the text each page says.

Pages are A4, set with the IPAex fonts the project uses (Gothic headings, Mincho body), printed at several
sizes: headings 20–36 pt, sub-headings 14–16 pt, body 9–12 pt, and every third page a ruled table with a
header row. The PDF is faxed by inkless's own renderer (204×196 dpi, bilevel G4) and turned back into the
PDF a received fax becomes, so OCR sees exactly what it sees on a real line.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from tests.helpers.fax_fidelity import font_path

HEADINGS = (
    "住民票の写しの交付について",
    "会議開催のお知らせ",
    "申請書類の提出期限",
    "戸籍証明書の請求方法",
    "手数料の改定について",
    "窓口受付時間の変更",
    "公文書の送付について",
    "補助金交付決定通知",
    "年度末の事務手続",
    "本庁舎の工事のお知らせ",
)
SUBHEADINGS = ("一　目的", "二　対象", "三　期日", "四　問合せ先")
BODY = (
    "本日の会議は本庁舎で行います",
    "木曜日の午後に資料を配布します",
    "年度末までに未定の事項を決めます",
    "申請書は山田係長に提出します",
    "戸籍の証明書は窓口で交付します",
    "土曜日は弁護士の相談があります",
)
TABLE = (
    ("証明書", "手数料", "担当"),
    ("住民票", "三百円", "市民課"),
    ("戸籍謄本", "四百五十円", "戸籍係"),
    ("印鑑証明", "三百円", "市民課"),
)
HEADING_SIZES = (20, 24, 28, 32, 36)
BODY_SIZES = (9, 10.5, 12)


@dataclass(frozen=True)
class OcrPage:
    """What one page says, in reading order, without spaces; and the size of its heading."""

    heading: str
    heading_pt: float
    text: str
    has_table: bool


@dataclass(frozen=True)
class OcrSet:
    pdf: bytes  # as printed
    pages: tuple[OcrPage, ...]


def ocr_test_set(count: int = 10) -> OcrSet:
    """``count`` pages, each with a heading of 20–36 pt; every third page holds a table."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.pdfgen import canvas

    mincho, gothic = font_path("mincho"), font_path("gothic")
    if mincho is None or gothic is None:
        raise RuntimeError("the IPAex fonts are not installed (fonts-ipaexfont-mincho, fonts-ipaexfont-gothic)")
    pdfmetrics.registerFont(TTFont("IPAexMincho", str(mincho)))
    pdfmetrics.registerFont(TTFont("IPAexGothic", str(gothic)))
    width, height = A4
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A4, invariant=True)
    pages: list[OcrPage] = []
    for number in range(count):
        heading = HEADINGS[number % len(HEADINGS)]
        heading_pt = HEADING_SIZES[number % len(HEADING_SIZES)]
        body_pt = BODY_SIZES[number % len(BODY_SIZES)]
        said: list[str] = []
        # The heading centred, as on a notice.
        c.setFont("IPAexGothic", heading_pt)
        c.drawCentredString(width / 2, height - 70 - heading_pt, heading)
        said.append(heading)
        y = height - 110 - heading_pt * 1.5
        for part, sub in enumerate(SUBHEADINGS[:2]):
            c.setFont("IPAexGothic", 14 + 2 * (part % 2))
            c.drawString(60, y, sub)
            said.append(sub)
            y -= 30
            c.setFont("IPAexMincho", body_pt)
            for k in range(3):
                line = BODY[(number + part * 3 + k) % len(BODY)]
                c.drawString(72, y, line)
                said.append(line)
                y -= body_pt * 2
            y -= 16
        has_table = number % 3 == 2
        if has_table:
            c.setLineWidth(0.6)
            cell_w, cell_h = 140, 26
            for r, row in enumerate(TABLE):
                for col, cell in enumerate(row):
                    x = 60 + col * cell_w
                    c.rect(x, y - cell_h * (r + 1), cell_w, cell_h)
                    c.setFont("IPAexGothic" if r == 0 else "IPAexMincho", 11)
                    c.drawString(x + 10, y - cell_h * (r + 1) + 9, cell)
                said.extend(row)
        pages.append(OcrPage(heading, heading_pt, "".join(said), has_table))
        c.showPage()
    c.save()
    return OcrSet(buf.getvalue(), tuple(pages))


def as_received_fax(pdf: bytes, *, fine: bool = True) -> bytes:
    """``pdf`` faxed by inkless's renderer and received: the PDF with the G4 pages that OCR is given."""
    from inkless.fax.imaging import pdf_to_tiff, tiff_to_pdf

    return tiff_to_pdf(pdf_to_tiff(pdf, fine=fine))


def page_texts(pdf: bytes) -> list[str]:
    """The text layer of each page (pdftotext), without whitespace."""
    import subprocess

    done = subprocess.run(["pdftotext", "-layout", "-", "-"], input=pdf, capture_output=True, check=True)
    return ["".join(page.split()) for page in done.stdout.decode("utf-8").split("\f")][: _count(pdf)]


def _count(pdf: bytes) -> int:
    import pypdfium2 as pdfium  # type: ignore[import-untyped, unused-ignore]

    doc = pdfium.PdfDocument(pdf)
    try:
        return len(doc)
    finally:
        doc.close()
