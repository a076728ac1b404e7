"""The transmission report (送信証明): a fax machine's report, with cryptographic proof.

One A4 page per message: sender, recipients with their delivery state, time sent and received,
pages, envelope SHA-256, each receipt's signer and signature status, and a thumbnail of page 1.
Labels are Japanese with English beneath; text is set in IPAex Gothic so Japanese renders.
"""

from __future__ import annotations

import io
from datetime import datetime, tzinfo
from pathlib import Path

from reportlab.lib.pagesizes import A4  # type: ignore[import-untyped, unused-ignore]
from reportlab.lib.utils import ImageReader  # type: ignore[import-untyped, unused-ignore]
from reportlab.pdfbase import pdfmetrics  # type: ignore[import-untyped, unused-ignore]
from reportlab.pdfbase.ttfonts import TTFont  # type: ignore[import-untyped, unused-ignore]
from reportlab.pdfgen import canvas  # type: ignore[import-untyped, unused-ignore]

from inkless import timefmt
from inkless.delivery.envelope import Document
from inkless.delivery.model import OpenedMessage, ReceiptInfo, SentMessage
from inkless.delivery.service import DeliveryService
from inkless.directory.model import Clearance
from inkless.errors import DeliveryError, FontNotFoundError
from inkless.fonts import FontStyle, find_japanese_font
from inkless.pdfium_lock import PDFIUM_LOCK

FONT_NAME = "InklessGothic"
STATE_LABELS = {
    "queued": "送信待ち / queued", "retrying": "再送中 / retrying", "delivered": "配達済 / delivered",
    "expired": "期限切れ / expired", "rejected": "拒否 / rejected", "fax": "FAX送信 / fax",
}


def gothic_font() -> Path:
    """The IPAex Gothic file (or another Japanese sans face), found through fontconfig."""
    try:
        # TrueType outlines only: reportlab cannot embed CFF (.otf) faces.
        return find_japanese_font(FontStyle.GOTHIC, truetype_only=True).path
    except FontNotFoundError as exc:
        raise DeliveryError(str(exc)) from None


def _register_font() -> None:
    if FONT_NAME not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont(FONT_NAME, str(gothic_font())))


def page_count(doc: Document) -> int | None:
    """Pages of a PDF document (None for other files or unreadable PDFs)."""
    if doc.content_type != "application/pdf":
        return None
    import pypdfium2 as pdfium  # type: ignore[import-untyped, unused-ignore]

    with PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(doc.data)
        except pdfium.PdfiumError:
            return None
        try:
            return len(pdf)
        finally:
            pdf.close()


def thumbnail(doc: Document, width_px: int = 300) -> bytes | None:
    """PNG of the first page of a PDF, ``width_px`` wide (None if it cannot be rendered)."""
    import pypdfium2 as pdfium  # type: ignore[import-untyped, unused-ignore]

    with PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(doc.data)
        except pdfium.PdfiumError:
            return None
        try:
            if len(pdf) == 0:
                return None
            page = pdf[0]
            scale = width_px / page.get_width()
            image = page.render(scale=scale).to_pil()
            page.close()
        finally:
            pdf.close()
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def transmission_report(service: DeliveryService, message_id: str, viewer: str | None,
                        tz: tzinfo = timefmt.TOKYO) -> bytes:
    """The transmission report PDF of a sent message, for the sending office; times in ``tz``."""
    sent, opened, receipts = service.report_facts(message_id, viewer)
    return render_report(sent, opened, receipts, service.node_id, tz)


