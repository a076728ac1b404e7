"""HTTP Message Signatures (RFC 9421) with ECDSA P-256, and Content-Digest (RFC 9530): the federation profile.

The signature base, structured fields and the ECDSA encoding are the maintained
``http-message-signatures`` library's; this module only adds what the federation requires
on top of it:

* every federation request and response is signed by the node that sends it, with its node
  key (``ecdsa-p256-sha256``), label ``sig1``, tag ``inkless-federation``;
* requests cover ``"@method" "@target-uri" "content-digest"`` (plus the Inkless-* headers a
  route names) with ``created``, ``keyid`` (the sending node id), ``nonce`` and ``alg``;
* responses cover ``"@status" "content-digest" "@method";req "@target-uri";req`` and, when
  the request was signed, ``"signature";req;key="sig1"``: a response cannot be replayed for
  another request;
* ``created`` (and ``expires`` if present) are checked against the node's Clock, not the
  host clock, within ±:data:`MAX_SKEW_SECONDS`.

Parameters are used as received (any order, ``expires`` and ``tag`` included), so a
signature made by any RFC 9421 implementation verifies if it meets the profile.

``@target-uri`` is the URI the client asked for. A verifier behind a reverse proxy does not
see that URI, so it rebuilds it from its own public ``base_url`` plus the request path: the
signature then holds however TLS is terminated, as long as the proxy forwards the path
unchanged (see docs/federation.md).

This module is pure: no database, no web framework. The caller looks up keys by keyid
(pinned peers), checks certificates and remembers nonces.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import http_sf
from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from http_message_signatures import (
    ContentDigest,
    HTTPMessageSignaturesException,
    HTTPMessageSigner,
    HTTPMessageVerifier,
    InvalidSignature,
    MappingKeyResolver,
)
from http_message_signatures.algorithms import ECDSA_P256_SHA256

from inkless.errors import AuthenticationError

ALGORITHM: str = ECDSA_P256_SHA256.algorithm_id
LABEL = "sig1"
# Signed application tag: a verifier selects our signature by it (RFC 9421 §2.3, "tag").
TAG = "inkless-federation"
# How far a signature's `created` may lie from our clock, either way.
MAX_SKEW_SECONDS = 300
NODE_CERTIFICATE_HEADER = "inkless-node-certificate"
_P256_SIGNATURE_BYTES = 64


class SignatureError(AuthenticationError):
    """A signature is missing, malformed, stale, replayed or does not verify (the message says which)."""


@dataclass(frozen=True)
class Component:
    """A covered component: a derived one (``@method``) or a header field, maybe from the request (``req``)."""

    name: str
    req: bool = False
    key: str | None = None
    # Other component parameters as received (``sf``, ``bs``): kept so that the identifier is exact.
    flags: tuple[str, ...] = ()

    def identifier(self) -> str:
        """The serialised component identifier, e.g. ``"signature";req;key="sig1"``."""
        params: dict[str, Any] = {}
        if self.req:
            params["req"] = True
        if self.key is not None:
            params["key"] = self.key
        for flag in self.flags:
            params[flag] = True
        return http_sf.ser((self.name, params))


@dataclass(frozen=True)
class SignatureParams:
    """The covered components and the parameters of one signature, as received."""

    components: tuple[Component, ...]
    created: int | None = None
    keyid: str | None = None
    nonce: str | None = None
    alg: str | None = None
    expires: int | None = None
    tag: str | None = None


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


@dataclass(frozen=True)
class ReceivedSignature:
    """One signature taken from the Signature-Input and Signature headers."""

    label: str
    params: SignatureParams
    value: bytes


# --- the library's message interface --------------------------------------------------------------------


@dataclass
class _Request:
    method: str
    url: str
    headers: dict[str, str]


@dataclass
class _Response:
    status_code: int
    headers: dict[str, str]
    request: _Request | None


def _request_view(message: HttpMessage) -> _Request:
    if message.method is None or message.target_uri is None:
        raise SignatureError("a request needs its method and target URI to be signed or verified")
    return _Request(message.method.upper(), message.target_uri, dict(message.headers))


class _ClockedVerifier(HTTPMessageVerifier):
    """The library's verifier, with ``created``/``expires`` checked against the node's Clock."""

    max_clock_skew = timedelta(seconds=MAX_SKEW_SECONDS)

    def __init__(self, keyid: str, public_key: ec.EllipticCurvePublicKey, now: int) -> None:
        super().__init__(
            signature_algorithm=ECDSA_P256_SHA256,
            key_resolver=MappingKeyResolver(public_keys={keyid: public_key}, private_keys={}),
        )
        self._now = now

    def validate_created_and_expires(self, sig_input: Any, max_age: Any = None) -> None:
        # The library reads the host clock; the profile (and the tests) use the node's Clock.
        _check_times(sig_input.params.get("created"), sig_input.params.get("expires"), self._now)


def _check_times(created: object, expires: object, now: int) -> None:
    if not isinstance(created, int) or isinstance(created, bool):
        raise SignatureError("the signature has no 'created' time")
    if abs(now - created) > MAX_SKEW_SECONDS:
        when = f"{now - created} s ago" if created < now else f"{created - now} s in the future"
        raise SignatureError(
            f"the signature is stale: created {when} (allowed ±{MAX_SKEW_SECONDS} s; check both clocks)"
        )
    if expires is not None:
        if not isinstance(expires, int) or isinstance(expires, bool):
            raise SignatureError("the signature parameter 'expires' has the wrong type")
        if expires < now:
            raise SignatureError(f"the signature expired {now - expires} s ago")


def _library_error(exc: HTTPMessageSignaturesException) -> SignatureError:
    if isinstance(exc.__cause__, CryptoInvalidSignature):
        return SignatureError("the signature does not verify (message altered, or signed by another key)")
    if isinstance(exc.__cause__, SignatureError):
        return exc.__cause__
    return SignatureError(f"the signature is not acceptable: {exc}")


# --- parsing --------------------------------------------------------------------------------------------


def _parse_dictionary(text: str, what: str) -> dict[str, Any]:
    try:
        parsed = http_sf.parse(text.encode("latin-1"), tltype="dictionary")
    except (ValueError, TypeError, UnicodeError) as exc:
        raise SignatureError(f"malformed structured header {what}: {exc}") from None
    if not isinstance(parsed, dict):
        raise SignatureError(f"malformed structured header {what}: not a dictionary")
    return parsed


def parse_signature(headers: Mapping[str, str], label: str = LABEL) -> ReceivedSignature:
    """Read the signature ``label`` from a message's headers; SignatureError if absent or malformed."""
    message = HttpMessage(headers=headers)
    sig_input = message.header("signature-input")
    sig = message.header("signature")
    if not sig_input or not sig:
        raise SignatureError("the message is not signed (no Signature-Input / Signature headers)")
    inputs = _parse_dictionary(sig_input, "Signature-Input")
    values = _parse_dictionary(sig, "Signature")
    if label not in inputs or label not in values:
        raise SignatureError(f"no signature labelled {label!r}")
    member, params = inputs[label]
    value, _ = values[label]
    if not isinstance(member, list):
        raise SignatureError(f"the Signature-Input member {label!r} is not an inner list")
    if not isinstance(value, bytes):
        raise SignatureError(f"the Signature member {label!r} is not a byte sequence")
    components = []
    for name, item_params in member:
        if not isinstance(name, str):
            raise SignatureError("covered components must be strings")
        key = item_params.get("key")
        if key is not None and not isinstance(key, str):
            raise SignatureError("the key parameter must be a string")
        flags = tuple(sorted(p for p in item_params if p not in ("req", "key")))
        components.append(Component(name, req=item_params.get("req") is True, key=key, flags=flags))

    def _param(name: str, kind: type) -> Any:
        v = params.get(name)
        if v is not None and (not isinstance(v, kind) or isinstance(v, bool)):
            raise SignatureError(f"the signature parameter {name!r} has the wrong type")
        return v

    return ReceivedSignature(
        label,
        SignatureParams(
            tuple(components),
            created=_param("created", int),
            keyid=_param("keyid", str),
            nonce=_param("nonce", str),
            alg=_param("alg", str),
            expires=_param("expires", int),
            tag=_param("tag", str),
        ),
        value,
    )


