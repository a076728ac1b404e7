"""Seal imprint layout rules, validation and determinism, drawn with a fake box-glyph font."""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import FrozenInstanceError
from datetime import date
from pathlib import Path

import pytest

from inkless.errors import InklessError, SealError, ValidationError
from inkless.seals import (
    GlyphOutline,
    SealImprint,
    SealKind,
    date_seal,
    era_date_label,
    find_cjk_font,
    office_columns,
    office_seal,
    office_seal_text,
    personal_seal,
    render_pdf,
    render_png,
)

MM = 72 / 25.4


class BoxGlyphs:
    """A fake font: every character is a filled square (half as wide for narrow characters)."""

    def __init__(self, missing: str = "") -> None:
        self.missing = missing
        self.calls: list[tuple[str, bool]] = []

    def outline(self, char: str, vertical: bool = False) -> GlyphOutline:
        self.calls.append((char, vertical))
        if char in self.missing:
            raise SealError(f"the seal font has no glyph for {char!r} (U+{ord(char):04X})")
        if char == " ":
            return GlyphOutline(char, (), None, 500.0, 1000)
        right = 900.0 if ord(char) > 0x2E80 else 450.0
        commands = (("M", 100.0, 100.0), ("L", right, 100.0), ("L", right, 900.0), ("L", 100.0, 900.0), ("Z",))
        return GlyphOutline(char, commands, (100.0, 100.0, right, 900.0), right + 100.0, 1000)


Point = tuple[float, float]


def content_of(pdf: bytes) -> str:
    stream = pdf.split(b"stream\n", 1)[1].rsplit(b"\nendstream", 1)[0]
    return zlib.decompress(stream).decode("ascii")


def paint_groups(pdf: bytes) -> list[tuple[str, list[Point]]]:
    """The painted paths of the imprint (in mm): (paint operator, points), in drawing order."""
    groups: list[tuple[str, list[Point]]] = []
    points: list[Point] = []
    for line in content_of(pdf).splitlines():
        parts = line.split()
        op = parts[-1]
        if op in ("m", "l", "c"):
            numbers = [float(p) for p in parts[:-1]]
            points += list(zip(numbers[0::2], numbers[1::2], strict=True))
        elif op in ("f*", "B", "n"):
            groups.append((op, points))
            points = []
    return groups


def text_groups(pdf: bytes) -> list[list[Point]]:
    return [points for op, points in paint_groups(pdf) if op == "B"]


def centroid(points: list[Point]) -> Point:
    return (sum(p[0] for p in points) / len(points), sum(p[1] for p in points) / len(points))


def media_box_mm(pdf: bytes) -> tuple[float, float]:
    match = re.search(rb"/MediaBox \[0 0 ([\d.]+) ([\d.]+)\]", pdf)
    assert match
    return float(match.group(1)) / MM, float(match.group(2)) / MM


# --- layout rules ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("民事局", "民事局印"),  # 4 characters fill 2 columns of 2
        ("大臣官房", "大臣官房之印"),  # 5 would be uneven, 6 fills 3 columns of 2
        ("法務大臣", "法務大臣之印"),
        ("総務課", "総務課印"),
        ("東京都総務局長", "東京都総務局長之印"),  # 9 fills 3 columns of 3
        ("東京都知事", "東京都知事印"),  # 6 fills 3 columns of 2
        ("会計課長印", "会計課長印"),  # already ends in 印: kept as it is
        ("法務省民事局総務課", "法務省民事局総務課印"),  # neither 10 nor 11 is even: 印, uneven columns
        ("  民事局 ", "民事局印"),
    ],
)
def test_office_seal_text_pads_with_in_or_no_in(name: str, text: str) -> None:
    assert office_seal_text(name) == text
    assert office_seal(name).texts == (text,)


@pytest.mark.parametrize(
    ("text", "columns"),
    [
        ("民事局印", ("民事", "局印")),
        ("大臣官房之印", ("大臣", "官房", "之印")),
        ("東京都総務局長之印", ("東京都", "総務局", "長之印")),
        ("一二三四五六七八九十壱弐", ("一二三", "四五六", "七八九", "十壱弐")),
        ("法務省民事局総務課印", ("法務省", "民事局", "総務", "課印")),
        ("一二三四五六七八九十壱弐参之", ("一二三四", "五六七八", "九十壱", "弐参之")),
        ("府印", ("府", "印")),
    ],
)
def test_office_columns_spread_evenly_longest_first(text: str, columns: tuple[str, ...]) -> None:
    assert office_columns(text) == columns
    assert "".join(office_columns(text)) == text


