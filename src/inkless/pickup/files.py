"""Files the public sends back through a pickup link: untrusted, so typed by content and bounded.

PDF, JPEG and PNG only, recognised by their first bytes (never by the name); a PDF must open with
pyHanko's reader (the library the node uses for every PDF it seals or verifies) within a page
limit; an image is decoded with Pillow under a pixel limit and re-encoded as a one-page PDF, so that
what reaches a clerk is never the original image bytes.
"""

from __future__ import annotations

import io
import unicodedata
import warnings
from dataclasses import dataclass

from inkless.errors import ValidationError

MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_FILES = 5
MAX_PAGES = 200
MAX_PIXELS = 40_000_000


class ReplyFileRefused(ValidationError):
    """A reply file was refused; ``reason`` is empty, size, type, pages, pixels or unreadable."""

    def __init__(self, message: str, reason: str, name: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.file_name = name


@dataclass(frozen=True)
class ReplyFile:
    """A checked file: a plain name, its type, and bytes (always a PDF)."""

    name: str
    content_type: str
    data: bytes


def sniff(data: bytes) -> str | None:
    """``pdf``, ``png``, ``jpeg`` from the content's first bytes, else None."""
    if data.startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    return None


def plain_name(name: str, suffix: str) -> str:
    """A safe file name: no folders, no control or bidi characters, at most 100 characters, the right suffix."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(c for c in base if unicodedata.category(c)[0] != "C")
    stem = base.rsplit(".", 1)[0].strip(" .") or "file"
    return f"{stem[:100]}.{suffix}"


def _pdf_pages(data: bytes, name: str) -> int:
    from pyhanko.pdf_utils.misc import PdfReadError
    from pyhanko.pdf_utils.reader import PdfFileReader

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reader = PdfFileReader(io.BytesIO(data), strict=False)
            if reader.encrypted:
                raise ReplyFileRefused(f"{name}: the PDF is protected by a password", "unreadable", name)
            pages = int(reader.root["/Pages"]["/Count"])
    except ReplyFileRefused:
        raise
    except (PdfReadError, KeyError, TypeError, ValueError, IndexError, AttributeError, RecursionError) as exc:
        raise ReplyFileRefused(f"{name}: the PDF cannot be read ({exc.__class__.__name__})", "unreadable",
                               name) from None
    if not 1 <= pages <= MAX_PAGES:
        raise ReplyFileRefused(f"{name}: the PDF has more than {MAX_PAGES} pages", "pages", name)
    return pages


def _image_to_pdf(data: bytes, name: str) -> bytes:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as probe:
            width, height = probe.size  # read from the header, before any pixel is decoded
        if width * height > MAX_PIXELS:
            raise ReplyFileRefused(f"{name}: the image has more than {MAX_PIXELS // 1_000_000} million pixels",
                                   "pixels", name)
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            rgb = image.convert("RGB")
        out = io.BytesIO()
        rgb.save(out, format="PDF", resolution=200.0)
        return out.getvalue()
    except ReplyFileRefused:
        raise
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as exc:
        raise ReplyFileRefused(f"{name}: the image cannot be read ({exc.__class__.__name__})", "unreadable",
                               name) from None


def check_reply_file(name: str, data: bytes) -> ReplyFile:
    """The file as a checked PDF, or ReplyFileRefused naming the file and why."""
    shown = plain_name(name or "file", "pdf")
    if not data:
        raise ReplyFileRefused(f"{shown}: the file is empty", "empty", shown)
    if len(data) > MAX_FILE_BYTES:
        raise ReplyFileRefused(f"{shown}: the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB", "size",
                               shown)
    kind = sniff(data)
    if kind is None:
        raise ReplyFileRefused(f"{shown}: only PDF, JPEG and PNG files are accepted (the content was checked)",
                               "type", shown)
    if kind == "pdf":
        _pdf_pages(data, shown)
        return ReplyFile(shown, "application/pdf", data)
    return ReplyFile(shown, "application/pdf", _image_to_pdf(data, shown))
