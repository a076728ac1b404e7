"""The SMTP settings (``smtp_url``, ``smtp_from``, ``smtp_reply_to`` …) parsed and checked once.

``smtp_url`` forms:

- ``smtp://HOST[:PORT]`` (port 25 by default, 587 for submission): plain SMTP upgraded with STARTTLS
  whenever the server offers it. With a user name in the URL (AUTH), STARTTLS is required: a password
  is never sent in clear. ``?starttls=require`` requires it without AUTH too; ``?starttls=off`` never
  uses it (only for a relay on the same host).
- ``smtps://HOST[:PORT]`` (port 465 by default): TLS from the first byte.

User and password go in the URL (``smtp://USER:PASSWORD@HOST:587``, percent-encoded), or the user in
the URL and the password in ``smtp_password_file`` (mode 0600), which keeps it out of inkless.toml.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from email.headerregistry import Address
from email.utils import getaddresses
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlsplit

from inkless.errors import ConfigurationError

if TYPE_CHECKING:
    from inkless.config import Settings

STARTTLS_MODES = ("auto", "require", "off")


@dataclass(frozen=True)
class SmtpOptions:
    """Where and how to hand mail over; ``host`` is empty when the node sends no mail."""

    host: str = ""
    port: int = 25
    implicit_tls: bool = False
    starttls: str = "auto"  # auto | require | off
    username: str = ""
    password: str = ""
    ca_file: Path | None = None
    timeout: float = 30.0
    sender: str = ""  # the From header (display name and address)
    envelope_from: str = ""  # the bare address, for MAIL FROM
    reply_to: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.host)

    @property
    def sender_domain(self) -> str:
        return self.envelope_from.rpartition("@")[2] or "localhost"

    def describe(self) -> str:
        """The server, without credentials, for logs and error messages."""
        scheme = "smtps" if self.implicit_tls else "smtp"
        return f"{scheme}://{self.host}:{self.port}"


def _mailbox(text: str, key: str) -> tuple[str, str]:
    """``(header form, bare address)`` of one mailbox such as ``市民課 <no-reply@city.example.jp>``."""
    pairs = getaddresses([text])
    if len(pairs) != 1 or not pairs[0][1] or "@" not in pairs[0][1]:
        raise ConfigurationError(f"{key} {text!r} must be one e-mail address, e.g. 市民課 <no-reply@city.example.jp>")
    name, address = pairs[0]
    local, _, domain = address.rpartition("@")
    if not local or not domain or any(c.isspace() for c in address):
        raise ConfigurationError(f"{key} {text!r} is not a valid e-mail address")
    return str(Address(display_name=name, addr_spec=address)), address


def read_password(settings: Settings, in_url: str) -> str:
    """The SMTP password: from ``smtp_url`` or from ``smtp_password_file`` (mode 0600), not both."""
    path = settings.smtp_password_file
    if path == Path() or str(path) in ("", "."):
        return in_url
    if in_url:
        raise ConfigurationError("smtp_url has a password and smtp_password_file is set: use one of them")
    try:
        info = os.stat(path)
    except OSError as exc:
        raise ConfigurationError(f"smtp_password_file {path}: cannot be read ({exc.strerror})") from None
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise ConfigurationError(
            f"smtp_password_file {path} is readable by others (mode {stat.S_IMODE(info.st_mode):04o}); "
            "run: chmod 600 " + str(path))
    return path.read_text(encoding="utf-8").strip()


def smtp_options(settings: Settings, *, read_secret: bool = True) -> SmtpOptions:
    """Parse and check the ``smtp_*`` keys; ConfigurationError names the key and the fix."""
    url = settings.smtp_url.strip()
    timeout = float(settings.smtp_timeout_seconds)
    if not url:
        return SmtpOptions(timeout=timeout)
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps"):
        raise ConfigurationError(f"smtp_url {url!r} must start with smtp:// or smtps://")
    try:
        port = parts.port
    except ValueError:
        raise ConfigurationError(f"smtp_url {url!r}: the port must be a number (1-65535)") from None
    host = parts.hostname or ""
    if not host:
        raise ConfigurationError(f"smtp_url {url!r} names no server (smtp://HOST:PORT)")
    if parts.path not in ("", "/"):
        raise ConfigurationError(f"smtp_url {url!r}: a path is not allowed (smtp://HOST:PORT)")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = set(query) - {"starttls"}
    if unknown:
        raise ConfigurationError(f"smtp_url: unknown option {sorted(unknown)[0]!r} (known: starttls)")
    implicit = parts.scheme == "smtps"
    starttls = query.get("starttls", ["auto"])[-1]
    if starttls not in STARTTLS_MODES:
        raise ConfigurationError(f"smtp_url: starttls={starttls!r} must be one of {', '.join(STARTTLS_MODES)}")
    if implicit and "starttls" in query:
        raise ConfigurationError("smtp_url: smtps:// is TLS from the start; starttls= applies to smtp:// only")
    username = unquote(parts.username or "")
    if username and starttls == "off":
        raise ConfigurationError("smtp_url: AUTH needs TLS (a password is never sent in clear); drop starttls=off")
    if username and not implicit:
        starttls = "require"
    password = unquote(parts.password or "")
    if read_secret:
        password = read_password(settings, password)
    if password and not username:
        raise ConfigurationError("smtp_url: a password without a user name (smtp://USER:PASSWORD@HOST)")
    if not settings.smtp_from.strip():
        raise ConfigurationError("smtp_from must be set when smtp_url is (e.g. 市民課 <no-reply@city.example.jp>)")
    sender, envelope_from = _mailbox(settings.smtp_from.strip(), "smtp_from")
    reply_to = _mailbox(settings.smtp_reply_to.strip(), "smtp_reply_to")[0] if settings.smtp_reply_to.strip() else ""
    ca = settings.smtp_ca_file
    return SmtpOptions(
        host=host, port=port or (465 if implicit else 25), implicit_tls=implicit, starttls=starttls,
        username=username, password=password, ca_file=None if ca == Path() or str(ca) in ("", ".") else ca,
        timeout=timeout, sender=sender, envelope_from=envelope_from, reply_to=reply_to,
    )
