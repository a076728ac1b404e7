"""A searchable text layer for received faxes: OCRmyPDF with Tesseract (Japanese and English), two passes.

OCRmyPDF runs in its own process: it manages Tesseract subprocesses, temporary files and
worker pools of its own, which must not share a web or line thread. It is told to keep the
image data exactly as it is (``--output-type pdf``, ``--optimize 0``): the CCITT fax data
stays embedded byte for byte, and only an invisible text layer is added beneath it.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import tempfile
from pathlib import Path

from inkless.errors import FaxError

log = logging.getLogger("inkless.fax.ocr")

DEFAULT_LANGUAGES = "jpn+eng"
DEFAULT_TIMEOUT_S = 300.0


def add_text_layer(pdf: bytes, languages: str = DEFAULT_LANGUAGES, timeout_s: float = DEFAULT_TIMEOUT_S) -> bytes:
    """The same PDF with an OCR text layer; FaxError (keeping OCRmyPDF's message) if OCR fails."""
    with tempfile.TemporaryDirectory(prefix="inkless-ocr-") as tmp:
        src = Path(tmp) / "in.pdf"
        dst = Path(tmp) / "out.pdf"
        src.write_bytes(pdf)
        command = [
            sys.executable, "-m", "ocrmypdf",
            "--language", languages,
            "--output-type", "pdf",
            "--optimize", "0",
            # A fax page is one image: nothing to skip, but a re-run on an OCRed PDF must not fail.
            "--skip-text",
            # Each page is read twice, as one column of text of variable sizes (mode 4: letters and
            # notices) and as sparse text (mode 11: the large headings and table cells mode 4 drops or
            # garbles), and the lines are merged: see inkless.fax.ocr_merge.
            "--plugin", "inkless.fax.ocr_plugin",
            "--pdf-renderer", "fpdf2",
            "--quiet",
            str(src), str(dst),
        ]
        try:
            # The command is fixed; only our own temporary file names vary.
            done = subprocess.run(command, capture_output=True, timeout=timeout_s, check=False)  # noqa: S603
        except subprocess.TimeoutExpired:
            raise FaxError(f"OCR took longer than {timeout_s:.0f} s") from None
        except OSError as exc:
            raise FaxError(f"OCR could not start: {exc}") from None
        if done.returncode != 0 or not dst.exists():
            detail = done.stderr.decode("utf-8", "replace").strip().splitlines()
            raise FaxError(f"OCR failed (ocrmypdf exit {done.returncode}): {detail[-1] if detail else 'no message'}")
        return dst.read_bytes()


def searchable_pdf(
    pdf: bytes, languages: str = DEFAULT_LANGUAGES, timeout_s: float = DEFAULT_TIMEOUT_S
) -> tuple[bytes, bool]:
    """``(pdf with text layer, True)``, or ``(pdf unchanged, False)`` when OCR failed: a fax is never lost to OCR."""
    try:
        return add_text_layer(pdf, languages, timeout_s), True
    except FaxError as exc:
        log.warning("received fax kept without a text layer: %s", exc)
        return pdf, False
