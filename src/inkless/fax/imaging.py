"""Fax images: PDF → TIFF Class F, TIFF-F → PDF, and validation of what arrives.

A TIFF-F page here is 1-bit, min-is-white, 1728 (or 2048 / 2432) pixels wide at
204 dpi across and 196 (fine) or 98 (standard) dpi down, CCITT T.6 (MMR, "G4")
or T.4 1D (MH, "G3") compressed, one strip per page, with NewSubfileType=page,
PageNumber n/m and CleanFaxData — what RFC 2306 (TIFF-F) and spandsp expect.
"""

from __future__ import annotations

import io
import math
import struct
import warnings
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageChops, ImageOps, UnidentifiedImageError

from inkless.errors import FaxError
from inkless.fax.model import FAX_WIDTHS, FaxPage
from inkless.fax.tiff_writer import COMPRESSION_SCHEMES, TiffWriter
from inkless.pdfium_lock import PDFIUM_LOCK  # pdfium is not thread-safe: one lock per process

FAX_WIDTH = 1728  # ISO A4 scan width at 8 pels/mm (215 mm)
X_DPI = 204
FINE_Y_DPI = 196
STANDARD_Y_DPI = 98

# A page taller than MAX_ROWS is refused: 20,000 rows is 2.6 m of paper at fine resolution.
MAX_ROWS = 20_000
MAX_PAGES = 500
MAX_INPUT_BYTES = 64 * 1024 * 1024
# A rendered page longer than this (B4 length, 364 mm) is cut into A4-length pieces,
# as a fax machine's page splitter does with long documents.
SPLIT_ABOVE_MM = 364.0
A4_LENGTH_MM = 297.0
# Fraction of a 32×32 tile in mid-tones above which it is treated as a photograph and dithered.
PHOTO_TILE_FRACTION = 0.5
TILE = 32


_TIFF_COMPRESSION_TAG = {3: "g3", 4: "g4"}

_PAGE_NUMBER_TAG = 297
_PHOTOMETRIC_TAG = 262


def _check_size(data: bytes, what: str) -> None:
    if not data:
        raise FaxError(f"the {what} is empty")
    if len(data) > MAX_INPUT_BYTES:
        raise FaxError(f"the {what} is {len(data)} bytes; at most {MAX_INPUT_BYTES} are accepted")


def is_pdf(data: bytes) -> bool:
    """True if ``data`` starts like a PDF file."""
    return data[:1024].lstrip().startswith(b"%PDF-")


def is_tiff(data: bytes) -> bool:
    """True if ``data`` starts with a TIFF byte-order mark and magic number."""
    return data[:4] in (b"II*\x00", b"MM\x00*")


# --------------------------------------------------------------------------- PDF → bitmaps


def render_pdf(pdf: bytes, *, fine: bool = True) -> list[Image.Image]:
    """Render every page of ``pdf`` to 1-bit fax bitmaps (1728 px wide, 204×196 or 204×98 dpi)."""
    pages: list[Image.Image] = []
    with FaxDocuments([pdf], fine=fine) as documents:
        documents.render(pages.extend)
    return pages


@dataclass(frozen=True)
class _PagePlan:
    """One PDF page as it will be drawn: its place on the scan line, its rows, and its fax pages."""

    index: int
    width: int
    rows: int
    rotation: int
    pieces: int  # fax pages it becomes (a page longer than B4 is cut)