def _signature_member(message: HttpMessage, label: str) -> bool:
    """Whether the message carries a well-formed signature ``label`` (what a response may be bound to)."""
    raw = message.header("signature")
    if raw is None:
        return False
    try:
        return label in _parse_dictionary(raw, "Signature")
    except SignatureError:
        return False


# --- raw ECDSA (also used for the node documents' JWS) ---------------------------------------------------


def sign_ecdsa(data: bytes, key: ec.EllipticCurvePrivateKey) -> bytes:
    """ECDSA P-256 / SHA-256, encoded as fixed-size ``r||s`` (RFC 9421 §3.3.4)."""
    signature: bytes = ECDSA_P256_SHA256(private_key=key).sign(data)  # type: ignore[no-untyped-call]
    return signature


def verify_ecdsa(data: bytes, signature: bytes, public_key: ec.EllipticCurvePublicKey) -> None:
    """Raise SignatureError unless ``signature`` (``r||s``) is valid for ``data``."""
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or public_key.curve.name != "secp256r1":
        raise SignatureError("the signer's key is not an ECDSA P-256 key")
    if len(signature) != _P256_SIGNATURE_BYTES:
        raise SignatureError(f"an ecdsa-p256-sha256 signature has 64 bytes, not {len(signature)}")
    try:
        ECDSA_P256_SHA256(public_key=public_key).verify(signature, data)  # type: ignore[no-untyped-call]
    except CryptoInvalidSignature:
        raise SignatureError("the signature does not verify (message altered, or signed by another key)") from None


