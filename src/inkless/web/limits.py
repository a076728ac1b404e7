"""Request bodies are bounded before anything parses them: size, multipart parts, time, and how many at once.

:class:`BodyGuard` is the one ASGI middleware in front of every route:

- **size**: each route has a cap (:class:`BodyCaps`): a declared ``Content-Length`` over it is answered
  413 before a byte is read; a streamed (chunked) body is counted and refused as soon as it passes it;
- **multipart**: parts are counted as they stream by, and a text field (a part without a file name)
  may not grow past ``form_field_max_bytes``: 990 parts of 1 MB never reach the form parser;
- **time**: the body must arrive within ``body_timeout_seconds`` plus one second per
  ``body_min_rate_bytes`` received (Apache's mod_reqtimeout rule); a client trickling one byte
  every ten seconds gets 408 and its connection is closed;
- **concurrency**: at most ``uploads_in_flight`` large bodies (uploads, and separately ``/verify``)
  are read at once; the others wait, unread, in the kernel's socket buffers; after a body of 8 MiB or
  more, a full garbage collection reclaims what the request left in reference cycles before the slot
  is handed on;
- **login first**: a route that needs a login is refused (401 / redirect) before its body is read
  (:class:`inkless.web.deps.LoginGate`).

Refusals inside a route surface as :class:`BodyRefused` (an HTTPException), so the app's own error
handlers answer them: JSON for the API, a page in the user's language for the UI.
"""

from __future__ import annotations

import asyncio
import gc
import re
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from inkless.config import Settings

TOO_LARGE = "The request is too large for this node."
TOO_MANY_PARTS = "The form has too many parts or too long a field."
TOO_SLOW = "The request was sent too slowly and was cancelled."
# Multipart framing and the text fields around the files of an upload.
FORM_OVERHEAD = 1024 * 1024
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# Routes whose bodies are uploads (documents, PDFs, envelopes): max_message_bytes each.
UPLOAD_ROUTES = (
    "/api/v1/messages", "/api/v1/messages/{id}/reply", "/compose", "/fax/send", "/api/v1/fax/jobs",
    "/routes", "/api/v1/routes", "/api/v1/seal",
    "/p/{id}/reply",  # files a pickup recipient sends back
    "/routes/{id}/resubmit", "/api/v1/routes/{id}/resubmit",  # a returned route's corrected document
    "/admin/offices/{id}/seal",  # an office's seal image (the console checks its own, smaller limit)
)
# A peer's envelope: max_envelope_bytes (the documents' limit with base64 and CMS around them).
ENVELOPE_ROUTES = ("/federation/v1/messages",)
# The public intake window's form (files from the public): intake_max_bytes.
INTAKE_ROUTES = ("/intake/{id}",)
# The public seal verification: anyone may call it, so it has its own, smaller limit.
VERIFY_ROUTES = ("/verify", "/api/v1/verify")
# The login steps: a login name, a password or a code, and a CSRF token.
LOGIN_ROUTES = ("/login", "/login/totp", "/login/enrol", "/login/password", "/logout")


