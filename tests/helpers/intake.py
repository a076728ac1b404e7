"""The intake window in tests: an open window, a submitter's form and files, and the codes that were mailed."""

from __future__ import annotations

import io
import re
import struct
import zlib
from typing import Any

from PIL import Image

from inkless.app import Node
from inkless.untrusted.files import PNG_SIGNATURE
from tests.helpers.seals import sample_pdf

OFFICE = "civil-affairs"
CODE_RE = re.compile(r"確認コード: ?(\d{6})|コード: (\d{6})")
FORM = {"name": "山田 太郎", "organisation": "山田商店", "email": "taro@example.jp", "phone": "03-1234-5678",
        "subject": "営業許可の更新申請", "procedure": "その他", "message": "更新の書類を送ります。"}


def open_window(node: Node, **limits: Any) -> None:
    assert node.intake is not None
    node.intake.set_window(OFFICE, True, "operator", procedures=["営業許可", "戸籍謄本の請求"], **limits)


def photo_png(size: tuple[int, int] = (900, 1200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (240, 240, 230)).save(out, "PNG")
    return out.getvalue()


def two_files() -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("files", ("申請書.pdf", sample_pdf(2), "application/pdf")),
            ("files", ("免許証.png", photo_png(), "image/png"))]


def code_in(text: str) -> str:
    """The 6-digit code of a code mail's body."""
    found = CODE_RE.search(text)
    assert found, text
    return found.group(1) or found.group(2)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_png(width: int = 60_000, height: int = 60_000) -> bytes:
    """A valid PNG header of a 60,000 × 60,000 RGB image with one tiny compressed row: a few hundred bytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return PNG_SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _chunk(b"IEND", b"")
