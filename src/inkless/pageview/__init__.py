"""The page viewer: every page of a PDF as an image, rendered on the server and cached as blobs.

Pages are numbered from 1, everywhere (pages, API, CLI). The images are made with pdfium
(the renderer the fax bridge and the approval strip already use), so seal imprints show
where they are on the page; no JavaScript is needed to read a document.
"""

from inkless.pageview.cache import PageImages
from inkless.pageview.render import NotAPdfError, page_count, render_page

__all__ = ["NotAPdfError", "PageImages", "page_count", "render_page"]
