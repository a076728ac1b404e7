"""The seal font (a Mincho face, through :mod:`inkless.fonts`) and its glyph outlines (fontTools)."""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from fontTools.pens.basePen import BasePen  # type: ignore[import-untyped, unused-ignore]
from fontTools.pens.boundsPen import BoundsPen  # type: ignore[import-untyped, unused-ignore]
from fontTools.ttLib import TTFont  # type: ignore[import-untyped, unused-ignore]

from inkless.errors import FontNotFoundError, SealError
from inkless.fonts import FontSource, FontStyle, find_japanese_font

# Path commands in font units: ("M", x, y) / ("L", x, y) / ("C", x1, y1, x2, y2, x3, y3) / ("Z",)
PathCommand = tuple[Any, ...]

# fontTools objects are loaded lazily and are not safe to share between threads unguarded.
_FONT_LOCK = threading.Lock()


@dataclass(frozen=True)
class GlyphOutline:
    """The outline of one character in font units, with its ink bounds and advance."""

    char: str
    commands: tuple[PathCommand, ...]
    bounds: tuple[float, float, float, float] | None  # xmin, ymin, xmax, ymax; None for blank glyphs
    advance: float
    units_per_em: int


class Glyphs(Protocol):
    """Where imprints get character outlines from (a font file, or a fake in unit tests)."""

    def outline(self, char: str, vertical: bool = False) -> GlyphOutline:
        """The outline of ``char``; raises :class:`SealError` naming the character if there is none."""
        ...


def find_cjk_font(explicit: str | Path | None = None) -> FontSource:
    """The font to draw seals with: ``explicit`` if given, else the best Mincho face fontconfig knows."""
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise SealError(f"seal font file not found: {path}")
        return FontSource(path)
    try:
        return find_japanese_font(FontStyle.MINCHO)
    except FontNotFoundError as exc:
        raise SealError(f"{exc}, or pass a font file explicitly") from None


class _CommandPen(BasePen):  # type: ignore[misc]
    """Records an outline as M/L/C/Z commands; BasePen turns TrueType quadratics into cubics."""

    def __init__(self, glyph_set: Any) -> None:
        super().__init__(glyph_set)
        self.commands: list[PathCommand] = []

    def _moveTo(self, pt: tuple[float, float]) -> None:
        self.commands.append(("M", *pt))

    def _lineTo(self, pt: tuple[float, float]) -> None:
        self.commands.append(("L", *pt))

    def _curveToOne(self, pt1: tuple[float, float], pt2: tuple[float, float], pt3: tuple[float, float]) -> None:
        self.commands.append(("C", *pt1, *pt2, *pt3))

    def _closePath(self) -> None:
        self.commands.append(("Z",))

    def _endPath(self) -> None:
        self.commands.append(("Z",))


class GlyphSource:
    """Outlines of characters from one font face (thread-safe, cached)."""

    def __init__(self, source: FontSource) -> None:
        self.source = source
        try:
            # Read the file whole: TTFont leaves a file handle open when the file is not a font.
            data = io.BytesIO(source.path.read_bytes())
            self._font = TTFont(data, fontNumber=source.index, lazy=True)
            self._cmap: dict[int, str] = self._font.getBestCmap() or {}
            self._glyph_set = self._font.getGlyphSet()
            self._upm = int(self._font["head"].unitsPerEm)
        except Exception as exc:  # fontTools raises many kinds of errors on a damaged file
            raise SealError(f"cannot read seal font {source.path}: {exc}") from exc
        self._vertical = _vertical_substitutions(self._font)
        self._cache: dict[tuple[str, bool], GlyphOutline] = {}

    def outline(self, char: str, vertical: bool = False) -> GlyphOutline:
        """The outline of ``char``; ``vertical`` picks the font's vertical-writing form (ー turned) if any."""
        key = (char, vertical)
        with _FONT_LOCK:
            cached = self._cache.get(key)
            if cached is None:
                cached = self._cache[key] = self._load(char, vertical)
        return cached

    def _load(self, char: str, vertical: bool) -> GlyphOutline:
        name = self._cmap.get(ord(char))
        if name is None:
            raise SealError(f"the seal font {self.source.path.name} has no glyph for {char!r} (U+{ord(char):04X})")
        if vertical:
            name = self._vertical.get(name, name)
        glyph = self._glyph_set[name]
        pen = _CommandPen(self._glyph_set)
        glyph.draw(pen)
        bounds_pen = BoundsPen(self._glyph_set)
        glyph.draw(bounds_pen)
        bounds = bounds_pen.bounds
        return GlyphOutline(
            char=char,
            commands=tuple(pen.commands),
            bounds=None if bounds is None else (float(bounds[0]), float(bounds[1]), float(bounds[2]), float(bounds[3])),
            advance=float(glyph.width),
            units_per_em=self._upm,
        )


def _vertical_substitutions(font: Any) -> dict[str, str]:
    """Single substitutions of the GSUB 'vert'/'vrt2' features (rotated ー, small kana moved)."""
    if "GSUB" not in font:
        return {}
    table = font["GSUB"].table
    if table.FeatureList is None or table.LookupList is None:
        return {}
    mapping: dict[str, str] = {}
    for record in table.FeatureList.FeatureRecord:
        if record.FeatureTag not in ("vert", "vrt2"):
            continue
        for lookup_index in record.Feature.LookupListIndex:
            lookup = table.LookupList.Lookup[lookup_index]
            for sub in lookup.SubTable:
                if lookup.LookupType == 7:  # extension lookup wraps the real subtable
                    sub = sub.ExtSubTable
                if getattr(sub, "LookupType", lookup.LookupType) == 1:
                    for src, dst in sub.mapping.items():
                        mapping.setdefault(src, dst)
    return mapping


_SOURCES: dict[FontSource, GlyphSource] = {}


def glyph_source(font: str | Path | None = None) -> GlyphSource:
    """A cached :class:`GlyphSource` for ``font`` (a path) or the discovered Japanese font."""
    source = find_cjk_font(font)
    with _FONT_LOCK:
        found = _SOURCES.get(source)
        if found is None:
            found = _SOURCES[source] = GlyphSource(source)
    return found
