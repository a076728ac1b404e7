"""HTTP Message Signatures (RFC 9421) with ECDSA P-256, and Content-Digest (RFC 9530).

Every federation request and response is signed by the node that sends it, with
its node key (``ecdsa-p256-sha256``, raw ``r||s`` signature, RFC 9421 §3.3.4).

Requests cover ``"@method" "@target-uri" "content-digest"`` with the parameters
``created``, ``keyid`` (the sending node id), ``nonce`` and ``alg``. Responses cover
``"@status" "content-digest" "@method";req "@target-uri";req`` and, when the
request was signed, ``"signature";req;key="sig1"``: a response cannot be replayed
for another request.

``@target-uri`` is the URI the client asked for. A verifier behind a reverse proxy
does not see that URI, so it rebuilds it from its own public ``base_url`` plus the
request path: the signature then holds however TLS is terminated, as long as the
proxy forwards the path unchanged (see docs/federation.md).

This module is pure: no database, no web framework. The caller looks up keys,
checks certificates and remembers nonces.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Union

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from inkless.errors import AuthenticationError

ALGORITHM = "ecdsa-p256-sha256"
LABEL = "sig1"
# How far a signature's `created` may lie from our clock, either way.
MAX_SKEW_SECONDS = 300
NODE_CERTIFICATE_HEADER = "inkless-node-certificate"


class SignatureError(AuthenticationError):
    """A signature is missing, malformed, stale, replayed or does not verify (the message says which)."""


# --- structured fields (RFC 8941), the subset RFC 9421 needs ---------------------------------------------

Bare = Union[str, int, bool, bytes, "Token"]


@dataclass(frozen=True)
class Token:
    """An sf-token (unquoted)."""

    value: str


@dataclass(frozen=True)
class Item:
    """A bare item with parameters."""

    value: Bare
    params: dict[str, Bare] = field(default_factory=dict)


@dataclass(frozen=True)
class InnerList:
    """An inner list with parameters."""

    items: list[Item]
    params: dict[str, Bare] = field(default_factory=dict)


_KEY_RE = re.compile(r"[a-z*][a-z0-9_\-.*]*")
_TOKEN_RE = re.compile(r"[A-Za-z*][A-Za-z0-9!#$%&'*+\-.^_`|~:/]*")
_INT_RE = re.compile(r"-?[0-9]{1,15}")


class _Parser:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0

    def fail(self, what: str) -> SignatureError:
        return SignatureError(f"malformed structured header: {what} at position {self.i}")

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def skip_sp(self) -> None:
        while self.peek() == " ":
            self.i += 1

    def skip_ows(self) -> None:
        while self.peek() in (" ", "\t") and self.peek():
            self.i += 1

    def key(self) -> str:
        m = _KEY_RE.match(self.s, self.i)
        if not m:
            raise self.fail("expected a key")
        self.i = m.end()
        return m.group(0)

    def bare(self) -> Bare:
        c = self.peek()
        if c == '"':
            self.i += 1
            out = []
            while True:
                if self.i >= len(self.s):
                    raise self.fail("unterminated string")
                ch = self.s[self.i]
                self.i += 1
                if ch == "\\":
                    if self.peek() not in ('"', "\\"):
                        raise self.fail("bad escape")
                    out.append(self.s[self.i])
                    self.i += 1
                elif ch == '"':
                    return "".join(out)
                elif not (0x20 <= ord(ch) < 0x7F):
                    raise self.fail("non-ASCII character in string")
                else:
                    out.append(ch)
        if c == ":":
            end = self.s.find(":", self.i + 1)
            if end < 0:
                raise self.fail("unterminated byte sequence")
            raw = self.s[self.i + 1 : end]
            self.i = end + 1
            try:
                return base64.b64decode(raw, validate=True)
            except ValueError:
                raise self.fail("bad base64 in byte sequence") from None
        if c == "?":
            flag = self.s[self.i + 1 : self.i + 2]
            if flag not in ("0", "1"):
                raise self.fail("bad boolean")
            self.i += 2
            return flag == "1"
        m = _INT_RE.match(self.s, self.i)
        if m and (c.isdigit() or c == "-"):
            self.i = m.end()
            if self.peek() == ".":
                raise self.fail("decimals are not supported")
            return int(m.group(0))
        m = _TOKEN_RE.match(self.s, self.i)
        if m:
            self.i = m.end()
            return Token(m.group(0))
        raise self.fail("expected an item")

    def params(self) -> dict[str, Bare]:
        out: dict[str, Bare] = {}
        while self.peek() == ";":
            self.i += 1
            self.skip_sp()
            name = self.key()
            value: Bare = True
            if self.peek() == "=":
                self.i += 1
                value = self.bare()
            out[name] = value
        return out

    def member(self) -> Item | InnerList:
        if self.peek() == "(":
            self.i += 1
            items: list[Item] = []
            while True:
                self.skip_sp()
                if self.peek() == ")":
                    self.i += 1
                    return InnerList(items, self.params())
                value = self.bare()
                items.append(Item(value, self.params()))
                if self.peek() not in (" ", ")"):
                    raise self.fail("expected a space or ')' in inner list")
        value = self.bare()
        return Item(value, self.params())

    def dictionary(self) -> dict[str, Item | InnerList]:
        out: dict[str, Item | InnerList] = {}
        self.skip_sp()
        while self.i < len(self.s):
            name = self.key()
            if self.peek() == "=":
                self.i += 1
                out[name] = self.member()
            else:
                out[name] = Item(True, self.params())
            self.skip_ows()
            if self.i >= len(self.s):
                break
            if self.peek() != ",":
                raise self.fail("expected ','")
            self.i += 1
            self.skip_ows()
            if self.i >= len(self.s):
                raise self.fail("trailing comma")
        return out


def parse_dictionary(text: str) -> dict[str, Item | InnerList]:
    """Parse an RFC 8941 dictionary (the subset used by signatures and digests)."""
    return _Parser(text.strip()).dictionary()


def serialize_bare(value: Bare) -> str:
    """Serialise one bare item (RFC 8941 §4.1)."""
    if isinstance(value, bool):
        return "?1" if value else "?0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, bytes):
        return ":" + base64.b64encode(value).decode("ascii") + ":"
    if isinstance(value, Token):
        return value.value
    if any(not (0x20 <= ord(ch) < 0x7F) for ch in value):
        raise ValueError(f"cannot serialise {value!r} as an sf-string")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def serialize_params(params: Mapping[str, Bare]) -> str:
    return "".join(f";{k}" if v is True else f";{k}={serialize_bare(v)}" for k, v in params.items())


def serialize_member(member: Item | InnerList) -> str:
    if isinstance(member, InnerList):
        inner = " ".join(serialize_bare(i.value) + serialize_params(i.params) for i in member.items)
        return f"({inner}){serialize_params(member.params)}"
    return serialize_bare(member.value) + serialize_params(member.params)


# --- RFC 9421 -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Component:
    """A covered component: a derived one (``@method``) or a header field, maybe from the request (``req``)."""

    name: str
    req: bool = False
    key: str | None = None

    def identifier(self) -> str:
        params: dict[str, Bare] = {}
        if self.key is not None:
            params["key"] = self.key
        if self.req:
            params["req"] = True
        return serialize_bare(self.name) + serialize_params(params)


@dataclass(frozen=True)
class SignatureParams:
    """The covered components and the parameters of one signature (the ``@signature-params`` line)."""

    components: tuple[Component, ...]
    created: int | None = None
    keyid: str | None = None
    nonce: str | None = None
    alg: str | None = None

    def serialize(self) -> str:
        params: dict[str, Bare] = {}
        if self.created is not None:
            params["created"] = self.created
        if self.keyid is not None:
            params["keyid"] = self.keyid
        if self.nonce is not None:
            params["nonce"] = self.nonce
        if self.alg is not None:
            params["alg"] = self.alg
        inner = " ".join(c.identifier() for c in self.components)
        return f"({inner}){serialize_params(params)}"


@dataclass(frozen=True)
class HttpMessage:
    """What a signature can cover: a request (method, target URI) or a response (status), plus headers."""

    headers: Mapping[str, str]
    method: str | None = None
    target_uri: str | None = None
    status: int | None = None
    request: HttpMessage | None = None

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None


def component_value(message: HttpMessage, component: Component) -> str:
    """The value of one covered component (RFC 9421 §2)."""
    source = message
    if component.req:
        if message.request is None:
            raise SignatureError(f"component {component.identifier()} needs the request")
        source = message.request
    name = component.name
    if name.startswith("@"):
        if name == "@status":
            if source.status is None:
                raise SignatureError("@status is only defined for responses")
            return f"{source.status:03d}"
        if name == "@method":
            if source.method is None:
                raise SignatureError("@method is only defined for requests")
            return source.method.upper()
        if source.target_uri is None:
            raise SignatureError(f"{name} is only defined for requests")
        url = httpx.URL(source.target_uri)
        if name == "@target-uri":
            return str(url)
        if name == "@authority":
            port = f":{url.port}" if url.port is not None else ""
            return f"{url.host.lower()}{port}"
        if name == "@scheme":
            return url.scheme.lower()
        if name == "@path":
            return url.raw_path.decode("ascii").split("?", 1)[0] or "/"
        if name == "@query":
            return "?" + url.query.decode("ascii")
        raise SignatureError(f"unsupported derived component {name}")
    raw = source.header(name)
    if raw is None:
        raise SignatureError(f"the signed header {name!r} is missing")
    value = raw.strip()
    if component.key is not None:
        members = parse_dictionary(value)
        if component.key not in members:
            raise SignatureError(f"the header {name!r} has no member {component.key!r}")
        return serialize_member(members[component.key])
    return value


def signature_base(message: HttpMessage, params: SignatureParams) -> bytes:
    """The exact bytes that are signed (RFC 9421 §2.5)."""
    lines = []
    seen: set[str] = set()
    for component in params.components:
        ident = component.identifier()
        if ident in seen:
            raise SignatureError(f"component {ident} is covered twice")
        seen.add(ident)
        value = component_value(message, component)
        if "\n" in value or "\r" in value:
            raise SignatureError(f"component {ident} contains a line break")
        lines.append(f"{ident}: {value}")
    lines.append(f'"@signature-params": {params.serialize()}')
    return "\n".join(lines).encode("ascii", errors="strict")


def sign_ecdsa(data: bytes, key: ec.EllipticCurvePrivateKey) -> bytes:
    """ECDSA P-256 / SHA-256, encoded as fixed-size ``r||s`` (RFC 9421 §3.3.4)."""
    der = key.sign(data, ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def verify_ecdsa(data: bytes, signature: bytes, public_key: ec.EllipticCurvePublicKey) -> None:
    """Raise SignatureError unless ``signature`` (``r||s``) is valid for ``data``."""
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or public_key.curve.name != "secp256r1":
        raise SignatureError("the signer's key is not an ECDSA P-256 key")
    if len(signature) != 64:
        raise SignatureError(f"an ecdsa-p256-sha256 signature has 64 bytes, not {len(signature)}")
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    try:
        public_key.verify(der, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise SignatureError("the signature does not verify (message altered, or signed by another key)") from None


@dataclass(frozen=True)
class ReceivedSignature:
    """One signature taken from the Signature-Input and Signature headers."""

    label: str
    params: SignatureParams
    value: bytes


def parse_signature(headers: Mapping[str, str], label: str = LABEL) -> ReceivedSignature:
    """Read the signature ``label`` from a message's headers; SignatureError if absent or malformed."""
    message = HttpMessage(headers=headers)
    sig_input = message.header("signature-input")
    sig = message.header("signature")
    if not sig_input or not sig:
        raise SignatureError("the message is not signed (no Signature-Input / Signature headers)")
    inputs = parse_dictionary(sig_input)
    values = parse_dictionary(sig)
    member = inputs.get(label)
    value = values.get(label)
    if not isinstance(member, InnerList) or not isinstance(value, Item) or not isinstance(value.value, bytes):
        raise SignatureError(f"no signature labelled {label!r}")
    components = []
    for item in member.items:
        if not isinstance(item.value, str):
            raise SignatureError("covered components must be strings")
        unknown = set(item.params) - {"req", "key"}
        if unknown:
            raise SignatureError(f"unsupported component parameters: {', '.join(sorted(unknown))}")
        key = item.params.get("key")
        if key is not None and not isinstance(key, str):
            raise SignatureError("the key parameter must be a string")
        components.append(Component(item.value, req=item.params.get("req") is True, key=key))

    def _param(name: str, kind: type) -> object:
        v = member.params.get(name)
        if v is not None and (not isinstance(v, kind) or isinstance(v, bool)):
            raise SignatureError(f"the signature parameter {name!r} has the wrong type")
        return v

    created = _param("created", int)
    keyid = _param("keyid", str)
    nonce = _param("nonce", str)
    alg = _param("alg", str)
    params = SignatureParams(
        tuple(components),
        created=created if isinstance(created, int) else None,
        keyid=keyid if isinstance(keyid, str) else None,
        nonce=nonce if isinstance(nonce, str) else None,
        alg=alg if isinstance(alg, str) else None,
    )
    return ReceivedSignature(label, params, value.value)


