"""Documents the intake window issues: the 受付証明 (certificate of receipt) and the invitation letter.

Both are A4 PDFs with real text in the node's Japanese gothic face (searchable, copyable), Japanese
first with English beneath. The certificate leaves a box at the lower right for the office seal,
which :meth:`inkless.seals.sealing.SealingService.seal_as_office_async` presses there.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo

from inkless import timefmt
from inkless.seals.model import SealPlacement

FONT = "InklessGothic"
# Where the office seal goes on the certificate: 21 mm square, lower right.
PT_PER_MM = 72 / 25.4
# reportlab, segno and Pillow are imported by the functions that draw: opening a node must not load them.
A4 = (595.2755905511812, 841.8897637795277)  # reportlab.lib.pagesizes.A4, in points
SEAL_BOX_PT = (A4[0] - 60 - 21 * PT_PER_MM, 70.0, A4[0] - 60, 70.0 + 21 * PT_PER_MM)


@dataclass(frozen=True)
class ListedFile:
    """A file as the certificate lists it."""

    name: str
    pages: int
    size: int
    sha256: str


@dataclass(frozen=True)
class CertificateFacts:
    """What a 受付証明 states."""

    receipt_number: str
    office_name: str
    organisation: str
    received_at: datetime
    subject: str
    procedure: str
    submitter_name: str
    submitter_organisation: str
    email: str
    phone: str
    message: str
    files: Sequence[ListedFile]
    status_url: str


def _font() -> str:
    from inkless.delivery.report import FONT_NAME, _register_font

    _register_font()
    return str(FONT_NAME)


def seal_placement() -> SealPlacement:
    """The office seal's box on page 1 of the certificate."""
    return SealPlacement(page=1, box=SEAL_BOX_PT)


def qr_png(url: str, scale: int = 8) -> bytes:
    """The QR code of ``url`` as a PNG (quiet zone included)."""
    import segno

    out = io.BytesIO()
    segno.make(url, error="m").save(out, kind="png", scale=scale, border=4)
    return out.getvalue()


def qr_svg(url: str) -> bytes:
    """The QR code of ``url`` as a standalone SVG file (no script, no external resource)."""
    import segno

    out = io.BytesIO()
    segno.make(url, error="m").save(out, kind="svg", scale=6, border=4, title="QR")
    return out.getvalue()


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        while len(paragraph) > width:
            lines.append(paragraph[:width])
            paragraph = paragraph[width:]
        lines.append(paragraph)
    return lines


def certificate_pdf(facts: CertificateFacts, tz: tzinfo) -> bytes:
    """The unsealed 受付証明: one A4 page (more if the message is long)."""
    from reportlab.pdfgen import canvas  # type: ignore[import-untyped, unused-ignore]

    font = _font()
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A4, invariant=True)
    width, height = A4
    c.setTitle(f"受付証明 {facts.receipt_number}")
    c.setFont(font, 22)
    c.drawString(50, height - 70, "受付証明")
    c.setFont(font, 10)
    c.drawString(50, height - 88, "Certificate of receipt")
    c.setFont(font, 12)
    c.drawRightString(width - 50, height - 70, f"{facts.organisation} {facts.office_name}")
    c.line(50, height - 98, width - 50, height - 98)
    rows = [
        ("受付番号 / Receipt No.", facts.receipt_number),
        ("受付日時 / Received", timefmt.format_document_datetime(facts.received_at, tz, seconds=True)),
        ("宛先 / To", facts.office_name),
        ("件名 / Subject", facts.subject),
        ("手続 / Procedure", facts.procedure),
        ("お名前 / Name", facts.submitter_name),
        ("団体名 / Organisation", facts.submitter_organisation or "-"),
        ("メール / E-mail", f"{facts.email}（確認済み / verified）"),
        ("電話 / Phone", facts.phone or "-"),
    ]
    y = height - 125
    for label, value in rows:
        c.setFont(font, 9)
        c.drawString(50, y, label)
        c.setFont(font, 11)
        for line in _wrap(value, 40):
            c.drawString(190, y, line)
            y -= 15
        y -= 5
    c.setFont(font, 9)
    c.drawString(50, y, "提出されたファイル / Files received")
    y -= 15
    for number, f in enumerate(facts.files, 1):
        c.setFont(font, 10)
        c.drawString(60, y, f"{number}. {f.name[:60]}  （{f.pages}ページ / pages, {f.size:,} bytes）")
        y -= 12
        c.setFont(font, 7)
        c.drawString(72, y, f"SHA-256 {f.sha256}")
        y -= 15
    y -= 5
    c.setFont(font, 9)
    c.drawString(50, y, "ご用件 / Message")
    y -= 15
    c.setFont(font, 10)
    for line in _wrap(facts.message or "-", 48):
        if y < 200:
            c.showPage()
            c.setFont(font, 10)
            y = height - 60
        c.drawString(60, y, line)
        y -= 14
    c.setFont(font, 9)
    notes = [
        "上記のとおり受け付けたことを証明します。この証明書には受付窓口の電子印（角印）と時刻認証があります。",
        "This certifies that the above was received. It carries the office's electronic seal and a time stamp.",
        f"受付状況の確認 / Check the status: {facts.status_url}",
    ]
    yy = 160.0
    for note in notes:
        c.drawString(50, yy, note)
        yy -= 14
    c.showPage()
    c.save()
    return buf.getvalue()


def invitation_pdf(office_name: str, organisation: str, intake_url: str, sent_at: datetime, tz: tzinfo) -> bytes:
    """The invitation letter faxed to a sender: plain Japanese, the URL in large type, and its QR code."""
    from reportlab.lib.utils import ImageReader  # type: ignore[import-untyped, unused-ignore]
    from reportlab.pdfgen import canvas  # type: ignore[import-untyped, unused-ignore]

    font = _font()
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A4, invariant=True)
    width, height = A4
    c.setTitle("オンライン受付のご案内")
    c.setFont(font, 26)
    c.drawString(60, height - 90, "オンライン受付のご案内")
    c.setFont(font, 12)
    c.drawString(60, height - 115, f"{organisation} {office_name}")
    c.drawRightString(width - 60, height - 115, timefmt.format_document_date(sent_at, tz))
    c.line(60, height - 125, width - 60, height - 125)
    lines = [
        "いつもFAXでお送りいただき、ありがとうございます。",
        "次回からはオンラインで送れます。アカウントは不要です。",
        "スマートフォンで下のQRコードを読み取るか、次のアドレスを開いてください。",
        "書類（PDF・写真）を送ると、受付番号と受付証明がメールで届きます。",
    ]
    y = height - 165
    c.setFont(font, 13)
    for line in lines:
        c.drawString(60, y, line)
        y -= 24
    c.setFont(font, 20)
    c.drawString(60, y - 20, intake_url)
    size = 200.0
    c.drawImage(ImageReader(io.BytesIO(qr_png(intake_url))), (width - size) / 2, y - 60 - size, size, size)
    c.setFont(font, 10)
    c.drawString(60, 90, "You can send documents online next time: open the address above or scan the QR code.")
    c.showPage()
    c.save()
    return buf.getvalue()
