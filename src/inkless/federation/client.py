"""Signed HTTP between nodes: the federation paths and headers, and the client.

:class:`FederationClient` signs every request with the node key (RFC 9421) and
checks the signature of every answer against the peer's pinned CA. It is used by
the peer directory (pinning, directories, probes, witnessing) and by the envelope
transport (:mod:`inkless.delivery.transport_http`).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from inkless.clock import Clock
from inkless.errors import PeerUnreachableError
from inkless.federation import httpsig
from inkless.federation.documents import check_node_certificate
from inkless.federation.httpsig import HttpMessage, SignatureError
from inkless.streams import StoredBody

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("inkless.federation")

FEDERATION_PREFIX = "/federation/v1"
NODE_PATH = FEDERATION_PREFIX + "/node"
DIRECTORY_PATH = FEDERATION_PREFIX + "/directory"
MESSAGES_PATH = FEDERATION_PREFIX + "/messages"
SENDER_HEADER = "Inkless-Sender"
RECIPIENT_HEADER = "Inkless-Recipient"
MESSAGE_ID_HEADER = "Inkless-Message-Id"
MESSAGE_HEADERS = (SENDER_HEADER, RECIPIENT_HEADER, MESSAGE_ID_HEADER)
ENVELOPE_MEDIA_TYPE = "application/pkcs7-mime"
RECEIPT_MEDIA_TYPE = "application/pkcs7-signature"
# Answers that mean "not now" rather than "never": the outbox keeps trying.
RETRYABLE_STATUSES = frozenset({401, 408, 425, 429})
# httpx.Timeout(30.0, connect=5.0, write=120.0). httpx itself is imported when the first request is made,
# not when a node is opened: most commands never talk to a peer.
DEFAULT_TIMEOUT = {"timeout": 30.0, "connect": 5.0, "write": 120.0}

NodeSigner = Callable[[], tuple[ec.EllipticCurvePrivateKey, x509.Certificate]]


def certificate_header(certificate: x509.Certificate) -> str:
    """The value of the Inkless-Node-Certificate header: the base64 DER of the node certificate."""
    return base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode("ascii")


def read_certificate_header(value: str | None) -> x509.Certificate:
    """Parse an Inkless-Node-Certificate header; SignatureError if absent or not a certificate."""
    if not value:
        raise SignatureError("no Inkless-Node-Certificate header: the signer's certificate is needed")
    try:
        return x509.load_der_x509_certificate(base64.b64decode(value, validate=True))
    except (ValueError, x509.InvalidVersion):
        raise SignatureError("the Inkless-Node-Certificate header is not a base64 DER certificate") from None


@dataclass(frozen=True)
class FederationAnswer:
    """A peer's answer; ``verified`` says whether its signature checked out against the pinned CA."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    verified: bool
    signature_problem: str | None
    signer_certificate: x509.Certificate | None
    signer: str | None = None

    def detail(self) -> str:
        """The reason a peer gave in a JSON error answer, or a short description."""
        try:
            value = json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return f"HTTP {self.status}"
        if isinstance(value, dict) and isinstance(value.get("detail"), str):
            return str(value["detail"])
        return f"HTTP {self.status}"


def _close_pooled(pooled: dict[int, httpx.Client]) -> None:
    client = pooled.pop(os.getpid(), None)
    pooled.clear()
    if client is not None:
        client.close()


