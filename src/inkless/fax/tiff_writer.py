"""TIFF-F pages written by libtiff itself, through ctypes.

Pillow hands libtiff one row at a time while holding the interpreter lock, so its CCITT encoder
costs ≈ 15 ms a fine page and nothing else in the process runs meanwhile. Here the packed page goes
to ``TIFFWriteEncodedStrip`` whole: libtiff's T.6 coder takes a few milliseconds, and ctypes lets go
of the interpreter lock for the call, so pages are encoded on one core while pdfium draws the next
page on the other (:func:`inkless.fax.imaging.pdf_to_tiff`).

The library is the system's ``libtiff.so.6`` (Debian ``libtiff6``, which spandsp needs anyway), or
else the copy of libtiff that Pillow's wheels carry.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from PIL import Image

from inkless.errors import FaxError

# tiff.h
_TAG_SUBFILETYPE = 254
_TAG_IMAGEWIDTH = 256
_TAG_IMAGELENGTH = 257
_TAG_BITSPERSAMPLE = 258
_TAG_COMPRESSION = 259
_TAG_PHOTOMETRIC = 262
_TAG_FILLORDER = 266
_TAG_SAMPLESPERPIXEL = 277
_TAG_ROWSPERSTRIP = 278
_TAG_XRESOLUTION = 282
_TAG_YRESOLUTION = 283
_TAG_GROUP3OPTIONS = 292
_TAG_GROUP4OPTIONS = 293
_TAG_RESOLUTIONUNIT = 296
_TAG_PAGENUMBER = 297
_TAG_CLEANFAXDATA = 327
_FILETYPE_PAGE = 2
_PHOTOMETRIC_MINISWHITE = 0
_FILLORDER_MSB2LSB = 1
_RESUNIT_INCH = 2
_CLEANFAXDATA_CLEAN = 0
_REVERSED_BITS = bytes(int(f"{byte:08b}"[::-1], 2) for byte in range(256))
# Compression schemes: T.6 (MMR) and T.4 one-dimensional (MH), as fax machines take them.
COMPRESSION_SCHEMES = {"g4": 4, "g3": 3}

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None


def _candidates() -> list[str]:
    names = ["libtiff.so.6"]
    if found := ctypes.util.find_library("tiff"):
        names.append(found)
    import PIL

    bundled = Path(PIL.__file__).resolve().parent.parent / "pillow.libs"
    names += [str(path) for path in sorted(bundled.glob("libtiff*.so*"))]
    return names


def _library() -> ctypes.CDLL:
    global _lib
    with _lock:
        if _lib is None:
            for name in _candidates():
                try:
                    lib = ctypes.CDLL(name)
                except OSError:
                    continue
                lib.TIFFFdOpen.restype = ctypes.c_void_p
                lib.TIFFFdOpen.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p]
                for write in (lib.TIFFWriteEncodedStrip, lib.TIFFWriteRawStrip):
                    write.restype = ctypes.c_ssize_t
                    write.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_char_p, ctypes.c_ssize_t]
                lib.TIFFWriteDirectory.restype = ctypes.c_int
                lib.TIFFWriteDirectory.argtypes = [ctypes.c_void_p]
                lib.TIFFClose.restype = None
                lib.TIFFClose.argtypes = [ctypes.c_void_p]
                lib.TIFFSetField.restype = ctypes.c_int  # variadic: arguments are given typed, per tag
                _lib = lib
                break
            else:
                raise FaxError("libtiff is not installed (apt-get install libtiff6): fax pages cannot be written")
        return _lib


def _scratch() -> BinaryIO:
    if hasattr(os, "memfd_create"):
        return os.fdopen(os.memfd_create("inkless-fax-tiff", os.MFD_CLOEXEC), "w+b")
    return tempfile.TemporaryFile()


class TiffWriter:
    """A multi-page TIFF-F being written, one page at a time; ``finish`` returns the file's bytes.

    Pages carry PageNumber n/0: the total is not known until the last page (a long page may be cut
    in several), so the caller patches it afterwards. Not thread-safe: one thread writes. As a
    context manager it gives everything back on the way out; ``finish`` inside the block.
    """

    def __init__(self, compression: str) -> None:
        if compression not in COMPRESSION_SCHEMES:
            raise FaxError(f"unknown fax compression {compression!r} (use g4 or g3)")
        self.compression = compression
        self._lib = _library()
        self._scheme = COMPRESSION_SCHEMES[compression]
        self._file = _scratch()
        # libtiff closes the descriptor it was given: it gets a duplicate, and the file stays readable here.
        fd = os.dup(self._file.fileno())
        tif = self._lib.TIFFFdOpen(fd, b"fax.tif", b"w")
        if not tif:
            os.close(fd)
            self._file.close()
            raise FaxError("libtiff could not start a TIFF file")
        self._tif: int | None = tif
        self.pages = 0

    def add(self, page: Image.Image, y_dpi: int, x_dpi: int = 204) -> None:
        """Append one 1-bit page (Pillow mode ``1``, white 255), compressed as one strip."""
        if page.mode != "1":
            page = page.convert("1", dither=Image.Dither.NONE)
        # Min-is-white (a 1 bit is black), first pixel in the high bit. Pillow packs inverted bits with
        # the first pixel in the low bit ("1;IR") in two thirds of the time of "1;I"; turning each
        # byte round afterwards is a table lookup: 3 ms a fine page instead of 5, the same bytes.
        packed = page.tobytes("raw", "1;IR").translate(_REVERSED_BITS)
        tif_p = self._page_fields(*page.size, y_dpi, x_dpi)
        if self._lib.TIFFWriteEncodedStrip(tif_p, 0, packed, len(packed)) < 0:
            raise FaxError(f"libtiff could not compress page {self.pages + 1}")
        self._end_page(tif_p)

    def add_strip(self, strip: bytes, width: int, rows: int, y_dpi: int, x_dpi: int = 204) -> None:
        """Append one page whose strip another writer of the same compression has already compressed.

        The page comes out as :meth:`add` would have written it, byte for byte: the render pool's
        processes compress, and the file is put together here (:mod:`inkless.fax.render_pool`).
        """
        tif_p = self._page_fields(width, rows, y_dpi, x_dpi)
        if self._lib.TIFFWriteRawStrip(tif_p, 0, strip, len(strip)) < 0:
            raise FaxError(f"libtiff could not write page {self.pages + 1}")
        self._end_page(tif_p)

    def _page_fields(self, width: int, rows: int, y_dpi: int, x_dpi: int) -> ctypes.c_void_p:
        lib, tif = self._lib, self._tif
        assert tif is not None, "the TIFF is finished"
        tif_p = ctypes.c_void_p(tif)
        fields: list[tuple[int, tuple[ctypes._SimpleCData[int] | ctypes._SimpleCData[float], ...]]] = [
            (_TAG_SUBFILETYPE, (ctypes.c_uint32(_FILETYPE_PAGE),)),
            (_TAG_IMAGEWIDTH, (ctypes.c_uint32(width),)),
            (_TAG_IMAGELENGTH, (ctypes.c_uint32(rows),)),
            (_TAG_BITSPERSAMPLE, (ctypes.c_int(1),)),
            (_TAG_SAMPLESPERPIXEL, (ctypes.c_int(1),)),
            (_TAG_COMPRESSION, (ctypes.c_int(self._scheme),)),
            (_TAG_PHOTOMETRIC, (ctypes.c_int(_PHOTOMETRIC_MINISWHITE),)),
            (_TAG_FILLORDER, (ctypes.c_int(_FILLORDER_MSB2LSB),)),
            (_TAG_ROWSPERSTRIP, (ctypes.c_uint32(rows),)),
            (_TAG_XRESOLUTION, (ctypes.c_double(x_dpi),)),
            (_TAG_YRESOLUTION, (ctypes.c_double(y_dpi),)),
            (_TAG_RESOLUTIONUNIT, (ctypes.c_int(_RESUNIT_INCH),)),
            (_TAG_PAGENUMBER, (ctypes.c_int(self.pages), ctypes.c_int(0))),
            (_TAG_CLEANFAXDATA, (ctypes.c_int(_CLEANFAXDATA_CLEAN),)),
            # T.4 one-dimensional, T.6 plain: what every fax machine decodes
            ((_TAG_GROUP3OPTIONS if self._scheme == 3 else _TAG_GROUP4OPTIONS), (ctypes.c_uint32(0),)),
        ]
        for tag, values in fields:
            if not lib.TIFFSetField(tif_p, ctypes.c_uint32(tag), *values):
                raise FaxError(f"libtiff refused TIFF tag {tag} for page {self.pages + 1}")
        return tif_p

    def _end_page(self, tif_p: ctypes.c_void_p) -> None:
        if not self._lib.TIFFWriteDirectory(tif_p):
            raise FaxError(f"libtiff could not write page {self.pages + 1}")
        self.pages += 1

    def add_all(self, pages: list[Image.Image], y_dpi: int, x_dpi: int = 204) -> None:
        for page in pages:
            self.add(page, y_dpi, x_dpi)

    def finish(self) -> bytes:
        """Close the file and return its bytes."""
        self._close_tif()
        try:
            self._file.seek(0)
            return self._file.read()
        finally:
            self._file.close()

    def close(self) -> None:
        """Give everything back without a result (after an error; harmless after ``finish``)."""
        self._close_tif()
        self._file.close()

    def __enter__(self) -> TiffWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def _close_tif(self) -> None:
        if self._tif is not None:
            self._lib.TIFFClose(ctypes.c_void_p(self._tif))
            self._tif = None