def signature_headers(label: str, params: SignatureParams, signature: bytes) -> dict[str, str]:
    """The Signature-Input and Signature headers for one signature."""
    return {
        "Signature-Input": f"{label}={params.serialize()}",
        "Signature": f"{label}={serialize_bare(signature)}",
    }


# --- Content-Digest (RFC 9530) --------------------------------------------------------------------------


def content_digest(body: bytes) -> str:
    """The Content-Digest header value for ``body`` (sha-256)."""
    return "sha-256=" + serialize_bare(hashlib.sha256(body).digest())


def check_content_digest(header: str | None, body: bytes) -> None:
    """Raise SignatureError unless the sha-256 Content-Digest matches ``body``."""
    if not header:
        raise SignatureError("no Content-Digest header")
    members = parse_dictionary(header)
    digest = members.get("sha-256")
    if not isinstance(digest, Item) or not isinstance(digest.value, bytes):
        raise SignatureError("the Content-Digest has no sha-256 value")
    if not secrets.compare_digest(digest.value, hashlib.sha256(body).digest()):
        raise SignatureError("the body does not match its Content-Digest (altered in transit)")


# --- the federation profile -----------------------------------------------------------------------------

REQUEST_COMPONENTS = (Component("@method"), Component("@target-uri"), Component("content-digest"))
RESPONSE_COMPONENTS = (
    Component("@status"),
    Component("content-digest"),
    Component("@method", req=True),
    Component("@target-uri", req=True),
)
BOUND_RESPONSE_COMPONENT = Component("signature", req=True, key=LABEL)


