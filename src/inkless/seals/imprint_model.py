"""What a seal imprint shows: its kind, texts, size and colour, checked; the texts a seal sets.

Split from :mod:`inkless.seals.imprint` (which draws imprints as vector PDFs and PNG previews): what a
seal says and whether it may say it, without the drawing.
"""

from __future__ import annotations

import hashlib
import math
import unicodedata
from dataclasses import dataclass, field
from datetime import date

from inkless.errors import ValidationError
from inkless.seals.model import SealKind as SealKind  # defined there (light to import); named here too

# 朱色 (shu-iro), the vermilion of seal paste.
VERMILION: tuple[float, float, float] = (0.89, 0.26, 0.20)

MM_PER_INCH = 25.4
PT_PER_MM = 72.0 / MM_PER_INCH

MIN_SIZE_MM = 5.0
MAX_SIZE_MM = 60.0
MIN_DPI = 36
MAX_DPI = 1200

MAX_PERSONAL_WIDE = 4  # 認印: one vertical column of at most four characters
MAX_NARROW = 10  # a Latin surname or office name set horizontally
MAX_DATE_OFFICE_WIDE = 8  # the top band of a 日付印 is one short line
MAX_OFFICE_NAME = 12  # 角印: the name before 之印/印 is added
MAX_DATE_LABEL = 12

# Seal lettering is heavier than book Mincho: glyphs are filled and stroked with this width per em.
STROKE_PER_EM = 0.036

OFFICE_SUFFIX_SHORT = "印"
OFFICE_SUFFIX_LONG = "之印"

# Japanese eras for the date band, newest first: (first day, letter).
_ERAS: tuple[tuple[date, str], ...] = (
    (date(2019, 5, 1), "R"),  # 令和
    (date(1989, 1, 8), "H"),  # 平成
    (date(1926, 12, 25), "S"),  # 昭和
)


@dataclass(frozen=True)
class SealImprint:
    """What one seal imprint shows: its kind, texts, size, ink colour and the seed of its ink irregularities.

    ``texts`` is ``(surname,)`` for a personal seal, ``(office name, date label, surname)`` for a
    date seal and ``(office name with 之印/印,)`` for an office seal. ``size_mm`` is the diameter of a
    round seal or the side of a square one.
    """

    kind: SealKind
    texts: tuple[str, ...]
    size_mm: float
    colour: tuple[float, float, float] = VERMILION
    seed: int = field(default=0)

    def __post_init__(self) -> None:
        if not isinstance(self.kind, SealKind):
            raise ValidationError(f"unknown seal kind: {self.kind!r}")
        if not (MIN_SIZE_MM <= self.size_mm <= MAX_SIZE_MM) or math.isnan(self.size_mm):
            raise ValidationError(
                f"seal size must be between {MIN_SIZE_MM:g} and {MAX_SIZE_MM:g} mm, got {self.size_mm:g}"
            )
        if len(self.colour) != 3 or not all(0.0 <= c <= 1.0 for c in self.colour):
            raise ValidationError(f"seal colour must be three values between 0 and 1, got {self.colour!r}")
        if self.seed < 0:
            raise ValidationError("seal seed must not be negative")
        expected = {SealKind.PERSONAL: 1, SealKind.DATE: 3, SealKind.OFFICE: 1}[self.kind]
        if len(self.texts) != expected:
            raise ValidationError(f"a {self.kind.value} seal has {expected} text(s), got {len(self.texts)}")
        if self.kind is SealKind.PERSONAL:
            _check_name(self.texts[0], "surname", MAX_PERSONAL_WIDE)
        elif self.kind is SealKind.DATE:
            _check_name(self.texts[0], "office name", MAX_DATE_OFFICE_WIDE)
            _check_date_label(self.texts[1])
            _check_name(self.texts[2], "surname", MAX_PERSONAL_WIDE)
        else:
            _check_text(self.texts[0], "office name", allow_space=False)
            if len(self.texts[0]) > MAX_OFFICE_NAME + len(OFFICE_SUFFIX_LONG):
                raise ValidationError(
                    f"office seal text is too long: {len(self.texts[0])} characters, "
                    f"at most {MAX_OFFICE_NAME + len(OFFICE_SUFFIX_LONG)} including 之印"
                )


def personal_seal(surname: str, diameter_mm: float = 12.0) -> SealImprint:
    """A round personal seal (認印) with ``surname`` set vertically (horizontally if it is Latin)."""
    texts = (_clean(surname, "surname"),)
    return _imprint(SealKind.PERSONAL, texts, diameter_mm)


