"""The one error tree of inkless.

Every error a caller may need to tell apart derives from :class:`InklessError`.
Third-party errors (SQLAlchemy, cryptography, pyHanko, spandsp) are translated
into these at the boundary that calls them, keeping the detail.

    InklessError                       exit code 1
    ├── ConfigurationError             exit code 6   bad inkless.toml / INKLESS_* value
    │   ├── FontNotFoundError                        no Japanese font installed (fontconfig)
    │   └── MailUnavailableError                     no mail outbox to send a code through (HTTP 503)
    ├── ValidationError                exit code 2   bad input from a user or a peer
    │   └── UntrustedFileError                       a file from the public refused (has .reason, .file_name)
    ├── NotFoundError                  exit code 3   no such office, user, entry ...
    ├── ConflictError                  exit code 7   already exists / already initialised
    │   └── MessageIdMismatchError                   a delivery's Inkless-Message-Id is not the envelope's id
    ├── AuthenticationError            exit code 4   wrong password, wrong TOTP, bad token
    │   └── RateLimitedError                         too many failed attempts (has .retry_after)
    ├── PolicyError                    exit code 4   authenticated, but not allowed
    ├── StorageError                   exit code 8   database or blob store failure
    ├── KeyStoreError                  exit code 8   master key missing / wrong, key cannot be opened
    ├── PKIError                       exit code 1   certificate issuance or validation problem
    ├── SealError                      exit code 1   a seal cannot be drawn or applied (no CJK font, missing glyph)
    ├── DeliveryError                  exit code 1   a message cannot be sent, delivered or opened
    │   ├── EnvelopeError              exit code 2   garbage, tampered or misaddressed CMS envelope / receipt
    │   ├── MessageTooLargeError       exit code 2   over max_message_bytes (has .limit)
    │   ├── PeerUnreachableError                     a peer did not answer; retry later (has .retry_after)
    │   └── DeliveryRejectedError                    the peer refused the message for good (has .reason)
    ├── FaxError                       exit code 1   a fax cannot be rendered, sent or received (has .t30_code)
    │   └── SipMessageError                          a SIP datagram or SDP body that cannot be parsed
    └── IntegrityError                 exit code 5   stored data does not match its proof
        └── AuditIntegrityError                      the audit log does not recompute (has .entry_index)

Feature packages add their branches here, not in their own modules.

Messages: an error's first argument is an English sentence that doubles as its message id in the
web UI's catalogue, with ``{name}`` placeholders filled from keyword parameters::

    raise NotFoundError("No office {code}.", code=code)

``str(exc)`` (logs, CLI, API) is the filled-in English sentence; a page shows the catalogue's
translation of the template filled with the same parameters, or, for a sentence the catalogue lacks,
a generic sentence of the error's kind (``inkless.web.render.Renderer.error_text``), so that no
English sentence reaches a Japanese page.
"""

from __future__ import annotations


class InklessError(Exception):
    """Base class of every inkless error."""

    exit_code: int = 1
    http_status: int = 500

    def __init__(self, message: str, **params: object) -> None:
        text = message.format(**params) if params else message
        super().__init__(text)
        #: the English sentence with its parameters filled in
        self.message = text
        #: the catalogue's message id and what fills it
        self.template = message
        self.params = params

    def __str__(self) -> str:
        return self.message


class ConfigurationError(InklessError):
    """The settings (inkless.toml or INKLESS_* variables) are invalid."""

    exit_code = 6
    http_status = 500


class FontNotFoundError(ConfigurationError):
    """No Japanese font can be found on this machine (fontconfig missing, or no CJK font installed)."""


class MailUnavailableError(ConfigurationError):
    """A public page needs to mail a code and the node sends no e-mail (``smtp_url`` is not set)."""

    http_status = 503


class ValidationError(InklessError):
    """Input from a user or a peer is malformed or out of range."""

    exit_code = 2
    http_status = 422


