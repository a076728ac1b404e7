"""A fax fidelity sheet and the measures a reader applies to it: OCR error rate, strokes kept, table borders.

The sheet is IPAex Mincho (or Gothic) text at several point sizes, rich in the characters that a thin
stroke tells apart (本/木, 末/未, 土/士, 千/干, 申/山, 戸), plus a table ruled with 0.1 mm lines. Each
size is one page, so the error rate is per size. The same PDF is faxed by inkless and by Ghostscript's
``tiffg4`` device, and both are read back by Tesseract (jpn) and compared with a 600 dpi render.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageChops, ImageFilter, ImageMorph

# Short official sentences: every critical pair appears, in words Tesseract's Japanese model knows.
LINES = (
    "本日の会議は本庁舎で行います",
    "木曜日の午後に資料を配布します",
    "年度末までに未定の事項を決めます",
    "土曜日は弁護士の相談があります",
    "千円の手数料で干物を販売します",
    "申請書は山田係長に提出します",
    "戸籍の証明書は窓口で交付します",
    "本件の期限は末日です未提出の方は",
)
# Pairs a lost stroke turns into each other; the left one is what the sheet says.
CRITICAL = ("本", "末", "未", "士", "千", "干", "申", "戸")
MINCHO_PATHS = (
    "/usr/share/fonts/opentype/ipaexfont-mincho/ipaexm.ttf",
    "/usr/share/fonts/truetype/ipaexfont-mincho/ipaexm.ttf",
)
GOTHIC_PATHS = (
    "/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf",
    "/usr/share/fonts/truetype/ipaexfont-gothic/ipaexg.ttf",
)
PAGE_WIDTH_PT = 148 * 72 / 25.4  # A5 width: portrait pages, so no renderer turns them
TABLE_LINE_MM = 0.1
X_DPI, Y_DPI = 204, 196
REFERENCE_DPI = 600


@dataclass(frozen=True)
class Sheet:
    """The fidelity sheet: one page per point size (text), then one page of a 0.1 mm table grid."""

    pdf: bytes
    sizes: tuple[float, ...]
    truth: tuple[str, ...]  # the text of each size page, without spaces
    page_height_pt: float
    table_rows_pt: tuple[float, ...]  # y of the table's horizontal rules, from the top of the page
    table_cols_pt: tuple[float, ...]  # x of its vertical rules


def font_path(style: str = "mincho") -> Path | None:
    for candidate in MINCHO_PATHS if style == "mincho" else GOTHIC_PATHS:
        if Path(candidate).exists():
            return Path(candidate)
    return None


def fidelity_sheet(sizes: tuple[float, ...] = (6, 8, 10, 12), style: str = "mincho") -> Sheet:
    """Build the sheet as a PDF with reportlab (the font embedded, as office software does)."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.pdfgen import canvas

    path = font_path(style)
    if path is None:
        raise RuntimeError(f"the IPAex {style} font is not installed (fonts-ipaexfont-{style})")
    name = f"IPAex-{style}"
    pdfmetrics.registerFont(TTFont(name, str(path)))
    height = 160 * 72 / 25.4  # short pages keep OCR quick
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=(PAGE_WIDTH_PT, height), invariant=True)
    truths: list[str] = []
    for size in sizes:
        c.setFont(name, size)
        lines: list[str] = []
        y = height - 40
        # As many copies of each sentence on a line as fit in about 110 mm: more characters per size.
        repeat = max(1, int(110 * 72 / 25.4 // (size * 16)))
        for line in LINES:
            text = "".join([line] * repeat)
            c.drawString(40, y - size, text)
            lines.append(text)
            y -= size * 1.8
        truths.append("".join(lines))
        c.showPage()
    # The table: 0.1 mm rules, 8 × 6 cells of 20 × 8 mm, as in a form.
    line = TABLE_LINE_MM * 72 / 25.4
    c.setLineWidth(line)
    left, top = 60.0, 40.0
    cols = tuple(left + i * 20 * 72 / 25.4 for i in range(7))
    rows = tuple(top + j * 8 * 72 / 25.4 for j in range(9))
    for y in rows:
        c.line(cols[0], height - y, cols[-1], height - y)
    for x in cols:
        c.line(x, height - rows[0], x, height - rows[-1])
    c.showPage()
    c.save()
    return Sheet(buf.getvalue(), tuple(sizes), tuple(truths), height, rows, cols)


# --------------------------------------------------------------------------- renderers


def ghostscript_pages(pdf: bytes) -> list[Image.Image]:
    """The PDF faxed by Ghostscript's tiffg4 device at 204×196 dpi (the peer)."""
    gs = shutil.which("gs")
    if gs is None:
        raise RuntimeError("Ghostscript (gs) is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "sheet.pdf"
        src.write_bytes(pdf)
        out = Path(tmp) / "gs.tif"
        subprocess.run(
            [gs, "-q", "-dNOPAUSE", "-dBATCH", "-dSAFER", "-sDEVICE=tiffg4", f"-r{X_DPI}x{Y_DPI}",
             f"-sOutputFile={out}", str(src)],
            check=True, timeout=120,
        )
        pages = []
        with Image.open(out) as image:
            for index in range(getattr(image, "n_frames", 1)):
                image.seek(index)
                pages.append(image.convert("1"))
        return pages


def reference_pages(pdf: bytes, dpi: int = REFERENCE_DPI) -> list[Image.Image]:
    """The PDF rendered at ``dpi`` in greyscale and thresholded at mid-grey: the strokes as drawn."""
    import pypdfium2 as pdfium  # type: ignore[import-untyped, unused-ignore]

    doc = pdfium.PdfDocument(pdf)
    try:
        pages = []
        for page in doc:
            grey = page.render(scale=dpi / 72, grayscale=True).to_pil().convert("L")
            pages.append(grey.point(lambda v: 255 if v >= 128 else 0, mode="1"))
        return pages
    finally:
        doc.close()


def content(page: Image.Image, *, centred: bool = True, width_pt: float = PAGE_WIDTH_PT) -> Image.Image:
    """The part of a fax page that holds the PDF page.

    inkless centres a narrower page on the 1728 px scan line; Ghostscript's fax devices pad on the right.
    """
    width = round(width_pt / 72 * X_DPI)
    left = (page.width - width) // 2 if centred else 0
    return page.crop((left, 0, left + width, page.height))


# --------------------------------------------------------------------------- measures


def ocr(page: Image.Image, x_dpi: int = X_DPI, y_dpi: int = Y_DPI) -> str:
    """Tesseract (jpn, one block of text) on a page shown with square pixels at twice the fax resolution."""
    tesseract = shutil.which("tesseract")
    if tesseract is None:
        raise RuntimeError("Tesseract is not installed (tesseract-ocr, tesseract-ocr-jpn)")
    scale = 2 if x_dpi < 300 else 1
    width = page.width * scale
    height = round(page.height * scale * x_dpi / y_dpi)
    shown = page.convert("L").resize((width, height), Image.Resampling.NEAREST)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "page.png"
        shown.save(src, dpi=(x_dpi * scale, x_dpi * scale))
        result = subprocess.run(
            [tesseract, str(src), "-", "-l", "jpn", "--psm", "6"],
            capture_output=True, text=True, check=True, timeout=300,
            env={"OMP_THREAD_LIMIT": "1", "PATH": "/usr/bin:/bin"},
        )
    return "".join(result.stdout.split())


def edit_distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def cer(read: str, truth: str) -> float:
    """Character error rate: edit distance / length of the truth (spaces ignored)."""
    return edit_distance(read, truth) / len(truth)


def critical_counts(read: str, truth: str) -> dict[str, tuple[int, int]]:
    """For each critical character: (times read, times in the text)."""
    return {ch: (read.count(ch), truth.count(ch)) for ch in CRITICAL}


def _thinning_luts() -> tuple[bytearray, bytearray]:
    # Zhang–Suen thinning as two 3×3 look-up tables for Pillow's ImageMorph
    # (index bit k is the neighbour k in row-major order: NW N NE / W C E / SW S SE).
    luts = (bytearray(512), bytearray(512))
    for index in range(512):
        bit = [(index >> k) & 1 for k in range(9)]
        if not bit[4]:
            continue
        p2, p3, p4, p5, p6, p7, p8, p9 = bit[1], bit[2], bit[5], bit[8], bit[7], bit[6], bit[3], bit[0]
        ring = [p2, p3, p4, p5, p6, p7, p8, p9, p2]
        b = sum(ring[:8])
        a = sum(1 for k in range(8) if ring[k] == 0 and ring[k + 1] == 1)
        base = 2 <= b <= 6 and a == 1
        first = base and p2 * p4 * p6 == 0 and p4 * p6 * p8 == 0
        second = base and p2 * p4 * p8 == 0 and p2 * p6 * p8 == 0
        luts[0][index] = 0 if first else 1
        luts[1][index] = 0 if second else 1
    return luts


def skeleton(page: Image.Image) -> Image.Image:
    """The centre lines of the black strokes of a bilevel page (255 on the line), by Zhang–Suen thinning."""
    ink = ImageChops.invert(page.convert("L"))  # strokes 255
    first, second = (ImageMorph.MorphOp(lut=lut) for lut in _thinning_luts())
    for _ in range(200):
        changed_a, ink = first.apply(ink)
        changed_b, ink = second.apply(ink)
        if changed_a == 0 and changed_b == 0:
            break
    return ink


def strokes_kept(fax: Image.Image, reference: Image.Image) -> float:
    """Fraction of the reference's stroke centre-line pixels that have a black fax pixel at most one pixel away.

    The one-pixel tolerance forgives a renderer that snaps a stroke to the pixel grid (hinting, as
    Ghostscript does); a stroke that is lost leaves no black pixel there.
    """
    centre = skeleton(reference)
    near = fax.convert("L").filter(ImageFilter.MinFilter(3))
    # Each 600 dpi pixel looks at the fax pixel it falls in.
    black = ImageChops.invert(near).resize(reference.size, Image.Resampling.NEAREST)
    both = ImageChops.multiply(centre, black)
    total = centre.histogram()[255]
    return both.histogram()[255] / total if total else 1.0


def border_breaks(fax: Image.Image, sheet: Sheet, *, centred: bool = True, y_dpi: int = Y_DPI) -> list[str]:
    """Rules of the table that are not continuous on the fax page: a reader sees a missing border.

    A horizontal rule is kept if, between the outer columns, every fax column has a black pixel
    within one row of where the rule falls; a vertical rule likewise for every row.
    """
    page = content(fax, centred=centred).convert("L")
    broken: list[str] = []
    x0, x1 = round(sheet.table_cols_pt[0] / 72 * X_DPI), round(sheet.table_cols_pt[-1] / 72 * X_DPI)
    y0, y1 = round(sheet.table_rows_pt[0] / 72 * y_dpi), round(sheet.table_rows_pt[-1] / 72 * y_dpi)
    for number, y_pt in enumerate(sheet.table_rows_pt, 1):
        y = round(y_pt / 72 * y_dpi)
        band = page.crop((x0 + 2, y - 2, x1 - 1, y + 3)).resize((x1 - 3 - x0, 1), Image.Resampling.BOX)
        # BOX to one row is the mean; a column of the band with any black shows below 255.
        darkest = band.point(lambda v: 255 if v < 255 else 0)
        if darkest.histogram()[0]:
            broken.append(f"horizontal rule {number}")
    for number, x_pt in enumerate(sheet.table_cols_pt, 1):
        x = round(x_pt / 72 * X_DPI)
        band = page.crop((x - 2, y0 + 2, x + 3, y1 - 1)).resize((1, y1 - 3 - y0), Image.Resampling.BOX)
        darkest = band.point(lambda v: 255 if v < 255 else 0)
        if darkest.histogram()[0]:
            broken.append(f"vertical rule {number}")
    return broken
