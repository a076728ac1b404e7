"""PDF → TIFF-F → PDF checked with independent tools: libtiff's tiffinfo and poppler's pdfimages/pdfinfo."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from inkless.errors import FaxError
from inkless.fax import imaging
from tests.helpers.faxdocs import three_page_pdf


def _run(*args: str) -> str:
    return subprocess.run(args, capture_output=True, text=True, check=True, timeout=60).stdout


@pytest.fixture(scope="module")
def pdf() -> bytes:
    return three_page_pdf(photo=True)


def _directories(tiffinfo: str) -> list[str]:
    return [d for d in tiffinfo.split("=== TIFF directory")[1:]]


@pytest.mark.parametrize(("fine", "compression", "rows", "scheme"), [
    (True, "g4", 2292, "CCITT Group 4"),
    (False, "g3", 1146, "CCITT Group 3"),
])
def test_pdf_renders_to_tiff_f_that_libtiff_accepts(
    pdf: bytes, tmp_path: Path, fine: bool, compression: str, rows: int, scheme: str
) -> None:
    path = tmp_path / "fax.tif"
    path.write_bytes(imaging.pdf_to_tiff(pdf, fine=fine, compression=compression))
    directories = _directories(_run("tiffinfo", str(path)))
    assert len(directories) == 3
    for number, d in enumerate(directories):
        assert f"Compression Scheme: {scheme}" in d
        assert f"Resolution: 204, {196 if fine else 98} pixels/inch" in d
        assert f"Image Width: 1728 Image Length: {rows}" in d
        assert f"Rows/Strip: {rows}" in d  # one strip per page
        assert "Photometric Interpretation: min-is-white" in d
        assert f"Page Number: {number}-3" in d
    # Every strip decodes without libtiff complaining.
    decoded = subprocess.run(["tiffinfo", "-D", str(path)], capture_output=True, text=True, timeout=60)
    assert decoded.returncode == 0 and "error" not in decoded.stderr.lower()


def test_tiff_to_pdf_embeds_ccitt_as_is_with_true_proportions(pdf: bytes, tmp_path: Path) -> None:
    for fine in (True, False):
        tiff = imaging.pdf_to_tiff(pdf, fine=fine)
        out = tmp_path / f"fax-{fine}.pdf"
        out.write_bytes(imaging.tiff_to_pdf(tiff))
        listing = _run("pdfimages", "-list", str(out)).splitlines()[2:]
        assert len(listing) == 3
        for row in listing:
            cols = row.split()
            # width height ... enc=ccitt, x-ppi 204, y-ppi 196/98: no re-encoding, true dpi
            assert cols[3:5] == ["1728", "2292" if fine else "1146"]
            assert cols[8] == "ccitt"
            assert cols[12:14] == ["204", "196" if fine else "98"]
        size = re.search(r"Page size:\s+([\d.]+) x ([\d.]+) pts", _run("pdfinfo", str(out)))
        assert size is not None
        width_mm = float(size.group(1)) / 72 * 25.4
        height_mm = float(size.group(2)) / 72 * 25.4
        # 1728 px at 204 dpi = 215 mm; an A4 page length (297 mm) at either resolution.
        assert abs(width_mm - 215.1) < 0.5 and abs(height_mm - 297) < 1.0
        # The embedded CCITT data is the TIFF's strip, byte for byte.
        extracted = tmp_path / f"img-{fine}"
        subprocess.run(["pdfimages", "-ccitt", "-f", "1", "-l", "1", str(out), str(extracted)], check=True, timeout=60)
        first = imaging.read_tiff(tiff)[0].image
        ccitt = Path(f"{extracted}-000.ccitt").read_bytes()
        assert ccitt and ccitt in first


def test_a_pdf_that_does_not_render_is_a_clear_error(tmp_path: Path) -> None:
    truncated = three_page_pdf()[:400]
    encrypted = _encrypted_pdf()
    for data in (truncated, encrypted, b"%PDF-1.7\n%%EOF\n"):
        with pytest.raises(FaxError, match="PDF"):
            imaging.pdf_to_tiff(data)


def _encrypted_pdf() -> bytes:
    import io

    from reportlab.lib import pdfencrypt
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf, encrypt=pdfencrypt.StandardEncryption("secret", canPrint=0))
    c.drawString(100, 700, "sealed")
    c.showPage()
    c.save()
    return buf.getvalue()


def test_landscape_and_long_pages_fit_the_fax_page() -> None:
    import io

    from PIL import ImageOps
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf, invariant=True)
    c.setPageSize(landscape(A4))
    c.rect(20, 20, landscape(A4)[0] - 40, landscape(A4)[1] - 40, fill=0)
    c.showPage()
    c.setPageSize((A4[0], A4[1] * 3))  # a 891 mm roll, e.g. a long table
    c.drawString(100, 100, "end of the roll")
    c.showPage()
    c.save()
    pages = imaging.render_pdf(buf.getvalue())
    # The landscape page is turned to portrait: A4 at 204×196 fills 1687 of 1728 px across.
    assert pages[0].size == (1728, 2292)
    ink = ImageOps.invert(pages[0].convert("L")).getbbox()  # the box around the black pixels
    assert ink is not None and ink[2] - ink[0] > 1500 and ink[3] - ink[1] > 2100
    # The roll is cut into A4 lengths.
    assert [p.size for p in pages[1:]] == [(1728, 2292)] * 3



def test_rendering_from_several_threads_at_once(pdf: bytes) -> None:
    # Outbound jobs, web requests and inbound lines render in parallel threads; pdfium must not be entered twice.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _n: imaging.pdf_to_tiff(pdf), range(4)))
    assert all(r == results[0] for r in results)


def _roll_pdf() -> bytes:
    """One A4 page, then a page three A4 lengths long (faxed as three pages)."""
    import io

    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf, invariant=True)
    c.drawString(100, 700, "first")
    c.showPage()
    c.setPageSize((A4[0], A4[1] * 3))
    c.drawString(100, 100, "end of the roll")
    c.showPage()
    c.save()
    return buf.getvalue()


def test_the_cover_page_counts_every_fax_page_before_any_is_drawn(monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import UTC, datetime

    from inkless.fax import render
    from inkless.fax.model import CoverPage

    covers: list[CoverPage] = []
    real_cover = render.cover_image
    monkeypatch.setattr(render, "cover_image", lambda cover: covers.append(cover) or real_cover(cover))
    cover = CoverPage("市民課", "0312345678", "田中", "0399999999", 0, "件名", datetime(2026, 12, 5, tzinfo=UTC))
    rendered = render.render_for_fax([three_page_pdf(), _roll_pdf()], cover)
    # cover + 3 pages + 1 page + a roll cut in three
    assert rendered.pages == 8 and [c.pages for c in covers] == [8]
    pages = imaging.read_tiff(rendered.tiff)
    assert len(pages) == 8 and all(p.y_dpi == 196 for p in pages)
    assert imaging.pixel_difference(imaging.page_image(pages[0]), real_cover(covers[0])) == 0.0
    # the documents' pages follow the cover in order, as pdf_to_tiff draws them alone
    alone = imaging.tiff_images(imaging.pdf_to_tiff(three_page_pdf())) + imaging.tiff_images(
        imaging.pdf_to_tiff(_roll_pdf()))
    for got, want in zip([imaging.page_image(p) for p in pages[1:]], alone, strict=True):
        assert imaging.pixel_difference(got, want) == 0.0


def test_a_bad_document_stops_the_fax_before_anything_is_drawn(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[int] = []
    real = imaging._render_page
    monkeypatch.setattr(imaging, "_render_page", lambda *args: drawn.append(1) or real(*args))
    from inkless.fax.render import render_for_fax

    with pytest.raises(FaxError, match="the PDF cannot be rendered"):
        render_for_fax([three_page_pdf(), three_page_pdf()[:400]], None)
    assert drawn == []


def test_a_failure_while_compressing_stops_the_drawing_and_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from inkless.fax import tiff_writer

    failed = threading.Event()
    drawn: list[int] = []
    real = imaging._render_page

    def draw(*args: Any) -> Any:
        if drawn:  # from the second page on, as if drawing were slow: the first page has failed meanwhile
            failed.wait(10)
        drawn.append(1)
        return real(*args)

    def refuse(self: tiff_writer.TiffWriter, *args: object) -> None:
        failed.set()
        raise FaxError("libtiff could not compress page 1")

    monkeypatch.setattr(imaging, "_render_page", draw)

    monkeypatch.setattr(tiff_writer.TiffWriter, "add", refuse)
    many = _many_pages(30)
    with pytest.raises(FaxError, match="could not compress page 1"):
        imaging.pdf_to_tiff(many, parallel=False)  # drawn here, thresholded and compressed in the second thread
    assert 1 <= len(drawn) < 30  # it stopped drawing once the second thread had failed
    assert not [t for t in threading.enumerate() if t.name.startswith("fax-binarize")]


def _many_pages(count: int) -> bytes:
    import io

    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf, invariant=True)
    for n in range(count):
        c.drawString(100, 700, f"page {n + 1}")
        c.showPage()
    c.save()
    return buf.getvalue()
