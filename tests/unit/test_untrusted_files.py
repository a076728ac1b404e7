"""Files from the public: typed by content, images checked by their header before decoding, limits, safe names."""

from __future__ import annotations

import io
import tracemalloc

import pytest
from PIL import Image

from inkless.errors import UntrustedFileError
from inkless.untrusted.files import FileLimits, check_file, image_size, safe_name, sniff
from tests.helpers.intake import huge_png
from tests.helpers.seals import sample_pdf


def _image(kind: str, size: tuple[int, int] = (640, 480)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, kind)
    return out.getvalue()


def test_types_are_told_by_content_not_by_name() -> None:
    assert sniff(sample_pdf()) == "pdf"
    assert sniff(_image("JPEG")) == "jpeg"
    assert sniff(_image("PNG")) == "png"
    windows_exe = b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 200 + b"This program cannot be run in DOS mode."
    assert sniff(windows_exe) is None
    with pytest.raises(UntrustedFileError) as refused:
        check_file("申請書.pdf", windows_exe, FileLimits())
    assert (refused.value.reason, refused.value.file_name) == ("type", "申請書.pdf")
    # A PDF named .jpg is still a PDF, and kept as sent.
    checked = check_file("photo.jpg", sample_pdf(2), FileLimits())
    assert (checked.kind, checked.pages, checked.name) == ("pdf", 2, "photo.pdf")


def test_a_60000_by_60000_png_is_refused_from_its_header_without_allocating_it() -> None:
    data = huge_png()
    assert len(data) < 1000
    assert image_size(data, "png") == (60_000, 60_000)
    tracemalloc.start()
    try:
        with pytest.raises(UntrustedFileError) as refused:
            check_file("scan.png", data, FileLimits(max_pixels=40_000_000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert refused.value.reason == "pixels"
    assert "60000 × 60000" in str(refused.value)
    assert peak < 5 * 1024 * 1024  # decoding would need 10.8 GB


def test_images_become_one_page_pdfs_and_the_pixel_limit_counts_jpeg_headers_too() -> None:
    jpeg = _image("JPEG", (1200, 900))
    assert image_size(jpeg, "jpeg") == (1200, 900)
    checked = check_file("IMG_0001.JPG", jpeg, FileLimits())
    assert checked.kind == "jpeg" and checked.pdf.startswith(b"%PDF-") and checked.pages == 1
    assert checked.name == "IMG_0001-jpeg.pdf"
    with pytest.raises(UntrustedFileError) as refused:
        check_file("big.jpg", jpeg, FileLimits(max_pixels=1_000_000))
    assert refused.value.reason == "pixels"


def test_size_pages_and_unreadable_files_are_refused() -> None:
    with pytest.raises(UntrustedFileError) as too_big:
        check_file("a.pdf", sample_pdf(), FileLimits(max_bytes=100))
    assert too_big.value.reason == "size"
    with pytest.raises(UntrustedFileError) as too_long:
        check_file("a.pdf", sample_pdf(3), FileLimits(max_pages=2))
    assert too_long.value.reason == "pages"
    with pytest.raises(UntrustedFileError) as broken:
        check_file("a.pdf", b"%PDF-1.7\n" + b"garbage" * 50, FileLimits())
    assert broken.value.reason == "unreadable"
    with pytest.raises(UntrustedFileError) as truncated:
        check_file("a.png", _image("PNG")[:60], FileLimits())
    assert truncated.value.reason == "unreadable"
    with pytest.raises(UntrustedFileError) as empty:
        check_file("a.pdf", b"", FileLimits())
    assert empty.value.reason == "empty"


def test_safe_names_drop_paths_controls_and_bidi_overrides() -> None:
    assert safe_name("../../etc/passwd.pdf", "pdf") == "passwd.pdf"
    assert safe_name("C:\\Users\\taro\\申請書.pdf", "pdf") == "申請書.pdf"
    assert safe_name("photo\u202egpj.exe", "png") == "photogpj-png.pdf"
    assert safe_name("", "pdf") == "document.pdf"
