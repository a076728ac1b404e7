"""Mail composition with the standard library's ``email`` package.

A mail is plain text with an HTML alternative (multipart/alternative), UTF-8 throughout: the
``SMTP`` policy writes non-ASCII headers as RFC 2047 encoded words (``=?utf-8?b?…?=``), CRLF line
ends and 78-column folding, so a Japanese subject survives every relay. Each mail gets a Date and a
Message-ID in the sending domain. Nothing is attached: the mails inkless sends carry a notice or a
code, never a document.
"""

from __future__ import annotations

import email.policy
import html
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from inkless.errors import ValidationError

# Header values come from our own templates, but a name or subject a clerk typed may end up in one:
# a line break there would inject headers.
_FORBIDDEN_IN_HEADER = ("\r", "\n", "\0")


@dataclass(frozen=True)
class MailContent:
    """What one mail says: a subject, a plain-text body and (optionally) the same as HTML."""

    subject: str
    text: str
    html: str = ""


def new_message_id(domain: str) -> str:
    """A fresh ``<…@domain>`` Message-ID (random, not derived from anything secret)."""
    return make_msgid(domain=domain)


def text_to_html(text: str) -> str:
    """A minimal HTML rendering of a plain-text body: escaped paragraphs, links kept as links."""
    parts = []
    for para in text.strip().split("\n\n"):
        lines = []
        for line in para.split("\n"):
            escaped = html.escape(line)
            if line.startswith(("https://", "http://")) and " " not in line:
                escaped = f'<a href="{escaped}">{escaped}</a>'
            lines.append(escaped)
        parts.append("<p>" + "<br>\n".join(lines) + "</p>")
    return ('<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head>\n'
            '<body style="font-family: sans-serif; line-height: 1.6">\n' + "\n".join(parts) + "\n</body></html>\n")


def compose(*, sender: str, recipient: str, content: MailContent, at: datetime, message_id: str,
            reply_to: str = "", extra_headers: dict[str, str] | None = None) -> EmailMessage:
    """The complete mail, ready for SMTP (``bytes(msg)`` / ``msg.as_bytes()``)."""
    for value in (sender, recipient, content.subject, reply_to, *(extra_headers or {}).values()):
        if any(c in value for c in _FORBIDDEN_IN_HEADER):
            raise ValidationError("a mail header must be one line")
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = sender
    msg["To"] = recipient
    if reply_to:
        msg["Reply-To"] = reply_to
    msg["Subject"] = content.subject
    msg["Date"] = format_datetime(at)
    msg["Message-ID"] = message_id
    # Automatic mail: out-of-office replies and list software should not answer it (RFC 3834).
    msg["Auto-Submitted"] = "auto-generated"
    for name, value in (extra_headers or {}).items():
        msg[name] = value
    msg.set_content(content.text, charset="utf-8", cte="base64")
    msg.add_alternative(content.html or text_to_html(content.text), subtype="html", charset="utf-8", cte="base64")
    return msg
