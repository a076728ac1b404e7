"""The federation client keeps its connections to a peer open between requests (one pool per process)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from inkless.clock import FixedClock
from inkless.errors import PeerUnreachableError
from inkless.federation.client import FederationClient
from tests.helpers.nodes import refused_url
from tests.unit.test_peers_documents import ThrowawayCA

CLOCK = FixedClock(datetime(2026, 11, 30, 9, 0, tzinfo=UTC))


class _Peer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as uvicorn answers
    sources: ClassVar[list[int]] = []

    def do_GET(self) -> None:
        self.sources.append(self.client_address[1])
        body = b'{"detail": "ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def peer() -> Iterator[tuple[str, list[int]]]:
    sources: list[int] = []
    handler = type("Handler", (_Peer,), {"sources": sources})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", sources
    finally:
        server.shutdown()
        server.server_close()


def _client() -> FederationClient:
    key, cert = ThrowawayCA.create("moj").issue([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return FederationClient("moj", lambda: (key, cert), CLOCK)


def test_requests_to_a_peer_reuse_one_connection(peer: tuple[str, list[int]]) -> None:
    url, sources = peer
    client = _client()
    try:
        answers = [client.request("GET", f"{url}/federation/v1/node", peer="npa", ca=None) for _ in range(5)]
    finally:
        client.close()
    assert [a.status for a in answers] == [200] * 5
    assert len(sources) == 5 and len(set(sources)) == 1  # five requests, one TCP connection


def test_after_close_a_new_connection_is_opened(peer: tuple[str, list[int]]) -> None:
    url, sources = peer
    client = _client()
    client.request("GET", f"{url}/federation/v1/node", peer="npa", ca=None)
    client.close()
    client.request("GET", f"{url}/federation/v1/node", peer="npa", ca=None)
    client.close()
    assert len(sources) == 2 and sources[0] != sources[1]


def test_a_peer_that_refuses_is_unreachable_with_a_pool_in_use(peer: tuple[str, list[int]]) -> None:
    url, _ = peer
    client = _client()
    client.request("GET", f"{url}/federation/v1/node", peer="npa", ca=None)  # the pool holds a connection
    with pytest.raises(PeerUnreachableError, match="npa is unreachable"):
        client.request("GET", refused_url("/federation/v1/node"), peer="npa", ca=None)
    client.close()
