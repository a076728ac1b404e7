"""Character n-grams of Japanese and Western text and their keyed tokens (pure functions)."""

from __future__ import annotations

from inkless.search.grams import GramTokens, grams, normalise, number_forms, query_grams


def test_normalise_folds_width_case_and_spaces() -> None:
    assert normalise("  ＲＥＰＯＲＴ\u3000ｶﾅ  Report ") == "report カナ report"


def test_grams_of_each_word_up_to_three_characters() -> None:
    assert grams("登記簿") == {"登", "記", "簿", "登記", "記簿", "登記簿"}
    assert "o r" not in grams("go run") and "go" in grams("go run")


def test_short_terms_are_their_own_gram_long_ones_their_trigrams() -> None:
    assert query_grams("登記") == {"登記"}
    assert query_grams("印") == {"印"}
    assert query_grams("謄本の交付") == {"謄本の", "本の交", "の交付"}
    assert query_grams("登記 ＡＢ") == {"登記", "ab"}
    assert query_grams("   ") == set()
    # Every gram a term needs is in a text that contains it.
    for term in ("登記", "謄本の交付", "report"):
        assert query_grams(term) <= grams(f"令和8年 登記簿謄本の交付 Monthly REPORT {term}")


def test_numbers_also_as_digits() -> None:
    assert number_forms("03-1234-5678") == ["03-1234-5678", "0312345678"]
    assert number_forms("0312345678") == ["0312345678"]


def test_tokens_are_keyed_and_hide_the_gram() -> None:
    one, other = GramTokens(b"k" * 32), GramTokens(b"x" * 32)
    assert one.token("登記") == one.token("登記") != other.token("登記")
    token = one.token("登記")
    assert token.startswith("t") and len(token) == 14 and token.isalnum() and token.isascii()
    document = one.document(["登記簿"])
    assert "登" not in document and set(one.query("登記")) <= set(document.split())
    assert not set(one.query("戸籍")) <= set(document.split())
