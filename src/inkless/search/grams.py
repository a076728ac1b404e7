"""Character n-grams of Japanese and Western text, and the keyed tokens the search index stores.

Japanese has no spaces between words, so a word index does not work: 登記簿 must be found in
「登記簿謄本の交付について」. Like SQLite's trigram tokenizer and PostgreSQL's pg_trgm (and pg_bigm
for short terms), the index keeps the character n-grams of each text, here of length 1, 2 and 3:
a query term of one or two characters (登記, 印) is matched by its own gram, a longer one by all
of its trigrams.

The grams themselves never reach the database. Subjects are stored sealed under the node master
key (``delivery`` tables), and OCR text of a received fax is document content; an index that held
their grams in clear would give away what the sealing protects. Each gram is therefore stored as
a keyed token, the first 64 bits of HMAC-SHA-256 under a key derived from the master key: the
database engine finds equal tokens, but cannot tell which characters they stand for.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import unicodedata
from collections.abc import Iterable

MAX_GRAM = 3
# A received fax's OCR text can be long; grams beyond this many characters are not indexed.
MAX_TEXT_CHARS = 20_000
CACHE_SIZE = 200_000
_SPACE = re.compile(r"\s+")
_NOT_DIGIT = re.compile(r"\D")


def normalise(text: str) -> str:
    """NFKC (full-width ＡＢＣ１２３ and half-width ｶﾅ become their usual forms), lower case, one space."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def grams(text: str) -> set[str]:
    """Every 1-, 2- and 3-character gram of each word of ``text`` (after :func:`normalise`)."""
    found: set[str] = set()
    for word in normalise(text[:MAX_TEXT_CHARS]).split(" "):
        for size in range(1, MAX_GRAM + 1):
            for start in range(len(word) - size + 1):
                found.add(word[start:start + size])
    return found


def query_grams(term: str) -> set[str]:
    """The grams a document must hold to contain ``term``: itself if short, else its trigrams."""
    found: set[str] = set()
    for word in normalise(term).split(" "):
        if not word:
            continue
        if len(word) <= MAX_GRAM:
            found.add(word)
        else:
            found.update(word[i:i + MAX_GRAM] for i in range(len(word) - MAX_GRAM + 1))
    return found


def number_forms(number: str) -> list[str]:
    """A telephone number as written and as digits only, so that 0312345678 finds 03-1234-5678."""
    digits = _NOT_DIGIT.sub("", number)
    return [number, digits] if digits and digits != number else [number]


class GramTokens:
    """Keyed tokens of grams: equal grams give equal tokens, and a token does not reveal its gram."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        # Grams repeat (a few thousand kanji and kana make most of them): remember recent tokens.
        self._cache: dict[str, str] = {}

    def token(self, gram: str) -> str:
        """``t`` and 13 base32 characters: one word for FTS5's ascii tokenizer and for tsvector alike."""
        found = self._cache.get(gram)
        if found is None:
            digest = hmac.new(self._key, gram.encode(), hashlib.sha256).digest()[:8]
            found = "t" + base64.b32encode(digest).decode().rstrip("=").lower()
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            self._cache[gram] = found
        return found

    def document(self, texts: Iterable[str]) -> str:
        """The tokens of every gram of ``texts``, space-separated and sorted (what the index row stores)."""
        found: set[str] = set()
        for text in texts:
            found |= grams(text)
        return " ".join(sorted(self.token(g) for g in found))

    def query(self, text: str) -> list[str]:
        """The tokens a matching document must all hold; empty for a query without characters."""
        return sorted(self.token(g) for g in query_grams(text))
