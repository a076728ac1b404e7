"""Serving stored documents: only types a browser shows harmlessly keep their type.

A document's content type comes from whoever sent it. Served as given, ``text/html`` or
``text/javascript`` from another office would run in this node's origin, next to the
reader's session. Every download route builds its response here.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import Response

# Types a browser renders without running anything of the sender's in our origin (no SVG: it scripts).
SAFE_DOCUMENT_TYPES = frozenset(
    {"application/pdf", "image/png", "image/jpeg", "image/gif", "image/tiff", "image/webp", "image/bmp"}
)
OPAQUE_TYPE = "application/octet-stream"
# A document that is opened anyway (e.g. from the downloads bar) gets no scripts, forms or same origin.
SANDBOX_CSP = "sandbox; default-src 'none'"


def served_type(declared: str | None) -> str:
    """The content type a document is served with: the declared one if allow-listed, else octet-stream."""
    base = (declared or "").split(";", 1)[0].strip().lower()
    return base if base in SAFE_DOCUMENT_TYPES else OPAQUE_TYPE


def content_disposition(filename: str, fallback: str, disposition: str = "attachment") -> str:
    """RFC 6266 / 5987: an ASCII fallback name, and the real (e.g. Japanese) name as ``filename*``."""
    return f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename)}"


def document_response(
    data: bytes, declared_type: str | None, filename: str, fallback: str, *, inline: bool = False
) -> Response:
    """A download of ``data``: allow-listed types as declared, anything else opaque, sandboxed and attached."""
    media_type = served_type(declared_type)
    safe = media_type != OPAQUE_TYPE
    headers = {
        "Content-Disposition": content_disposition(filename, fallback, "inline" if inline and safe else "attachment"),
        "X-Content-Type-Options": "nosniff",
    }
    if not safe:
        headers["Content-Security-Policy"] = SANDBOX_CSP
    return Response(data, media_type=media_type, headers=headers)
