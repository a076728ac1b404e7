"""The one free-text check: NFC, and no character that disguises how text reads."""

from __future__ import annotations

import unicodedata

import pytest

from inkless.errors import ValidationError
from inkless.text import BIDI_CONTROLS, UNSAFE_TEXT, UnsafeTextError, check_text

REFUSED = sorted(BIDI_CONTROLS) + [chr(c) for c in range(0x20) if chr(c) not in "\t\n"] + \
    [chr(0x7F)] + [chr(c) for c in range(0x80, 0xA0)]


@pytest.mark.parametrize("char", REFUSED, ids=lambda c: f"U+{ord(c):04X}")
def test_every_bidi_control_and_control_character_is_refused(char: str) -> None:
    with pytest.raises(UnsafeTextError) as refused:
        check_text(f"photo{char}gpj.exe", "document name")
    assert refused.value.codepoint == f"U+{ord(char):04X}"
    assert isinstance(refused.value, ValidationError) and refused.value.message == UNSAFE_TEXT
    assert str(refused.value).startswith(f"document name: contains U+{ord(char):04X} ")


def test_the_disguised_file_name_of_the_report() -> None:
    with pytest.raises(UnsafeTextError, match="U\\+202E RIGHT-TO-LEFT OVERRIDE"):
        check_text("photo\u202egpj.exe", "document name")


def test_newlines_only_where_several_lines_are_allowed() -> None:
    with pytest.raises(UnsafeTextError, match="U\\+000A"):
        check_text("件名\n二行目", "subject")
    assert check_text("一行目\r\n二行目\r三行目", "comment", multiline=True) == "一行目\n二行目\n三行目"
    assert check_text("a\tb", "subject") == "a\tb"


def test_text_is_normalised_to_nfc() -> None:
    decomposed = unicodedata.normalize("NFD", "ガバメント 申請書")
    assert decomposed != "ガバメント 申請書"
    assert check_text(decomposed, "subject") == "ガバメント 申請書"


def test_ordinary_japanese_and_european_text_passes() -> None:
    for text in ("民事局", "山田　太郎", "Müller & Co.", "第１号（至急）", "👍"):
        assert check_text(text, "name") == unicodedata.normalize("NFC", text)