def _pattern(paths: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("^(?:" + "|".join(re.escape(p).replace(r"\{id\}", "[^/]+") for p in paths) + ")/?$")


@dataclass(frozen=True)
class BodyCap:
    """The largest body a route takes, what to tell an API client over it, and the pool of slots it
    waits for (None: no waiting)."""

    limit: int
    detail: str
    pool: str | None = None


class BodyCaps:
    """Which cap applies to a request: uploads, /verify, the login steps, or the small default."""

    def __init__(self, settings: Settings) -> None:
        self.upload = BodyCap(
            settings.max_message_bytes + FORM_OVERHEAD,
            f"the upload is larger than this node's limit of {settings.max_message_bytes:,} bytes of documents "
            "(max_message_bytes)", "upload")
        # Above the endpoint's own limit: a peer a little over it gets the endpoint's signed 413.
        self.envelope = BodyCap(
            settings.max_envelope_bytes + FORM_OVERHEAD,
            f"the envelope is larger than this node's limit of {settings.max_envelope_bytes} bytes "
            f"(max_message_bytes {settings.max_message_bytes} with the envelope's overhead)", "upload")
        self.verify = BodyCap(
            settings.verify_max_bytes + FORM_OVERHEAD // 16,
            f"the file is larger than this node's limit of {settings.verify_max_bytes:,} bytes for verification "
            "(verify_max_bytes)", "verify")
        self.intake = BodyCap(
            settings.intake_max_bytes + FORM_OVERHEAD // 16,
            f"the form is larger than this node's limit of {settings.intake_max_bytes:,} bytes of files "
            "(intake_max_bytes)", "upload")
        self.login = BodyCap(settings.body_login_max_bytes, "the body is larger than this node's limit of "
                             f"{settings.body_login_max_bytes:,} bytes for a login form (body_login_max_bytes)")
        self.default = BodyCap(settings.body_max_bytes, "the body is larger than this node's limit of "
                               f"{settings.body_max_bytes:,} bytes for this request (body_max_bytes)")
        self._rules = (
            (_pattern(UPLOAD_ROUTES), self.upload),
            (_pattern(ENVELOPE_ROUTES), self.envelope),
            (_pattern(VERIFY_ROUTES), self.verify),
            (_pattern(INTAKE_ROUTES), self.intake),
            (_pattern(LOGIN_ROUTES), self.login),
        )

    def of(self, method: str, path: str) -> BodyCap:
        """The cap of a request."""
        if method in BODY_METHODS:
            for pattern, cap in self._rules:
                if pattern.match(path):
                    return cap
        return self.default


class BodyRefused(HTTPException):
    """A body over its cap (413) or too slow (408); the connection is closed after the answer.

    ``detail`` is for API clients (it names the limit); ``page_detail`` is the catalog message a page shows.
    """

    def __init__(self, status_code: int, detail: str, page_detail: str | None = None) -> None:
        super().__init__(status_code=status_code, detail=detail, headers={"Connection": "close"})
        self.page_detail = page_detail or detail


class PartCounter:
    """Counts multipart parts as the bytes stream by; refuses too many parts or an oversized text field."""

    def __init__(self, boundary: bytes, max_parts: int, max_field_bytes: int) -> None:
        self.parts = 0
        self._size = 0
        self._is_file = False
        self._header_field = b""
        self._header_value = b""
        self._max_parts = max_parts
        self._max_field = max_field_bytes
        self._refused: str | None = None
        callbacks = {
            "on_part_begin": self._begin,
            "on_part_data": self._data,
            "on_header_field": self._field,
            "on_header_value": self._value,
            "on_header_end": self._header_end,
        }
        self._parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]

    def _begin(self) -> None:
        self.parts += 1
        self._size = 0
        self._is_file = False
        if self.parts > self._max_parts:
            self._refused = TOO_MANY_PARTS

    def _field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if self._header_field.lower() == b"content-disposition":
            _kind, options = parse_options_header(self._header_value)
            self._is_file = b"filename" in options
        self._header_field = self._header_value = b""

    def _data(self, data: bytes, start: int, end: int) -> None:
        self._size += end - start
        if not self._is_file and self._size > self._max_field:
            self._refused = TOO_MANY_PARTS

    def feed(self, chunk: bytes) -> None:
        """Parse ``chunk``; BodyRefused(413) once the form breaks a limit. Malformed framing is left
        to the real parser, which answers 400."""
        if self._refused is None:
            try:
                self._parser.write(chunk)
            except Exception:  # not ours to judge: the form parser itself reports bad framing (400)
                self._refused = ""
        if self._refused:
            raise BodyRefused(413, self._refused)  # the catalog message: it names no number


Refusal = Callable[[Scope, HTTPException], Awaitable[Response]]
Gate = Callable[[Scope], Awaitable[Response | None]]


# An upload at least this large is followed by a full garbage collection before its slot is handed on.
COLLECT_AFTER_BYTES = 8 * 1024 * 1024


