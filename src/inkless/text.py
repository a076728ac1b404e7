"""Free text from people and peers: one check for every field (names, subjects, file names, comments).

Text is normalised to Unicode NFC (the same name typed on two systems compares equal) and refused
when it holds characters that change how *other* text is displayed without being visible
themselves: bidirectional embeddings, overrides and isolates (``photo\\u202egpj.exe`` is shown as
``photoexe.jpg``), the implicit direction marks, and control characters (C0 except tab and, where
several lines are allowed, newline; DEL; C1). Every service calls :func:`check_text` on the text
it stores, so the web UI, the API, the CLI and federation refuse the same input the same way.
"""

from __future__ import annotations

import unicodedata

from inkless.errors import ValidationError

# U+061C ARABIC LETTER MARK, U+200E/F LRM/RLM, U+202A-202E embeddings/overrides, U+2066-2069 isolates.
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

# The sentence people see (translated in the web UI's catalogs); the exception's str() adds the field.
UNSAFE_TEXT = ("The text contains an invisible control character (such as a right-to-left override) "
               "that can disguise what it says; remove it and try again.")


class UnsafeTextError(ValidationError):
    """Text holds a bidirectional control or a control character; ``field`` and ``codepoint`` say which."""

    def __init__(self, field: str, char: str) -> None:
        super().__init__(UNSAFE_TEXT)
        self.field = field
        self.codepoint = f"U+{ord(char):04X}"
        self.char_name = unicodedata.name(char, "control character")

    def __str__(self) -> str:
        return (f"{self.field}: contains {self.codepoint} {self.char_name}, an invisible character that can "
                f"disguise the text; remove it")


def unsafe_character(text: str, *, multiline: bool = False) -> str | None:
    """The first character :func:`check_text` would refuse, or None."""
    allowed = "\t\n" if multiline else "\t"
    for ch in text:
        code = ord(ch)
        if ch in BIDI_CONTROLS:
            return ch
        if (code < 0x20 or 0x7F <= code <= 0x9F) and ch not in allowed:
            return ch
    return None


def check_text(value: str, field: str, *, multiline: bool = False) -> str:
    """``value`` in NFC; UnsafeTextError if it holds a bidi control or a control character.

    ``multiline`` allows newlines (comments); CR LF and lone CR become LF first.
    """
    if multiline:
        value = value.replace("\r\n", "\n").replace("\r", "\n")
    bad = unsafe_character(value, multiline=multiline)
    if bad is not None:
        raise UnsafeTextError(field, bad)
    return unicodedata.normalize("NFC", value)
