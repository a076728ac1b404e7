"""The federation endpoint compares the Inkless-Message-Id header with the id inside the signed envelope."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from inkless.app import Node, init_node
from inkless.config import load_settings
from inkless.db.tables_delivery import messages
from inkless.delivery.service import NewDocument
from inkless.directory.peers import PeerService
from inkless.errors import DeliveryRejectedError
from inkless.web.app import create_app
from tests.conftest import BACKENDS
from tests.helpers.db import fresh_database
from tests.helpers.nodes import ThreadedServer, free_port


@dataclass
class Pair:
    moj: Node
    npa: Node


def _node(folder: Path, node_id: str, port: int, database_url: str) -> Node:
    return init_node(load_settings(folder, env={}, overrides={
        "node_id": node_id, "database_url": database_url, "base_url": f"http://127.0.0.1:{port}"}))


def _fingerprint(node: Node) -> str:
    with node.db.read() as conn:
        return node.pki.ca_certificate(conn).fingerprint


def _peers(node: Node) -> PeerService:
    assert isinstance(node.peers, PeerService)
    return node.peers


@pytest.fixture(params=BACKENDS)
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pair]:
    """moj and npa served over HTTP on loopback, each pinning the other; a clerk at moj."""
    backend = str(request.param)
    ports = free_port(), free_port()
    with fresh_database(backend, tmp_path / "moj") as moj_db, fresh_database(backend, tmp_path / "npa") as npa_db:
        moj = _node(tmp_path / "moj", "moj", ports[0], moj_db)
        npa = _node(tmp_path / "npa", "npa", ports[1], npa_db)
        moj.directory.add_office("civil-affairs", "民事局")
        moj.directory.add_user("tanaka", "civil-affairs", "clerk", 1, "田中 一郎")
        npa.directory.add_office("security", "警備局")
        try:
            with ThreadedServer(create_app(moj), ports[0]) as a, ThreadedServer(create_app(npa), ports[1]) as b:
                _peers(moj).add(b.url, _fingerprint(npa))
                _peers(npa).add(a.url, _fingerprint(moj))
                yield Pair(moj, npa)
        finally:
            moj.close()
            npa.close()


def _refusals(node: Node) -> list[dict[str, object]]:
    with node.db.read() as conn:
        return [e.details for e in node.audit.entries(conn, 0, 1000, action="message.refused")]


def test_a_header_naming_another_message_than_the_envelope_is_refused_with_409(pair: Pair) -> None:
    assert pair.moj.delivery is not None and pair.moj.transport is not None and pair.npa.delivery is not None
    signed_id = pair.moj.delivery.send("tanaka", "civil-affairs", ["security@npa"], [], "照会",
                                       [NewDocument("照会.pdf", b"%PDF-1.4 inquiry")])
    with pair.moj.db.read() as conn:
        digest = conn.execute(select(messages.c.envelope_sha256).where(messages.c.id == signed_id)).scalar_one()
    envelope = pair.moj.blobs.get(digest)
    other_id = str(uuid.uuid4())

    with pytest.raises(DeliveryRejectedError) as refused:
        pair.moj.transport.deliver("npa", "civil-affairs@moj", "security@npa", other_id, envelope)
    assert "(409)" in str(refused.value)
    assert f"the Inkless-Message-Id header says '{other_id}', the signed envelope says '{signed_id}'" \
        in refused.value.reason
    [entry] = _refusals(pair.npa)
    assert "Inkless-Message-Id" in str(entry["reason"])
    assert pair.npa.delivery.inbox("security", None) == []  # nothing stored

    # The same envelope under its own id is received; naming another id for it afterwards is still refused.
    receipt = pair.moj.transport.deliver("npa", "civil-affairs@moj", "security@npa", signed_id, envelope)
    assert receipt
    with pytest.raises(DeliveryRejectedError, match="409"):
        pair.moj.transport.deliver("npa", "civil-affairs@moj", "security@npa", other_id, envelope)
    assert [i.message_id for i in pair.npa.delivery.inbox("security", None)] == [signed_id]
    assert len(_refusals(pair.npa)) == 2
