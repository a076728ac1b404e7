"""Benchmark: the OCR text layer of a received fax against Tesseract run alone on the same page images.

    .venv/bin/python bench/ocr.py [--pages 10] [--standard]

A 10-page Japanese test set (tests/helpers/ocr_pages.py: IPAex Gothic headings of 20–36 pt, Mincho
body text of 9–12 pt, a ruled table on every third page) is faxed by inkless's renderer (204×196 dpi,
or 204×98 with ``--standard``) and received. Then:

* inkless: ``inkless.fax.ocr.add_text_layer`` on the received PDF (OCRmyPDF, two Tesseract passes merged),
  its text layer read back with pdftotext;
* the peer: ``tesseract PAGE.png - -l jpn+eng`` (its default page segmentation) on each page image of the
  same received PDF, as many pages at once as there are cores (OCRmyPDF also runs one page per core).

Prints, for each, the wall time, the character error rate (edit distance / length of what the page
says, whitespace ignored) over all pages, and how many page headings were read; then the ratios
inkless / Tesseract of time and of CER.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.helpers.fax_fidelity import edit_distance
from tests.helpers.ocr_pages import as_received_fax, ocr_test_set, page_texts

from inkless.fax.ocr import DEFAULT_LANGUAGES, add_text_layer


def tesseract_alone(pdf: bytes, languages: str) -> list[str]:
    """Each page of ``pdf`` as a 204 dpi image, read by Tesseract with its defaults; one page per core at once."""
    tesseract = shutil.which("tesseract")
    if tesseract is None:
        raise SystemExit("tesseract is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "fax.pdf"
        src.write_bytes(pdf)
        subprocess.run(["pdftoppm", "-r", "204", "-gray", "-png", str(src), str(Path(tmp) / "page")], check=True)
        images = sorted(Path(tmp).glob("page-*.png"))

        def read(image: Path) -> str:
            done = subprocess.run([tesseract, str(image), "-", "-l", languages], capture_output=True, text=True,
                                  check=True, env={**os.environ, "OMP_THREAD_LIMIT": "1"})
            return "".join(done.stdout.split())

        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            return list(pool.map(read, images))


def score(texts: list[str], truths: list[str], headings: list[str]) -> tuple[float, int]:
    errors = sum(edit_distance(text, truth) for text, truth in zip(texts, truths, strict=True))
    return errors / sum(len(t) for t in truths), sum(h in text for h, text in zip(headings, texts, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=10)
    parser.add_argument("--standard", action="store_true", help="204×98 dpi instead of 204×196")
    args = parser.parse_args()
    test_set = ocr_test_set(args.pages)
    fax = as_received_fax(test_set.pdf, fine=not args.standard)
    truths = [p.text for p in test_set.pages]
    headings = [p.heading for p in test_set.pages]

    start = time.perf_counter()
    layered = add_text_layer(fax)
    t_inkless = time.perf_counter() - start
    cer_inkless, kept_inkless = score(page_texts(layered), truths, headings)

    start = time.perf_counter()
    alone = tesseract_alone(fax, DEFAULT_LANGUAGES)
    t_alone = time.perf_counter() - start
    cer_alone, kept_alone = score(alone, truths, headings)

    resolution = "204×98" if args.standard else "204×196"
    print(f"OCR of {args.pages} received fax pages ({resolution} dpi), {DEFAULT_LANGUAGES}")
    print(f"    inkless (OCRmyPDF, 2 passes)  {t_inkless:6.1f} s   CER {cer_inkless:5.3f}   "
          f"headings read {kept_inkless}/{args.pages}")
    print(f"    tesseract alone               {t_alone:6.1f} s   CER {cer_alone:5.3f}   "
          f"headings read {kept_alone}/{args.pages}")
    ratio_cer = cer_inkless / cer_alone if cer_alone else float("inf")
    print(f"    ratio inkless/tesseract: time {t_inkless / t_alone:5.2f}   CER {ratio_cer:5.2f}")


if __name__ == "__main__":
    main()
