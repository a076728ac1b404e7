"""Fax results in plain words for the pages, from the T.30 code and the line's answer."""

from __future__ import annotations

import pytest

from inkless.fax.line import BUSY, NO_ANSWER
from inkless.web.fax_words import fax_result, speed_kbps
from inkless.web.i18n import load_translations


@pytest.mark.parametrize(("code", "text", "japanese"), [
    (0, "OK", "相手のFAXが受信を確認しました。"),
    (2, "Timed out waiting for initial communication", "相手のFAXが時間内に応答しませんでした。"),
    (6, "Cannot train", "相手のFAXと通信条件が合いませんでした。"),
    (10, "Far end cannot receive at the resolution", "相手のFAXはこの形式の文書を受信できません。"),
    (49, "The call dropped prematurely", "送信中に通話が切れました。"),
    (33, "Unexpected message", "送信できませんでした。"),
    (-1, BUSY, "話し中でした。"),
    (-1, NO_ANSWER, "相手が応答しませんでした。"),
    (-1, "line failure: OSError", "FAXにつながりませんでした。"),
    (0, "only 2 of 3 pages were confirmed (OK)", "相手のFAXが一部のページの受信を確認できませんでした。"),
])
def test_a_result_in_plain_japanese(code: int, text: str, japanese: str) -> None:
    assert load_translations("ja").gettext(fax_result(code, text)) == japanese


def test_nothing_is_said_before_a_try_and_speeds_read_as_machines_print_them() -> None:
    assert fax_result(None, None) == ""
    assert [speed_kbps(b) for b in (14400, 9600, 2400, None)] == ["14.4", "9.6", "2.4", "0"]

