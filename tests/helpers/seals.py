"""Sealing test helpers: a node with the demo directory, sample PDFs, NSS databases, red pixels."""

from __future__ import annotations

import io
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter

from inkless.app import Node, init_node
from inkless.config import load_settings
from inkless.directory.demo import DEMO_NODE_ID, DEMO_ORGANISATION, create_demo
from tests.helpers.db import fresh_database

A4 = (0.0, 0.0, 595.0, 842.0)


@contextmanager
def demo_node(backend: str, folder: Path, base_url: str | None = None) -> Iterator[Node]:
    """An initialised node holding the demo offices and users (``base_url``: where it will be served)."""
    with fresh_database(backend, folder) as url:
        settings = load_settings(folder, env={}, overrides={
            "node_id": DEMO_NODE_ID, "organisation": DEMO_ORGANISATION, "database_url": url,
            **({"base_url": base_url} if base_url else {}),
        })
        node = init_node(settings)
        try:
            create_demo(node.directory)
            yield node
        finally:
            node.close()


def sample_pdf(pages: int = 1) -> bytes:
    """A4 pages with a heading and grey text bars, written with pyHanko's writer."""
    writer = PdfFileWriter(init_page_tree=True)
    font = writer.add_object(generic.DictionaryObject({
        pdf_name("/Type"): pdf_name("/Font"), pdf_name("/Subtype"): pdf_name("/Type1"),
        pdf_name("/BaseFont"): pdf_name("/Helvetica"),
    }))
    for number in range(1, pages + 1):
        bars = "\n".join(f"0.35 g 72 {y} 451 9 re f" for y in range(740, 560, -18))
        content = f"BT /F1 18 Tf 72 780 Td (Request for approval - page {number}) Tj ET\n{bars}\n".encode()
        stream = writer.add_object(generic.StreamObject(stream_data=content))
        resources = generic.DictionaryObject({pdf_name("/Font"): generic.DictionaryObject({pdf_name("/F1"): font})})
        writer.insert_page(PageObject(contents=stream, media_box=A4, resources=resources))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def nss_db_trusting(ca_pem: Path, folder: Path) -> str:
    """A fresh NSS database that trusts ``ca_pem`` (for pdfsig -nssdir); returns its ``sql:`` spec."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = f"sql:{folder}"
    subprocess.run(["certutil", "-N", "--empty-password", "-d", spec], check=True, capture_output=True)
    subprocess.run(["certutil", "-A", "-n", "inkless-ca", "-t", "CT,C,C", "-i", str(ca_pem), "-d", spec],
                   check=True, capture_output=True)
    return spec


def red_pixels(pdf: bytes, page: int, box: tuple[float, float, float, float], dpi: int = 72
               ) -> tuple[int, int]:
    """Count vermilion pixels inside ``box`` and outside it on ``page`` (1-based), as pdfium renders them."""
    import pypdfium2

    doc = pypdfium2.PdfDocument(pdf)
    try:
        doc.init_forms()
        p = doc[page - 1]
        height = p.get_height()
        bitmap = p.render(scale=dpi / 72.0, may_draw_forms=True, rev_byteorder=True,
                          fill_color=(255, 255, 255, 255))
        w, h, stride, n = bitmap.width, bitmap.height, bitmap.stride, bitmap.n_channels
        buf = bytes(bitmap.buffer)
    finally:
        doc.close()
    scale = dpi / 72.0
    x1, y1, x2, y2 = box
    inside = outside = 0
    for row in range(h):
        for col in range(w):
            i = row * stride + col * n
            r, g, b = buf[i], buf[i + 1], buf[i + 2]
            if r > 170 and g < 120 and b < 120:
                px, py = col / scale, height - row / scale
                if x1 - 1 <= px <= x2 + 1 and y1 - 1 <= py <= y2 + 1:
                    inside += 1
                else:
                    outside += 1
    return inside, outside