@pytest.mark.parametrize(
    ("on", "letter", "label"),
    [
        (date(2026, 11, 30), True, "R8.11.30"),
        (date(2026, 11, 30), False, "8.11.30"),
        (date(2019, 5, 1), True, "R1.5.1"),
        (date(2019, 4, 30), True, "H31.4.30"),
        (date(1989, 1, 8), True, "H1.1.8"),
        (date(1989, 1, 7), True, "S64.1.7"),
    ],
)
def test_era_date_label(on: date, letter: bool, label: str) -> None:
    assert era_date_label(on, letter) == label


def test_date_seal_texts_are_office_date_surname() -> None:
    imprint = date_seal("総務課", "山田", date(2026, 11, 30))
    assert imprint.kind is SealKind.DATE
    assert imprint.texts == ("総務課", "R8.11.30", "山田")
    assert imprint.size_mm == 16.5


def test_seed_depends_on_what_the_seal_shows() -> None:
    assert personal_seal("山田").seed == personal_seal("山田").seed
    assert personal_seal("山田").seed != personal_seal("山本").seed
    assert personal_seal("山田").seed != personal_seal("山田", diameter_mm=10.5).seed


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: personal_seal(""), "must not be empty"),
        (lambda: personal_seal(" \u3000 "), "must not be empty"),
        (lambda: personal_seal("勅使河原家"), "too long"),
        (lambda: personal_seal("Montgomery-Smith"), "too long"),
        (lambda: personal_seal("山\x00田"), "control"),
        (lambda: personal_seal("山\n田"), "control"),
        (lambda: personal_seal("山\u200b田"), "control"),  # zero-width space (format character)
        (lambda: personal_seal("山\u3000田"), "spaces"),
        (lambda: personal_seal("山田", diameter_mm=3), "between"),
        (lambda: personal_seal("山田", diameter_mm=float("nan")), "between"),
        (lambda: office_seal("法務省民事局総務課長補佐代"), "too long"),
        (lambda: office_seal("民事 局"), "spaces"),
        (lambda: office_seal(""), "must not be empty"),
        (lambda: date_seal("総務課", "", date(2026, 11, 30)), "surname must not be empty"),
        (lambda: date_seal("総務課総務課総務課", "山田", date(2026, 11, 30)), "too long"),
        (lambda: date_seal("総務課", "山田", date(1900, 1, 1)), "Shōwa"),
        (lambda: SealImprint(SealKind.PERSONAL, ("山", "田"), 12.0), "1 text"),
        (lambda: SealImprint(SealKind.DATE, ("総務課", "R8\n11", "山田"), 16.5), "date label"),
        (lambda: SealImprint(SealKind.PERSONAL, ("山田",), 12.0, colour=(1.2, 0, 0)), "colour"),
    ],
)
def test_bad_input_is_a_clear_validation_error(make: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        make()  # type: ignore[operator]


def test_imprint_is_immutable() -> None:
    imprint = personal_seal("山田")
    with pytest.raises(FrozenInstanceError):
        imprint.texts = ("田中",)  # type: ignore[misc]


def test_png_resolution_is_bounded_before_anything_is_drawn() -> None:
    glyphs = BoxGlyphs()
    with pytest.raises(ValidationError, match="dpi"):
        render_png(personal_seal("山田"), dpi=5000, font=glyphs)
    assert glyphs.calls == []


def test_missing_glyph_names_the_character() -> None:
    with pytest.raises(SealError, match=r"U\+20BB7"):
        render_pdf(personal_seal("𠮷田"), font=BoxGlyphs(missing="𠮷"))


def test_missing_font_file_is_a_seal_error(tmp_path: Path) -> None:
    with pytest.raises(SealError, match="not found"):
        find_cjk_font(tmp_path / "nope.ttf")


def test_seal_error_is_a_422_in_the_tree() -> None:
    assert issubclass(SealError, InklessError)
    assert SealError.http_status == 422
    assert SealError.exit_code == 1


# --- drawing -------------------------------------------------------------------------------------


def test_pdf_is_deterministic_and_depends_on_the_text() -> None:
    first = render_pdf(personal_seal("山田"), font=BoxGlyphs())
    assert render_pdf(personal_seal("山田"), font=BoxGlyphs()) == first
    assert render_pdf(personal_seal("山本"), font=BoxGlyphs()) != first


def test_pdf_is_one_seal_sized_page_in_vermilion_without_fonts_or_metadata() -> None:
    pdf = render_pdf(office_seal("民事局", size_mm=24.0), font=BoxGlyphs())
    width, height = media_box_mm(pdf)
    assert width == pytest.approx(24.0, abs=0.01)
    assert height == pytest.approx(24.0, abs=0.01)
    assert pdf.count(b"/Type /Page ") == 1
    for marker in (b"/Font", b"/Info", b"/ID", b"/CreationDate", b"/Producer"):
        assert marker not in pdf
    assert "0.89 0.26 0.2 rg" in content_of(pdf)


@pytest.mark.parametrize("surname", ["林", "山田", "佐々木", "勅使河原"])
def test_personal_seal_stacks_the_surname_top_to_bottom_inside_the_ring(surname: str) -> None:
    glyphs = BoxGlyphs()
    pdf = render_pdf(personal_seal(surname, diameter_mm=12.0), font=glyphs)
    groups = text_groups(pdf)
    assert len(groups) == len(surname)
    assert all(vertical for _, vertical in glyphs.calls)  # vertical-writing glyph forms
    centres = [centroid(g) for g in groups]
    assert [c[1] for c in centres] == sorted((c[1] for c in centres), reverse=True)
    for x, _ in centres:
        assert x == pytest.approx(6.0, abs=0.01)
    ring_inner = 6.0 - 12.0 * (0.012 + 0.0045 + 0.055)
    for group in groups:
        for x, y in group:
            assert math.hypot(x - 6.0, y - 6.0) < ring_inner


def test_latin_surname_is_one_horizontal_line() -> None:
    pdf = render_pdf(personal_seal("Smith"), font=BoxGlyphs())
    (line,) = text_groups(pdf)
    xs = [p[0] for p in line]
    ys = [p[1] for p in line]
    assert max(xs) - min(xs) > 2 * (max(ys) - min(ys))
    assert centroid(line)[1] == pytest.approx(6.0, abs=0.01)


def test_date_seal_has_office_on_top_date_in_the_middle_surname_below() -> None:
    pdf = render_pdf(date_seal("総務課", "山田", date(2026, 11, 30)), font=BoxGlyphs())
    office, day, surname = (centroid(g) for g in text_groups(pdf))
    centre = 16.5 / 2
    assert office[1] > centre + 2
    assert day[1] == pytest.approx(centre, abs=0.01)
    assert surname[1] < centre - 2
    # The two band lines are drawn with the ring (one even-odd filled frame).
    frame = [points for op, points in paint_groups(pdf) if op == "f*"]
    assert len(frame) == 1


def test_office_seal_reads_in_columns_right_to_left_top_to_bottom() -> None:
    pdf = render_pdf(office_seal("大臣官房", size_mm=21.0), font=BoxGlyphs())
    centres = [centroid(g) for g in text_groups(pdf)]
    assert len(centres) == 6  # 大臣官房之印 in 3 columns of 2
    columns = [centres[0:2], centres[2:4], centres[4:6]]
    for column in columns:
        assert column[0][1] > column[1][1]  # top to bottom
        assert column[0][0] == pytest.approx(column[1][0], abs=0.01)
    xs = [column[0][0] for column in columns]
    assert xs == sorted(xs, reverse=True)  # first column is the rightmost
    inner = 21.0 * (0.015 + 0.06)
    for group in text_groups(pdf):
        for x, y in group:
            assert inner < x < 21.0 - inner
            assert inner < y < 21.0 - inner


def test_ink_gaps_are_clipped_holes_not_white_paint() -> None:
    content = content_of(render_pdf(personal_seal("山田"), font=BoxGlyphs()))
    assert "W*" in content
    assert "1 1 1 rg" not in content
    assert content.count(" rg") == 1