class UntrustedFileError(ValidationError):
    """A file from outside (intake window, pickup reply) was refused: wrong type, too large, unreadable, infected.

    ``reason`` is a short code (``type``, ``size``, ``pages``, ``pixels``, ``unreadable``, ``encrypted``,
    ``virus``, ``scan_failed``) for tallies and translated messages; ``file_name`` is the name as sent.
    """

    def __init__(self, message: str, reason: str, file_name: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.file_name = file_name


class NotFoundError(InklessError):
    """The requested object does not exist (or the caller may not know it does)."""

    exit_code = 3
    http_status = 404


class ConflictError(InklessError):
    """The object already exists, or the operation was already done."""

    exit_code = 7
    http_status = 409


class MessageIdMismatchError(ConflictError):
    """The message id a delivery names (transport header) is not the id inside the signed envelope."""


class AuthenticationError(InklessError):
    """Credentials were missing or wrong."""

    exit_code = 4
    http_status = 401


class RateLimitedError(AuthenticationError):
    """Too many failed attempts; try again after ``retry_after`` seconds."""

    http_status = 429

    def __init__(self, message: str, retry_after: int, **params: object) -> None:
        super().__init__(message, **params)
        self.retry_after = retry_after


class PolicyError(InklessError):
    """The caller is authenticated but the policy forbids the operation."""

    exit_code = 4
    http_status = 403


class StorageError(InklessError):
    """The database or the blob store failed."""

    exit_code = 8
    http_status = 503


class KeyStoreError(InklessError):
    """A private key could not be stored or opened (missing or wrong master key)."""

    exit_code = 8
    http_status = 500


class PKIError(InklessError):
    """A certificate could not be issued, parsed or validated."""

    exit_code = 1
    http_status = 500


class SealError(InklessError):
    """A seal cannot be drawn or applied (no usable CJK font, a character the font lacks)."""

    exit_code = 1
    http_status = 422


class IntegrityError(InklessError):
    """Stored data does not match its cryptographic proof."""

    exit_code = 5
    http_status = 500


class AuditIntegrityError(IntegrityError):
    """The audit log does not recompute; ``entry_index`` names the first bad entry if known."""

    def __init__(self, message: str, entry_index: int | None = None, **params: object) -> None:
        super().__init__(message, **params)
        self.entry_index = entry_index


class DeliveryError(InklessError):
    """A message cannot be sent, delivered or opened."""

    exit_code = 1
    http_status = 502


class EnvelopeError(DeliveryError):
    """A CMS envelope or receipt is malformed, tampered with, or not for us."""

    exit_code = 2
    http_status = 422


class MessageTooLargeError(DeliveryError):
    """The message is larger than the configured limit."""

    exit_code = 2
    http_status = 413

    def __init__(self, message: str, limit: int, **params: object) -> None:
        super().__init__(message, **params)
        self.limit = limit


class PeerUnreachableError(DeliveryError):
    """A peer node did not answer; the delivery will be retried."""

    http_status = 503

    def __init__(self, message: str, retry_after: float | None = None, **params: object) -> None:
        super().__init__(message, **params)
        self.retry_after = retry_after


class DeliveryRejectedError(DeliveryError):
    """The receiving node refused the message permanently (``reason`` says why)."""

    http_status = 422

    def __init__(self, message: str, reason: str, **params: object) -> None:
        super().__init__(message, **params)
        self.reason = reason


class FaxError(InklessError):
    """A fax cannot be rendered, sent or received; ``t30_code`` holds the T.30 result if any."""

    exit_code = 1
    http_status = 422

    def __init__(self, message: str, t30_code: int | None = None, **params: object) -> None:
        super().__init__(message, **params)
        self.t30_code = t30_code


class SipMessageError(FaxError):
    """A SIP datagram or its SDP body is malformed, truncated or too large (the line drops it)."""

    http_status = 400