def date_seal(
    office_name: str, surname: str, on: date, diameter_mm: float = 16.5, era_letter: bool = True
) -> SealImprint:
    """A round date seal (日付印): office name on top, the Japanese-era date in the middle, surname below."""
    texts = (_clean(office_name, "office name"), era_date_label(on, era_letter), _clean(surname, "surname"))
    return _imprint(SealKind.DATE, texts, diameter_mm)


def office_seal(office_name: str, size_mm: float = 21.0) -> SealImprint:
    """A square office seal (角印): the office name and 之印/印 in columns read right to left."""
    return _imprint(SealKind.OFFICE, (office_seal_text(office_name),), size_mm)


def era_date_label(on: date, era_letter: bool = True) -> str:
    """The date as a date seal prints it: ``R8.11.30`` (令和8年11月30日), or ``8.11.30``."""
    for start, letter in _ERAS:
        if on >= start:
            year = on.year - start.year + 1
            return f"{letter if era_letter else ''}{year}.{on.month}.{on.day}"
    raise ValidationError(f"dates before the Shōwa era (1926-12-25) cannot be set on a date seal: {on}")


def office_seal_text(office_name: str) -> str:
    """The office name padded for a 角印.

    A name already ending in 印 is kept. Otherwise 印 is added if that fills the columns evenly,
    else 之印 if that does, else 印 (the last column is then shorter and its characters taller).
    """
    name = _clean(office_name, "office name")
    _check_text(name, "office name", allow_space=False)
    if len(name) > MAX_OFFICE_NAME:
        raise ValidationError(
            f"office name is too long for an office seal: {len(name)} characters, at most {MAX_OFFICE_NAME}"
        )
    if name.endswith(OFFICE_SUFFIX_SHORT):
        return name
    for suffix in (OFFICE_SUFFIX_SHORT, OFFICE_SUFFIX_LONG):
        if _fills_evenly(len(name) + len(suffix)):
            return name + suffix
    return name + OFFICE_SUFFIX_SHORT


def office_columns(text: str) -> tuple[str, ...]:
    """Split an office seal text into columns, first (rightmost) column first, each read top to bottom.

    There are ⌈√n⌉ columns; the characters are spread as evenly as possible, longer columns first.
    """
    n = len(text)
    if n == 0:
        return ()
    cols = math.isqrt(n - 1) + 1
    base, extra = divmod(n, cols)
    columns: list[str] = []
    start = 0
    for i in range(cols):
        length = base + (1 if i < extra else 0)
        columns.append(text[start : start + length])
        start += length
    return tuple(c for c in columns if c)


def is_vertical(text: str) -> bool:
    """True when a name is set vertically: every character is full width (kanji, kana, full-width forms)."""
    return all(unicodedata.east_asian_width(ch) in ("W", "F") for ch in text)


# --- validation -------------------------------------------------------------------------------


def _clean(text: str, what: str) -> str:
    if not isinstance(text, str):
        raise ValidationError(f"{what} must be text")
    # Deliberately no Unicode normalisation: NFC/NFKC would replace CJK compatibility ideographs,
    # and variant forms of name characters (異体字) matter on a seal.
    return text.strip(" \u3000")


def _check_text(text: str, what: str, allow_space: bool) -> None:
    if not text:
        raise ValidationError(f"{what} must not be empty")
    for ch in text:
        category = unicodedata.category(ch)
        if category.startswith("C"):
            raise ValidationError(f"{what} contains a control or unassigned character U+{ord(ch):04X}")
        if category.startswith("Z") and not (allow_space and ch == " "):
            raise ValidationError(f"{what} must not contain spaces or line breaks (U+{ord(ch):04X})")


def _check_name(text: str, what: str, max_wide: int) -> None:
    vertical = is_vertical(text)
    _check_text(text, what, allow_space=not vertical)
    limit = max_wide if vertical else MAX_NARROW
    if len(text) > limit:
        raise ValidationError(f"{what} is too long for a seal: {len(text)} characters, at most {limit}")


def _check_date_label(text: str) -> None:
    allowed = all(ch.isascii() and (ch.isalnum() or ch in ".-/") for ch in text)
    if not text or len(text) > MAX_DATE_LABEL or not allowed:
        raise ValidationError(f"date label must be 1 to {MAX_DATE_LABEL} ASCII letters, digits and '.': {text!r}")


def _fills_evenly(n: int) -> bool:
    cols = math.isqrt(n - 1) + 1
    return n >= 4 and n % cols == 0


def _imprint(kind: SealKind, texts: tuple[str, ...], size_mm: float) -> SealImprint:
    # The seed comes from what the seal shows, so a user's seal looks the same every time it is drawn.
    digest = hashlib.sha256("\x1f".join((kind.value, f"{size_mm:.3f}", *texts)).encode()).digest()
    return SealImprint(kind=kind, texts=texts, size_mm=float(size_mm), seed=int.from_bytes(digest[:8], "big"))
