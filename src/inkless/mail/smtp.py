"""Handing mail to the SMTP server with the standard library's ``smtplib`` (see docs/external.md for why).

The transport opens one connection per batch, upgrades it with STARTTLS (or starts with TLS for
smtps://), authenticates if a user is configured, and sends each mail to its one recipient. What the
server answers decides the mail's fate:

- 2xx: accepted (the server now owns the mail);
- 5xx to RCPT TO or to the DATA: permanent — the address does not exist or the mail is refused for
  good; the mail is failed and the recipient is 不達 (bounced);
- anything else (4xx, a broken connection, a refused login, no STARTTLS when it is required):
  temporary — retried with backoff until the mail expires. A problem of our own configuration is
  never blamed on a recipient.
"""

from __future__ import annotations

import base64
import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from inkless.mail.options import SmtpOptions


@dataclass(frozen=True)
class OutgoingMail:
    """One mail to hand over: envelope sender, the one recipient, the complete message."""

    envelope_from: str
    recipient: str
    data: bytes


@dataclass(frozen=True)
class SendOutcome:
    """What the server said to one mail."""

    accepted: bool
    permanent: bool = False
    code: int | None = None
    detail: str = ""


class MailTransport(Protocol):
    """Sends a batch of mails; one outcome per mail, in order. Never raises for a server's answer."""

    def send(self, mails: Sequence[OutgoingMail]) -> list[SendOutcome]: ...


class _ConnectionFailed(Exception):
    def __init__(self, outcome: SendOutcome) -> None:
        super().__init__(outcome.detail)
        self.outcome = outcome


def _reply(code: int | None, message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
    return f"{code} {text}".strip() if code else text


def _login(client: smtplib.SMTP, username: str, password: str) -> None:
    """AUTH: ``smtplib``'s own login for ASCII credentials; AUTH PLAIN in UTF-8 (RFC 4616) otherwise.

    ``smtplib`` encodes credentials as ASCII and fails on a password such as ``pa55-wörd``; PLAIN is
    defined over UTF-8, so it is sent by hand for those.
    """
    if username.isascii() and password.isascii():
        client.login(username, password)
        return
    mechanisms = client.esmtp_features.get("auth", "").upper().split()
    if "PLAIN" not in mechanisms:
        raise smtplib.SMTPException(
            "the password is not plain ASCII and the server does not offer AUTH PLAIN (UTF-8)")
    token = base64.b64encode(b"\0" + username.encode() + b"\0" + password.encode()).decode("ascii")
    code, reply = client.docmd("AUTH", "PLAIN " + token)
    if code != 235:
        raise smtplib.SMTPAuthenticationError(code, reply)


class SmtpTransport:
    """The real transport: ``smtplib`` over TCP, TLS checked against the system CAs or ``smtp_ca_file``."""

    def __init__(self, options: SmtpOptions, helo_name: str | None = None) -> None:
        self.options = options
        self.helo_name = helo_name

    def _tls_context(self) -> ssl.SSLContext:
        ca = self.options.ca_file
        return ssl.create_default_context(cafile=str(ca) if ca else None)

    def _connect(self) -> smtplib.SMTP:
        o = self.options
        where = o.describe()
        try:
            client: smtplib.SMTP
            if o.implicit_tls:
                client = smtplib.SMTP_SSL(o.host, o.port, local_hostname=self.helo_name, timeout=o.timeout,
                                          context=self._tls_context())
            else:
                client = smtplib.SMTP(o.host, o.port, local_hostname=self.helo_name, timeout=o.timeout)
        except (OSError, smtplib.SMTPException) as exc:
            raise _ConnectionFailed(SendOutcome(False, detail=f"{where}: cannot connect ({exc})")) from None
        try:
            client.ehlo()
            if not o.implicit_tls and o.starttls != "off":
                if client.has_extn("starttls"):
                    client.starttls(context=self._tls_context())
                    client.ehlo()
                elif o.starttls == "require":
                    raise _ConnectionFailed(SendOutcome(
                        False, detail=f"{where} offers no STARTTLS, which smtp_url requires"))
            if o.username:
                _login(client, o.username, o.password)
        except smtplib.SMTPAuthenticationError as exc:
            client.close()
            raise _ConnectionFailed(SendOutcome(
                False, code=exc.smtp_code, detail=f"{where}: login refused ({_reply(exc.smtp_code, exc.smtp_error)})"),
            ) from None
        except (OSError, smtplib.SMTPException, UnicodeError) as exc:
            client.close()
            raise _ConnectionFailed(SendOutcome(False, detail=f"{where}: {exc}")) from None
        except _ConnectionFailed:
            client.close()
            raise
        return client

    def send(self, mails: Sequence[OutgoingMail]) -> list[SendOutcome]:
        outcomes: list[SendOutcome] = []
        client: smtplib.SMTP | None = None
        try:
            for mail in mails:
                if client is None:
                    try:
                        client = self._connect()
                    except _ConnectionFailed as failed:
                        # The rest of the batch waits for the next pass.
                        outcomes.extend([failed.outcome] * (len(mails) - len(outcomes)))
                        break
                outcome = self._send_one(client, mail)
                if outcome.code is None and not outcome.accepted:
                    client.close()  # the connection broke: reconnect for the next mail
                    client = None
                outcomes.append(outcome)
        finally:
            if client is not None:
                try:
                    client.quit()
                except (OSError, smtplib.SMTPException):
                    client.close()
        return outcomes

    @staticmethod
    def _send_one(client: smtplib.SMTP, mail: OutgoingMail) -> SendOutcome:
        try:
            client.sendmail(mail.envelope_from, [mail.recipient], mail.data)
        except smtplib.SMTPRecipientsRefused as exc:
            code, message = exc.recipients.get(mail.recipient, (None, b""))
            return SendOutcome(False, permanent=code is not None and 500 <= code < 600, code=code,
                               detail=_reply(code, message))
        except smtplib.SMTPSenderRefused as exc:
            # MAIL FROM refused: our own sender address or policy, not the recipient's fault.
            return SendOutcome(False, code=exc.smtp_code,
                               detail=f"sender refused: {_reply(exc.smtp_code, exc.smtp_error)}")
        except smtplib.SMTPResponseException as exc:  # the DATA (content) refused, or another reply
            return SendOutcome(False, permanent=500 <= exc.smtp_code < 600, code=exc.smtp_code,
                               detail=_reply(exc.smtp_code, exc.smtp_error))
        except (OSError, smtplib.SMTPException) as exc:
            return SendOutcome(False, detail=f"connection lost: {exc}")
        return SendOutcome(True, code=250, detail="accepted")