class FederationClient:
    """Signed HTTP requests from this node to peer nodes."""

    def __init__(
        self,
        node_id: str,
        signer: NodeSigner,
        clock: Clock,
        http: httpx.Client | None = None,
        timeout: httpx.Timeout | None = None,
    ) -> None:
        self._node_id = node_id
        self._signer = signer
        self._clock = clock
        self._http = http
        self._timeout = timeout
        # One pooled client per process (keep-alive, the TLS context built once), made on first use: a
        # process forked after this object was built (a worker) must not share the parent's sockets.
        # Its connections are closed with close(), or when this object is collected.
        self._pooled: dict[int, httpx.Client] = {}
        self._lock = threading.Lock()
        weakref.finalize(self, _close_pooled, self._pooled)

    @contextmanager
    def _client(self) -> Iterator[httpx.Client]:
        if self._http is not None:
            yield self._http
            return
        yield self._pool()

    def _pool(self) -> httpx.Client:
        pid = os.getpid()
        with self._lock:
            client = self._pooled.get(pid)
            if client is None:
                import httpx

                self._pooled.clear()  # a parent's client: its sockets are the parent's to close
                # No redirects: a signature covers one target URI, and a redirect would change it.
                client = httpx.Client(
                    timeout=self._timeout or httpx.Timeout(**DEFAULT_TIMEOUT), follow_redirects=False,
                    trust_env=False,
                    limits=httpx.Limits(max_connections=64, max_keepalive_connections=16, keepalive_expiry=30.0),
                )
                self._pooled[pid] = client
            return client

    def close(self) -> None:
        """Close the pooled connections of this process (a new request opens them again)."""
        with self._lock:
            _close_pooled(self._pooled)

    def request(
        self,
        method: str,
        url: str,
        *,
        peer: str,
        ca: x509.Certificate | None,
        body: bytes | StoredBody = b"",
        covered: Mapping[str, str] | None = None,
        content_type: str | None = None,
        sign: bool = True,
    ) -> FederationAnswer:
        """Send one request; network failures raise PeerUnreachableError, every answer is returned.

        The answer's signature is checked against ``ca`` (the peer's pinned CA); with
        ``ca=None`` (pinning has not happened yet) the caller checks it. A :class:`StoredBody` is sent
        in chunks as it is read, with its length and digest known ahead.
        """
        headers: dict[str, str] = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        with self._client() as client:
            return self._exchange(client, method, url, peer, ca, body, headers, covered, sign)

    def _exchange(
        self,
        client: httpx.Client,
        method: str,
        url: str,
        peer: str,
        ca: x509.Certificate | None,
        body: bytes | StoredBody,
        headers: dict[str, str],
        covered: Mapping[str, str] | None,
        sign: bool,
    ) -> FederationAnswer:
        import httpx

        if isinstance(body, StoredBody):
            headers["Content-Length"] = str(body.size)
            request = client.build_request(method, url, content=body.chunks(), headers=headers)
            held, sha256 = b"", bytes.fromhex(body.sha256)
        else:
            request = client.build_request(method, url, content=body, headers=headers)
            held, sha256 = body, None
        target_uri = str(request.url)
        if sign:
            key, own = self._signer()
            signed = httpsig.sign_request(
                method, target_uri, held, key, self._node_id, int(self._clock.now().timestamp()), covered=covered,
                body_sha256=sha256,
            )
            signed[httpsig.NODE_CERTIFICATE_HEADER] = certificate_header(own)
            request.headers.update(signed)
        elif covered:
            request.headers.update(covered)
        try:
            response = client.send(request)
            content = response.read()
        except httpx.TimeoutException as exc:
            raise PeerUnreachableError(f"{peer} did not answer in time ({type(exc).__name__} on {target_uri})") from exc
        except httpx.HTTPError as exc:
            raise PeerUnreachableError(f"{peer} is unreachable: {exc or type(exc).__name__} ({target_uri})") from exc
        answer_headers = dict(response.headers.items())
        req_message = HttpMessage(headers=dict(request.headers.items()), method=method, target_uri=target_uri)
        verified = False
        problem: str | None = None
        signer_cert: x509.Certificate | None = None
        signer: str | None = None
        try:
            signer, signer_cert = self.check_answer(
                response.status_code, answer_headers, content, req_message, peer, ca
            )
            verified = ca is not None
        except SignatureError as exc:
            problem = str(exc)
        return FederationAnswer(response.status_code, answer_headers, content, verified, problem, signer_cert, signer)

    def check_answer(
        self,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        request: HttpMessage,
        peer: str,
        ca: x509.Certificate | None,
    ) -> tuple[str, x509.Certificate]:
        """Verify a response signature by ``peer``'s node certificate under ``ca``; returns keyid and certificate.

        Without ``ca`` (pinning in progress) any signer is accepted here and the caller checks who it was.
        """
        received = httpsig.parse_signature(headers)
        if ca is not None and received.params.keyid != peer:
            raise SignatureError(f"the answer is signed by {received.params.keyid!r}, not by {peer!r}")
        cert = read_certificate_header(HttpMessage(headers=headers).header(httpsig.NODE_CERTIFICATE_HEADER))
        if ca is not None:
            check_node_certificate(cert, ca, self._clock.now())
        public_key = cert.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise SignatureError("the answer's signer key is not an ECDSA key")
        httpsig.verify_response(
            received, status, headers, body, request, public_key, int(self._clock.now().timestamp())
        )
        return str(received.params.keyid), cert
