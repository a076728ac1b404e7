"""The checks the page walk relies on: English sentences found, codes and names let through; unlabelled
controls found."""

from __future__ import annotations

from tests.helpers.one_language import english_sentences, unlabelled_controls


def test_english_sentences_are_found_in_text_and_in_what_is_heard() -> None:
    html = ("<title>受信箱 — inkless</title><p>Not Found</p><p>見つかりません</p>"
            "<input placeholder='Enter the code'><button aria-label='Log out'></button>"
            "<script>var not = 'seen here';</script>")
    assert english_sentences(html) == ["Not Found", "Enter the code", "Log out"]


def test_codes_file_names_numbers_and_products_are_not_sentences() -> None:
    html = ("<p>criminal-affairs@moj 宛 MOJ-42 の PDF 2 KB</p><p>報告書 final.pdf (U+202E RIGHT-TO-LEFT OVERRIDE)</p>"
            "<p>Google Authenticator で読み取ってください</p><p>送信速度 14.4kbps・T.30コード 49</p>"
            "<p>inkless 法務省</p>")
    assert english_sentences(html) == []


def test_controls_without_a_label_are_found() -> None:
    html = ("<label for=a>件名</label><input id=a name=subject>"
            "<label>区分 <select name=level></select></label>"
            "<input name=code aria-label='コード'><input type=hidden name=csrf_token>"
            "<input name=nameless><textarea name=comment></textarea>")
    assert unlabelled_controls(html) == ["<input name='nameless' id=None>", "<textarea name='comment' id=None>"]