def new_nonce() -> str:
    """A fresh random nonce (128 bits, URL-safe)."""
    return secrets.token_urlsafe(16)


def sign_request(
    method: str, target_uri: str, body: bytes, key: ec.EllipticCurvePrivateKey, keyid: str, created: int,
    nonce: str | None = None, covered: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Headers that sign a federation request: Content-Digest, Signature-Input, Signature.

    ``covered`` are further headers (name: value) sent with the request and covered by the signature.
    """
    headers = {"Content-Digest": content_digest(body), **(covered or {})}
    components = REQUEST_COMPONENTS + tuple(Component(name.lower()) for name in (covered or {}))
    params = SignatureParams(components, created=created, keyid=keyid, nonce=nonce or new_nonce(), alg=ALGORITHM)
    message = HttpMessage(headers=headers, method=method, target_uri=target_uri)
    headers.update(signature_headers(LABEL, params, sign_ecdsa(signature_base(message, params), key)))
    return headers


def _check_params(received: ReceivedSignature, required: Sequence[Component], now: int, *, need_nonce: bool) -> None:
    params = received.params
    if params.alg is not None and params.alg != ALGORITHM:
        raise SignatureError(f"unsupported signature algorithm {params.alg!r} (expected {ALGORITHM})")
    if params.created is None:
        raise SignatureError("the signature has no 'created' time")
    if abs(now - params.created) > MAX_SKEW_SECONDS:
        raise SignatureError(
            f"the signature is stale: created {now - params.created:+d} s from now "
            f"(allowed ±{MAX_SKEW_SECONDS} s; check both clocks)"
        )
    if not params.keyid:
        raise SignatureError("the signature has no 'keyid'")
    if need_nonce and not params.nonce:
        raise SignatureError("the signature has no 'nonce'")
    missing = [c.identifier() for c in required if c not in params.components]
    if missing:
        raise SignatureError(f"the signature does not cover {', '.join(missing)}")


def verify_request(
    received: ReceivedSignature,
    method: str,
    target_uri: str,
    headers: Mapping[str, str],
    body: bytes,
    public_key: ec.EllipticCurvePublicKey,
    now: int,
    covered: Sequence[str] = (),
) -> None:
    """Check a federation request's signature: coverage, clock, digest, signature. Nonces are the caller's.

    ``covered`` names further headers the signature must cover.
    """
    required = REQUEST_COMPONENTS + tuple(Component(name.lower()) for name in covered)
    _check_params(received, required, now, need_nonce=True)
    message = HttpMessage(headers=headers, method=method, target_uri=target_uri)
    check_content_digest(message.header("content-digest"), body)
    verify_ecdsa(signature_base(message, received.params), received.value, public_key)


def sign_response(
    status: int,
    body: bytes,
    request: HttpMessage,
    key: ec.EllipticCurvePrivateKey,
    keyid: str,
    created: int,
) -> dict[str, str]:
    """Headers that sign a federation response, bound to the request (and its signature, if it had one)."""
    headers = {"Content-Digest": content_digest(body)}
    components: tuple[Component, ...] = RESPONSE_COMPONENTS
    if request.header("signature") is not None:
        components = (*components, BOUND_RESPONSE_COMPONENT)
    params = SignatureParams(components, created=created, keyid=keyid, alg=ALGORITHM)
    message = HttpMessage(headers=headers, status=status, request=request)
    headers.update(signature_headers(LABEL, params, sign_ecdsa(signature_base(message, params), key)))
    return headers


def verify_response(
    received: ReceivedSignature,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    request: HttpMessage,
    public_key: ec.EllipticCurvePublicKey,
    now: int,
) -> None:
    """Check a federation response's signature, including that it answers ``request``."""
    required: tuple[Component, ...] = RESPONSE_COMPONENTS
    if request.header("signature") is not None:
        required = (*required, BOUND_RESPONSE_COMPONENT)
    _check_params(received, required, now, need_nonce=False)
    message = HttpMessage(headers=headers, status=status, request=request)
    check_content_digest(message.header("content-digest"), body)
    verify_ecdsa(signature_base(message, received.params), received.value, public_key)