class FaxDocuments:
    """PDFs opened and measured for faxing: every page is checked (area, length, count) before any
    is drawn, so the number of fax pages is known up front (a cover page states it) and a bad last
    page fails a 100-page fax at once rather than after rendering the rest."""

    def __init__(self, pdfs: Sequence[bytes], *, fine: bool = True) -> None:
        import pypdfium2 as pdfium  # type: ignore[import-untyped, unused-ignore]

        self._pdfium = pdfium
        self.y_dpi = FINE_Y_DPI if fine else STANDARD_Y_DPI
        self._docs: list[tuple[Any, list[_PagePlan]]] = []
        self._sources = list(pdfs)  # for the render pool's processes, which open their own copies
        try:
            for pdf in pdfs:
                _check_size(pdf, "PDF")
                try:
                    with PDFIUM_LOCK:
                        doc = pdfium.PdfDocument(pdf)
                except pdfium.PdfiumError as exc:
                    raise FaxError(f"the PDF cannot be rendered: {exc}") from None
                self._docs.append((doc, []))
                with PDFIUM_LOCK:
                    count = len(doc)
                    if count == 0:
                        raise FaxError("the PDF has no pages")
                    if count > MAX_PAGES:
                        raise FaxError(f"the PDF has {count} pages; at most {MAX_PAGES} can be faxed")
                    self._docs[-1][1].extend(_plan_page(pdfium, doc, index, self.y_dpi) for index in range(count))
        except BaseException:
            self.close()
            raise

    @property
    def fax_pages(self) -> int:
        return sum(plan.pieces for _, plans in self._docs for plan in plans)

    def write(self, writer: TiffWriter, *, parallel: bool = True) -> None:
        """Draw, threshold and compress every page into ``writer``, in order.

        With ``parallel`` and at least :data:`~inkless.fax.render_pool.POOL_MIN_PAGES` fax pages, the
        render pool's processes do it, a range of pages each, and only the compressed strips come back
        here; a smaller document (or ``parallel=False``) is drawn in this process (:meth:`render`).
        Both ways write the same file, byte for byte.
        """
        from inkless.fax import render_pool

        if parallel and self.fax_pages >= render_pool.POOL_MIN_PAGES and render_pool.processes() > 1:
            render_pool.write_pages(
                [(pdf, plans) for pdf, (_, plans) in zip(self._sources, self._docs, strict=True)],
                self.y_dpi, X_DPI, writer, draw=_draw_range, prepare=_prepare_render_worker,
            )
        else:
            self.render(lambda bitmaps: writer.add_all(bitmaps, self.y_dpi, X_DPI))

    def render(self, sink: Callable[[list[Image.Image]], object]) -> None:
        """Draw every page in order and hand its fax bitmaps to ``sink``, in order.

        Binarising and ``sink`` (encoding, when it is a :class:`TiffWriter`) run in a second thread:
        while pdfium draws page n (ctypes lets go of the interpreter lock), page n - 1 is thresholded
        and compressed on the other core.
        """
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fax-binarize") as pool:
            pending: list[Future[object]] = []
            try:
                for doc, plans in self._docs:
                    for plan in plans:
                        with PDFIUM_LOCK:
                            grey = _render_page(self._pdfium, doc, plan)
                        pending.append(pool.submit(_binarized_to, sink, grey, self.y_dpi))
                        while pending and pending[0].done():  # a failure there stops the drawing here
                            pending.pop(0).result()
                for future in pending:
                    future.result()
            except BaseException:
                for future in pending:
                    future.cancel()
                raise

    def close(self) -> None:
        with PDFIUM_LOCK:
            for doc, _ in self._docs:
                doc.close()
        self._docs = []

    def __enter__(self) -> FaxDocuments:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- in a render pool worker (inkless.fax.render_pool runs these by name)

# Freed image blocks a worker keeps for the next page (a fine page is about four 4 MB images).
_CACHED_IMAGE_BLOCKS = 8
# The document a worker drew its last range from, kept open for the next range of the same one:
# pdfium keeps its parsed fonts and drawn glyphs per document, and a text page draws a third faster
# with them. It is closed when a range of another document arrives.
_worker_open: tuple[str, Any] | None = None


def _prepare_render_worker() -> None:
    import pypdfium2  # type: ignore[import-untyped, unused-ignore]  # noqa: F401  (loaded before the first page)
    from PIL import _imaging as pillow_core

    from inkless.fax import tiff_writer

    tiff_writer._library()
    # Pillow hands every freed image back to malloc, which unmaps blocks this large: a fresh worker
    # then faulted in some 16 MB of zeroed pages per fax page (a fifth of its CPU, in the kernel).
    # A few freed blocks kept for the next page avoid that, at the cost of one page's memory.
    pillow_core.set_blocks_max(_CACHED_IMAGE_BLOCKS)  # what PILLOW_BLOCKS_MAX sets


