"""HTML rendering: one Jinja2 environment per language, with that language's catalog installed.

The i18n extension installs gettext callables on an environment; switching them
per request on a shared environment would race between the threads that serve
requests, so each language gets its own environment, built once at startup.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from babel.support import Translations
from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from inkless import errors, timefmt
from inkless.config import LANGUAGES
from inkless.directory.model import Clearance
from inkless.web import fax_words
from inkless.web.i18n import LANG_COOKIE, choose_language

log = logging.getLogger("inkless.web")

TEMPLATE_DIR = Path(__file__).parent / "templates"
LANGUAGE_NAMES = {"ja": "日本語", "en": "English"}


def N_(message: str) -> str:
    """Mark a message for extraction; it is translated when shown."""
    return message


# What a page says for a service error whose own sentence the catalogue does not translate: the kind of
# error, in the reader's language (the English sentence goes to the log). Most specific class first.
GENERIC_ERRORS: tuple[tuple[type[errors.InklessError], str], ...] = (
    (errors.RateLimitedError, N_("Too many attempts. Wait a moment and try again.")),
    (errors.AuthenticationError, N_("The credentials were not accepted.")),
    (errors.PolicyError, N_("You are not allowed to do this.")),
    (errors.NotFoundError, N_("What you asked for was not found.")),
    (errors.ConflictError, N_("This has already been done, or it already exists.")),
    (errors.MessageTooLargeError, N_("The documents are larger than this node accepts.")),
    (errors.EnvelopeError, N_("The message could not be opened: it is damaged or not addressed to this office.")),
    (errors.PeerUnreachableError, N_("The other node did not answer; the message will be sent again later.")),
    (errors.DeliveryError, N_("The message could not be delivered.")),
    (errors.FaxError, N_("The fax could not be processed.")),
    (errors.SealError, N_("The seal could not be applied.")),
    (errors.ValidationError, N_("The input was not accepted. Check what you entered and try again.")),
    (errors.InklessError, N_("The server could not complete the request.")),
)


def generic_error(exc: errors.InklessError) -> str:
    """The message id of the generic sentence for ``exc``'s kind of error."""
    return next(message for cls, message in GENERIC_ERRORS if isinstance(exc, cls))


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
            env.globals["fax_result"] = fax_words.fax_result
            env.globals["speed_kbps"] = fax_words.speed_kbps
            self._envs[lang] = env

    def language(self, request: Request) -> str:
        """The language of ``request`` (query, cookie, node default)."""
        return choose_language(
            request.query_params.get("lang"), request.cookies.get(LANG_COOKIE), self.default_language
        )

    def gettext(self, request: Request, message: str) -> str:
        """``message`` translated into the request's language (unchanged if the catalog lacks it)."""
        return str(self.translations[self.language(request)].gettext(message))

    def translated(self, lang: str, message: str) -> str | None:
        """``message`` in ``lang``, or None if the catalogue has no translation (English needs none)."""
        text = str(self.translations[lang].gettext(message))
        if lang == "en" or text != message:
            return text
        return None

    def error_detail(self, request: Request, exc: errors.InklessError) -> str | None:
        """The service error's own sentence in the reader's language, or None where only its kind can be said."""
        text = self.error_text(request, exc)
        return None if text == str(self.translations[self.language(request)].gettext(generic_error(exc))) else text

    def error_text(self, request: Request, exc: errors.InklessError) -> str:
        """What a page says for a service error: its sentence from the catalogue, filled with its parameters.

        The one place where service errors become page text. A sentence the catalogue lacks becomes the
        generic sentence of its kind (logged in English), never English on a Japanese page; server-side
        failures (5xx) always get the generic sentence, their details belong in the log.
        """
        lang = self.language(request)
        text = self.translated(lang, exc.template) if exc.http_status < 500 else None
        if text is None:
            if exc.http_status < 500:
                log.info("no %s translation of %r; shown as its kind", lang, exc.template)
            return str(self.translations[lang].gettext(generic_error(exc)))
        try:
            return text.format(**exc.params) if exc.params else text
        except (KeyError, IndexError, ValueError):
            log.warning("the %s translation of %r does not fit its parameters", lang, exc.template)
            return str(self.translations[lang].gettext(generic_error(exc)))

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
