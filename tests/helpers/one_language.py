"""One language per page: find English sentences in the visible text of a page rendered in Japanese.

The heuristic: a run of two or more English words (letters only, at least three, lower case after the
first letter) next to each other in one piece of visible text is a sentence someone forgot to translate.
Codes (``civil-affairs@moj``, ``MOJ-42``, ``U+202E``), file names (``plan.pdf``), acronyms (``PDF``,
``TOTP``), numbers and units are not words under this rule; product names that are two words long
are listed in :data:`ALLOWED_PHRASES`.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

# Words that may stand next to each other on a Japanese page: names of products, not sentences.
ALLOWED_PHRASES = frozenset({
    "google authenticator",
    "microsoft authenticator",
})
# Attributes whose text a person sees or hears (tooltips, placeholders, screen readers, button captions).
SHOWN_ATTRIBUTES = ("title", "placeholder", "aria-label", "alt")
WORD = re.compile(r"[A-Z]?[a-z]{2,}")
EDGE_PUNCTUATION = "\"'“”‘’()[]{}<>«»「」『』（）【】.,:;!?…、。・"


class _VisibleText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.pieces: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "template"):
            self._skip += 1
        values = dict(attrs)
        for name in SHOWN_ATTRIBUTES:
            if values.get(name):
                self.pieces.append(str(values[name]))
        if tag == "input" and values.get("type") in ("submit", "button", "reset") and values.get("value"):
            self.pieces.append(str(values["value"]))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "template") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            self.pieces.append(data)


def visible_text(html: str) -> list[str]:
    """The pieces of text a reader of ``html`` sees or hears, in document order."""
    parser = _VisibleText()
    parser.feed(html)
    parser.close()
    return parser.pieces


def _is_word(token: str) -> bool:
    return WORD.fullmatch(token.strip(EDGE_PUNCTUATION)) is not None


def english_runs(text: str) -> list[str]:
    """The runs of two or more English words in ``text`` that are not an allowed phrase."""
    runs: list[str] = []
    current: list[str] = []
    for token in [*text.split(), ""]:
        if token and _is_word(token):
            current.append(token.strip(EDGE_PUNCTUATION))
            continue
        if len(current) >= 2 and " ".join(current).lower() not in ALLOWED_PHRASES:
            runs.append(" ".join(current))
        current = []
    return runs


def english_sentences(html: str) -> list[str]:
    """Every English sentence in the visible text of ``html``."""
    return [run for piece in visible_text(html) for run in english_runs(piece)]


class _Controls(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.label_for: set[str] = set()
        self.in_label = 0
        self.controls: list[tuple[str, dict[str, str | None], bool]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "label":
            self.in_label += 1
            if values.get("for"):
                self.label_for.add(str(values["for"]))
        elif tag in ("input", "select", "textarea"):
            if tag == "input" and values.get("type") in ("hidden", "submit", "button", "reset", "image"):
                return
            self.controls.append((tag, values, self.in_label > 0))

    def handle_endtag(self, tag: str) -> None:
        if tag == "label" and self.in_label:
            self.in_label -= 1


def unlabelled_controls(html: str) -> list[str]:
    """Form controls of ``html`` with no label: no <label for>, no enclosing <label>, no aria-label(ledby)."""
    parser = _Controls()
    parser.feed(html)
    parser.close()
    return [
        f"<{tag} name={values.get('name')!r} id={values.get('id')!r}>"
        for tag, values, wrapped in parser.controls
        if not wrapped and values.get("id") not in parser.label_for
        and not values.get("aria-label") and not values.get("aria-labelledby")
    ]
