"""The federation endpoints other nodes call, under ``/federation/v1``.

- ``GET /node``: who this node is and its CA certificate (how pinning starts; the
  request need not be signed, the answer is).
- ``GET /directory``: the signed office directory; only for pinned peers (signed request).
- ``POST /messages``: an envelope (body, CMS DER) for one of our offices; answers the receipt.
- ``POST /audit/cosignatures``: a witness returns its cosignature of one of our tree heads.
- ``GET /audit/witnessed/NODE``: the newest head of NODE that this node cosigned (pinned peers only).

Every answer, errors included, is signed with the node key (RFC 9421, see
:mod:`inkless.federation.httpsig`). These routes use neither sessions nor CSRF
tokens: a peer authenticates every request with its signature.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import AsyncIterator
from typing import Any, BinaryIO

import httpx
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from inkless.app import Node
from inkless.delivery.faxnote import FAX_FIRST_HEADER, parse_fax_first
from inkless.delivery.transport import split_address
from inkless.directory.peers import PeerService
from inkless.errors import (
    AuthenticationError,
    ConflictError,
    EnvelopeError,
    InklessError,
    MessageTooLargeError,
    ValidationError,
)
from inkless.federation import httpsig
from inkless.federation.client import (
    FEDERATION_PREFIX,
    MESSAGE_HEADERS,
    MESSAGE_ID_HEADER,
    RECEIPT_MEDIA_TYPE,
    RECIPIENT_HEADER,
    SENDER_HEADER,
    certificate_header,
)
from inkless.federation.httpsig import HttpMessage, SignatureError
from inkless.web.deps import client_address, get_node, get_services

log = logging.getLogger("inkless.federation")

router = APIRouter(prefix=FEDERATION_PREFIX, tags=["federation"])
# A directory request has no body; anything larger is not a federation client.
SMALL_BODY_LIMIT = 64 * 1024


class _TooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


def _peers(node: Node) -> PeerService:
    peers = node.peers
    if not isinstance(peers, PeerService):
        raise InklessError("federation is not configured on this node")
    return peers


def target_uri(node: Node, request: Request) -> str:
    """The URI the peer asked for, rebuilt from our public base_url (a proxy may have changed host and scheme)."""
    query = request.url.query
    return str(httpx.URL(node.settings.base_url.rstrip("/") + request.url.path + (f"?{query}" if query else "")))


def _answer(request: Request, node: Node, status: int, body: bytes, media_type: str) -> Response:
    """A response signed with the node key, bound to the request (and to its signature if it had one)."""
    peers = _peers(node)
    key, cert = peers.node_key()
    uri = target_uri(node, request)
    now = int(node.clock.now().timestamp())
    headers = dict(request.headers.items())
    try:
        signed = httpsig.sign_response(status, body, HttpMessage(headers, request.method, uri), key, node.node_id, now)
    except SignatureError:
        # The request's own Signature header is unparseable: answer bound to method and URI only.
        plain = {k: v for k, v in headers.items() if k.lower() != "signature"}
        signed = httpsig.sign_response(status, body, HttpMessage(plain, request.method, uri), key, node.node_id, now)
    signed[httpsig.NODE_CERTIFICATE_HEADER] = certificate_header(cert)
    return Response(body, status_code=status, media_type=media_type, headers=signed)


def _json(request: Request, node: Node, status: int, value: dict[str, Any]) -> Response:
    body = json.dumps(value, ensure_ascii=False).encode("utf-8")
    return _answer(request, node, status, body, "application/json")


def _error(request: Request, node: Node, status: int, detail: str) -> Response:
    return _json(request, node, status, {"detail": detail})


async def _strangers_wait(request: Request, node: Node) -> Response | None:
    """429 for an address whose unsigned or unpinned requests already reached this minute's limit."""
    wait = await run_in_threadpool(get_services(request).traffic.refused_too_often, "federation",
                                   client_address(request))
    if wait is None:
        return None
    refused = _error(request, node, 429, f"too many refused requests from this address; try again in {wait} seconds")
    refused.headers["Retry-After"] = str(wait)
    return refused


