"""Peers played through httpx.MockTransport for a real node's PeerService, without serving any node.

The peers hold real CAs (:class:`tests.helpers.pki.StandaloneCA`) and answer with real signed documents and
RFC 9421 signatures; each answer can be made to fail in one way (another status, no signature, a document
signed by another key, a payload changed before signing). The node under test is a copy of one node
initialised once per process (:func:`node_copy`): a fresh node per test, at the cost of copying a folder
instead of generating a CA, which keeps these tests fast enough to run against every mutant of
``directory/peers.py``.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from inkless.app import Node, build_node, init_node
from inkless.clock import FixedClock
from inkless.config import load_settings
from inkless.directory.peers import PeerService
from inkless.federation import httpsig
from inkless.federation.client import DIRECTORY_PATH, NODE_PATH, certificate_header
from inkless.federation.documents import DIRECTORY_DOCUMENT, NODE_DOCUMENT, sign_document
from inkless.pki.ca import fingerprint
from tests.helpers.pki import StandaloneCA

NODE_EKU = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
OFFICE_EKU = [ExtendedKeyUsageOID.EMAIL_PROTECTION]
# What a peer answers instead of its document: (status, JSON detail, signed), or an exception to raise.
Answer = tuple[int, str, bool] | Exception
Payload = dict[str, Any]

# Real RSA keys for the peers' encryption certificates, generated once per process and handed out in turn.
_RSA_KEYS: list[rsa.RSAPrivateKey] = []
_rsa_next = 0


def encryption_key() -> rsa.RSAPrivateKey:
    """One of eight real RSA-2048 keys (a peer's office encryption keys need not differ for these tests)."""
    global _rsa_next
    if len(_RSA_KEYS) < 8:
        _RSA_KEYS.append(rsa.generate_private_key(65537, 2048))
    key = _RSA_KEYS[_rsa_next % len(_RSA_KEYS)]
    _rsa_next += 1
    return key


def _unchanged(document: Payload) -> Payload:
    return document


@dataclass
class PlayedPeer:
    """Node ``node_id`` at ``url`` (never dialled): honest, unless told to answer otherwise."""

    node_id: str
    offices: list[str]
    base_path: str = ""  # a node behind a reverse proxy under a path
    ca: StandaloneCA = field(init=False)
    answer: Answer | None = None
    answer_path: str | None = None  # the path ``answer`` applies to (all when None)
    clock: FixedClock = field(default_factory=lambda: FixedClock(datetime.now(UTC).replace(microsecond=0)))
    seen: list[httpx.Request] = field(default_factory=list)
    organisation: str | None = None  # in the directory, when set
    # Changes made to a document's payload before it is signed (by path), and to the JSON answered around it.
    payload_edit: dict[str, Callable[[Payload], Payload]] = field(default_factory=dict)
    body_edit: dict[str, Callable[[Payload], Payload]] = field(default_factory=dict)
    document_signer: tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None = None  # instead of the node's
    answer_signer: tuple[ec.EllipticCurvePrivateKey, x509.Certificate, str] | None = None  # key, cert, keyid

    def __post_init__(self) -> None:
        self.ca = StandaloneCA(f"{self.node_id} CA", now=self.clock.now())
        self.key, self.cert = self.node_certificate()
        self.listed = [self.office_entry(address) for address in self.offices]

    def node_certificate(self, ca: StandaloneCA | None = None) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        """A node certificate of this peer's CA (or of ``ca``)."""
        key, cert = (ca or self.ca).issue(NODE_EKU)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key, cert

    @property
    def url(self) -> str:
        return f"http://{self.node_id}.invalid:9{self.base_path}"

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.ca.cert.public_bytes(serialization.Encoding.DER))

    def office_entry(self, address: str, *, not_after: datetime | None = None,
                     signing_not_after: datetime | None = None) -> Payload:
        """A directory entry for ``address`` with certificates of this peer's CA."""
        _, enc = self.ca.issue(OFFICE_EKU, encipher=True, office=address, key=encryption_key(), not_after=not_after)
        _, sig = self.ca.issue(OFFICE_EKU, office=address, not_after=signing_not_after)
        return {
            "address": address,
            "name": f"office {address}",
            "fax_number": None,
            "encryption_certificate": base64.b64encode(enc.public_bytes(serialization.Encoding.DER)).decode(),
            "signing_certificate": base64.b64encode(sig.public_bytes(serialization.Encoding.DER)).decode(),
        }

    def document(self, path: str) -> Payload:
        """The JSON this peer answers at ``path`` (its node document or its directory)."""
        now = self.clock.now().isoformat()
        key, cert = self.document_signer or (self.key, self.cert)
        edit = self.payload_edit.get(path, _unchanged)
        if path == NODE_PATH:
            payload = edit({
                "type": NODE_DOCUMENT,
                "node_id": self.node_id,
                "organisation": "org",
                "base_url": self.url,
                "ca_certificate": self.ca.pem,
                "ca_fingerprint": self.fingerprint,
                "issued_at": now,
            })
            body = {k: v for k, v in payload.items() if k != "type"} | {"signed": sign_document(payload, key, cert)}
        else:
            assert path == DIRECTORY_PATH, path
            directory: Payload = {"type": DIRECTORY_DOCUMENT, "node_id": self.node_id, "issued_at": now,
                                  "offices": self.listed}
            if self.organisation is not None:
                directory["organisation"] = self.organisation
            body = {"node_id": self.node_id, "offices": len(self.listed),
                    "signed": sign_document(edit(directory), key, cert)}
        return self.body_edit.get(path, _unchanged)(body)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        path = request.url.path.removeprefix(self.base_path)
        answer = self.answer if self.answer_path in (None, path) else None
        if request.method != "GET":  # a node serves its documents to GET only
            answer = (405, f"{request.method} is not allowed here", True)
        if isinstance(answer, Exception):
            raise answer
        status, detail, signed = answer or (200, "", True)
        body = json.dumps(self.document(path) if status == 200 else {"detail": detail}).encode()
        headers = {"Content-Type": "application/json"}
        if signed:
            key, cert, keyid = self.answer_signer or (self.key, self.cert, self.node_id)
            message = httpsig.HttpMessage(dict(request.headers.items()), request.method, str(request.url))
            headers |= httpsig.sign_response(status, body, message, key, keyid, int(self.clock.now().timestamp()))
            headers[httpsig.NODE_CERTIFICATE_HEADER] = certificate_header(cert)
        return httpx.Response(status, content=body, headers=headers)


