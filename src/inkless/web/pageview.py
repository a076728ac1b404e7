"""Serving page images: the node's page-image cache and the response every page-image route returns.

Routes that serve a page check access to the document first, exactly as its download does,
and only then call :func:`page_response`; page and document numbers in URLs start at 1.
"""

from __future__ import annotations

from fastapi import Response

from inkless.app import Node
from inkless.pageview import PageImages
from inkless.pageview.cache import VIEW_DPI, ZOOM_DPI

_KEY = "pageview.images"


def page_images(node: Node) -> PageImages:
    """The node's page-image cache (made on first use)."""
    images = node.extras.get(_KEY)
    if not isinstance(images, PageImages):
        images = PageImages(node.db, node.blobs, node.clock)
        node.extras[_KEY] = images
    return images


def page_response(node: Node, pdf: bytes, page: int, zoom: bool = False) -> Response:
    """Page ``page`` (1-based) of ``pdf`` as PNG, enlarged with ``zoom``; never cached by the browser."""
    png = page_images(node).png(pdf, page, ZOOM_DPI if zoom else VIEW_DPI)
    # A page of a classified document is not kept in the browser's disk cache, as the document is not.
    return Response(png, media_type="image/png",
                    headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})
