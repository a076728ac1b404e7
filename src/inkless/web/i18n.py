"""Languages of the UI: gettext catalogs compiled from the committed .po files at startup.

Templates and code use English msgids; ``locale/<lang>/LC_MESSAGES/messages.po``
translates them. No compiled .mo file is committed: the .po files are read
with Babel and compiled in memory when the app starts.
"""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

from inkless.config import LANGUAGES

LOCALE_DIR = Path(__file__).parent / "locale"
LANG_COOKIE = "lang"


def load_translations(lang: str, locale_dir: Path = LOCALE_DIR) -> Translations:
    """The catalog of ``lang``, compiled in memory from its .po file."""
    path = locale_dir / lang / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as fh:
        catalog = read_po(fh, locale=lang)
    buf = BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return Translations(fp=buf)


def load_all(locale_dir: Path = LOCALE_DIR) -> dict[str, Translations]:
    """Every supported language's catalog."""
    return {lang: load_translations(lang, locale_dir) for lang in LANGUAGES}


def choose_language(query: str | None, cookie: str | None, default: str) -> str:
    """The language of a request: ``?lang=`` first, then the ``lang`` cookie, then the node default."""
    for candidate in (query, cookie):
        if candidate in LANGUAGES:
            return str(candidate)
    return default