def render_report(sent: SentMessage, opened: OpenedMessage, receipts: list[ReceiptInfo], node_id: str,
                  tz: tzinfo = timefmt.TOKYO) -> bytes:
    """Lay out the report page (a filed document: 和暦 dates with the Western year, the office's zone)."""

    def _when(value: datetime | None) -> str:
        return timefmt.format_document_datetime(value, tz, seconds=True)

    _register_font()
    out = io.BytesIO()
    c = canvas.Canvas(out, pagesize=A4, invariant=True)
    c.setTitle(f"Transmission report {sent.message_id}")
    width, height = A4
    left, y = 50.0, height - 60

    def label(ja: str, en: str, value: str, x: float = left, value_x: float = left + 130) -> None:
        nonlocal y
        c.setFont(FONT_NAME, 10)
        c.drawString(x, y, ja)
        c.setFont(FONT_NAME, 6.5)
        c.drawString(x, y - 8, en)
        c.setFont(FONT_NAME, 9.5)
        c.drawString(value_x, y, value)
        y -= 24

    c.setFont(FONT_NAME, 18)
    c.drawString(left, y, "送信証明書")
    c.setFont(FONT_NAME, 9)
    c.drawString(left, y - 14, "Transmission report — inkless secure delivery")
    y -= 46
    pages = [page_count(d) for d in opened.documents]
    total_pages = sum(p for p in pages if p is not None)
    level = sent.classification
    label("通信番号", "Message id", sent.message_id)
    label("送信元", "Sender", f"{sent.office}@{node_id}  ({sent.sender_login})")
    label("件名", "Subject", opened.metadata.subject[:60])
    label("区分", "Classification",
          f"{level} {Clearance.LABELS.get(level, '')} / {Clearance.LABELS_EN.get(level, '')}")
    label("優先度", "Priority", "至急 / urgent" if sent.priority == "urgent" else "通常 / normal")
    label("送信日時", "Time sent", _when(sent.created_at))
    label("枚数", "Pages", f"{total_pages} ({len(opened.documents)} documents)")
    label("封筒 SHA-256", "Envelope digest", sent.envelope_sha256[:32])
    c.setFont(FONT_NAME, 9.5)
    c.drawString(left + 130, y + 12, sent.envelope_sha256[32:])
    y -= 6

    c.setFont(FONT_NAME, 11)
    c.drawString(left, y, "宛先と受領証")
    c.setFont(FONT_NAME, 7)
    c.drawString(left, y - 9, "Recipients and receipts")
    y -= 26
    by_recipient = {r.recipient: r for r in receipts}
    for status in sent.recipients:
        receipt = by_recipient.get(status.recipient)
        c.setFont(FONT_NAME, 9.5)
        c.drawString(left, y, status.recipient)
        c.drawString(left + 200, y, STATE_LABELS.get(status.state, status.state))
        c.setFont(FONT_NAME, 8)
        y -= 12
        c.drawString(left + 12, y, f"受信日時 Received: {_when(status.received_at)}")
        y -= 11
        if receipt is not None:
            verdict = "有効 / valid" if receipt.status == "valid" else f"無効 / invalid: {receipt.status[:70]}"
            c.drawString(left + 12, y, f"受領証署名者 Receipt signer: {receipt.signer_address or '—'}")
            y -= 11
            c.drawString(left + 12, y, f"署名検証 Signature: {verdict}")
            y -= 11
        elif status.last_error:
            c.drawString(left + 12, y, f"理由 Reason: {status.last_error[:90]}")
            y -= 11
        y -= 8
        if y < 260:
            break

    for doc in opened.documents:
        png = thumbnail(doc) if doc.content_type == "application/pdf" else None
        if png is None:
            continue
        image = ImageReader(io.BytesIO(png))
        iw, ih = image.getSize()
        w = 150.0
        h = w * ih / iw
        x0, y0 = width - 50 - w, 80.0
        c.setFont(FONT_NAME, 8)
        c.drawString(x0, y0 + h + 6, f"1ページ目 / Page 1: {doc.name[:30]}")
        c.drawImage(image, x0, y0, w, h)
        c.rect(x0, y0, w, h)
        break
    c.setFont(FONT_NAME, 7)
    c.drawString(left, 50, "受領証は受信側部署の署名鍵による CMS 署名です。inkless message export で .p7s を取り出し、"
                           "openssl cms -verify で検証できます。")
    c.drawString(left, 40, "Receipts are CMS signatures by the receiving office; export them with "
                           "'inkless message export' and check them with 'openssl cms -verify'.")
    c.showPage()
    c.save()
    return out.getvalue()