# --- Content-Digest (RFC 9530) --------------------------------------------------------------------------


def content_digest(body: bytes) -> str:
    """The Content-Digest header value for ``body`` (sha-256)."""
    return ContentDigest.create(body)


class BodyDigest:
    """The digests of a body too large to hold, computed as it streams past (into a spool file): checked
    against the Content-Digest as the body's bytes would be."""

    _HASHERS: ClassVar[dict[str, Callable[[], Any]]] = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}

    def __init__(self, header: str | None) -> None:
        names = {"sha-256"}
        if header and "sha-512" in header:
            names.add("sha-512")
        self._hashers = {name: self._HASHERS[name]() for name in names}

    def update(self, chunk: bytes) -> None:
        for hasher in self._hashers.values():
            hasher.update(chunk)

    def digest(self, name: str) -> bytes | None:
        hasher = self._hashers.get(name)
        return hasher.digest() if hasher is not None else None


def _check_streamed(header: str, body: BodyDigest) -> None:
    # The library's own parser reads the field (members, algorithms, lengths); only the comparison is ours.
    for name, expected in ContentDigest._parse(header).items():
        if not hmac.compare_digest(expected, body.digest(name) or b""):
            raise InvalidSignature("Content-Digest does not match the message body")


def check_content_digest(header: str | None, body: bytes | BodyDigest) -> None:
    """Raise SignatureError unless the Content-Digest (sha-256 or sha-512) matches ``body``."""
    if not header:
        raise SignatureError("no Content-Digest header")
    try:
        if isinstance(body, BodyDigest):
            _check_streamed(header, body)
        else:
            ContentDigest.verify(header, body)
    except InvalidSignature as exc:
        if "does not match" in str(exc):
            raise SignatureError("the body does not match its Content-Digest (altered in transit)") from None
        raise SignatureError(f"the Content-Digest is not acceptable: {exc}") from None


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


def _signer(keyid: str, key: ec.EllipticCurvePrivateKey) -> HTTPMessageSigner:
    return HTTPMessageSigner(
        signature_algorithm=ECDSA_P256_SHA256,
        key_resolver=MappingKeyResolver(public_keys={}, private_keys={keyid: key}),
    )