def _worker_document(pdfium: Any, key: str, source: str | bytes) -> Any:
    global _worker_open
    if _worker_open is not None and _worker_open[0] == key:
        return _worker_open[1]
    if _worker_open is not None:
        with PDFIUM_LOCK:
            _worker_open[1].close()
        _worker_open = None
    if isinstance(source, str):  # an in-memory file of the calling process, by its /proc name
        with open(source, "rb") as file:
            source = file.read()
    try:
        with PDFIUM_LOCK:
            doc = pdfium.PdfDocument(source)
    except pdfium.PdfiumError as exc:
        raise FaxError(f"the PDF cannot be rendered: {exc}") from None
    _worker_open = (key, doc)
    return doc


def _draw_range(key: str, source: str | bytes, plans: tuple[_PagePlan, ...], y_dpi: int,
                compression: str) -> list[tuple[int, int, bytes]]:
    """Draw, threshold and compress a range of pages as the calling process would; the strips only."""
    import pypdfium2 as pdfium  # type: ignore[import-untyped, unused-ignore]

    doc = _worker_document(pdfium, key, source)
    with TiffWriter(compression) as writer:
        for plan in plans:
            with PDFIUM_LOCK:
                grey = _render_page(pdfium, doc, plan)
            writer.add_all(split_long_page(binarize(grey), y_dpi), y_dpi, X_DPI)
        return raw_strips(writer.finish())


def _binarized_to(sink: Callable[[list[Image.Image]], object], grey: Image.Image, y_dpi: int) -> object:
    return sink(split_long_page(binarize(grey), y_dpi))


def _plan_page(pdfium: Any, doc: Any, index: int, y_dpi: int) -> _PagePlan:
    try:
        page = doc[index]
    except pdfium.PdfiumError as exc:
        raise FaxError(f"page {index + 1} of the PDF cannot be read: {exc}") from None
    try:
        width_pt, height_pt = page.get_size()
    finally:
        page.close()
    if not (math.isfinite(width_pt) and math.isfinite(height_pt)) or width_pt <= 0 or height_pt <= 0:
        raise FaxError(f"page {index + 1} of the PDF has no area")
    # Landscape pages are turned to portrait, as fax software does, to keep them legible.
    rotation = 90 if width_pt > height_pt else 0
    if rotation:
        width_pt, height_pt = height_pt, width_pt
    # Fit the page width to the scan line (never enlarge beyond 204 dpi).
    scale = min(X_DPI / 72.0, FAX_WIDTH / width_pt)
    # Whole pixels, rounded up as pdfium does (an A4 page: 1687 × 2292 at fine resolution).
    width = min(FAX_WIDTH, max(1, math.ceil(width_pt * scale - 1e-6)))
    rows = max(1, math.ceil(height_pt * scale * y_dpi / X_DPI - 1e-6))
    if rows > MAX_ROWS:
        raise FaxError(
            f"page {index + 1} of the PDF is {height_pt / 72 * 25.4:.0f} mm long;"
            f" at most {MAX_ROWS} fax rows can be sent"
        )
    return _PagePlan(index, width, rows, rotation, len(_split_rows(rows, y_dpi)))


def _render_page(pdfium: Any, doc: Any, plan: _PagePlan) -> Image.Image:
    try:
        page = doc[plan.index]
    except pdfium.PdfiumError as exc:
        raise FaxError(f"page {plan.index + 1} of the PDF cannot be read: {exc}") from None
    try:
        return _rasterise(pdfium, page, plan.width, plan.rows, plan.rotation)
    except pdfium.PdfiumError as exc:
        raise FaxError(f"page {plan.index + 1} of the PDF cannot be rendered: {exc}") from None
    finally:
        page.close()


