"""SIP messages (RFC 3261 §7, §20, §25): parsing that refuses garbage, and serialisation.

A message is a start line, a list of (name, value) header fields in their order, and a body.
Header names are kept in their canonical long form (compact forms such as ``v`` or ``i`` are
expanded on parsing); multi-valued fields (Via, Route, Record-Route, Contact) may come as
several fields or as one comma-separated field, and :meth:`SipMessage.values` gives them one
by one either way.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field

from inkless.errors import SipMessageError

# A UDP datagram cannot be larger; a SIP message over UDP must fit in one (RFC 3261 §18.1.1).
MAX_MESSAGE_BYTES = 65507
MAX_HEADERS = 128
SIP_VERSION = "SIP/2.0"
MAGIC_COOKIE = "z9hG4bK"

COMPACT = {
    "i": "Call-ID", "m": "Contact", "e": "Content-Encoding", "l": "Content-Length", "c": "Content-Type",
    "f": "From", "s": "Subject", "k": "Supported", "t": "To", "v": "Via", "o": "Event", "r": "Refer-To",
    "x": "Session-Expires", "u": "Allow-Events", "a": "Accept-Contact", "b": "Referred-By", "j": "Reject-Contact",
    "d": "Request-Disposition",
}
CANONICAL = {name.lower(): name for name in (
    "Via", "Route", "Record-Route", "Contact", "From", "To", "Call-ID", "CSeq", "Max-Forwards",
    "Content-Length", "Content-Type", "Allow", "Supported", "Require", "Unsupported", "User-Agent",
    "Server", "WWW-Authenticate", "Proxy-Authenticate", "Authorization", "Proxy-Authorization",
    "Expires", "Min-Expires", "Session-Expires", "Min-SE", "P-Asserted-Identity", "P-Called-Party-ID",
    "Diversion", "Accept", "Retry-After", "Reason", "Warning", "WWW-Authenticate", "Event",
)}
MULTI = {"Via", "Route", "Record-Route", "Contact", "Allow", "Supported", "Require", "Diversion",
         "P-Asserted-Identity"}
TOKEN_RE = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")
REASONS = {
    100: "Trying", 180: "Ringing", 183: "Session Progress", 200: "OK", 202: "Accepted",
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 407: "Proxy Authentication Required", 408: "Request Timeout",
    413: "Request Entity Too Large", 415: "Unsupported Media Type", 420: "Bad Extension",
    480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist", 482: "Loop Detected",
    486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here", 491: "Request Pending",
    500: "Server Internal Error", 501: "Not Implemented", 503: "Service Unavailable",
    504: "Server Time-out", 603: "Decline", 606: "Not Acceptable",
}


def canonical_name(name: str) -> str:
    """The long, canonically cased form of a header name (``v`` → ``Via``)."""
    low = name.strip().lower()
    if low in COMPACT:
        return COMPACT[low]
    return CANONICAL.get(low, name.strip())


def new_branch() -> str:
    """A fresh RFC 3261 branch id (starts with the magic cookie)."""
    return MAGIC_COOKIE + secrets.token_hex(10)


def new_tag() -> str:
    """A fresh From/To tag."""
    return secrets.token_hex(6)


def split_commas(value: str) -> list[str]:
    """Split a header value on commas that are outside quotes and angle brackets."""
    parts: list[str] = []
    depth = 0
    quoted = False
    start = 0
    i = 0
    while i < len(value):
        ch = value[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            parts.append(value[start:i].strip())
            start = i + 1
        i += 1
    parts.append(value[start:].strip())
    return [p for p in parts if p]


def parse_params(text: str) -> dict[str, str]:
    """``;a=b;c`` → ``{"a": "b", "c": ""}`` (names lower-cased, quotes removed)."""
    params: dict[str, str] = {}
    for item in text.split(";"):
        item = item.strip()
        if not item:
            continue
        name, _, value = item.partition("=")
        params[name.strip().lower()] = value.strip().strip('"')
    return params


@dataclass(frozen=True)
class SipUri:
    """A ``sip:`` URI: user, host, port and parameters (RFC 3261 §19.1)."""

    host: str
    user: str | None = None
    port: int | None = None
    params: tuple[tuple[str, str], ...] = ()
    scheme: str = "sip"

    @classmethod
    def parse(cls, text: str) -> SipUri:
        """Parse ``sip:user@host:port;params`` (``tel:`` is refused; headers after ``?`` are dropped)."""
        text = text.strip()
        scheme, sep, rest = text.partition(":")
        if not sep or scheme.lower() not in ("sip", "sips"):
            raise SipMessageError(f"not a sip: URI: {text[:80]!r}")
        rest = rest.split("?", 1)[0]
        rest, _, ptext = rest.partition(";")
        user: str | None = None
        if "@" in rest:
            user, _, rest = rest.rpartition("@")
            user = user.split(":", 1)[0] or None  # a password in a URI is ignored (deprecated)
        host, port = _host_port(rest)
        params = tuple((k, v) for k, v in parse_params(ptext).items())
        return cls(host=host, user=user, port=port, params=params, scheme=scheme.lower())

    def param(self, name: str) -> str | None:
        for key, value in self.params:
            if key == name:
                return value
        return None

    @property
    def lr(self) -> bool:
        """True for a loose router (``;lr``)."""
        return any(k == "lr" for k, _ in self.params)

    def address(self, default_port: int = 5060) -> tuple[str, int]:
        """Where to send to reach this URI over UDP (no DNS SRV: hosts are addresses or names)."""
        return self.host, self.port or default_port

    def __str__(self) -> str:
        text = f"{self.scheme}:"
        if self.user:
            text += f"{self.user}@"
        text += f"[{self.host}]" if ":" in self.host else self.host
        if self.port:
            text += f":{self.port}"
        for key, value in self.params:
            text += f";{key}={value}" if value else f";{key}"
        return text


def _host_port(text: str) -> tuple[str, int | None]:
    text = text.strip()
    if text.startswith("["):
        host, _, tail = text[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else ""
    else:
        host, _, port_text = text.partition(":")
    if not host or not re.match(r"^[A-Za-z0-9.\-_:]+$", host):
        raise SipMessageError(f"bad host in {text[:80]!r}")
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise SipMessageError(f"bad port in {text[:80]!r}")
        return host, int(port_text)
    return host, None


@dataclass(frozen=True)
class NameAddr:
    """``"Display" <sip:uri>;tag=x`` as in From, To, Contact, Route, P-Asserted-Identity."""

    uri: SipUri
    display: str | None = None
    params: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str) -> NameAddr:
        text = text.strip()
        display: str | None = None
        if "<" in text:
            before, _, rest = text.partition("<")
            uri_text, close, ptext = rest.partition(">")
            if not close:
                raise SipMessageError(f"unclosed <> in {text[:80]!r}")
            display = before.strip().strip('"') or None
        else:
            # Without <>, parameters belong to the header, not the URI (RFC 3261 §20.10).
            uri_text, _, ptext = text.partition(";")
            ptext = ";" + ptext if ptext else ""
        params = tuple(parse_params(ptext).items())
        return cls(uri=SipUri.parse(uri_text), display=display, params=params)

    def param(self, name: str) -> str | None:
        for key, value in self.params:
            if key == name:
                return value
        return None

    @property
    def tag(self) -> str | None:
        return self.param("tag")

    def with_tag(self, tag: str) -> NameAddr:
        params = (*((k, v) for k, v in self.params if k != "tag"), ("tag", tag))
        return NameAddr(self.uri, self.display, params)

    def __str__(self) -> str:
        text = f'"{self.display}" ' if self.display else ""
        text += f"<{self.uri}>"
        for key, value in self.params:
            text += f";{key}={value}" if value else f";{key}"
        return text


@dataclass(frozen=True)
class Via:
    """One Via hop: ``SIP/2.0/UDP host:port;branch=...;rport;received=...``."""

    transport: str
    host: str
    port: int | None
    params: tuple[tuple[str, str], ...]

    @classmethod
    def parse(cls, text: str) -> Via:
        proto, _, rest = text.strip().partition(" ")
        parts = [p.strip() for p in proto.split("/")]
        if len(parts) != 3 or parts[0].upper() != "SIP" or parts[1] != "2.0":
            raise SipMessageError(f"bad Via: {text[:80]!r}")
        sent_by, _, ptext = rest.strip().partition(";")
        host, port = _host_port(sent_by)
        return cls(parts[2].upper(), host, port, tuple(parse_params(ptext).items()))

    def param(self, name: str) -> str | None:
        for key, value in self.params:
            if key == name:
                return value
        return None

    @property
    def branch(self) -> str:
        return self.param("branch") or ""


@dataclass
class SipMessage:
    """A SIP request (``method`` set) or response (``status`` set)."""

    method: str | None = None
    uri: str | None = None
    status: int | None = None
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @property
    def is_request(self) -> bool:
        return self.method is not None

    # --- header access ---------------------------------------------------------------

    def get(self, name: str) -> str | None:
        """The first value of header ``name`` (any form), or None."""
        want = canonical_name(name)
        for key, value in self.headers:
            if key == want:
                return value
        return None

    def values(self, name: str) -> list[str]:
        """Every value of ``name``, comma-separated fields split (for multi-valued headers)."""
        want = canonical_name(name)
        out: list[str] = []
        for key, value in self.headers:
            if key == want:
                out.extend(split_commas(value) if want in MULTI else [value])
        return out

    def set(self, name: str, value: str) -> None:
        """Replace every ``name`` header by one with ``value``."""
        want = canonical_name(name)
        index = next((i for i, (k, _) in enumerate(self.headers) if k == want), None)
        self.headers = [(k, v) for k, v in self.headers if k != want]
        self.headers.insert(len(self.headers) if index is None else index, (want, value))

    def add(self, name: str, value: str, first: bool = False) -> None:
        item = (canonical_name(name), value)
        if first:
            self.headers.insert(0, item)
        else:
            self.headers.append(item)

    def remove(self, name: str) -> None:
        want = canonical_name(name)
        self.headers = [(k, v) for k, v in self.headers if k != want]

    # --- parsed views of the headers every message has ---------------------------------

    @property
    def call_id(self) -> str:
        return self.get("Call-ID") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        number, _, method = (self.get("CSeq") or "").strip().partition(" ")
        if not number.isdigit() or not method.strip():
            raise SipMessageError("missing or bad CSeq")
        return int(number), method.strip().upper()

    @property
    def vias(self) -> list[Via]:
        return [Via.parse(v) for v in self.values("Via")]

    @property
    def top_via(self) -> Via:
        vias = self.values("Via")
        if not vias:
            raise SipMessageError("no Via")
        return Via.parse(vias[0])

    @property
    def from_(self) -> NameAddr:
        return NameAddr.parse(self.get("From") or "")

    @property
    def to(self) -> NameAddr:
        return NameAddr.parse(self.get("To") or "")

    @property
    def request_uri(self) -> SipUri:
        return SipUri.parse(self.uri or "")

    def contact(self) -> NameAddr | None:
        values = self.values("Contact")
        return NameAddr.parse(values[0]) if values and values[0].strip() != "*" else None

    # --- wire form -------------------------------------------------------------------

    def encode(self) -> bytes:
        """The message as it goes on the wire (Content-Length always set)."""
        if self.is_request:
            start = f"{self.method} {self.uri} {SIP_VERSION}"
        else:
            start = f"{SIP_VERSION} {self.status} {self.reason or REASONS.get(self.status or 0, 'Unknown')}"
        lines = [start]
        lines += [f"{k}: {v}" for k, v in self.headers if k != "Content-Length"]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body

    def summary(self) -> str:
        """One line for logs: ``INVITE sip:... (Call-ID x)`` or ``200 OK (INVITE, Call-ID x)``."""
        if self.is_request:
            return f"{self.method} {self.uri} (Call-ID {self.call_id[:64]})"
        return f"{self.status} {self.reason} (Call-ID {self.call_id[:64]})"


def parse(data: bytes) -> SipMessage:
    """Parse one datagram; raises SipMessageError for anything that is not a well-formed SIP message."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise SipMessageError(f"message of {len(data)} bytes is over {MAX_MESSAGE_BYTES}")
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data.partition(b"\n\n")
        if not sep:
            raise SipMessageError("no end of headers (truncated message)")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise SipMessageError("headers are not UTF-8") from None
    lines = text.replace("\r\n", "\n").split("\n")
    while lines and not lines[0].strip():  # keep-alive CRLFs before a message are allowed
        lines.pop(0)
    if not lines:
        raise SipMessageError("empty message")
    message = _start_line(lines[0])
    unfolded: list[str] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and unfolded:
            unfolded[-1] += " " + line.strip()
        else:
            unfolded.append(line)
    if len(unfolded) > MAX_HEADERS:
        raise SipMessageError(f"more than {MAX_HEADERS} header fields")
    for line in unfolded:
        name, colon, value = line.partition(":")
        if not colon or not TOKEN_RE.match(name.strip()):
            raise SipMessageError(f"bad header line {line[:60]!r}")
        message.headers.append((canonical_name(name), value.strip()))
    for required in ("Via", "From", "To", "Call-ID", "CSeq"):
        if message.get(required) is None:
            raise SipMessageError(f"missing {required}")
    number, method = message.cseq
    if (message.is_request and method != message.method) or number >= 2**31:
        raise SipMessageError("CSeq does not match the request")
    length = message.get("Content-Length")
    if length is not None:
        if not length.isdigit():
            raise SipMessageError("bad Content-Length")
        if int(length) > len(body):
            raise SipMessageError("body shorter than Content-Length (truncated message)")
        body = body[: int(length)]
    message.body = body
    message.top_via  # noqa: B018 - raises SipMessageError on a malformed top Via
    message.from_  # noqa: B018
    message.to  # noqa: B018
    return message


