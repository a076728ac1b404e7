"""The approval strip (押印欄) on real PDFs: placement, empty fields, titles in ink, the original left intact."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pypdfium2
import pytest
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.fields import enumerate_sig_fields

from inkless.errors import ValidationError
from inkless.seals.routes import OFFICE_SEAL_FIELD
from inkless.seals.strip import TITLE_HEIGHT, StripStep, add_approval_strip, render_page_png
from tests.helpers.route_docs import sample_pdf

STEPS = [
    StripStep("担当", ("f1",)),
    StripStep("係長", ("f2",)),
    StripStep("課長", ("f3a", "f3b")),
    StripStep("部長", ("f4",)),
]


def _dark_pixels(pdf: bytes, page: int, box: tuple[float, float, float, float], dpi: int = 100) -> int:
    document = pypdfium2.PdfDocument(pdf)
    try:
        bitmap = document[page - 1].render(scale=dpi / 72, grayscale=True, fill_color=(255, 255, 255, 255))
        height, stride = bitmap.height, bitmap.stride
        data = bytes(bitmap.buffer)
    finally:
        document.close()
    s = dpi / 72
    x1, y1, x2, y2 = (int(box[0] * s), int(height - box[3] * s), int(box[2] * s), int(height - box[1] * s))
    rows = range(max(0, y1), min(height, y2))
    return sum(1 for y in rows for v in data[y * stride + x1 : y * stride + x2] if v < 128)



def test_the_strip_goes_on_the_last_page_when_it_has_room(tmp_path: Path) -> None:
    original = sample_pdf(2)
    doc = add_approval_strip(original, STEPS)
    assert doc.page == 2 and not doc.new_page
    assert doc.pdf.startswith(original)  # an incremental update: the uploaded bytes stay as they were
    reader = PdfFileReader(io.BytesIO(doc.pdf))
    assert int(reader.root["/Pages"]["/Count"]) == 2
    fields = {name: (value, ref.get_object()) for name, value, ref in enumerate_sig_fields(reader)}
    assert set(fields) == {"f1", "f2", "f3a", "f3b", "f4", OFFICE_SEAL_FIELD}
    assert all(value is None for value, _ in fields.values())  # every box is an empty signature field
    assert "/Lock" in fields[OFFICE_SEAL_FIELD][1] and "/Lock" not in fields["f1"][1]
    boxes = {b.field_name: b for b in doc.boxes}
    # Right to left in step order, parallel approvers side by side, the office seal leftmost.
    xs = [boxes[n].box[0] for n in ("f1", "f2", "f3b", "f3a", "f4", OFFICE_SEAL_FIELD)]
    assert xs == sorted(xs, reverse=True)
    for name, box in boxes.items():
        x1, y1, x2, y2 = box.box
        assert x2 - x1 >= 46 and y2 - y1 >= 60, name  # room for a 16.5 mm date seal (46.8 pt)
        # The title above each box is drawn in ink, the box itself is still empty paper.
        title = (x1, y2 + 3, x2, y2 + 3 + TITLE_HEIGHT)
        assert _dark_pixels(doc.pdf, 2, title) > 20, name
        assert _dark_pixels(doc.pdf, 2, (x1 + 2, y1 + 2, x2 - 2, y2 - 2)) == 0, name
    (tmp_path / "strip.pdf").write_bytes(doc.pdf)
    out = subprocess.run(["pdfsig", str(tmp_path / "strip.pdf")], capture_output=True, text=True, check=False)
    assert out.stdout.count("The signature form field is not signed.") == 6
    png = render_page_png(doc.pdf, 2, 72)
    assert png.startswith(b"\x89PNG")


def test_a_full_or_rotated_last_page_gets_a_new_page_of_the_same_size() -> None:
    doc = add_approval_strip(sample_pdf(1, full_last_page=True), STEPS)
    assert doc.page == 2 and doc.new_page
    reader = PdfFileReader(io.BytesIO(doc.pdf))
    assert int(reader.root["/Pages"]["/Count"]) == 2
    assert all(b.page == 2 for b in doc.boxes)

    rotated = _rotate_last_page(sample_pdf(1))
    assert add_approval_strip(rotated, STEPS).new_page


def test_pdfs_that_cannot_take_a_strip_are_refused() -> None:
    too_wide = [StripStep(f"S{i}", (f"f{i}",)) for i in range(10)]
    for pdf, steps, message in (
        (b"%PDF-1.7 garbage", STEPS, "not a readable PDF"),
        (b"", STEPS, "not a readable PDF"),
        (sample_pdf(1), too_wide, "do not fit across the page"),
        (sample_pdf(1), [], "at least one approver"),
    ):
        with pytest.raises(ValidationError, match=message):
            add_approval_strip(pdf, steps)
    with pytest.raises(ValidationError, match="no page 3"):
        render_page_png(sample_pdf(2), 3)


def _rotate_last_page(pdf: bytes) -> bytes:
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.generic import pdf_name
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    ref, _ = writer.find_page_for_modification(0)
    ref.get_object()[pdf_name("/Rotate")] = generic.NumberObject(90)
    writer.mark_update(ref)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