async def _limited_chunks(request: Request, limit: int) -> AsyncIterator[bytes]:
    """The request body as it streams in, refusing more than ``limit`` bytes without reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge(limit)
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge(limit)
        yield chunk


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, streamed, refusing more than ``limit`` bytes without reading them all."""
    return b"".join([chunk async for chunk in _limited_chunks(request, limit)])


async def _spool_body(request: Request, limit: int, spool: BinaryIO, digest: httpsig.BodyDigest) -> None:
    """The request body written to ``spool`` and hashed as it comes, refusing more than ``limit`` bytes:
    an envelope of any size is received in bounded memory."""
    async for chunk in _limited_chunks(request, limit):
        digest.update(chunk)
        spool.write(chunk)
    spool.flush()


async def _signed_by_peer(request: Request, node: Node, too_large: str) -> tuple[str, bytes] | Response:
    """The pinned peer that signed this small request and its body, or the signed refusal to answer with."""
    if (refused := await _strangers_wait(request, node)) is not None:
        return refused
    try:
        body = await _read_body(request, SMALL_BODY_LIMIT)
        peer = await run_in_threadpool(
            _peers(node).verify_request, request.method, target_uri(node, request), dict(request.headers.items()),
            body, (), client_address(request),
        )
    except _TooLarge:
        return _error(request, node, 413, too_large)
    except SignatureError as exc:
        return _error(request, node, 401, str(exc))
    return peer, body


@router.get("/node", summary="This node's identity and CA certificate, signed")
async def node_document(request: Request) -> Response:
    """Node id, base URL, CA certificate (PEM) and fingerprint; the ``signed`` JWS is what peers check."""
    node = get_node(request)
    document = await run_in_threadpool(_peers(node).node_document)
    return _json(request, node, 200, document)


@router.get("/directory", summary="The signed office directory (pinned peers only)")
async def directory_document(request: Request) -> Response:
    """Every office with its encryption and signing certificates, signed by the node; signed request required."""
    node = get_node(request)
    peers = _peers(node)
    signed = await _signed_by_peer(request, node, "a directory request has no body")
    if isinstance(signed, Response):
        return signed
    document = await run_in_threadpool(peers.directory_document)
    return _json(request, node, 200, document)


@router.post("/messages", summary="Deliver an envelope to one of this node's offices; answers the receipt")
async def receive_message(request: Request) -> Response:
    """Body: the CMS envelope (DER). Signed headers Inkless-Sender, Inkless-Recipient, Inkless-Message-Id."""
    node = get_node(request)
    peers = _peers(node)
    uri = target_uri(node, request)
    client = client_address(request)
    # A message at the documents' limit must pass: the envelope adds base64 and CMS to them.
    limit = node.settings.max_envelope_bytes
    if (refused := await _strangers_wait(request, node)) is not None:
        return refused
    # An envelope (ciphertext) is spooled to a file in the data folder, never held whole in memory.
    with tempfile.TemporaryFile(dir=node.settings.data_dir, prefix="incoming-") as spool:
        return await _receive_spooled(request, node, peers, uri, client, limit, spool)