def _start_line(line: str) -> SipMessage:
    parts = line.strip().split(" ", 2)
    if len(parts) < 2:
        raise SipMessageError(f"bad start line {line[:60]!r}")
    if parts[0] == SIP_VERSION:
        if not parts[1].isdigit() or len(parts[1]) != 3 or not 100 <= int(parts[1]) < 700:
            raise SipMessageError(f"bad status line {line[:60]!r}")
        return SipMessage(status=int(parts[1]), reason=parts[2] if len(parts) > 2 else "")
    if len(parts) != 3 or parts[2] != SIP_VERSION or not TOKEN_RE.match(parts[0]):
        raise SipMessageError(f"bad request line {line[:60]!r}")
    if parts[1].lower().startswith("sip:"):
        SipUri.parse(parts[1])
    elif not re.match(r"^[a-zA-Z][a-zA-Z0-9+.\-]*:\S+$", parts[1]):
        raise SipMessageError(f"bad Request-URI {parts[1][:60]!r}")
    return SipMessage(method=parts[0].upper(), uri=parts[1])


def response_to(
    request: SipMessage, status: int, reason: str | None = None, *, to_tag: str | None = None,
) -> SipMessage:
    """A response to ``request`` with its Via, From, To, Call-ID, CSeq copied (RFC 3261 §8.2.6)."""
    response = SipMessage(status=status, reason=reason or REASONS.get(status, ""))
    for name in ("Via", "Record-Route", "From", "To", "Call-ID", "CSeq"):
        if name == "Record-Route" and not 180 <= status < 300:
            continue
        for key, value in request.headers:
            if key == name:
                response.headers.append((key, value))
    if to_tag and status > 100 and request.to.tag is None:
        response.set("To", str(request.to.with_tag(to_tag)))
    return response
