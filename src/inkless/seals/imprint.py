"""Seal imprints: round personal seals (認印), date seals (日付印) and square office seals (角印).

An imprint is drawn as a one-page vector PDF whose page is exactly the seal (so it stays crisp at
any zoom and can become a PAdES signature appearance), with every character as glyph outlines
rather than a font reference, and as a PNG preview rendered from that same PDF. Both are
deterministic: the same imprint and font give the same bytes.
"""


from __future__ import annotations

import hashlib
import io
import math
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

from inkless.errors import SealError, ValidationError
from inkless.pdfium_lock import PDFIUM_LOCK
from inkless.seals.fonts import GlyphOutline, Glyphs, glyph_source
from inkless.seals.imprint_model import (
    MAX_DPI,
    MAX_SIZE_MM,
    MIN_DPI,
    MIN_SIZE_MM,
    MM_PER_INCH,
    PT_PER_MM,
    STROKE_PER_EM,
    VERMILION,
    SealImprint,
    SealKind,
    date_seal,
    era_date_label,
    is_vertical,
    office_columns,
    office_seal,
    office_seal_text,
    personal_seal,
)

__all__ = [
    "MAX_DPI", "MAX_SIZE_MM", "MIN_DPI", "MIN_SIZE_MM", "MM_PER_INCH", "PT_PER_MM", "STROKE_PER_EM", "VERMILION",
    "SealImprint", "SealKind", "date_seal", "era_date_label", "is_vertical", "office_columns", "office_seal",
    "office_seal_text", "pdf_to_png", "personal_seal", "render_pdf", "render_png", "rgba_png",
]


def render_pdf(imprint: SealImprint, font: str | Path | Glyphs | None = None) -> bytes:
    """The imprint as a one-page vector PDF, page size = seal size, text as outlines, no fonts embedded.

    ``font`` is a font file, a :class:`Glyphs` source, or None for the Japanese font fontconfig
    finds (IPAex Mincho first).
    """
    glyphs = glyph_source(font) if font is None or isinstance(font, str | Path) else font
    size = imprint.size_mm
    drawing = _Drawing(imprint, glyphs)
    drawing.draw()
    content = drawing.content()
    return _pdf_document(size * PT_PER_MM, size * PT_PER_MM, content)


# pdfium is not thread-safe; the web UI may render previews from several threads.
_PDFIUM_LOCK = PDFIUM_LOCK


def render_png(imprint: SealImprint, dpi: int = 300, font: str | Path | Glyphs | None = None) -> bytes:
    """A PNG preview (RGBA, transparent background) rendered from :func:`render_pdf` at ``dpi``."""
    if not (MIN_DPI <= dpi <= MAX_DPI):
        raise ValidationError(f"preview resolution must be between {MIN_DPI} and {MAX_DPI} dpi, got {dpi}")
    pdf = render_pdf(imprint, font)
    return pdf_to_png(pdf, dpi)


def pdf_to_png(pdf: bytes, dpi: int) -> bytes:
    """Rasterise page 1 of ``pdf`` with pdfium into an RGBA PNG with a transparent background."""
    # Imported here so that drawing the vector imprint never loads pdfium's native library.
    import pypdfium2  # type: ignore[import-untyped, unused-ignore]

    with _PDFIUM_LOCK:
        document = pypdfium2.PdfDocument(pdf)
        try:
            page = document[0]
            bitmap = page.render(scale=dpi / 72.0, fill_color=(255, 255, 255, 0), rev_byteorder=True)
            width, height, stride = int(bitmap.width), int(bitmap.height), int(bitmap.stride)
            if bitmap.n_channels != 4:
                raise SealError(f"unexpected pdfium bitmap format {bitmap.mode}")
            buffer = bytes(bitmap.buffer)
            bitmap.close()
            page.close()
        finally:
            document.close()
    rows = [buffer[y * stride : y * stride + width * 4] for y in range(height)]
    return rgba_png(width, height, rows)


# --- drawing ----------------------------------------------------------------------------------

Point = tuple[float, float]
Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in mm, y up


class _Ink:
    """Deterministic pseudo-random numbers from the seed (SHA-256 in counter mode, stable everywhere)."""

    def __init__(self, seed: int) -> None:
        self._seed = seed.to_bytes(8, "big")
        self._counter = 0

    def random(self) -> float:
        self._counter += 1
        digest = hashlib.sha256(self._seed + self._counter.to_bytes(8, "big")).digest()
        return int.from_bytes(digest[:7], "big") / float(1 << 56)

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self.random()

    def wave(self, amplitude: float, harmonics: Sequence[int]) -> Callable[[float], float]:
        """A smooth periodic wobble: a few sines with random phases and weights, peak about ``amplitude``."""
        terms = [(k, self.uniform(0.3, 1.0), self.uniform(0.0, 2 * math.pi)) for k in harmonics]
        total = sum(w for _, w, _ in terms) or 1.0

        def at(theta: float) -> float:
            return amplitude * sum(w * math.sin(k * theta + p) for k, w, p in terms) / total

        return at