@dataclass
class PeerWorld:
    """A node, its PeerService on a fixed clock, and the peers it can reach (played, by node id)."""

    node: Node
    service: PeerService
    clock: FixedClock
    peers: dict[str, PlayedPeer]

    def pin(self, *node_ids: str) -> None:
        for node_id in node_ids:
            self.service.add(self.peers[node_id].url, self.peers[node_id].fingerprint)

    def play(self, peer: PlayedPeer) -> PlayedPeer:
        """Let ``peer`` be reached at its URL (replacing one of the same node id)."""
        peer.clock = self.clock
        self.peers[peer.node_id] = peer
        return peer


def peer_world(node: Node, peers: list[PlayedPeer]) -> PeerWorld:
    """A PeerService of ``node`` whose HTTP requests reach ``peers`` (host ``NODE_ID.invalid``) and nothing else."""
    clock = FixedClock(peers[0].clock.now() if peers else datetime.now(UTC).replace(microsecond=0))
    world = PeerWorld(node, None, clock, {})  # type: ignore[arg-type]
    for peer in peers:
        world.play(peer)

    def route(request: httpx.Request) -> httpx.Response:
        played = world.peers.get(request.url.host.removesuffix(".invalid"))
        if played is None:
            raise httpx.ConnectError(f"no route to {request.url.host}", request=request)
        return played.handle(request)

    settings = node.settings
    world.service = PeerService(node.db, settings.node_id, settings.base_url, settings.organisation, node.pki,
                                node.directory, node.audit, clock,
                                http=httpx.Client(transport=httpx.MockTransport(route)))
    return world


# --- one node initialised per process, copied for each test --------------------------------------------------

_TEMPLATE: Path | None = None
NODE_URL = "http://moj.invalid:9"


def _remove_if_owner(root: Path, owner: int) -> None:
    if os.getpid() == owner:
        shutil.rmtree(root, ignore_errors=True)


def _template() -> Path:
    global _TEMPLATE
    if _TEMPLATE is None:
        root = Path(tempfile.mkdtemp(prefix="inkless-node-template-"))
        owner = os.getpid()
        # Forked processes (a mutation run) share the copy; only the process that made it removes it.
        atexit.register(_remove_if_owner, root, owner)
        data = root / "node"
        settings = load_settings(data, env={}, overrides={
            "node_id": "moj", "organisation": "法務省", "database_url": f"sqlite:///{data / 'inkless.db'}",
            "base_url": NODE_URL,
        })
        node = init_node(settings)
        try:
            node.directory.add_office("civil-affairs", "民事局", fax_number="03-1234-5678")
            node.directory.set_kana("office", "civil-affairs", "ミンジキョク")
            node.directory.add_office("audit", "監査室")
        finally:
            node.close()
        _TEMPLATE = data
    return _TEMPLATE


def node_copy(folder: Path) -> Node:
    """A node ``moj`` (offices ``audit`` and ``civil-affairs``) on SQLite in ``folder``, copied from the template."""
    data = folder / "node"
    shutil.copytree(_template(), data)
    settings = load_settings(data, env={}, overrides={"database_url": f"sqlite:///{data / 'inkless.db'}"})
    return build_node(settings)


@contextlib.contextmanager
def copied_world(folder: Path, peers: list[PlayedPeer]) -> Iterator[PeerWorld]:
    """``peers`` played for a node copied into ``folder``; the client and the node are closed afterwards."""
    node = node_copy(folder)
    world = peer_world(node, peers)
    try:
        yield world
    finally:
        world.service.client.close()
        node.close()


def audit_entries(world: PeerWorld, action: str) -> list[Any]:
    """The node's audit entries of one action, oldest first."""
    with world.node.db.read() as conn:
        return world.node.audit.entries(conn, 0, 1000, action=action)
