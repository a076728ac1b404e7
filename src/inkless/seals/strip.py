"""The approval strip (押印欄): a row of boxes with the step titles above, and one empty signature field per box.

Layout, as on a paper 回議用紙: the boxes sit in one row at the bottom right of the
last page, the first step (担当) on the right and later steps to its left, the highest
rank leftmost; the approvers of a parallel step (合議) get boxes side by side under one
shared title. The office seal box (公印) closes the row on the left, a little apart.

The strip goes on the last page when its bottom has enough blank paper (found by
rendering the page with pdfium); otherwise a new blank page of the same size is
appended and the strip goes there. Everything is added in one incremental update
*before* any signature: the strip's lines and titles and every box's empty signature
field (the office seal's too). After the first seal nothing is drawn on any page
again, so every seal stays valid.

Titles are drawn as glyph outlines of the Japanese seal font (IPAex Mincho via
fontconfig), like the imprints: the strip references no font and looks the same in
every viewer.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.writer import PageObject
from pyhanko.sign.fields import FieldMDPAction, FieldMDPSpec, MDPPerm, SigFieldSpec, append_signature_field

from inkless.errors import ValidationError
from inkless.seals.fonts import Glyphs, glyph_source
from inkless.seals.imprint import _PDFIUM_LOCK, rgba_png
from inkless.seals.routes import OFFICE_SEAL_FIELD

OFFICE_SEAL_TITLE = "公印"

# Geometry in PDF points. A box of 62 pt (21.9 mm) holds a 16.5 mm date seal with room to spare.
BOX = 62
OFFICE_BOX = 76  # 26.8 mm: the 21 mm 角印 with a margin
MIN_BOX = 50
TITLE_HEIGHT = 16
TITLE_TEXT = 9.5
MARGIN = 28
OFFICE_GAP = 10
# Blank paper kept between the page's own content and the strip.
CLEARANCE = 8
LINE_WIDTH = 0.6
# Signature fields sit inside the box lines, so the imprint never covers them.
FIELD_INSET = 3
# pdfium renders at this resolution to look for the page's lowest ink.
SCAN_DPI = 50


@dataclass(frozen=True)
class StripStep:
    """What the strip needs to know of a step: its title and its approvers' field names."""

    title: str
    field_names: tuple[str, ...]


@dataclass(frozen=True)
class StripBox:
    """One box of the strip: its signature field, the title above it, and where it is (page 1-based)."""

    field_name: str
    title: str
    page: int
    box: tuple[float, float, float, float]  # the field rectangle: x1, y1, x2, y2 in points, origin bottom-left


@dataclass(frozen=True)
class StrippedDocument:
    """The PDF with the strip and its fields, and where every box is."""

    pdf: bytes
    boxes: tuple[StripBox, ...]
    page: int  # 1-based page of the strip
    new_page: bool

    def box(self, field_name: str) -> StripBox:
        for box in self.boxes:
            if box.field_name == field_name:
                return box
        raise KeyError(field_name)


