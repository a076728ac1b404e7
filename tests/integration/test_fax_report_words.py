"""The fax transmission report (送信結果レポート) says the speed in plain words and keeps the codes,
read back from the PDF by poppler's pdftotext."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

from inkless.fax.report import TransmissionReport, render_report


def test_the_transmission_report_says_the_speed_in_plain_words_and_keeps_the_code(tmp_path: Path) -> None:
    report = TransmissionReport(
        job_id=7, attempt=1, office_name="民事局", office_number="03-3580-4111", number="03-3580-4112",
        status="done", pages_sent=2, pages_total=2, duration_s=41.0, bit_rate=14400, ecm=True, compression="T.6",
        remote_ident=None, t30_code=0, t30_text="OK", started_at=datetime(2026, 12, 3, 8, 5, tzinfo=UTC),
        finished_at=datetime(2026, 12, 3, 8, 6, tzinfo=UTC))
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(render_report(report, None))
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "14.4kbps・誤り訂正あり / error correction on" in text
    assert "0: OK" in text and "14400" not in text