def _num(value: float) -> str:
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


class _Path:
    """PDF path operators in mm."""

    def __init__(self) -> None:
        self.ops: list[str] = []

    def move(self, p: Point) -> None:
        self.ops.append(f"{_num(p[0])} {_num(p[1])} m")

    def line(self, p: Point) -> None:
        self.ops.append(f"{_num(p[0])} {_num(p[1])} l")

    def curve(self, a: Point, b: Point, c: Point) -> None:
        self.ops.append(f"{_num(a[0])} {_num(a[1])} {_num(b[0])} {_num(b[1])} {_num(c[0])} {_num(c[1])} c")

    def close(self) -> None:
        self.ops.append("h")

    def smooth_loop(self, points: Sequence[Point]) -> None:
        """A closed smooth curve through ``points`` (Catmull-Rom turned into cubic Béziers)."""
        n = len(points)
        self.move(points[0])
        for i in range(n):
            p0, p1, p2, p3 = points[i - 1], points[i], points[(i + 1) % n], points[(i + 2) % n]
            c1 = (p1[0] + (p2[0] - p0[0]) / 6, p1[1] + (p2[1] - p0[1]) / 6)
            c2 = (p2[0] - (p3[0] - p1[0]) / 6, p2[1] - (p3[1] - p1[1]) / 6)
            self.curve(c1, c2, p2)
        self.close()

    def polygon(self, points: Sequence[Point]) -> None:
        self.move(points[0])
        for p in points[1:]:
            self.line(p)
        self.close()


