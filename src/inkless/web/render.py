"""HTML rendering: one Jinja2 environment per language, with that language's catalog installed.

The i18n extension installs gettext callables on an environment; switching them
per request on a shared environment would race between the threads that serve
requests, so each language gets its own environment, built once at startup.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from babel.support import Translations
from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from inkless import timefmt
from inkless.config import LANGUAGES
from inkless.directory.model import Clearance
from inkless.web.i18n import LANG_COOKIE, choose_language

TEMPLATE_DIR = Path(__file__).parent / "templates"
LANGUAGE_NAMES = {"ja": "日本語", "en": "English"}


def N_(message: str) -> str:
    """Mark a message for extraction; it is translated when shown."""
    return message


class Renderer:
    """Renders templates in the language of each request."""

    def __init__(
        self, translations: dict[str, Translations], default_language: str, node_context: dict[str, Any],
        *, timezone: tzinfo = timefmt.TOKYO,
    ):
        self.translations = translations
        self.default_language = default_language
        self._node_context = node_context
        # The caller's unread messages, for the menu and the tab title of every page (set by the app).
        self.unread_counter: Callable[[Any], int | None] | None = None
        self._envs: dict[str, Environment] = {}
        for lang, catalog in translations.items():
            env = Environment(
                loader=FileSystemLoader(TEMPLATE_DIR),
                autoescape=select_autoescape(["html"]),
                extensions=["jinja2.ext.i18n"],
                trim_blocks=True,
                lstrip_blocks=True,
            )
            env.install_gettext_translations(catalog, newstyle=True)  # type: ignore[attr-defined]
            # Times on every page: the office's zone, this language's format (see inkless.timefmt).
            helpers = timefmt.jinja_helpers(lang, timezone)
            env.filters.update(helpers)
            env.globals["when"] = helpers["localtime"]
            self._envs[lang] = env

    def language(self, request: Request) -> str:
        """The language of ``request`` (query, cookie, node default)."""
        return choose_language(
            request.query_params.get("lang"), request.cookies.get(LANG_COOKIE), self.default_language
        )

    def gettext(self, request: Request, message: str) -> str:
        """``message`` translated into the request's language (unchanged if the catalog lacks it)."""
        return str(self.translations[self.language(request)].gettext(message))

    def render(self, request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        """An HTML response of ``template`` in the request's language."""
        lang = self.language(request)
        switch = [
            {
                "code": code,
                "name": LANGUAGE_NAMES[code],
                # Relative to the page: a path taken from the request ("//evil.example/x") would become a
                # protocol-relative link to another host.
                "url": "?" + urlencode({"lang": code}),
                "current": code == lang,
            }
            for code in LANGUAGES
        ]
        caller = context.get("caller")
        clearance_label = None
        if caller is not None:
            labels = Clearance.LABELS if lang == "ja" else Clearance.LABELS_EN
            clearance_label = labels[caller.user.clearance]
            if self.unread_counter is not None and "unread_total" not in context:
                context["unread_total"] = self.unread_counter(caller)
        html = (
            self._envs[lang]
            .get_template(template)
            .render(
                lang=lang, languages=switch, clearance_label=clearance_label, **self._node_context, **context
            )
        )
        return HTMLResponse(html, status_code=status_code)
