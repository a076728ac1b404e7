"""A faxed page keeps every stroke: IPAex Mincho read back by Tesseract, compared with Ghostscript's tiffg4.

A fax that turns 本 into 木 or 未 into 末 changes what a legal document says. The sheet (tests/helpers/
fax_fidelity.py) is faxed by inkless and by Ghostscript in the same test, read by Tesseract (jpn), and
compared with the text and with a 600 dpi render of the same PDF.
"""

from __future__ import annotations

import pytest
from PIL import Image

from inkless.fax import imaging
from tests.helpers import fax_fidelity as ff

SIZES = (8.0, 10.0, 12.0)


@pytest.fixture(scope="module")
def sheet() -> ff.Sheet:
    return ff.fidelity_sheet(SIZES, style="mincho")


@pytest.fixture(scope="module")
def ours(sheet: ff.Sheet) -> list[Image.Image]:
    return imaging.render_pdf(sheet.pdf, fine=True)


@pytest.fixture(scope="module")
def ghostscript(sheet: ff.Sheet) -> list[Image.Image]:
    return ff.ghostscript_pages(sheet.pdf)


@pytest.fixture(scope="module")
def reads(sheet: ff.Sheet, ours: list[Image.Image], ghostscript: list[Image.Image]) -> dict[str, list[str]]:
    return {
        "inkless": [ff.ocr(ff.content(page)) for page in ours[: len(SIZES)]],
        "gs": [ff.ocr(ff.content(page, centred=False)) for page in ghostscript[: len(SIZES)]],
    }


def test_the_sheet_is_faxed_at_fine_resolution(sheet: ff.Sheet, ours: list[Image.Image]) -> None:
    # 148 × 160 mm pages at 204 × 196 dpi, centred on the 1728 px scan line, plus the table page.
    assert [page.size for page in ours] == [(1728, 1235)] * (len(SIZES) + 1)
    assert all(page.mode == "1" for page in ours)


@pytest.mark.parametrize("size", [10.0, 12.0])
def test_characters_told_apart_by_one_thin_stroke_are_read_correctly(
    sheet: ff.Sheet, reads: dict[str, list[str]], size: float
) -> None:
    index = SIZES.index(size)
    read, truth = reads["inkless"][index], sheet.truth[index]
    counts = ff.critical_counts(read, truth)
    missing = {ch: f"{got}/{expected}" for ch, (got, expected) in counts.items() if got < expected}
    assert not missing, f"at {size:g} pt Tesseract misread {missing} on the fax page: {read}"
    # The stroke-less twins do not appear more often than the sheet has them (本 read as 木, 士 as 土 ...).
    for twin in ("木", "土", "山"):
        assert read.count(twin) <= truth.count(twin), f"{twin} read {read.count(twin)}× at {size:g} pt: {read}"


@pytest.mark.parametrize("size", SIZES)
def test_character_error_rate_is_no_worse_than_ghostscript(
    sheet: ff.Sheet, reads: dict[str, list[str]], size: float
) -> None:
    index = SIZES.index(size)
    ours = ff.cer(reads["inkless"][index], sheet.truth[index])
    theirs = ff.cer(reads["gs"][index], sheet.truth[index])
    # One or two characters of slack: Tesseract itself wobbles by that much between equally good pages.
    assert ours <= theirs + 0.02, f"{size:g} pt: CER inkless {ours:.3f}, Ghostscript {theirs:.3f}"


@pytest.mark.parametrize("size", SIZES)
def test_no_stroke_is_lost_at_8_pt_and_above(sheet: ff.Sheet, ours: list[Image.Image], size: float) -> None:
    index = SIZES.index(size)
    reference = ff.reference_pages(sheet.pdf)[index]
    kept = ff.strokes_kept(ff.content(ours[index]), reference)
    # What the old renderer (greyscale, bilinear shrink, threshold 128) kept here was 0.44–0.82.
    assert kept >= 0.99, f"{size:g} pt: only {kept:.3f} of the stroke centre lines are black on the fax page"


def test_a_table_ruled_with_0_1_mm_lines_keeps_every_border(
    sheet: ff.Sheet, ours: list[Image.Image], ghostscript: list[Image.Image]
) -> None:
    table = len(SIZES)
    assert ff.border_breaks(ghostscript[table], sheet, centred=False) == []  # the measure itself sees rules
    assert ff.border_breaks(ours[table], sheet) == []


def test_the_border_measure_sees_a_missing_rule(sheet: ff.Sheet, ours: list[Image.Image]) -> None:
    # The check must be able to fail: wipe a stretch of the third horizontal rule.
    page = ours[len(SIZES)].copy()
    y = round(sheet.table_rows_pt[2] / 72 * ff.Y_DPI)
    x = (1728 - round(ff.PAGE_WIDTH_PT / 72 * ff.X_DPI)) // 2 + round(sheet.table_cols_pt[1] / 72 * ff.X_DPI)
    page.paste(1, (x + 5, y - 3, x + 40, y + 4))
    assert ff.border_breaks(page, sheet) == ["horizontal rule 3"]
