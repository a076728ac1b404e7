"""An OCRmyPDF plugin: Tesseract reads each fax page twice (modes 4 and 11) and the lines are merged.

Loaded by ``inkless.fax.ocr`` with ``--plugin inkless.fax.ocr_plugin`` in the OCRmyPDF process; see
:mod:`inkless.fax.ocr_merge` for why two modes and how their lines are merged. The pages keep
their image bytes; only the invisible text layer (built by OCRmyPDF from the merged hOCR) changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ocrmypdf import hookimpl  # type: ignore[import-untyped, unused-ignore]
from ocrmypdf._exec import tesseract  # type: ignore[import-untyped, unused-ignore]
from ocrmypdf.builtin_plugins.tesseract_ocr import (  # type: ignore[import-untyped, unused-ignore]
    TesseractOcrEngine,
)

from inkless.fax.ocr_merge import merge_hocr

# "One column of text of variable sizes" for letters and notices, then "sparse text" for what it misses.
FIRST_PASS_MODE = 4
SECOND_PASS_MODE = 11


def _tesseract_hocr(input_file: Path, output_hocr: Path, output_text: Path, options: Any, mode: int) -> None:
    tesseract.generate_hocr(
        input_file=input_file, output_hocr=output_hocr, output_text=output_text,
        languages=options.languages, engine_mode=options.tesseract.oem, tessconfig=options.tesseract.config,
        timeout=options.tesseract.timeout, pagesegmode=mode, thresholding=options.tesseract.thresholding,
        user_words=options.tesseract.user_words, user_patterns=options.tesseract.user_patterns,
        omp_thread_limit=options.tesseract.omp_thread_limit,
    )


class TwoPassTesseract(TesseractOcrEngine):  # type: ignore[misc, unused-ignore]
    """Tesseract in modes 4 and 11 on every page, merged line by line."""

    def __str__(self) -> str:
        return f"Tesseract OCR {tesseract.version()} (two passes, inkless)"

    @staticmethod
    def generate_hocr(input_file: Path, output_hocr: Path, output_text: Path, options: Any) -> None:
        _tesseract_hocr(input_file, output_hocr, output_text, options, FIRST_PASS_MODE)
        second_hocr = output_hocr.with_name(output_hocr.stem + "-second.hocr")
        second_text = output_text.with_name(output_text.stem + "-second.txt")
        _tesseract_hocr(input_file, second_hocr, second_text, options, SECOND_PASS_MODE)
        merged, text = merge_hocr(output_hocr.read_bytes(), second_hocr.read_bytes())
        output_hocr.write_bytes(merged)
        output_text.write_text(text, encoding="utf-8")


@hookimpl  # type: ignore[misc, unused-ignore]
def get_ocr_engine(options: Any) -> TesseractOcrEngine:
    return TwoPassTesseract()