def _rasterise(pdfium: Any, page: Any, width: int, rows: int, rotation: int) -> Image.Image:
    """Draw a page straight onto the fax raster: ``width`` × ``rows`` pixels, centred on the 1728 px line.

    Rendering at the fax's own 204 × 196 (or 98) dpi means no resampling afterwards, and text and
    vector paths are drawn without anti-aliasing: pdfium's aliased rasteriser then blackens every
    pixel a thin stroke runs through, as Ghostscript's fax devices do, so a 0.3 px Mincho bar or a
    0.1 mm table rule stays one pixel wide instead of fading into two grey rows that a fixed
    threshold drops (本 read as 木). Images keep their smoothing, so photographs arrive as grey
    and are dithered by :func:`binarize`.
    """
    raw = pdfium.raw
    bitmap = pdfium.PdfBitmap.new_native(FAX_WIDTH, rows, format=raw.FPDFBitmap_Gray)
    try:
        bitmap.fill_rect((255, 255, 255, 255), 0, 0, FAX_WIDTH, rows)
        flags = raw.FPDF_GRAYSCALE | raw.FPDF_ANNOT | raw.FPDF_RENDER_NO_SMOOTHTEXT | raw.FPDF_RENDER_NO_SMOOTHPATH
        # Size per axis is given separately, so the page is drawn at 204 dpi across and 196/98 down.
        raw.FPDF_RenderPageBitmap(bitmap, page, (FAX_WIDTH - width) // 2, 0, width, rows, rotation // 90, flags)
        # A copy that owns its pixels, so the bitmap is freed here, under the lock.
        grey: Image.Image = bitmap.to_pil().copy()
        return grey
    finally:
        bitmap.close()


def binarize(grey: Image.Image) -> Image.Image:
    """Threshold text and line art; Floyd–Steinberg dither regions that look like photographs."""
    grey = grey.convert("L")
    text = grey.convert("1", dither=Image.Dither.NONE)  # a plain threshold at 128
    # Text and rules are drawn without anti-aliasing: the usual text page is black and white only,
    # so no tile can be a photograph (a comparison with its threshold costs a fifth of the tile count).
    if ImageChops.difference(grey, text.convert("L")).getbbox() is None:
        return text
    # Photographs are mostly mid-tones; anti-aliased text edges are only a thin rim.
    midtones = grey.point(lambda v: 255 if 40 <= v <= 215 else 0)
    tiles = midtones.resize(
        (max(1, grey.width // TILE), max(1, grey.height // TILE)), Image.Resampling.BOX
    )
    photo_tiles = tiles.point(lambda v: 255 if v >= 255 * PHOTO_TILE_FRACTION else 0)
    if photo_tiles.getbbox() is None:
        return text
    mask = photo_tiles.resize(grey.size, Image.Resampling.NEAREST)
    dithered = grey.convert("1", dither=Image.Dither.FLOYDSTEINBERG)
    return Image.composite(dithered, text, mask.convert("1")).convert("1")


def split_long_page(page: Image.Image, y_dpi: int) -> list[Image.Image]:
    """Cut a page longer than B4 into A4-length pieces (fax machines do the same)."""
    pieces = _split_rows(page.height, y_dpi)
    if len(pieces) == 1:
        return [page]
    return [page.crop((0, top, page.width, bottom)) for top, bottom in pieces]


def _split_rows(rows: int, y_dpi: int) -> list[tuple[int, int]]:
    """The row ranges a page of ``rows`` is faxed as."""
    if rows <= round(SPLIT_ABOVE_MM / 25.4 * y_dpi):
        return [(0, rows)]
    piece = round(A4_LENGTH_MM / 25.4 * y_dpi)
    return [(top, min(top + piece, rows)) for top in range(0, rows, piece)]


# --------------------------------------------------------------------------- bitmaps → TIFF-F


def encode_tiff(
    pages: Sequence[Image.Image], *, y_dpi: int | Sequence[int] = FINE_Y_DPI, compression: str = "g4"
) -> bytes:
    """Write 1-bit page images as one multi-page TIFF-F (one strip per page, PageNumber n/m)."""
    if compression not in COMPRESSION_SCHEMES:
        raise FaxError(f"unknown fax compression {compression!r} (use g4 or g3)")
    if not pages:
        raise FaxError("a fax needs at least one page")
    dpis = [y_dpi] * len(pages) if isinstance(y_dpi, int) else list(y_dpi)
    for page in pages:
        if page.width not in FAX_WIDTHS:
            raise FaxError(f"a fax page is {page.width} pixels wide; expected one of {FAX_WIDTHS}")
    with TiffWriter(compression) as writer:
        for page, dpi in zip(pages, dpis, strict=True):
            writer.add(page, dpi, X_DPI)
        return finish_tiff(writer)


def finish_tiff(writer: TiffWriter) -> bytes:
    """The file ``writer`` wrote, with every page's PageNumber n/m (the total was not known before)."""
    return _patch_tags(writer.finish())


def raw_strips(data: bytes) -> list[tuple[int, int, bytes]]:
    """Width, rows and the compressed strip of every page of a one-strip-per-page TIFF ``TiffWriter`` wrote."""
    order, offsets = _ifd_offsets(data)
    pages: list[tuple[int, int, bytes]] = []
    for offset in offsets:
        count = struct.unpack(order + "H", data[offset : offset + 2])[0]
        values: dict[int, int] = {}
        for k in range(count):
            entry = offset + 2 + 12 * k
            tag, kind, n = struct.unpack(order + "HHI", data[entry : entry + 8])
            if tag in (256, 257, 273, 279) and n == 1 and kind in (3, 4):  # SHORT or LONG, one value
                values[tag] = struct.unpack_from(order + ("H" if kind == 3 else "I"), data, entry + 8)[0]
        if len(values) != 4:
            raise FaxError("a rendered page is not one strip")  # TiffWriter writes exactly one
        pages.append((values[256], values[257], data[values[273] : values[273] + values[279]]))
    return pages


def _ifd_offsets(data: bytes) -> tuple[str, list[int]]:
    order = "<" if data[:2] == b"II" else ">"
    offsets: list[int] = []
    offset = struct.unpack(order + "I", data[4:8])[0]
    while offset and len(offsets) <= MAX_PAGES:
        if offset + 2 > len(data):
            raise FaxError("the TIFF is truncated (an image directory lies beyond its end)")
        offsets.append(offset)
        count = struct.unpack(order + "H", data[offset : offset + 2])[0]
        end = offset + 2 + 12 * count
        if end + 4 > len(data):
            raise FaxError("the TIFF is truncated (an image directory lies beyond its end)")
        offset = struct.unpack(order + "I", data[end : end + 4])[0]
    return order, offsets


def _patch_tags(data: bytes) -> bytes:
    out = bytearray(data)
    order, offsets = _ifd_offsets(data)
    for page, offset in enumerate(offsets):
        count = struct.unpack(order + "H", data[offset : offset + 2])[0]
        for k in range(count):
            entry = offset + 2 + 12 * k
            tag, kind, n = struct.unpack(order + "HHI", data[entry : entry + 8])
            if tag == _PAGE_NUMBER_TAG and kind == 3 and n == 2:
                out[entry + 8 : entry + 12] = struct.pack(order + "HH", page, len(offsets))
            elif tag == _PHOTOMETRIC_TAG and kind == 3 and n == 1:
                out[entry + 8 : entry + 10] = struct.pack(order + "H", 0)  # min-is-white
    return bytes(out)


def pdf_to_tiff(pdf: bytes, *, fine: bool = True, compression: str = "g4", parallel: bool = True) -> bytes:
    """Render a PDF into a multi-page TIFF-F ready to send: in the render pool's processes, or for a
    short document (or ``parallel=False``) here, in a pipeline across two threads (:meth:`FaxDocuments.write`)."""
    with TiffWriter(compression) as writer, FaxDocuments([pdf], fine=fine) as documents:
        documents.write(writer, parallel=parallel)
        return finish_tiff(writer)


def document_to_tiff(data: bytes, *, fine: bool = True, compression: str = "g4") -> bytes:
    """A PDF or TIFF document as a TIFF-F to send (TIFFs are validated and normalised)."""
    if is_pdf(data):
        return pdf_to_tiff(data, fine=fine, compression=compression)
    if is_tiff(data):
        pages = read_tiff(data)
        return encode_tiff([page_image(p) for p in pages], y_dpi=[p.y_dpi for p in pages], compression=compression)
    raise FaxError("the document is neither a PDF nor a TIFF file")


# --------------------------------------------------------------------------- TIFF-F in


def _open_tiff(data: bytes) -> Image.Image:
    _check_size(data, "TIFF")
    if not is_tiff(data):
        raise FaxError("not a TIFF file (no TIFF header)")
    try:
        with warnings.catch_warnings():
            # Pillow warns (rather than fails) on damaged directories and oversized images.
            warnings.simplefilter("error")
            return Image.open(io.BytesIO(data), formats=["TIFF"])
    except (UnidentifiedImageError, Warning, Image.DecompressionBombError) as exc:
        raise FaxError(f"the TIFF cannot be read: {exc}") from None
    except (OSError, ValueError, SyntaxError, struct.error) as exc:
        raise FaxError(f"the TIFF is damaged: {exc}") from None


# What Pillow raises on a damaged TIFF directory, besides its warnings (a later page without its
# width tag is a TypeError, a tag of the wrong type a KeyError or struct.error).
_DAMAGE = (OSError, EOFError, ValueError, TypeError, KeyError, SyntaxError, struct.error)


def _frames(image: Image.Image) -> Iterable[int]:
    try:
        count = getattr(image, "n_frames", 1)
    except _DAMAGE as exc:
        raise FaxError(f"the TIFF is damaged: {exc}") from None
    if count > MAX_PAGES:
        raise FaxError(f"the TIFF has {count} pages; at most {MAX_PAGES} are accepted")
    return range(count)


def _resolution(image: Image.Image, index: int) -> tuple[int, int]:
    tags = getattr(image, "tag_v2", {})
    try:
        x = float(tags.get(282, 0) or 0)
        y = float(tags.get(283, 0) or 0)
        unit = int(tags.get(296, 2) or 2)
    except (TypeError, ValueError, OverflowError):
        raise FaxError(f"page {index + 1} of the TIFF has a damaged resolution tag") from None
    if unit == 3:  # per centimetre
        x, y = x * 2.54, y * 2.54
    if not (math.isfinite(x) and math.isfinite(y)) or x <= 0 or y <= 0:
        raise FaxError(f"page {index + 1} of the TIFF has no resolution; a fax page needs 204×98 or 204×196 dpi")
    return round(x), round(y)


def read_tiff(data: bytes) -> list[FaxPage]:
    """Validate a received or dropped-in TIFF and split it into single-page TIFF-F pages.

    Refuses what a fax cannot be: non-TIFF data, colour or greyscale images,
    widths other than 1728/2048/2432, pages taller than MAX_ROWS, too many
    pages, and data that does not decode — before decompressing anything large.
    """
    with warnings.catch_warnings():
        # Pillow only warns about some damage (truncated directories): treat that as damage too.
        warnings.simplefilter("error")
        try:
            return _read_pages(data)
        except Warning as exc:
            raise FaxError(f"the TIFF is damaged: {exc}") from None


def _read_pages(data: bytes) -> list[FaxPage]:
    image = _open_tiff(data)
    pages: list[FaxPage] = []
    for index in _frames(image):
        try:
            image.seek(index)
        except _DAMAGE as exc:
            raise FaxError(f"page {index + 1} of the TIFF cannot be read: {exc}") from None
        width, height = image.size
        if width not in FAX_WIDTHS:
            raise FaxError(
                f"page {index + 1} of the TIFF is {width} pixels wide; a fax page is 1728, 2048 or 2432"
            )
        if not 0 < height <= MAX_ROWS:
            raise FaxError(f"page {index + 1} of the TIFF has {height} rows; at most {MAX_ROWS} are accepted")
        if image.mode != "1":
            raise FaxError(f"page {index + 1} of the TIFF is not black and white (mode {image.mode})")
        x_dpi, y_dpi = _resolution(image, index)
        try:
            bitmap = image.copy()  # decodes: bounded by the checks above
        except _DAMAGE as exc:
            raise FaxError(f"page {index + 1} of the TIFF does not decode: {exc}") from None
        # 200 and 204 dpi are the same 8 pels/mm to a fax; pages are normalised to 204 dpi across.
        single = encode_tiff([bitmap], y_dpi=y_dpi)
        x_dpi = X_DPI if 196 <= x_dpi <= 208 else x_dpi
        pages.append(FaxPage(image=single, x_dpi=x_dpi, y_dpi=y_dpi, width=width, height=height))
    return pages


def page_image(page: FaxPage) -> Image.Image:
    """Decode one page to a 1-bit Pillow image (white = 255)."""
    image = _open_tiff(page.image)
    try:
        image.load()
    except (OSError, ValueError) as exc:
        raise FaxError(f"the fax page does not decode: {exc}") from None
    return image.convert("1")


def tiff_images(data: bytes) -> list[Image.Image]:
    """Decode every page of a TIFF-F into 1-bit images (validated like :func:`read_tiff`)."""
    return [page_image(p) for p in read_tiff(data)]


def join_pages(pages: Sequence[FaxPage]) -> bytes:
    """Assemble single pages into one multi-page TIFF-F."""
    return encode_tiff([page_image(p) for p in pages], y_dpi=[p.y_dpi for p in pages])


# --------------------------------------------------------------------------- TIFF-F → PDF


def tiff_to_pdf(data: bytes) -> bytes:
    """A PDF of the fax whose pages embed the CCITT G4 data as-is, with the page proportions of its dpi."""
    import img2pdf  # type: ignore[import-untyped, unused-ignore]

    pages = read_tiff(data)  # validates every page before img2pdf sees the file
    # img2pdf copies single-strip G4 pages into the PDF as they are; a fax received that way is
    # embedded byte for byte. Other encodings (G3, several strips) go through our G4 pages.
    source: bytes | list[bytes] = data if _all_single_strip_g4(data) else [p.image for p in pages]
    try:
        pdf = img2pdf.convert(source, rotation=img2pdf.Rotation.ifvalid)
    except Exception as exc:  # img2pdf raises bare Exception subclasses of its own
        raise FaxError(f"the fax cannot be converted to PDF: {exc}") from None
    if pdf is None:
        raise FaxError("the fax cannot be converted to PDF")
    return bytes(pdf)


def _all_single_strip_g4(data: bytes) -> bool:
    order, offsets = _ifd_offsets(data)
    for offset in offsets:
        count = struct.unpack(order + "H", data[offset : offset + 2])[0]
        entries = {}
        for k in range(count):
            entry = offset + 2 + 12 * k
            tag, kind, n = struct.unpack(order + "HHI", data[entry : entry + 8])
            entries[tag] = (kind, n, data[entry + 8 : entry + 12])
        compression = entries.get(259)
        strips = entries.get(273)
        if compression is None or strips is None or strips[1] != 1:
            return False
        if struct.unpack(order + "H", compression[2][:2])[0] != 4:
            return False
    return bool(offsets)


def thumbnail_png(page: FaxPage, width: int = 240) -> bytes:
    """A small greyscale PNG of a page for transmission reports, in true proportions."""
    image = page_image(page).convert("L")
    height = max(1, round(width * (page.height / page.y_dpi) / (page.width / page.x_dpi)))
    thumb = ImageOps.autocontrast(image.resize((width, height), Image.Resampling.BOX))
    buf = io.BytesIO()
    thumb.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def pixel_difference(a: Image.Image, b: Image.Image) -> float:
    """Fraction of pixels that differ between two bilevel pages (sizes must agree)."""
    if a.size != b.size:
        return 1.0
    diff = ImageChops.difference(a.convert("L"), b.convert("L")).point(lambda v: 255 if v else 0)
    histogram = diff.histogram()
    return histogram[255] / (a.width * a.height)
