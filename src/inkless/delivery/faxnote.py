"""What the disaster fallback tells people: reason codes with parameters, rendered in the reader's language.

The outbox keeps the fallback's *decision* for a row (why it is or is not faxed) and the fax's
*outcome* (queued, sent, failed, could not be queued) as a code and JSON parameters, never as
text: the sender's CLI, API and pages render them in their own language from the gettext
catalogs (Japanese by default, English available), one language per sentence. A technical detail
in someone else's words (a T.30 error text, a service's refusal) is never spliced into the
sentence; it is kept as ``params["reason"]`` and shown apart (:attr:`FaxNote.detail`).

On the receiving side, :class:`FaxFirst` is what the sending node says it faxed before it could
deliver the message electronically (carried in a signed federation header).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from inkless.errors import ValidationError


def N_(message: str) -> str:
    """Mark a message for extraction (babel.cfg); it is translated when shown."""
    return message


# Decisions: None of these is an error; the row stays with electronic delivery unless the code is "faxing".
DECISIONS: dict[str, str] = {
    "faxing": N_("Peer %(node)s has been unreachable for %(minutes)s minutes: sending by fax to %(number)s."),
    "peer_answered": N_("Peer %(node)s answered again just before the fax: not faxed, delivered electronically."),
    "not_urgent": N_("Not faxed: only urgent messages fall back to fax."),
    "classification": N_("Not faxed: classification %(classification)s is never sent by fax (at most 1)."),
    "no_fax_number": N_("Not faxed: the recipient office publishes no fax number."),
    "fallback_disabled": N_("Not faxed: the sending office has not enabled the fax fallback."),
    "no_pdf": N_("Not faxed: the message carries no PDF document."),
}
OUTCOMES: dict[str, str] = {
    "queued": N_("Fax job %(job)s to %(number)s is queued."),
    "sent": N_("Sent by fax to %(number)s (fax job %(job)s, %(pages)s pages)."),
    "failed": N_("The fax to %(number)s failed (fax job %(job)s, T.30 code %(code)s); electronic delivery "
                 "continues."),
    "not_queued": N_("The fax could not be queued; electronic delivery continues."),
}
FAX_FIRST = N_("Received by fax first")
FAX_FIRST_DETAIL = N_(
    "The sender faxed this message to %(number)s at %(when)s (%(pages)s pages) before it could be delivered "
    "electronically; the cover page's reference number is this message's id."
)
FAX_FIRST_COPY = N_("The faxed copy")
MAX_PARAM_CHARS = 300


@dataclass(frozen=True)
class FaxNote:
    """A fallback decision or fax outcome: a code, its parameters, and when it was recorded."""

    code: str
    params: Mapping[str, Any]
    at: datetime | None = None

    def render(self, gettext: Callable[[str], str]) -> str:
        """The sentence in the language of ``gettext`` (the code itself for an unknown code)."""
        template = DECISIONS.get(self.code) or OUTCOMES.get(self.code)
        if template is None:
            return self.code
        values = _Defaults({k: str(v) for k, v in self.params.items()})
        return gettext(template) % values

    @property
    def detail(self) -> str | None:
        """The technical detail (the line's or the service's own words, untranslated), shown apart."""
        value = self.params.get("reason")
        return str(value) if value else None

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "params": dict(self.params), "at": self.at.isoformat() if self.at else None}


class _Defaults(dict[str, str]):
    """Parameters for %-formatting; a missing one shows as a dash instead of failing."""

    def __missing__(self, key: str) -> str:
        return "-"


def dump_params(params: Mapping[str, Any]) -> str:
    """JSON for a params column; long texts (a line error) are cut."""
    return json.dumps({k: (v[:MAX_PARAM_CHARS] if isinstance(v, str) else v) for k, v in params.items()},
                      ensure_ascii=False, sort_keys=True)


def note(code: str | None, params: str | None, at: datetime | None) -> FaxNote | None:
    """The note stored in a (code, params JSON) column pair, or None."""
    if not code:
        return None
    try:
        loaded = json.loads(params) if params else {}
    except ValueError:
        loaded = {}
    return FaxNote(code, loaded if isinstance(loaded, dict) else {}, at)


# --- "received by fax first": what the sending node says it faxed -------------------------------

FAX_FIRST_HEADER = "Inkless-Fax-First"
MAX_FAX_FIRST_HEADER = 512
_NUMBER_RE = re.compile(r"^\+?[0-9][0-9 ()-]{0,30}$")


@dataclass(frozen=True)
class FaxFirst:
    """The sending node faxed the message before delivering it: to which number, from which, when, how much."""

    number: str
    from_number: str | None
    sent_at: datetime
    pages: int
    job: int

    def header(self) -> str:
        """The value of the Inkless-Fax-First header (compact JSON, ASCII)."""
        return json.dumps({"number": self.number, "from": self.from_number, "sent_at": self.sent_at.isoformat(),
                           "pages": self.pages, "job": self.job}, separators=(",", ":"), sort_keys=True)

    def as_dict(self) -> dict[str, Any]:
        return {"number": self.number, "from_number": self.from_number, "sent_at": self.sent_at.isoformat(),
                "pages": self.pages, "job": self.job}


def parse_fax_first(value: str) -> FaxFirst:
    """Parse an Inkless-Fax-First header (or the stored JSON); ValidationError names what is wrong."""
    if len(value) > MAX_FAX_FIRST_HEADER:
        raise ValidationError(f"the {FAX_FIRST_HEADER} header is longer than {MAX_FAX_FIRST_HEADER} characters")
    try:
        raw = json.loads(value)
    except ValueError:
        raise ValidationError(f"the {FAX_FIRST_HEADER} header is not JSON") from None
    if not isinstance(raw, dict):
        raise ValidationError(f"the {FAX_FIRST_HEADER} header must be a JSON object")
    number, sender, pages, job = raw.get("number"), raw.get("from"), raw.get("pages"), raw.get("job")
    if not isinstance(number, str) or not _NUMBER_RE.match(number):
        raise ValidationError(f"the {FAX_FIRST_HEADER} header has no valid fax number")
    if sender is not None and (not isinstance(sender, str) or not _NUMBER_RE.match(sender)):
        raise ValidationError(f"the {FAX_FIRST_HEADER} header has an invalid sending number")
    for name, val in (("pages", pages), ("job", job)):
        if isinstance(val, bool) or not isinstance(val, int) or not 0 <= val < 10**9:
            raise ValidationError(f"the {FAX_FIRST_HEADER} header has an invalid {name}")
    try:
        sent_at = datetime.fromisoformat(str(raw.get("sent_at")))
    except ValueError:
        raise ValidationError(f"the {FAX_FIRST_HEADER} header has an invalid sent_at time") from None
    if sent_at.tzinfo is None:
        raise ValidationError(f"the {FAX_FIRST_HEADER} header's sent_at time has no time zone")
    assert isinstance(pages, int) and isinstance(job, int)  # checked above
    return FaxFirst(number, sender, sent_at.astimezone(UTC), pages, job)
