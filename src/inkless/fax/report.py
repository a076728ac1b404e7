"""The fax transmission report (送信結果レポート): one A4 PDF per attempt, with a thumbnail of page 1.

Like the slip a fax machine prints: who sent what to which number, when, how many pages went
through, line time, bit rate, ECM, compression and the T.30 result code and text, as real PDF
text (searchable, copyable) in the node's Japanese font.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime, tzinfo

from PIL import Image

from inkless import timefmt
from inkless.errors import FaxError

STATUS_LABELS = {"done": "送信成功 / OK", "retry": "失敗・再送予定 / failed, will retry", "failed": "送信失敗 / FAILED"}


@dataclass(frozen=True)
class TransmissionReport:
    """The facts printed on a transmission report."""

    job_id: int
    attempt: int
    office_name: str
    office_number: str | None
    number: str
    status: str
    pages_sent: int
    pages_total: int
    duration_s: float
    bit_rate: int
    ecm: bool
    compression: str
    remote_ident: str | None
    t30_code: int
    t30_text: str
    started_at: datetime
    finished_at: datetime


def _thumbnail(tiff: bytes) -> Image.Image | None:
    from inkless.fax import imaging

    try:
        first = imaging.read_tiff(tiff)[0]
        return Image.open(io.BytesIO(imaging.thumbnail_png(first, width=420))).convert("L")
    except (FaxError, OSError, IndexError):
        return None


def _speed(bit_rate: int, ecm: bool) -> str:
    """``14400, True`` → ``14.4kbps・誤り訂正あり / error correction on``, as a clerk reads it."""
    if not bit_rate:
        return "-"
    correction = "誤り訂正あり / error correction on" if ecm else "誤り訂正なし / no error correction"
    return f"{bit_rate / 1000:g}kbps・{correction}"


def _register_font() -> str:
    from reportlab.pdfbase import pdfmetrics  # type: ignore[import-untyped]
    from reportlab.pdfbase.ttfonts import TTFont  # type: ignore[import-untyped]

    from inkless.errors import FontNotFoundError
    from inkless.fonts import FontStyle, find_japanese_font

    name = "InklessFaxJP"
    if name not in pdfmetrics.getRegisteredFontNames():
        try:
            # reportlab embeds TrueType outlines only.
            source = find_japanese_font(FontStyle.MINCHO, truetype_only=True)
        except FontNotFoundError as exc:
            raise FaxError(f"cannot write the transmission report: {exc}") from None
        pdfmetrics.registerFont(TTFont(name, str(source.path), subfontIndex=source.index))
    return name


def render_report(report: TransmissionReport, tiff: bytes | None, tz: tzinfo = timefmt.TOKYO) -> bytes:
    """The report as a one-page A4 PDF with real (searchable) text and a thumbnail of page 1.

    Times are written in ``tz`` (the ``timezone`` setting) with the 和暦 date: the report is filed.
    """
    from reportlab.lib.pagesizes import A4 as A4_PT  # type: ignore[import-untyped]
    from reportlab.lib.utils import ImageReader  # type: ignore[import-untyped]
    from reportlab.pdfgen import canvas  # type: ignore[import-untyped]

    font = _register_font()
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A4_PT, invariant=True)
    width, height = A4_PT
    c.setTitle("FAX送信結果レポート / Fax transmission report")
    c.setFont(font, 22)
    c.drawString(50, height - 70, "FAX送信結果レポート")
    c.setFont(font, 11)
    c.drawString(50, height - 90, "Fax transmission report")
    c.line(50, height - 100, width - 50, height - 100)
    rows = [
        ("結果 / Result", STATUS_LABELS.get(report.status, report.status)),
        ("宛先 / To", report.number + (f"  ({report.remote_ident})" if report.remote_ident else "")),
        ("送信元 / From", f"{report.office_name} {report.office_number or ''}".strip()),
        ("ジョブ / Job", f"{report.job_id}  試行 / attempt {report.attempt}"),
        ("開始 / Started", timefmt.format_document_datetime(report.started_at, tz, seconds=True)),
        ("終了 / Finished", timefmt.format_document_datetime(report.finished_at, tz, seconds=True)),
        ("枚数 / Pages", f"{report.pages_sent} / {report.pages_total}"),
        ("通信時間 / Duration", f"{report.duration_s:.1f} s"),
        # Plain words first (送信速度 14.4kbps・誤り訂正あり), the machine's codes in the detail rows.
        ("送信速度 / Speed", _speed(report.bit_rate, report.ecm)),
        ("符号化 / Coding", f"{report.compression or '-'}{'  (ECM)' if report.ecm else ''}"),
        ("T.30コード / T.30 code", f"{report.t30_code}: {report.t30_text}"),
    ]
    y = height - 130
    for label, value in rows:
        c.setFont(font, 10)
        c.drawString(50, y, label)
        c.setFont(font, 12)
        # Long T.30 texts wrap rather than run off the page.
        for k in range(0, max(1, len(value)), 60):
            c.drawString(210, y, value[k : k + 60])
            y -= 18
        y -= 6
    thumb = _thumbnail(tiff) if tiff else None
    if thumb is not None:
        c.setFont(font, 10)
        c.drawString(50, y - 10, "1ページ目 / Page 1")
        box_w = 200.0
        box_h = box_w * thumb.height / thumb.width
        top = y - 20
        c.drawImage(ImageReader(thumb), 50, top - box_h, box_w, box_h)
        c.rect(50, top - box_h, box_w, box_h)
    c.showPage()
    c.save()
    return buf.getvalue()