async def _receive_spooled(request: Request, node: Node, peers: PeerService, uri: str, client: str | None,
                           limit: int, spool: BinaryIO) -> Response:
    headers = dict(request.headers.items())
    message = HttpMessage(headers=headers)
    body = httpsig.BodyDigest(message.header("content-digest"))
    try:
        await _spool_body(request, limit, spool, body)
    except _TooLarge:
        reason = (f"the envelope is larger than this node's limit of {limit} bytes "
                  f"(max_message_bytes {node.settings.max_message_bytes} with the envelope's overhead)")
        await run_in_threadpool(peers.refuse, reason, None, "POST", uri, client)
        return _error(request, node, 413, reason)
    # "Faxed first" (disaster fallback) is believed only when the peer's signature covers it.
    fax_header = message.header(FAX_FIRST_HEADER)
    covered = MESSAGE_HEADERS + ((FAX_FIRST_HEADER,) if fax_header is not None else ())
    try:
        peer = await run_in_threadpool(peers.verify_request, "POST", uri, headers, body, covered, client)
    except SignatureError as exc:
        return _error(request, node, 401, str(exc))
    sender = message.header(SENDER_HEADER) or ""
    recipient = message.header(RECIPIENT_HEADER) or ""
    message_id = message.header(MESSAGE_ID_HEADER) or ""
    try:
        _code, sender_node = split_address(sender)
        _code, recipient_node = split_address(recipient)
        if sender_node != peer:
            # A node speaks only for its own offices.
            raise ValidationError(f"node {peer} may not send for {sender}: the sender must be an office of {peer}")
        if recipient_node != node.node_id:
            raise ValidationError(f"{recipient} is not an office of this node ({node.node_id})")
        if not message_id or len(message_id) > 128:
            raise ValidationError("the Inkless-Message-Id header is missing or too long")
        fax_first = parse_fax_first(fax_header) if fax_header is not None else None
    except ValidationError as exc:
        await run_in_threadpool(peers.refuse, str(exc), peer, "POST", uri, client)
        return _error(request, node, 422, str(exc))
    delivery = node.delivery
    if delivery is None:
        return _error(request, node, 503, "delivery is not available on this node")
    try:
        # The signed header names the message: it must be the id inside the signed envelope (409 otherwise).
        # The spool was hashed as it was written (for the Content-Digest): the store need not read it again.
        sha256 = body.digest("sha-256")
        assert sha256 is not None  # BodyDigest always keeps SHA-256
        receipt = await run_in_threadpool(delivery.receive, spool, sender, recipient, fax_first, message_id,
                                          sha256=sha256.hex())
    except MessageTooLargeError as exc:
        return _error(request, node, 413, str(exc))
    except EnvelopeError as exc:
        return _error(request, node, 422, str(exc))
    except ConflictError as exc:
        return _error(request, node, 409, str(exc))
    except InklessError as exc:
        status = exc.http_status
        if status >= 500:
            log.error("receiving %s from %s failed: %s", message_id, peer, exc)
            return _error(request, node, status, "the node could not store the message; try again later")
        return _error(request, node, status, str(exc))
    return _answer(request, node, 200, receipt, RECEIPT_MEDIA_TYPE)


@router.post("/audit/cosignatures", summary="A pinned peer returns its cosignature of one of this node's tree heads")
async def receive_cosignature(request: Request) -> Response:
    """Body: the cosignature (JSON, see docs/audit.md); signed request by the witness. Answers 201."""
    node = get_node(request)
    signed = await _signed_by_peer(request, node, f"a cosignature is at most {SMALL_BODY_LIMIT} bytes")
    if isinstance(signed, Response):
        return signed
    witness_id, body = signed
    if node.witness is None:
        return _error(request, node, 503, "witnessing is not available on this node")
    try:
        document = json.loads(body)
        cosignature = await run_in_threadpool(node.witness.accept_cosignature, witness_id, document)
    except (ValueError, UnicodeDecodeError):
        return _error(request, node, 422, "the cosignature is not JSON")
    except ValidationError as exc:
        return _error(request, node, 422, str(exc))
    except AuthenticationError as exc:
        return _error(request, node, 422, str(exc))
    except ConflictError as exc:
        return _error(request, node, 409, str(exc))
    return _json(request, node, 201, {"witness": witness_id, "tree_size": cosignature.tree_size})


@router.get("/audit/witnessed/{node_id}", summary="The newest tree head of a node that this node cosigned")
async def witnessed_head(request: Request, node_id: str) -> Response:
    """Pinned peers only (signed request): lets a node compare its log with what its witnesses hold."""
    node = get_node(request)
    signed = await _signed_by_peer(request, node, "this request has no body")
    if isinstance(signed, Response):
        return signed
    if node.witness is None:
        return _error(request, node, 503, "witnessing is not available on this node")
    cosignature = await run_in_threadpool(node.witness.newest_witnessed, node_id[:64])
    if cosignature is None:
        return _error(request, node, 404, f"this node has witnessed no tree head of {node_id[:64]!r}")
    return _json(request, node, 200, cosignature.to_json())
