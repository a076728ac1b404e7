"""Seal imprints drawn with the real Japanese font, rasterised by pdfium and poppler, stamped by pyHanko."""

from __future__ import annotations

import io
import math
import statistics
import struct
import subprocess
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pypdfium2  # type: ignore[import-untyped, unused-ignore]
import pypdfium2.raw as pdfium_c  # type: ignore[import-untyped, unused-ignore]
import pytest
from pyhanko import stamp
from pyhanko.pdf_utils import generic, layout
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter

from inkless.errors import SealError
from inkless.fonts import find_japanese_font
from inkless.seals import SealImprint, date_seal, fonts, office_seal, personal_seal, render_pdf, render_png

SHU = (227, 66, 51)  # VERMILION in 8-bit RGB


@dataclass
class Image:
    """An RGBA raster: rows of (r, g, b, a) pixels."""

    width: int
    height: int
    pixels: list[list[tuple[int, int, int, int]]]

    def alpha(self, x: int, y: int) -> int:
        return self.pixels[y][x][3]

    def ink(self) -> Iterator[tuple[int, int, tuple[int, int, int, int]]]:
        for y, row in enumerate(self.pixels):
            for x, px in enumerate(row):
                if px[3] > 0:
                    yield x, y, px

    def coverage(self, x0: int, y0: int, x1: int, y1: int) -> float:
        inked = sum(1 for y in range(y0, y1) for x in range(x0, x1) if self.pixels[y][x][3] >= 128)
        return inked / ((x1 - x0) * (y1 - y0))