class _Received:
    """How much of a request body has been read so far."""

    bytes: int = 0


class BodyGuard:
    """The ASGI middleware described in the module docstring."""

    def __init__(self, app: ASGIApp, settings: Settings, refuse: Refusal, gate: Gate | None = None) -> None:
        self.app = app
        self.caps = BodyCaps(settings)
        self.refuse = refuse
        self.gate = gate
        self.timeout = float(settings.body_timeout_seconds)
        self.min_rate = float(settings.body_min_rate_bytes)
        self.max_parts = settings.form_max_parts
        self.max_field = settings.form_field_max_bytes
        self.in_flight = settings.uploads_in_flight
        self._pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Semaphore]] = (
            weakref.WeakKeyDictionary()
        )

    def _pool(self, name: str) -> asyncio.Semaphore:
        pools = self._pools.setdefault(asyncio.get_running_loop(), {})
        if name not in pools:
            pools[name] = asyncio.Semaphore(self.in_flight)
        return pools[name]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope["headers"]}
        cap = self.caps.of(scope["method"], scope["path"])
        declared = headers.get(b"content-length", b"").strip()
        chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        if declared and (not declared.isdigit() or int(declared) > cap.limit):
            # Refused on the header alone: nothing of the body is read.
            await self._answer(scope, receive, send, BodyRefused(413, cap.detail, TOO_LARGE))
            return
        has_body = chunked or (declared.isdigit() and int(declared) > 0)
        if has_body and self.gate is not None:
            refused = await self.gate(scope)
            if refused is not None:
                refused.headers["Connection"] = "close"
                await refused(scope, receive, send)
                return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            if not has_body or cap.pool is None:
                await self.app(scope, self._limited(scope, receive, cap), tracking_send)
                return
            received = _Received()
            async with self._pool(cap.pool):
                try:
                    await self.app(scope, self._limited(scope, receive, cap, received), tracking_send)
                finally:
                    if received.bytes >= COLLECT_AFTER_BYTES:
                        # A large upload's buffers can sit in reference cycles (a refusal's traceback holds
                        # the frames that held the documents) until the collector's rare full pass: on a
                        # busy server they piled up past the memory bound (1.5 GB for 20 parallel 100 MB
                        # uploads where 0.5 GB is needed). They are reclaimed before the slot is handed on.
                        gc.collect()
        except BodyRefused as exc:
            # Raised where no route's error handler was around (e.g. while a response was closing).
            if started:
                raise
            await self._answer(scope, receive, send, exc)

    async def _answer(self, scope: Scope, receive: Receive, send: Send, refusal: BodyRefused) -> None:
        response = await self.refuse(scope, refusal)
        await response(scope, receive, send)

    def _limited(self, scope: Scope, receive: Receive, cap: BodyCap, received: _Received | None = None) -> Receive:
        loop = asyncio.get_running_loop()
        started = loop.time()
        seen = 0
        finished = False
        counter: PartCounter | None = None
        content_type = dict(scope["headers"]).get(b"content-type", b"")
        kind, options = parse_options_header(content_type)
        if kind == b"multipart/form-data" and options.get(b"boundary"):
            counter = PartCounter(options[b"boundary"], self.max_parts, self.max_field)

        async def limited_receive() -> Message:
            nonlocal seen, finished
            if finished:
                return await receive()
            remaining = started + self.timeout + seen / self.min_rate - loop.time()
            try:
                if remaining <= 0:
                    raise TimeoutError
                message = await asyncio.wait_for(receive(), remaining)
            except TimeoutError:
                raise BodyRefused(408, TOO_SLOW) from None  # the catalog message: it names no number
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                seen += len(chunk)
                if received is not None:
                    received.bytes = seen
                if seen > cap.limit:
                    raise BodyRefused(413, cap.detail, TOO_LARGE)
                if counter is not None and chunk:
                    counter.feed(chunk)
                finished = not message.get("more_body", False)
            return message

        return limited_receive
