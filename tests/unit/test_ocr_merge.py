"""Merging two Tesseract passes of a page: what each one alone misses ends up in the text layer once."""

from __future__ import annotations

from inkless.fax.ocr_merge import merge_hocr


def _hocr(*lines: tuple[tuple[int, int, int, int], list[tuple[str, int]]]) -> bytes:
    spans = []
    for n, (box, words) in enumerate(lines, 1):
        inner = "".join(
            f"<span class='ocrx_word' id='w{n}_{k}' title='bbox {box[0]} {box[1]} {box[2]} {box[3]}; x_wconf {conf}'>"
            f"{text}</span>" for k, (text, conf) in enumerate(words)
        )
        spans.append(
            f"<div class='ocr_carea' title='bbox {box[0]} {box[1]} {box[2]} {box[3]}'>"
            f"<p class='ocr_par' title='bbox {box[0]} {box[1]} {box[2]} {box[3]}'>"
            f"<span class='ocr_line' id='l{n}' title='bbox {box[0]} {box[1]} {box[2]} {box[3]}; baseline 0 0'>"
            f"{inner}</span></p></div>"
        )
    return (
        "<?xml version='1.0' encoding='UTF-8'?><html xmlns='http://www.w3.org/1999/xhtml'><body>"
        "<div class='ocr_page' title='bbox 0 0 1728 2300'>" + "".join(spans) + "</div></body></html>"
    ).encode()


HEADING = ((400, 100, 1300, 190), [("会議開催の", 91), ("お知らせ", 93)])
BODY = ((150, 400, 1200, 440), [("本日の会議は", 95), ("本庁舎で行います", 94)])


def test_a_heading_only_the_second_pass_read_is_added_above_the_body() -> None:
    _, text = merge_hocr(_hocr(BODY), _hocr(HEADING, BODY))
    assert text.split() == ["会議開催のお知らせ", "本日の会議は本庁舎で行います"]


def test_a_line_the_first_pass_garbled_is_replaced_by_a_clearly_better_reading() -> None:
    garbled = ((400, 100, 1300, 190), [("戸", 90), ("束", 0), ("証明", 0), ("書の請求方法", 40)])
    clean = ((405, 102, 1298, 188), [("戸籍証明書の", 92), ("請求方法", 93)])
    _, text = merge_hocr(_hocr(garbled, BODY), _hocr(clean))
    assert text.split() == ["戸籍証明書の請求方法", "本日の会議は本庁舎で行います"]


def test_a_good_line_is_kept_and_not_doubled_by_fragments_of_the_second_pass() -> None:
    fragments = ((150, 400, 600, 440), [("本日の会議", 96)])
    merged, text = merge_hocr(_hocr(BODY), _hocr(fragments))
    assert text.split() == ["本日の会議は本庁舎で行います"]
    assert merged.count(b"ocrx_word") == 2