class _Drawing:
    """Lays out and draws one imprint into PDF content-stream operators (in mm)."""

    def __init__(self, imprint: SealImprint, glyphs: Glyphs) -> None:
        self.imprint = imprint
        self.glyphs = glyphs
        self.size = imprint.size_mm
        self.ink = _Ink(imprint.seed)
        self.frame = _Path()  # ring / square border and band bars, filled even-odd
        # Glyph outlines with the stroke width that gives Mincho's hairlines a seal's weight.
        self.text: list[tuple[float, _Path]] = []
        self.gaps: list[tuple[Point, float, list[Point]]] = []  # centre, reach, outline

    # Each kind draws its frame and text; the ink gaps come last so they can land on either.
    def draw(self) -> None:
        kind = self.imprint.kind
        if kind is SealKind.PERSONAL:
            self._personal()
        elif kind is SealKind.DATE:
            self._date()
        else:
            self._office()
        self._ink_gaps()

    def content(self) -> bytes:
        s = self.size
        r, g, b = (_num(c) for c in self.imprint.colour)
        ops = ["q", f"{_num(PT_PER_MM)} 0 0 {_num(PT_PER_MM)} 0 0 cm"]
        if self.gaps:
            # Gaps are holes in the ink, not white paint: the imprint sits on top of a document.
            clip = _Path()
            clip.polygon([(0, 0), (s, 0), (s, s), (0, s)])
            for _, _, blob in self.gaps:
                clip.smooth_loop(blob)
            ops += [*clip.ops, "W*", "n"]
        ops += [f"{r} {g} {b} rg", f"{r} {g} {b} RG", "1 j", "1 J"]
        ops += [*self.frame.ops, "f*"]
        for stroke, path in self.text:
            ops += [f"{_num(stroke)} w", *path.ops, "B"]
        ops.append("Q")
        return ("\n".join(ops) + "\n").encode("ascii")

    # --- frames

    def _ring(self, width: float) -> tuple[float, float]:
        """A slightly irregular ring touching the page edge; returns (centre, inner radius)."""
        s = self.size
        c = s / 2
        wobble = 0.0045 * s
        outer_r = c - 0.012 * s - wobble
        outer = self.ink.wave(wobble, (2, 3, 5))
        outer_fine = self.ink.wave(0.0009 * s, (9, 14, 19))
        inner = self.ink.wave(wobble * 0.9, (2, 3, 4, 7))
        inner_fine = self.ink.wave(0.0009 * s, (10, 15))
        steps = 90
        outer_pts: list[Point] = []
        inner_pts: list[Point] = []
        for i in range(steps):
            t = 2 * math.pi * i / steps
            ro = outer_r + outer(t) + outer_fine(t)
            ri = outer_r - width + inner(t) + inner_fine(t)
            outer_pts.append((c + ro * math.cos(t), c + ro * math.sin(t)))
            inner_pts.append((c + ri * math.cos(t), c + ri * math.sin(t)))
        self.frame.smooth_loop(outer_pts)
        self.frame.smooth_loop(inner_pts)
        return c, outer_r - width

    def _bar(self, y: float, half_length: float, thickness: float) -> None:
        """A horizontal band line of the date seal, with slightly uneven edges."""
        c = self.size / 2
        steps = 8
        top: list[Point] = []
        bottom: list[Point] = []
        for i in range(steps + 1):
            x = c - half_length + 2 * half_length * i / steps
            top.append((x, y + thickness / 2 + self.ink.uniform(-0.08, 0.08) * thickness))
            bottom.append((x, y - thickness / 2 + self.ink.uniform(-0.08, 0.08) * thickness))
        self.frame.polygon([*bottom, *reversed(top)])

    # --- kinds

    def _personal(self) -> None:
        s = self.size
        ring = 0.055 * s
        c, inner_r = self._ring(ring)
        text = self.imprint.texts[0]
        avail = inner_r - 0.045 * s  # room left for the glyphs inside the ring
        if is_vertical(text):
            self._vertical_column(text, c, avail)
        else:
            h = 0.8 * avail  # as tall as fits; long names are then set smaller to fit the width
            width = 1.8 * math.sqrt(max(avail**2 - (h / 2) ** 2, 0.0))
            self._line(text, (c - width / 2, c - h / 2, c + width / 2, c + h / 2), max_compress=1.35)

    def _vertical_column(self, text: str, c: float, avail: float) -> None:
        n = len(text)
        # Total height of the column as a share of the available diameter, and how far into the
        # corners a glyph box may reach (ink rarely fills a glyph's corners).
        height = {1: 1.34, 2: 1.68, 3: 1.82, 4: 1.88}.get(n, 1.88) * avail
        gap = 0.09 * avail  # keeps neighbouring characters from running into each other
        cell_h = (height - gap * (n - 1)) / n
        top = c + height / 2
        for i, ch in enumerate(text):
            y1 = top - i * (cell_h + gap)
            y0 = y1 - cell_h
            reach = max(abs(y0 - c), abs(y1 - c)) * 0.84
            half_w = math.sqrt(max(avail**2 - reach**2, 0.0))
            if n == 1:
                half_w = min(half_w, cell_h / 2 * 1.05)
            outline = self.glyphs.outline(ch, vertical=True)
            self._glyph(outline, (c - half_w, y0, c + half_w, y1), max_aspect=1.75)

    def _date(self) -> None:
        s = self.size
        ring = 0.042 * s
        c, inner_r = self._ring(ring)
        bar = 0.026 * s
        band_half = 0.15 * s
        reach = inner_r + ring / 2  # bars run into the ring so they join it
        for sign in (1, -1):
            y = c + sign * band_half
            self._bar(y, math.sqrt(max(reach**2 - band_half**2, 0.0)), bar)
        office, label, surname = self.imprint.texts
        # Top and bottom segments: pick the box height that gives the glyphs the most room.
        inner_half = band_half - bar / 2
        pad = 0.035 * s
        y_start = inner_half + bar + pad * 0.5
        limit = inner_r - pad
        segment: dict[int, Box] = {}
        for text, sign in ((office, 1), (surname, -1)):
            box_h, box_w = _best_segment_box(len(text), y_start, limit, is_vertical(text))
            lo, hi = y_start, y_start + box_h
            y0, y1 = (c + lo, c + hi) if sign > 0 else (c - hi, c - lo)
            segment[sign] = (c - box_w / 2, y0, c + box_w / 2, y1)
        # Middle band: the date fills most of the band's height.
        date_h = 1.28 * inner_half
        date_w = 2 * math.sqrt(max(inner_r**2 - inner_half**2, 0.0)) * 0.8
        self._line(office, segment[1], max_compress=2.2)
        self._line(label, (c - date_w / 2, c - date_h / 2, c + date_w / 2, c + date_h / 2), max_compress=1.6)
        self._line(surname, segment[-1], max_compress=2.2)

    def _office(self) -> None:
        s = self.size
        border = 0.06 * s
        margin = 0.015 * s
        self._square(margin, border)
        inner = margin + border
        pad = 0.045 * s
        area = (inner + pad, inner + pad, s - inner - pad, s - inner - pad)
        columns = office_columns(self.imprint.texts[0])
        col_w = (area[2] - area[0]) / len(columns)
        for i, column in enumerate(columns):
            x1 = area[2] - i * col_w  # the first column is the rightmost
            x0 = x1 - col_w
            cell_h = (area[3] - area[1]) / len(column)
            gap = 0.09 * min(col_w, cell_h)
            for j, ch in enumerate(column):
                y1 = area[3] - j * cell_h
                outline = self.glyphs.outline(ch, vertical=True)
                self._glyph(outline, (x0 + gap / 2, y1 - cell_h + gap / 2, x1 - gap / 2, y1 - gap / 2), max_aspect=2.2)

    def _square(self, margin: float, border: float) -> None:
        """A square border with slightly rounded, worn corners and faintly uneven sides."""
        s = self.size
        for offset, amp in ((margin, 0.003 * s), (margin + border, 0.0035 * s)):
            lo, hi = offset, s - offset
            rounding = 0.012 * s if offset == margin else 0.006 * s
            corners = [(lo, lo), (hi, lo), (hi, hi), (lo, hi)]
            points: list[Point] = []
            steps = 6
            for k in range(4):
                a, b = corners[k], corners[(k + 1) % 4]
                dx, dy = b[0] - a[0], b[1] - a[1]
                length = math.hypot(dx, dy)
                nx, ny = dy / length, -dx / length  # outward normal
                for i in range(steps):
                    t = i / steps
                    along = rounding / length if i == 0 else t
                    jitter = 0.0 if i == 0 else self.ink.uniform(-amp, amp)
                    points.append((a[0] + dx * along + nx * jitter, a[1] + dy * along + ny * jitter))
                points.append((b[0] - dx * rounding / length, b[1] - dy * rounding / length))
            self.frame.smooth_loop(points)

    # --- glyph placement

    def _glyph(self, outline: GlyphOutline, box: Box, max_aspect: float) -> None:
        """Scale one glyph's ink to fill ``box`` (as seal lettering does), within an aspect limit."""
        if outline.bounds is None:
            return
        x0, y0, x1, y1 = box
        bw, bh = x1 - x0, y1 - y0
        gx0, gy0, gx1, gy1 = outline.bounds
        em = outline.units_per_em
        # A glyph with little ink in one direction (一, 丨) must not be blown up to fill the cell.
        gw, gh = max(gx1 - gx0, 0.05 * em), max(gy1 - gy0, 0.05 * em)
        sx = min(bw / gw, 1.25 * bw / em)
        sy = min(bh / gh, 1.25 * bh / em)
        sx, sy = min(sx, sy * max_aspect), min(sy, sx * max_aspect)
        path = _Path()
        tx = (x0 + x1) / 2 - (gx0 + gx1) / 2 * sx
        ty = (y0 + y1) / 2 - (gy0 + gy1) / 2 * sy
        self._emit(path, outline, sx, sy, tx, ty)
        self.text.append((STROKE_PER_EM * em * min(sx, sy), path))

    def _line(self, text: str, box: Box, max_compress: float) -> None:
        """Set ``text`` horizontally, centred in ``box``, squeezed sideways at most ``max_compress`` times."""
        outlines = [self.glyphs.outline(ch) for ch in text]
        pen = 0.0
        placed: list[tuple[GlyphOutline, float]] = []
        xs: list[float] = []
        ys: list[float] = []
        for outline in outlines:
            if outline.bounds is not None:
                gx0, gy0, gx1, gy1 = outline.bounds
                xs += [pen + gx0, pen + gx1]
                ys += [gy0, gy1]
                placed.append((outline, pen))
            pen += outline.advance
        if not placed:
            return
        em = outlines[0].units_per_em
        x0, y0, x1, y1 = box
        bw, bh = x1 - x0, y1 - y0
        ink_w, ink_h = max(xs) - min(xs), max(max(ys) - min(ys), 0.05 * em)
        sy = min(bh / ink_h, 1.25 * bh / em)
        sx = min(sy, bw / ink_w)
        if sx * max_compress < sy:
            sy = sx * max_compress
        ox = (x0 + x1) / 2 - (min(xs) + max(xs)) / 2 * sx
        oy = (y0 + y1) / 2 - (min(ys) + max(ys)) / 2 * sy
        path = _Path()
        for outline, offset in placed:
            self._emit(path, outline, sx, sy, ox + offset * sx, oy)
        self.text.append((STROKE_PER_EM * em * min(sx, sy), path))

    @staticmethod
    def _emit(path: _Path, outline: GlyphOutline, sx: float, sy: float, tx: float, ty: float) -> None:
        for command in outline.commands:
            op, *coords = command
            pts = [(tx + coords[i] * sx, ty + coords[i + 1] * sy) for i in range(0, len(coords), 2)]
            if op == "M":
                path.move(pts[0])
            elif op == "L":
                path.line(pts[0])
            elif op == "C":
                path.curve(pts[0], pts[1], pts[2])
            else:
                path.close()

    # --- ink

    def _ink_gaps(self) -> None:
        """A few places where the paste did not take: nicks in the frame and fine specks in the text."""
        s = self.size
        c = s / 2
        scale = s / 12.0
        wanted: list[tuple[Point, float, float]] = []  # centre, radius along, radius across
        if self.imprint.kind is SealKind.OFFICE:
            edge = 0.015 * s + 0.03 * s
            for _ in range(3):
                t = self.ink.uniform(0.1, 0.9) * (s - 2 * edge) + edge
                side = int(self.ink.uniform(0, 4)) % 4
                point = [(t, edge), (s - edge, t), (t, s - edge), (edge, t)][side]
                along = self.ink.uniform(0.12, 0.22) * scale
                wanted.append((point, along, self.ink.uniform(0.05, 0.1) * scale))
        else:
            ring_mid = c - 0.012 * s - 0.0045 * s - (0.05 * s) / 2
            for _ in range(3):
                t = self.ink.uniform(0, 2 * math.pi)
                r = ring_mid + self.ink.uniform(-0.25, 0.25) * 0.05 * s
                wanted.append(
                    (
                        (c + r * math.cos(t), c + r * math.sin(t)),
                        self.ink.uniform(0.1, 0.2) * scale,
                        self.ink.uniform(0.05, 0.1) * scale,
                    )
                )
        for _ in range(26):
            r = math.sqrt(self.ink.random()) * (c - 0.02 * s)
            t = self.ink.uniform(0, 2 * math.pi)
            size = self.ink.uniform(0.025, 0.06) * scale
            point = (c + r * math.cos(t), c + r * math.sin(t))
            wanted.append((point, size, size * self.ink.uniform(0.5, 1.0)))
        for centre, along, across in wanted:
            # Even-odd clipping turns overlapping holes back into ink, so holes keep apart.
            if any(math.dist(centre, other) < 1.3 * (along + reach) for other, reach, _ in self.gaps):
                continue
            angle = self.ink.uniform(0, math.pi)
            blob: list[Point] = []
            for k in range(7):
                phi = 2 * math.pi * k / 7
                wobble = self.ink.uniform(0.75, 1.15)
                ex, ey = along * math.cos(phi) * wobble, across * math.sin(phi) * wobble
                blob.append(
                    (
                        centre[0] + ex * math.cos(angle) - ey * math.sin(angle),
                        centre[1] + ex * math.sin(angle) + ey * math.cos(angle),
                    )
                )
            self.gaps.append((centre, along * 1.15, blob))