def add_approval_strip(pdf: bytes, steps: Sequence[StripStep], font: Glyphs | None = None) -> StrippedDocument:
    """``pdf`` with the approval strip, one empty signature field per box, and the certification field."""
    reader = _open(pdf)
    page_count = int(cast(Any, reader.root["/Pages"])["/Count"])
    if page_count < 1:
        raise ValidationError("the PDF has no pages")
    last_ix = page_count - 1
    last = _page(reader, last_ix)
    llx, lly, urx, ury = _media_box(last)
    widths = _cell_widths(steps, urx - llx)
    strip_width = sum(w for _, ws in widths for w in ws) + OFFICE_GAP + OFFICE_BOX
    strip_height = TITLE_HEIGHT + OFFICE_BOX
    if strip_width + 2 * MARGIN > urx - llx or strip_height + 2 * MARGIN > ury - lly:
        raise ValidationError("the last page is too small for the approval strip")
    rotated = int(cast(Any, _inherited(last, "/Rotate") or 0)) % 360 != 0
    room = not rotated and _blank_bottom(pdf, last_ix) >= MARGIN + strip_height + CLEARANCE

    # pyHanko's writer methods are untyped.
    writer: Any = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    if room:
        page_ix = last_ix
    else:
        content = writer.add_object(generic.StreamObject(stream_data=b""))
        writer.insert_page(_new_page(content, (llx, lly, urx, ury)))
        page_ix = page_count

    glyphs = font if font is not None else glyph_source()
    ops: list[str] = ["q", f"{LINE_WIDTH} w 0 G 0 g"]
    boxes: list[StripBox] = []
    # Right to left: the first step's boxes at the right edge.
    x = urx - MARGIN
    y0 = lly + MARGIN
    top = y0 + strip_height
    for step, step_widths in widths:
        span = sum(step_widths)
        left = x - span
        ops.append(_rect(left, top - TITLE_HEIGHT, span, TITLE_HEIGHT))
        ops.extend(_title(glyphs, step.title, left, top - TITLE_HEIGHT, span))
        bx = left
        # Parallel approvers side by side, in the order given, left to right.
        for name, w in zip(step.field_names, step_widths, strict=True):
            ops.append(_rect(bx, y0, w, OFFICE_BOX))
            boxes.append(_box(name, step.title, page_ix, bx, y0, w))
            bx += w
        x = left
    left = x - OFFICE_GAP - OFFICE_BOX
    ops.append(_rect(left, top - TITLE_HEIGHT, OFFICE_BOX, TITLE_HEIGHT))
    ops.extend(_title(glyphs, OFFICE_SEAL_TITLE, left, top - TITLE_HEIGHT, OFFICE_BOX))
    ops.append(_rect(left, y0, OFFICE_BOX, OFFICE_BOX))
    boxes.append(_box(OFFICE_SEAL_FIELD, OFFICE_SEAL_TITLE, page_ix, left, y0, OFFICE_BOX))
    ops.append("Q")

    try:
        if room:
            # The page's own content may leave the graphics state changed: wrap it in q … Q first.
            opening = writer.add_object(generic.StreamObject(stream_data=b"q\n"))
            writer.add_stream_to_page(page_ix, opening, prepend=True)
            strip = writer.add_object(generic.StreamObject(stream_data=("Q\n" + "\n".join(ops) + "\n").encode()))
        else:
            strip = writer.add_object(generic.StreamObject(stream_data=("\n".join(ops) + "\n").encode()))
        writer.add_stream_to_page(page_ix, strip)
        for box in boxes:
            append_signature_field(writer, _field_spec(box, page_ix))
        out = io.BytesIO()
        writer.write(out)
    except (PdfError, KeyError, TypeError, ValueError) as exc:
        raise ValidationError("cannot add the approval strip to this PDF: {exc}", exc=exc) from exc
    return StrippedDocument(pdf=out.getvalue(), boxes=tuple(boxes), page=page_ix + 1, new_page=not room)


def render_page_png(
    pdf: bytes, page: int, dpi: int = 100, highlight: tuple[float, float, float, float] | None = None
) -> bytes:
    """Page ``page`` (1-based) of ``pdf`` as an RGBA PNG on white paper, with signature appearances.

    ``highlight`` (x1, y1, x2, y2 in points) is outlined in blue: the box where a seal will go.
    """
    import pypdfium2  # type: ignore[import-untyped, unused-ignore]

    if not 36 <= dpi <= 300:
        raise ValidationError("preview resolution must be between 36 and 300 dpi, got {dpi}", dpi=dpi)
    with _PDFIUM_LOCK:
        try:
            document = pypdfium2.PdfDocument(pdf)
        except pypdfium2.PdfiumError as exc:
            raise ValidationError("cannot read the PDF: {exc}", exc=exc) from None
        try:
            if not 1 <= page <= len(document):
                raise ValidationError(
                    "the PDF has {count} pages, there is no page {page}",
                    count=len(document), page=page)
            # Signature appearances are widget annotations: pdfium draws them with forms initialised.
            document.init_forms()
            p = document[page - 1]
            bitmap = p.render(
                scale=dpi / 72.0,
                fill_color=(255, 255, 255, 255),
                rev_byteorder=True,
                prefer_bgrx=True,
                may_draw_forms=True,
            )
            width, height, stride = int(bitmap.width), int(bitmap.height), int(bitmap.stride)
            channels = int(bitmap.n_channels)
            buffer = bytes(bitmap.buffer)
            bitmap.close()
            p.close()
        finally:
            document.close()
    if channels != 4:
        raise ValidationError("unexpected pdfium bitmap with {channels} channels", channels=channels)
    # RGBX: the padding byte becomes an opaque alpha channel.
    rows = [_opaque(buffer[y * stride : y * stride + width * 4]) for y in range(height)]
    if highlight is not None:
        origin = page_size(pdf, page)
        _outline(rows, width, height, highlight, origin, dpi / 72.0)
    return rgba_png(width, height, rows)