def _timestamp(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def sign_request(
    method: str, target_uri: str, body: bytes, key: ec.EllipticCurvePrivateKey, keyid: str, created: int,
    nonce: str | None = None, covered: Mapping[str, str] | None = None, expires: int | None = None,
    body_sha256: bytes | None = None,
) -> dict[str, str]:
    """Headers that sign a federation request: Content-Digest (sha-256), Signature-Input, Signature.

    ``covered`` are further headers (name: value) sent with the request and covered by the signature.
    ``body_sha256``: the SHA-256 of a body too large to hold (``body`` is then not read).
    """
    headers = dict(covered or {})
    signed_body: bytes | None = body
    if body_sha256 is not None:
        headers["Content-Digest"] = str(http_sf.ser({"sha-256": body_sha256}))
        signed_body = None
    components = REQUEST_COMPONENTS + tuple(Component(name.lower()) for name in (covered or {}))
    message = _Request(method.upper(), target_uri, headers)
    try:
        _signer(keyid, key).sign(
            message, key_id=keyid, created=_timestamp(created), nonce=nonce or new_nonce(), label=LABEL, tag=TAG,
            expires=_timestamp(expires) if expires is not None else None,
            covered_component_ids=[c.identifier() for c in components], body=signed_body,
            use_existing_digest=body_sha256 is not None,
        )
    except HTTPMessageSignaturesException as exc:
        raise SignatureError(f"the request cannot be signed: {exc}") from None
    return headers


def _check_params(received: ReceivedSignature, required: Sequence[Component], now: int, *, need_nonce: bool) -> None:
    """The federation profile on top of RFC 9421: algorithm, times, keyid, nonce, tag, coverage."""
    params = received.params
    if params.alg is not None and params.alg != ALGORITHM:
        raise SignatureError(f"unsupported signature algorithm {params.alg!r} (expected {ALGORITHM})")
    _check_times(params.created, params.expires, now)
    if not params.keyid:
        raise SignatureError("the signature has no 'keyid'")
    if need_nonce and not params.nonce:
        raise SignatureError("the signature has no 'nonce'")
    if params.tag is not None and params.tag != TAG:
        raise SignatureError(f"the signature is tagged {params.tag!r}, not {TAG!r}: it is not a federation signature")
    if len(received.value) != _P256_SIGNATURE_BYTES:
        raise SignatureError(f"an ecdsa-p256-sha256 signature has 64 bytes, not {len(received.value)}")
    missing = [c.identifier() for c in required if c not in params.components]
    if missing:
        raise SignatureError(f"the signature does not cover {', '.join(missing)}")


def _verify(message: _Request | _Response, received: ReceivedSignature, required: Sequence[Component],
            public_key: ec.EllipticCurvePublicKey, now: int) -> None:
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or public_key.curve.name != "secp256r1":
        raise SignatureError("the signer's key is not an ECDSA P-256 key")
    assert received.params.keyid is not None  # checked by _check_params
    verifier = _ClockedVerifier(received.params.keyid, public_key, now)
    tag = received.params.tag
    try:
        verifier.verify(
            message,
            expect_tag=tag,
            expect_label=received.label if tag is not None else None,
            require_components=[c.identifier() for c in required],
        )
    except HTTPMessageSignaturesException as exc:
        raise _library_error(exc) from None


def verify_request(
    received: ReceivedSignature,
    method: str,
    target_uri: str,
    headers: Mapping[str, str],
    body: bytes | BodyDigest,
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
    _verify(_request_view(message), received, required, public_key, now)


def _response_components(request: HttpMessage) -> tuple[Component, ...]:
    if _signature_member(request, LABEL):
        return (*RESPONSE_COMPONENTS, BOUND_RESPONSE_COMPONENT)
    return RESPONSE_COMPONENTS


def sign_response(
    status: int,
    body: bytes,
    request: HttpMessage,
    key: ec.EllipticCurvePrivateKey,
    keyid: str,
    created: int,
) -> dict[str, str]:
    """Headers that sign a federation response, bound to the request (and its signature, if it had one)."""
    headers: dict[str, str] = {}
    message = _Response(status, headers, _request_view(request))
    try:
        _signer(keyid, key).sign(
            message, key_id=keyid, created=_timestamp(created), label=LABEL, tag=TAG,
            covered_component_ids=[c.identifier() for c in _response_components(request)], body=body,
        )
    except HTTPMessageSignaturesException as exc:
        raise SignatureError(f"the response cannot be signed: {exc}") from None
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
    required = _response_components(request)
    _check_params(received, required, now, need_nonce=False)
    check_content_digest(HttpMessage(headers=headers).header("content-digest"), body)
    _verify(_Response(status, dict(headers), _request_view(request)), received, required, public_key, now)