def decode_png(data: bytes) -> Image:
    """A small, independent PNG reader (8-bit RGBA, all five row filters)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])[0] == zlib.crc32(kind + body)
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert (depth, colour) == (8, 6)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * 4
    previous = bytearray(stride)
    rows = []
    for y in range(height):
        filter_type = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - 4] if i >= 4 else 0
            b = previous[i]
            c = previous[i - 4] if i >= 4 else 0
            if filter_type == 1:
                line[i] = (line[i] + a) & 0xFF
            elif filter_type == 2:
                line[i] = (line[i] + b) & 0xFF
            elif filter_type == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif filter_type == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append([tuple(line[x * 4 : x * 4 + 4]) for x in range(width)])
        previous = line
    return Image(width, height, rows)  # type: ignore[arg-type]


def pdftoppm(pdf: bytes, dpi: int, tmp_path: Path) -> Image:
    """Rasterise with poppler (an independent renderer) on white; ink becomes opaque, paper transparent."""
    source = tmp_path / "imprint.pdf"
    source.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", str(dpi), "-singlefile", str(source), str(tmp_path / "page")], check=True)
    out = (tmp_path / "page.ppm").read_bytes()
    header, rest = out.split(b"\n", 1)
    assert header == b"P6"
    size, rest = rest.split(b"\n", 1)
    width, height = (int(v) for v in size.split())
    _, body = rest.split(b"\n", 1)
    rows = []
    for y in range(height):
        row = []
        for x in range(width):
            r, g, b = body[(y * width + x) * 3 : (y * width + x) * 3 + 3]
            # Green is what vermilion ink takes away from white paper: full ink leaves SHU's green.
            row.append((r, g, b, min(255, (255 - g) * 255 // (255 - SHU[1]))))
        rows.append(row)
    return Image(width, height, rows)


SEALS = {
    "personal 1": personal_seal("林"),
    "personal 2": personal_seal("山田"),
    "personal 4": personal_seal("勅使河原", diameter_mm=10.5),
    "personal kana": personal_seal("ヨーコ"),
    "personal latin": personal_seal("Smith"),
    "date": date_seal("民事局総務課", "佐々木", date(2026, 11, 30)),
    "office": office_seal("大臣官房"),
    "office long": office_seal("法務省民事局総務課"),
}


@pytest.fixture(scope="module")
def rendered() -> dict[str, tuple[bytes, Image]]:
    out = {}
    for name, imprint in SEALS.items():
        pdf = render_pdf(imprint)
        out[name] = (pdf, decode_png(render_png(imprint, dpi=300)))
    return out


@pytest.mark.parametrize("name", list(SEALS))
def test_pdf_page_is_the_seal_size_and_holds_only_paths(name: str, rendered: dict[str, tuple[bytes, Image]]) -> None:
    pdf, _ = rendered[name]
    imprint = SEALS[name]
    document = pypdfium2.PdfDocument(pdf)
    try:
        assert len(document) == 1
        page = document[0]
        width_pt, height_pt = page.get_size()
        assert width_pt / 72 * 25.4 == pytest.approx(imprint.size_mm, abs=0.1)
        assert height_pt / 72 * 25.4 == pytest.approx(imprint.size_mm, abs=0.1)
        kinds = [obj.type for obj in page.get_objects()]
        assert pdfium_c.FPDF_PAGEOBJ_PATH in kinds
        assert pdfium_c.FPDF_PAGEOBJ_TEXT not in kinds  # the text is outlines, nothing needs a font
    finally:
        document.close()
    assert b"/Font" not in pdf


@pytest.mark.parametrize("name", list(SEALS))
def test_ink_is_vermilion_inside_the_seal_and_the_text_sits_in_the_middle(
    name: str, rendered: dict[str, tuple[bytes, Image]]
) -> None:
    _, image = rendered[name]
    imprint = SEALS[name]
    expected_px = imprint.size_mm / 25.4 * 300
    assert abs(image.width - expected_px) <= 1.5
    assert abs(image.height - expected_px) <= 1.5
    solid = [px for _, _, px in image.ink() if px[3] >= 200]
    assert len(solid) > 0.1 * image.width * image.height
    vermilion = [px for px in solid if all(abs(px[i] - SHU[i]) <= 30 for i in range(3))]
    assert len(vermilion) >= 0.97 * len(solid)
    # The paper around the seal stays untouched.
    assert image.alpha(0, 0) == image.alpha(image.width - 1, image.height - 1) == 0
    cx, cy = image.width / 2, image.height / 2
    if imprint.kind.value != "office":
        radius = image.width / 2
        for x, y, _ in image.ink():
            assert math.hypot(x + 0.5 - cx, y + 0.5 - cy) <= radius + 1
        # The ring is closed but for a few tiny nicks.
        ring_r = radius * (1 - 2 * (0.012 + 0.0045) - 0.045)
        on_ring = [
            image.alpha(int(cx + ring_r * math.cos(t)), int(cy + ring_r * math.sin(t))) >= 128
            for t in (2 * math.pi * i / 360 for i in range(360))
        ]
        assert sum(on_ring) >= 0.95 * len(on_ring)
    else:
        depth = int(image.width * 0.045)
        for x, y in (
            (image.width // 2, depth),
            (image.width // 2, image.height - depth),
            (depth, image.height // 2),
            (image.width - depth, image.height // 2),
        ):
            assert image.alpha(x, y) >= 200  # the square border on all four sides
    middle = int(image.width * 0.35), int(image.width * 0.65)
    assert image.coverage(middle[0], middle[0], middle[1], middle[1]) > 0.08


@pytest.mark.parametrize("name", ["personal 2", "date", "office"])
def test_png_matches_an_independent_rendering_of_the_vector_imprint(
    name: str, rendered: dict[str, tuple[bytes, Image]], tmp_path: Path
) -> None:
    pdf, preview = rendered[name]
    poppler = pdftoppm(pdf, 300, tmp_path)
    assert (poppler.width, poppler.height) == (preview.width, preview.height)

    # Anti-aliasing differs between renderers, so a pixel agrees when poppler has the same ink
    # state there or right next to it: the shapes match to within one pixel.
    def inked(image: Image, x: int, y: int) -> bool:
        return 0 <= x < image.width and 0 <= y < image.height and image.alpha(x, y) >= 128

    agree = sum(
        1
        for y in range(preview.height)
        for x in range(preview.width)
        if any(inked(poppler, x + dx, y + dy) == inked(preview, x, y) for dx in (-1, 0, 1) for dy in (-1, 0, 1))
    )
    assert agree >= 0.995 * preview.width * preview.height
    ink_preview = sum(1 for _, _, px in preview.ink() if px[3] >= 128)
    ink_poppler = sum(1 for _, _, px in poppler.ink() if px[3] >= 128)
    assert ink_preview == pytest.approx(ink_poppler, rel=0.05)


@pytest.mark.parametrize("imprint", [personal_seal("山田"), office_seal("民事局")], ids=["round", "square"])
def test_edges_stay_sharp_when_zooming_in(imprint: SealImprint) -> None:
    """A vector imprint has a one- or two-pixel soft edge at any zoom; a scaled bitmap would smear."""

    def edge_widths(dpi: int) -> float:
        image = decode_png(render_png(imprint, dpi=dpi))
        widths = []
        for y in range(int(image.height * 0.45), int(image.height * 0.55)):
            first_ink = next(x for x in range(image.width) if image.alpha(x, y) > 0)
            first_solid = next(x for x in range(image.width) if image.alpha(x, y) == 255)
            widths.append(first_solid - first_ink)
        return statistics.median(widths)

    assert edge_widths(150) <= 2
    assert edge_widths(1200) <= 2


def test_rendering_is_deterministic() -> None:
    imprint = date_seal("総務課", "山田", date(2026, 11, 30))
    assert render_pdf(imprint) == render_pdf(imprint)
    assert render_png(imprint, dpi=200) == render_png(imprint, dpi=200)


def test_pyhanko_stamps_the_vector_imprint_onto_a_document(tmp_path: Path) -> None:
    """The path the PAdES seal appearance will take: StaticStampStyle.from_pdf_file."""
    imprint_file = tmp_path / "imprint.pdf"
    imprint_file.write_bytes(render_pdf(office_seal("民事局")))
    blank = PdfFileWriter()
    contents = blank.add_object(generic.StreamObject(stream_data=b""))
    blank.insert_page(PageObject(contents=contents, media_box=(0, 0, 595, 842)))
    buffer = io.BytesIO()
    blank.write(buffer)
    writer = IncrementalPdfFileWriter(io.BytesIO(buffer.getvalue()))
    style = stamp.StaticStampStyle.from_pdf_file(str(imprint_file), border_width=0)
    side = 21.0 / 25.4 * 72
    stamp.StaticContentStamp(writer=writer, style=style, box=layout.BoxConstraints(width=side, height=side)).apply(
        0, 400, 700
    )
    out = io.BytesIO()
    writer.write(out)
    document = pypdfium2.PdfDocument(out.getvalue())
    try:
        bitmap = document[0].render(scale=1, rev_byteorder=True)
        width, height, stride, channels = bitmap.width, bitmap.height, bitmap.stride, bitmap.n_channels
        data = bytes(bitmap.buffer)
    finally:
        document.close()
    red = [
        (x, y)
        for y in range(height)
        for x in range(width)
        if data[y * stride + x * channels] > 180 and data[y * stride + x * channels + 1] < 140
    ]
    assert len(red) > 200
    assert all(398 <= x <= 400 + side + 2 and 842 - 700 - side - 2 <= y <= 842 - 698 for x, y in red)


def test_character_missing_from_the_font_is_named() -> None:
    with pytest.raises(SealError, match=r"'𠮷' \(U\+20BB7\)"):
        render_pdf(personal_seal("𠮷田"))


def test_no_japanese_font_installed_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "fonts.conf"
    config.write_text(f'<?xml version="1.0"?>\n<fontconfig><cachedir>{tmp_path}/cache</cachedir></fontconfig>\n')
    monkeypatch.setenv("FONTCONFIG_FILE", str(config))
    find_japanese_font.cache_clear()
    try:
        with pytest.raises(SealError, match="fonts-ipaexfont-mincho"):
            render_pdf(personal_seal("山田"))
    finally:
        monkeypatch.undo()
        find_japanese_font.cache_clear()
    assert render_pdf(personal_seal("山田"))  # found again once fontconfig sees the fonts


def test_explicit_font_file_is_used(tmp_path: Path) -> None:
    found = fonts.find_cjk_font()
    assert "ipaex" in found.path.name.lower() or "mincho" in found.path.name.lower()
    assert render_pdf(personal_seal("山田"), font=found.path) == render_pdf(personal_seal("山田"))
    broken = tmp_path / "broken.ttf"
    broken.write_bytes(b"not a font")
    with pytest.raises(SealError, match="cannot read seal font"):
        render_pdf(personal_seal("山田"), font=broken)