HIGHLIGHT = b"\x1f\x5f\xd6\xff"  # opaque blue: no seal ink is blue, so it never hides an imprint


def _outline(
    rows: list[bytes],
    width: int,
    height: int,
    box: tuple[float, float, float, float],
    origin: tuple[float, float, float, float],
    scale: float,
) -> None:
    x1 = max(0, int((box[0] - origin[0]) * scale))
    x2 = min(width - 1, int((box[2] - origin[0]) * scale))
    top = max(0, int((origin[3] - box[3]) * scale))
    bottom = min(height - 1, int((origin[3] - box[1]) * scale))
    if x2 <= x1 or bottom <= top:
        return
    thickness = 3
    for y in range(top, bottom + 1):
        row = bytearray(rows[y])
        if y < top + thickness or y > bottom - thickness:
            row[x1 * 4 : (x2 + 1) * 4] = HIGHLIGHT * (x2 + 1 - x1)
        else:
            row[x1 * 4 : (x1 + thickness) * 4] = HIGHLIGHT * thickness
            row[(x2 + 1 - thickness) * 4 : (x2 + 1) * 4] = HIGHLIGHT * thickness
        rows[y] = bytes(row)


def _opaque(row: bytes) -> bytes:
    out = bytearray(row)
    out[3::4] = b"\xff" * (len(out) // 4)
    return bytes(out)


def page_size(pdf: bytes, page: int) -> tuple[float, float, float, float]:
    """The media box (x1, y1, x2, y2) of page ``page`` (1-based)."""
    return _media_box(_page(_read(pdf), page - 1))


# --- helpers ------------------------------------------------------------------------------


def _read(pdf: bytes) -> PdfFileReader:
    try:
        return PdfFileReader(io.BytesIO(pdf), strict=False)
    except (PdfError, KeyError, TypeError, ValueError, IndexError) as exc:
        raise ValidationError("not a readable PDF: {exc}", exc=exc) from None


def _open(pdf: bytes) -> PdfFileReader:
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        if reader.encrypted:
            raise ValidationError("the PDF is encrypted: upload it without a password")
        if reader.embedded_signatures:
            raise ValidationError(
                "the PDF is already signed: an approval strip cannot be added without breaking its signatures"
            )
        return reader
    except ValidationError:
        raise
    except (PdfError, KeyError, TypeError, ValueError, IndexError) as exc:
        raise ValidationError("not a readable PDF: {exc}", exc=exc) from None


def _new_page(content: Any, box: tuple[float, float, float, float]) -> Any:
    make: Any = PageObject
    return make(contents=content, media_box=box)


def _page(reader: PdfFileReader, page_ix: int) -> generic.DictionaryObject:
    try:
        ref, _ = cast(Any, reader).find_page_for_modification(page_ix)
        page = ref.get_object()
    except (PdfError, KeyError, IndexError, ValueError) as exc:
        raise ValidationError(f"cannot find page {page_ix + 1} of the PDF: {exc}") from None
    assert isinstance(page, generic.DictionaryObject)
    return page


def _inherited(page: generic.DictionaryObject, key: str) -> generic.PdfObject | None:
    """A page attribute that may sit on the page or on one of its ancestors in the page tree."""
    node: generic.PdfObject | None = page
    for _ in range(64):
        if not isinstance(node, generic.DictionaryObject):
            return None
        if key in node:
            return cast(generic.PdfObject, node[key])
        node = node.get("/Parent")
    return None


def _media_box(page: generic.DictionaryObject) -> tuple[float, float, float, float]:
    box = _inherited(page, "/MediaBox")
    if box is None:
        raise ValidationError("the last page has no media box")
    x1, y1, x2, y2 = (float(v) for v in cast(Any, box))
    return min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)


