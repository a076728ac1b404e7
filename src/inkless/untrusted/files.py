"""Checks a file from the public before anything else touches it.

- **Type by content**: the first bytes decide (``%PDF-``, JPEG's ``FF D8 FF``, PNG's signature);
  the name and the declared content type are ignored. Anything else is refused.
- **PDF**: opened only by pdfium, under the process-wide pdfium lock (as every other PDF inkless
  renders), never by a PDF library that runs scripts; encrypted or unreadable files and files
  with too many pages are refused. The bytes are kept as sent.
- **Images**: width and height are read from the header (PNG ``IHDR``, JPEG ``SOFn``) and checked
  against the pixel limit *before* Pillow decodes anything, so a 60,000 × 60,000 PNG of a few
  kilobytes is refused without allocating its 3.6 gigapixels. An accepted image is decoded,
  turned upright (EXIF orientation), stripped of its metadata and re-encoded as a one-page PDF.
- **Size**: over ``max_bytes`` is refused (the web layer's body guard has already bounded the request).
- **Virus scan**: when a scanner is configured (``clamd_socket``), every file is scanned; a finding
  or a scanner that does not answer refuses it.
"""

from __future__ import annotations

import io
import struct
import unicodedata
from dataclasses import dataclass

from inkless.errors import UntrustedFileError
from inkless.untrusted.clamd import VirusScanner

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
A4_LONG_SIDE_INCHES = 11.69


@dataclass(frozen=True)
class FileLimits:
    """How large, long and detailed one file may be."""

    max_bytes: int = 10 * 1024 * 1024
    max_pages: int = 100
    max_pixels: int = 40_000_000


@dataclass(frozen=True)
class CheckedFile:
    """A file that passed: its safe name, what it was, and the PDF to keep (images re-encoded)."""

    name: str
    kind: str  # pdf | jpeg | png
    pdf: bytes
    pages: int
    original_size: int


def sniff(data: bytes) -> str | None:
    """``pdf``, ``jpeg`` or ``png`` from the first bytes; None for anything else."""
    if data[:1024].lstrip(b"\r\n\t \x00").startswith(b"%PDF-") and data.startswith((b"%PDF-", b"\n", b"\r", b" ")):
        return "pdf"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(PNG_SIGNATURE):
        return "png"
    return None


def safe_name(name: str, kind: str) -> str:
    """A file name for storage and display: no path, no control or bidi characters, the right extension."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(c for c in unicodedata.normalize("NFC", base) if unicodedata.category(c)[0] != "C")
    stem = base.rsplit(".", 1)[0].strip(" .")[:80] or "document"
    return f"{stem}.pdf" if kind == "pdf" else f"{stem}-{kind}.pdf"


def image_size(data: bytes, kind: str) -> tuple[int, int]:
    """Width and height from a PNG or JPEG header, without decoding; UntrustedFileError if unreadable."""
    if kind == "png":
        # The IHDR chunk comes first: length (13), "IHDR", width, height (big-endian).
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise UntrustedFileError("the PNG image has no header", "unreadable")
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    index = 2
    while index + 9 < len(data):
        if data[index] != 0xFF:
            raise UntrustedFileError("the JPEG image is malformed", "unreadable")
        marker = data[index + 1]
        if marker == 0xFF:  # fill byte
            index += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            index += 2
            continue
        (length,) = struct.unpack(">H", data[index + 2:index + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[index + 5:index + 9])
            return width, height
        index += 2 + length
    raise UntrustedFileError("the JPEG image has no size", "unreadable")


def check_file(name: str, data: bytes, limits: FileLimits, scanner: VirusScanner | None = None) -> CheckedFile:
    """Check one file; the PDF to keep, or UntrustedFileError saying why not."""
    if not data:
        raise UntrustedFileError("the file is empty", "empty", name)
    if len(data) > limits.max_bytes:
        raise UntrustedFileError(f"the file is larger than {limits.max_bytes} bytes", "size", name)
    kind = sniff(data)
    if kind is None:
        raise UntrustedFileError("the file is not a PDF, JPEG or PNG", "type", name)
    if scanner is not None:
        verdict = scanner.scan(data)
        if not verdict.clean:
            raise UntrustedFileError(f"the virus scanner found {verdict.finding}", "virus", name)
    try:
        if kind == "pdf":
            pages = pdf_pages(data, limits.max_pages)
            pdf = data
        else:
            pdf = image_to_pdf(data, kind, limits.max_pixels)
            pages = 1
    except UntrustedFileError as exc:
        exc.file_name = name
        raise
    return CheckedFile(safe_name(name, kind), kind, pdf, pages, len(data))


def pdf_pages(data: bytes, max_pages: int) -> int:
    """The page count of a PDF as pdfium reads it; refused if encrypted, unreadable, empty or too long."""
    import pypdfium2 as pdfium  # type: ignore[import-untyped, unused-ignore]

    from inkless.pdfium_lock import PDFIUM_LOCK

    with PDFIUM_LOCK:
        try:
            doc = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            if "password" in str(exc).lower():
                raise UntrustedFileError("the PDF is protected by a password", "encrypted") from None
            raise UntrustedFileError("the PDF cannot be read", "unreadable") from None
        try:
            count = len(doc)
        finally:
            doc.close()
    if count == 0:
        raise UntrustedFileError("the PDF has no pages", "unreadable")
    if count > max_pages:
        raise UntrustedFileError(f"the PDF has {count} pages; at most {max_pages} are accepted", "pages")
    return count


def image_to_pdf(data: bytes, kind: str, max_pixels: int) -> bytes:
    """Decode an image whose header passed the pixel limit and write it as a one-page PDF."""
    width, height = image_size(data, kind)
    if width <= 0 or height <= 0:
        raise UntrustedFileError("the image has no pixels", "unreadable")
    if width * height > max_pixels:
        raise UntrustedFileError(
            f"the image is {width} × {height} pixels; at most {max_pixels} pixels are accepted", "pixels")
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data), formats=["PNG" if kind == "png" else "JPEG"]) as img:
            if img.width * img.height > max_pixels:  # the decoder's own view of the size, still before decoding
                raise UntrustedFileError("the image is too large", "pixels")
            img.load()
            upright = ImageOps.exif_transpose(img)
            clean = upright.convert("L" if upright.mode in ("1", "L", "LA", "I", "I;16") else "RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise UntrustedFileError(f"the image cannot be read: {type(exc).__name__}", "unreadable") from None
    # The longer side fits an A4 page; never below 72 dpi (small images stay small).
    dpi = max(72.0, max(clean.size) / A4_LONG_SIDE_INCHES)
    out = io.BytesIO()
    clean.save(out, "PDF", resolution=dpi)
    return out.getvalue()
