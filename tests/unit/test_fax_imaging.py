"""Fax imaging without external tools: binarising, page splitting, TIFF-F tags, the header line, bad input."""

from __future__ import annotations

import io
import struct
from datetime import datetime

import pytest
from PIL import Image, ImageDraw

from inkless.errors import FaxError
from inkless.fax import header, imaging


def _tags(data: bytes) -> list[dict[int, tuple[int, int, bytes]]]:
    order, offsets = imaging._ifd_offsets(data)
    pages = []
    for offset in offsets:
        count = struct.unpack(order + "H", data[offset : offset + 2])[0]
        entries = {}
        for k in range(count):
            e = offset + 2 + 12 * k
            tag, kind, n = struct.unpack(order + "HHI", data[e : e + 8])
            entries[tag] = (kind, n, data[e + 8 : e + 12])
        pages.append(entries)
    return pages


def _text_page(height: int = 2292) -> Image.Image:
    page = Image.new("1", (1728, height), 1)
    draw = ImageDraw.Draw(page)
    for y in range(100, height - 100, 80):
        draw.rectangle((100, y, 1600, y + 20), fill=0)
    return page


def test_text_is_thresholded_and_photos_are_dithered() -> None:
    grey = Image.new("L", (1728, 800), 255)
    draw = ImageDraw.Draw(grey)
    draw.rectangle((100, 100, 600, 140), fill=20)  # a dark rule: line art, thresholded to solid black
    draw.rectangle((100, 200, 600, 202), fill=100)  # a thin grey line amid white: still line art
    for x in range(1000, 1600):  # a smooth ramp: a photograph, dithered into a pattern
        draw.line((x, 300, x, 700), fill=40 + (x - 1000) * 175 // 600)
    bilevel = imaging.binarize(grey)
    assert bilevel.mode == "1"
    rule = bilevel.crop((110, 105, 590, 135))
    assert rule.histogram()[255] == 0  # solid black
    assert bilevel.crop((110, 200, 590, 203)).histogram()[255] == 0
    ramp = bilevel.crop((1300, 350, 1400, 650))
    black_fraction = ramp.histogram()[0] / (ramp.width * ramp.height)
    assert 0.2 < black_fraction < 0.8  # a mix of black and white dots, not a solid block


def test_long_pages_are_cut_into_a4_pieces() -> None:
    assert len(imaging.split_long_page(_text_page(2292), 196)) == 1
    pieces = imaging.split_long_page(_text_page(6000), 196)
    assert [p.height for p in pieces] == [2292, 2292, 1416]


def test_encoded_pages_carry_tiff_f_tags() -> None:
    data = imaging.encode_tiff([_text_page(), _text_page(1146)], y_dpi=[196, 98])
    order = "<" if data[:2] == b"II" else ">"
    tags = _tags(data)
    assert len(tags) == 2
    for number, page in enumerate(tags):
        assert struct.unpack(order + "HH", page[297][2]) == (number, 2)  # PageNumber n/m
        assert struct.unpack(order + "H", page[262][2][:2])[0] == 0  # min-is-white
        assert struct.unpack(order + "H", page[259][2][:2])[0] == 4  # CCITT T.6
        assert page[273][1] == 1  # one strip
    pages = imaging.read_tiff(data)
    assert [(p.width, p.height, p.x_dpi, p.y_dpi) for p in pages] == [(1728, 2292, 204, 196), (1728, 1146, 204, 98)]
    # Decoding gives back the same pixels (white stays white under min-is-white).
    assert imaging.pixel_difference(imaging.page_image(pages[0]), _text_page()) == 0.0


def test_header_line_text_and_band() -> None:
    when = datetime(2026, 4, 1, 9, 5)
    assert header.header_line(when, "法務省 民事局 03-1234-5678", 2, 3) == (
        "2026/04/01 09:05  FROM 法務省 民事局 03-1234-5678  P.2/3"
    )
    band = header.render_band(header.header_line(when, "法務省", 1, 1), 1728, 196)
    assert band.size == (1728, 35) and band.histogram()[0] > 500  # ink was drawn
    stamped = header.stamp_pages([Image.new("1", (1728, 1146), 1)], [98], "法務省", when)[0]
    assert stamped.size == (1728, 1146)
    assert stamped.crop((0, 0, 1728, 17)).histogram()[0] > 200
    assert stamped.crop((0, 40, 1728, 1146)).histogram()[0] == 0


def _tiff(image: Image.Image, **kw: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="TIFF", **kw)
    return buf.getvalue()


def test_bad_input_gets_a_clear_error() -> None:
    good = imaging.encode_tiff([_text_page()])
    # A TIFF header claiming 100000×100000 pixels: refused before anything is decoded.
    bomb = bytearray(_tiff(Image.new("1", (1728, 10)), compression="group4"))
    order, offsets = imaging._ifd_offsets(bytes(bomb))
    count = struct.unpack(order + "H", bomb[offsets[0] : offsets[0] + 2])[0]
    for k in range(count):
        e = offsets[0] + 2 + 12 * k
        tag, _kind, _n = struct.unpack(order + "HHI", bomb[e : e + 8])
        if tag in (256, 257):
            bomb[e + 2 : e + 12] = struct.pack(order + "HII", 4, 1, 100_000)
    cases: list[tuple[bytes, str]] = [
        (b"", "empty"),
        (b"GIF89a not a fax", "not a TIFF"),
        (bytes(bomb), "TIFF"),
        (_tiff(Image.new("1", (1000, 500)), compression="group4", dpi=(204, 196)), "1000 pixels wide"),
        (_tiff(Image.new("L", (1728, 500)), dpi=(204, 196)), "not black and white"),
        (_tiff(Image.new("1", (1728, 25_000)), compression="group4", dpi=(204, 196)), "25000 rows"),
        (_tiff(Image.new("1", (1728, 500)), compression="group4"), "no resolution"),
        (good[: len(good) // 3], "TIFF"),
    ]
    for data, expected in cases:
        with pytest.raises(FaxError) as exc:
            imaging.read_tiff(data)
        assert expected in str(exc.value), (expected, str(exc.value))
    for pdf, expected in [
        (b"%PDF-1.4\n garbage without objects", "cannot be rendered"),
        (b"", "empty"),
    ]:
        with pytest.raises(FaxError) as exc:
            imaging.render_pdf(pdf)
        assert expected in str(exc.value)
    with pytest.raises(FaxError, match="neither a PDF nor a TIFF"):
        imaging.document_to_tiff(b"hello")
    with pytest.raises(FaxError, match="unknown fax compression"):
        imaging.encode_tiff([_text_page()], compression="jbig")


def test_writing_pages_leaves_no_file_descriptor_open() -> None:
    import os

    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    imaging.encode_tiff([_text_page()])  # libtiff loaded once
    before = open_fds()
    for _ in range(20):
        imaging.encode_tiff([_text_page(), _text_page(1146)], y_dpi=[196, 98], compression="g3")
        with pytest.raises(FaxError, match="the PDF cannot be rendered"):
            imaging.pdf_to_tiff(b"%PDF-1.7\nnot a pdf")  # the writer is opened, then the PDF refused
    assert open_fds() == before


def test_pages_written_by_libtiff_read_back_pixel_for_pixel() -> None:
    pages = [_text_page(), _text_page(1146)]
    for compression in ("g4", "g3"):
        back = imaging.tiff_images(imaging.encode_tiff(pages, y_dpi=[196, 98], compression=compression))
        assert [imaging.pixel_difference(a, b) for a, b in zip(back, pages, strict=True)] == [0.0, 0.0]


def test_strips_compressed_by_one_writer_are_written_by_another_byte_for_byte() -> None:
    # The render pool's processes compress pages; the calling process puts the file together.
    from inkless.fax.tiff_writer import TiffWriter

    pages = [_text_page(), _text_page(1146)]
    for compression in ("g4", "g3"):
        whole = imaging.encode_tiff(pages, y_dpi=[196, 98], compression=compression)
        with TiffWriter(compression) as writer:
            for (width, rows, strip), dpi in zip(imaging.raw_strips(whole), [196, 98], strict=True):
                writer.add_strip(strip, width, rows, dpi)
            assert imaging.finish_tiff(writer) == whole


def test_a_writer_left_by_an_error_gives_its_file_back() -> None:
    import os

    from inkless.fax.tiff_writer import TiffWriter

    imaging.encode_tiff([_text_page()])  # libtiff loaded once
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        with pytest.raises(FaxError, match="not one of"), TiffWriter("g4") as writer:
            writer.add(_text_page(), 196)
            raise FaxError("a page that is not one of ours")
    assert len(os.listdir("/proc/self/fd")) == before


def test_pages_of_any_width_are_packed_as_libtiff_expects() -> None:
    # A stray pixel at each end of the row and odd widths (the padding bits of the last byte).
    from inkless.fax.tiff_writer import TiffWriter

    for width in (1728, 1727, 9):
        page = Image.new("1", (width, 3), 1)
        page.putpixel((0, 0), 0)
        page.putpixel((width - 1, 1), 0)
        with TiffWriter("g4") as writer:
            writer.add(page, 196)
            data = writer.finish()
        back = Image.open(io.BytesIO(data))
        assert back.size == (width, 3)
        assert [back.getpixel((0, 0)), back.getpixel((width - 1, 1)), back.getpixel((1, 2))] == [0, 0, 255]