def _cell_widths(steps: Sequence[StripStep], page_width: float) -> list[tuple[StripStep, list[float]]]:
    n = sum(len(s.field_names) for s in steps)
    if n == 0:
        raise ValidationError("a route needs at least one approver")
    available = page_width - 2 * MARGIN - OFFICE_GAP - OFFICE_BOX
    width = min(BOX, available // n)
    if width < MIN_BOX:
        raise ValidationError(f"{n} approvers' boxes do not fit across the page (at most {int(available // MIN_BOX)})")
    return [(s, [float(width)] * len(s.field_names)) for s in steps]


def _box(name: str, title: str, page_ix: int, x: float, y: float, w: float) -> StripBox:
    return StripBox(
        field_name=name,
        title=title,
        page=page_ix + 1,
        box=(x + FIELD_INSET, y + FIELD_INSET, x + w - FIELD_INSET, y + OFFICE_BOX - FIELD_INSET),
    )


def _field_spec(box: StripBox, page_ix: int) -> SigFieldSpec:
    if box.field_name != OFFICE_SEAL_FIELD:
        return SigFieldSpec(box.field_name, on_page=page_ix, box=_int_box(box.box))
    # The office seal closes the route: its field carries a lock (PDF 2.0 §12.8.2.4) that freezes every
    # field and allows form filling only once it is signed. The lock must exist before the first seal:
    # adding it to the field later would itself be a change that breaks the approvers' seals.
    return SigFieldSpec(
        box.field_name,
        on_page=page_ix,
        box=_int_box(box.box),
        field_mdp_spec=FieldMDPSpec(FieldMDPAction.ALL),
        doc_mdp_update_value=MDPPerm.FILL_FORMS,
    )


def _int_box(box: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    return (round(box[0]), round(box[1]), round(box[2]), round(box[3]))


def _num(value: float) -> str:
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _rect(x: float, y: float, w: float, h: float) -> str:
    return f"{_num(x)} {_num(y)} {_num(w)} {_num(h)} re S"


def _title(glyphs: Glyphs, title: str, left: float, bottom: float, width: float) -> list[str]:
    """The title centred in its cell, as filled glyph outlines."""
    outlines = [glyphs.outline(ch) for ch in title]
    if not outlines:
        return []
    upm = outlines[0].units_per_em
    scale = TITLE_TEXT / upm
    advance = sum(o.advance for o in outlines) * scale
    # Squeeze sideways rather than overflow the cell (long titles in narrow boxes).
    sx = scale * min(1.0, (width - 4) / advance) if advance > 0 else scale
    total = sum(o.advance for o in outlines) * sx
    x = left + (width - total) / 2
    # IPAex puts the em box from -0.12 to 0.88 em: this centres it vertically in the cell.
    y = bottom + (TITLE_HEIGHT - TITLE_TEXT) / 2 + 0.12 * TITLE_TEXT
    path: list[str] = []
    for outline in outlines:
        for command in outline.commands:
            op, *coords = command
            pts = [(x + coords[i] * sx, y + coords[i + 1] * scale) for i in range(0, len(coords), 2)]
            if op == "M":
                path.append(f"{_num(pts[0][0])} {_num(pts[0][1])} m")
            elif op == "L":
                path.append(f"{_num(pts[0][0])} {_num(pts[0][1])} l")
            elif op == "C":
                path.append(" ".join(f"{_num(px)} {_num(py)}" for px, py in pts) + " c")
            else:
                path.append("h")
        x += outline.advance * sx
    return [*path, "f"] if path else []


def _blank_bottom(pdf: bytes, page_ix: int) -> float:
    """How many points of blank paper the bottom of the page has (up to the lowest non-white pixel)."""
    import pypdfium2  # type: ignore[import-untyped, unused-ignore]

    with _PDFIUM_LOCK:
        document = pypdfium2.PdfDocument(pdf)
        try:
            page = document[page_ix]
            bitmap = page.render(scale=SCAN_DPI / 72.0, fill_color=(255, 255, 255, 255), grayscale=True)
            width, height, stride = int(bitmap.width), int(bitmap.height), int(bitmap.stride)
            channels = int(bitmap.n_channels)
            buffer = bytes(bitmap.buffer)
            bitmap.close()
            page.close()
        finally:
            document.close()
    for row in range(height - 1, -1, -1):
        line = buffer[row * stride : row * stride + width * channels]
        if min(line) < 235:
            return (height - 1 - row) * 72.0 / SCAN_DPI
    return height * 72.0 / SCAN_DPI


def field_boxes(pdf: bytes) -> dict[str, tuple[float, float, float, float]]:
    """The widget rectangle of every signature field (for previews that show where a seal goes)."""
    from pyhanko.sign.fields import enumerate_sig_fields

    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        found: dict[str, tuple[float, float, float, float]] = {}
        for name, _value, ref in enumerate_sig_fields(reader):
            field: Any = ref.get_object()
            rect = field.get("/Rect")
            if rect is None and "/Kids" in field:
                rect = field["/Kids"][0].get_object().get("/Rect")
            if rect is not None:
                x1, y1, x2, y2 = (float(v) for v in rect)
                found[str(name)] = (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))
        return found
    except (PdfError, KeyError, TypeError, ValueError) as exc:
        raise ValidationError("not a readable PDF: {exc}", exc=exc) from None
