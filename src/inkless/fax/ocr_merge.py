"""Two OCR passes of one fax page merged line by line into one hOCR text layer.

Tesseract reads a page with one page-segmentation mode. Mode 4 ("one column of text of variable
sizes") reads letters and notices well but drops or garbles some large headings (≥ 20 pt) and
the cells of ruled tables; mode 11 ("sparse text") finds text wherever it stands — isolated
headings, table cells — but splits running text into fragments. The page is read with both and
merged:

* every line of the first pass is kept, unless lines of the second pass cover it and read it
  with clearly higher confidence (then those replace it: a heading read as 戸束証明 becomes
  戸籍証明書 again);
* a line of the second pass where the first found nothing is added (a lost heading, a cell);
* the result is in reading order (top to bottom, then left to right), one line per paragraph.

Only the standard library is used: the hOCR files come from Tesseract and are well-formed XHTML.
"""

from __future__ import annotations

import copy
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

XHTML = "http://www.w3.org/1999/xhtml"
LINE_CLASSES = frozenset({"ocr_line", "ocr_header", "ocr_textfloat", "ocr_caption"})
# How much more confident (mean x_wconf, 0–100) the second pass must be to replace a line of the first.
REPLACE_MARGIN = 15.0
# Boxes whose overlap is at least this share of the smaller one are the same text.
SAME_TEXT_OVERLAP = 0.3

_BBOX = re.compile(r"bbox (\d+) (\d+) (\d+) (\d+)")
_WCONF = re.compile(r"x_wconf (\d+(?:\.\d+)?)")

Box = tuple[int, int, int, int]


@dataclass
class Line:
    """One line element of an hOCR page, with its box and the mean confidence of its words."""

    element: ET.Element
    box: Box
    confidence: float
    text: str


def _q(tag: str) -> str:
    return f"{{{XHTML}}}{tag}"


def _box(element: ET.Element) -> Box | None:
    found = _BBOX.search(element.get("title", ""))
    if found is None:
        return None
    x0, y0, x1, y1 = (int(v) for v in found.groups())
    return x0, y0, x1, y1


def _lines(page: ET.Element) -> list[Line]:
    lines: list[Line] = []
    for element in page.iter(_q("span")):
        if element.get("class") not in LINE_CLASSES:
            continue
        box = _box(element)
        if box is None:
            continue
        confidences: list[tuple[float, int]] = []
        text = ""
        for word in element.iter(_q("span")):
            if word.get("class") != "ocrx_word":
                continue
            word_text = "".join(word.itertext()).strip()
            if not word_text:
                continue
            conf = _WCONF.search(word.get("title", ""))
            confidences.append((float(conf.group(1)) if conf else 0.0, len(word_text)))
            text += word_text
        if not text:
            continue
        weight = sum(n for _, n in confidences)
        mean = sum(c * n for c, n in confidences) / weight if weight else 0.0
        lines.append(Line(element, box, mean, text))
    return lines


def _overlap(a: Box, b: Box) -> float:
    """Intersection area over the smaller box's area."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return (w * h) / smaller if smaller > 0 else 0.0


def merge_lines(first: list[Line], second: list[Line]) -> list[Line]:
    """The lines of the merged page, in reading order (see the module docstring)."""
    kept = list(first)
    covering: dict[int, list[Line]] = {}  # index in first → second-pass lines over it
    added: list[Line] = []
    for line in second:
        over = [i for i, f in enumerate(first) if _overlap(f.box, line.box) >= SAME_TEXT_OVERLAP]
        if not over:
            added.append(line)
        for i in over:
            covering.setdefault(i, []).append(line)
    replaced: set[int] = set()
    for i, lines in covering.items():
        weight = sum(len(line.text) for line in lines)
        confidence = sum(line.confidence * len(line.text) for line in lines) / weight
        # Replace only by lines that read at least as much text: sparse fragments of a good line are worse.
        if confidence >= first[i].confidence + REPLACE_MARGIN and weight >= 0.8 * len(first[i].text):
            replaced.add(i)
            added.extend(line for line in lines if line not in added)
    kept = [f for i, f in enumerate(first) if i not in replaced] + added
    # A second-pass line may have been added twice (over two replaced lines) or over a kept line: once only,
    # and never on top of a kept first-pass line.
    result: list[Line] = []
    for line in kept:
        if any(line is r for r in result):
            continue
        if line in added and any(_overlap(line.box, f.box) >= SAME_TEXT_OVERLAP
                                 for j, f in enumerate(first) if j not in replaced):
            continue
        result.append(line)
    return sorted(result, key=lambda line: (line.box[1] // 20, line.box[0]))


def merge_hocr(first: bytes, second: bytes) -> tuple[bytes, str]:
    """Merge two hOCR documents of the same page; returns the merged hOCR and its plain text."""
    ET.register_namespace("", XHTML)
    # Tesseract wrote both files in this OCR run: their markup is its own (the page's text is escaped
    # character data in it), with no DTD or entity a fax could smuggle in.
    doc_a = ET.fromstring(first)  # noqa: S314
    doc_b = ET.fromstring(second)  # noqa: S314
    page_a = next((d for d in doc_a.iter(_q("div")) if d.get("class") == "ocr_page"), None)
    page_b = next((d for d in doc_b.iter(_q("div")) if d.get("class") == "ocr_page"), None)
    if page_a is None or page_b is None:
        return first, ""
    merged = merge_lines(_lines(page_a), _lines(page_b))
    for child in list(page_a):
        page_a.remove(child)
    text_lines: list[str] = []
    for number, line in enumerate(merged, 1):
        title = "bbox {} {} {} {}".format(*line.box)
        area = ET.SubElement(page_a, _q("div"), {"class": "ocr_carea", "id": f"block_m_{number}", "title": title})
        par = ET.SubElement(area, _q("p"), {"class": "ocr_par", "id": f"par_m_{number}", "title": title})
        element = copy.deepcopy(line.element)
        element.set("id", f"line_m_{number}")
        for k, word in enumerate(w for w in element.iter(_q("span")) if w.get("class") == "ocrx_word"):
            word.set("id", f"word_m_{number}_{k}")
        par.append(element)
        text_lines.append(line.text)
    body = ET.tostring(doc_a, encoding="unicode")
    out = '<?xml version="1.0" encoding="UTF-8"?>\n' + body
    return out.encode("utf-8"), "\n".join(text_lines) + "\n"