def _best_segment_box(n: int, y_start: float, limit: float, vertical_text: bool) -> tuple[float, float]:
    """Height and width of the text box in a date seal's top/bottom segment that gives the largest glyphs."""
    best = (0.0, 0.0, 0.0)
    steps = 40
    for i in range(1, steps + 1):
        h = (limit - y_start) * i / steps
        top = y_start + h
        w = 2 * math.sqrt(max(limit**2 - top**2, 0.0))
        # Full-width characters need about a square each (squeezed to 1/1.6 at most); Latin about half.
        per_char = w / max(n, 1) * (1.6 if vertical_text else 3.2)
        glyph = min(h, per_char)
        if glyph > best[0] + 1e-9:
            best = (glyph, h, w)
    return best[1], best[2]


# --- file formats -----------------------------------------------------------------------------


def _pdf_document(width_pt: float, height_pt: float, content: bytes) -> bytes:
    """A minimal one-page PDF 1.4: no fonts, no /Info, no /ID, so its bytes depend only on the content."""
    stream = zlib.compress(content, 9)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {width_pt:.4f} {height_pt:.4f}] "
            f"/Resources << >> /Contents 4 0 R >>"
        ).encode("ascii"),
        b"<< /Length " + str(len(stream)).encode() + b" /Filter /FlateDecode >>\nstream\n" + stream + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def rgba_png(width: int, height: int, rows: Sequence[bytes]) -> bytes:
    """Encode RGBA rows as a PNG with Pillow (no time or text chunks, so the same pixels give the same bytes)."""
    from PIL import Image

    out = io.BytesIO()
    Image.frombytes("RGBA", (width, height), b"".join(rows)).save(out, format="PNG", compress_level=9)
    return out.getvalue()
