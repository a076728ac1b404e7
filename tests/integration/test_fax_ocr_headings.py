"""The text layer of a received fax holds its headings, its body text and its table cells."""

from __future__ import annotations

import pytest

from inkless.fax.ocr import searchable_pdf
from tests.helpers.ocr_pages import TABLE, as_received_fax, ocr_test_set, page_texts


@pytest.mark.slow  # Tesseract, twice, on full pages
@pytest.mark.parametrize("fine", [True, False], ids=["204x196", "204x98"])
def test_a_faxed_page_with_a_24_pt_heading_has_the_heading_in_its_text_layer(fine: bool) -> None:
    test_set = ocr_test_set(3)  # page 2: a 24 pt heading; page 3: a table
    heading_page, table_page = test_set.pages[1], test_set.pages[2]
    assert heading_page.heading_pt == 24 and table_page.has_table

    searchable, ok = searchable_pdf(as_received_fax(test_set.pdf, fine=fine))

    assert ok
    texts = page_texts(searchable)
    assert heading_page.heading in texts[1]  # 会議開催のお知らせ
    assert "山田係長に提出します" in texts[0] + texts[1] + texts[2]  # body text
    cells = [cell for row in TABLE for cell in row]
    assert sum(cell in texts[2] for cell in cells) >= len(cells) // 2, texts[2]
