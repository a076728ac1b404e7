"""Signed weekly aggregates from two nodes to a hub (SQLite and PostgreSQL): verified against each
node's pinned CA, idempotent per node and week, a corrected re-send replaces (audited), an older one
and a tampered or forged one are refused and change nothing; the hub's table and its late nodes."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from inkless.app import Node, init_node
from inkless.config import load_settings
from inkless.db import tables as t
from inkless.db.tables_federation import federation_peers
from inkless.directory.demo import create_demo
from inkless.federation.documents import sign_document
from inkless.metrics import aggregates
from inkless.metrics.demo import create_demo_procedures
from inkless.web.app import create_app
from tests.helpers.db import fresh_database
from tests.helpers.metrics_history import generate
from tests.helpers.nodes import refused_url
from tests.helpers.web import TestClient, browser_login

WEEK = "2026-W49"


def _node(backend: str, folder: Path, node_id: str, organisation: str) -> Iterator[Node]:
    with fresh_database(backend, folder) as url:
        settings = load_settings(folder / node_id, env={}, overrides={
            "node_id": node_id, "organisation": organisation, "database_url": url, "base_url": refused_url()})
        node = init_node(settings)
        try:
            create_demo(node.directory)
            yield node
        finally:
            node.close()


@pytest.fixture
def nodes(backend: str, tmp_path: Path) -> Iterator[tuple[Node, Node, Node]]:
    makers = [_node(backend, tmp_path / n, n, org) for n, org in
              (("moj", "法務省"), ("mhlw", "厚生労働省"), ("digital", "デジタル庁"))]
    a, b, hub = (next(m) for m in makers)
    try:
        # The hub pins both nodes, as 'inkless peer add URL FINGERPRINT' does after checking the fingerprint.
        for peer in (a, b):
            with peer.db.read() as conn:
                ca = peer.pki.ca_certificate(conn)
            with hub.db.begin() as conn:
                conn.execute(insert(federation_peers).values(
                    node_id=peer.node_id, url=refused_url(), ca_der=ca.der, fingerprint=ca.fingerprint,
                    added_at=hub.clock.now()))
        for peer in (a, b):
            assert peer.procedures is not None
            create_demo_procedures(peer.procedures)
            generate(peer.db)
        yield a, b, hub
    finally:
        for m in makers:
            next(m, None)


def _post(client: TestClient, jws: str) -> tuple[int, dict[str, object]]:
    response = client.post(aggregates.AGGREGATE_PATH, content=jws.encode(),
                           headers={"Content-Type": "application/jose"})
    return response.status_code, response.json()


def _audit(node: Node, action: str) -> list[str | None]:
    with node.db.read() as conn:
        return [r.object_id for r in conn.execute(select(t.audit_entries).where(t.audit_entries.c.action == action)
                                                  .order_by(t.audit_entries.c.idx))]


def test_two_nodes_to_a_hub(nodes: tuple[Node, Node, Node]) -> None:
    a, b, hub = nodes
    assert b.metrics is not None and a.metrics is not None
    b.metrics.record_paper("civil-affairs", None, date(2026, 12, 1), received=6, sealed=2, actor="tanaka")
    first = aggregates.build_aggregate(a, WEEK)
    with TestClient(create_app(hub), base_url=hub.settings.base_url) as client:
        assert _post(client, first) == (200, {"outcome": "stored", "node_id": "moj", "week": WEEK})
        assert _post(client, first)[1]["outcome"] == "unchanged"  # idempotent per node and week
        assert _post(client, aggregates.build_aggregate(b, WEEK))[1]["outcome"] == "stored"

        kept = aggregates.aggregate(hub, "moj", WEEK)
        assert kept.organisation == "法務省" and kept.counts["fax_in_pages"] == 31 and kept.counts["messages_out"] == 7
        assert kept.counts["procedures"] == 37 and kept.counts["fully_digital"] == 2
        assert kept.digital_share == 50.0 and kept.procedures_digital_percent == 5.4 and kept.counts["intake"] == 3
        other = aggregates.aggregate(hub, "mhlw", WEEK)
        assert other.counts["paper_received"] == 6 and other.digital_share == round(100 * 14 / 34, 1)

        # A corrected re-send (issued later) replaces the week's aggregate, audited with what it replaced.
        a.metrics.record_paper("civil-affairs", "MOJ-MIN-001", date(2026, 12, 2), received=0, sealed=4, actor="x")
        corrected = aggregates.build_aggregate(a, WEEK)
        assert _post(client, corrected)[1]["outcome"] == "replaced"
        assert aggregates.aggregate(hub, "moj", WEEK).counts["paper_sealed"] == 4
        assert _audit(hub, "metrics.aggregate_replaced") == ["moj/2026-W49"]
        # The earlier one cannot come back.
        status, answer = _post(client, first)
        assert status == 409 and "only a later (corrected) one replaces it" in str(answer["detail"])

        # Tampered: a count changed after signing. Forged: mhlw's key signing for moj. Neither is kept.
        head, body, sig = corrected.split(".")
        payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        payload["counts"]["fax_in_pages"] = 0
        forged_body = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).rstrip(b"=")
        status, answer = _post(client, f"{head}.{forged_body.decode()}.{sig}")
        assert status == 401 and "signature" in str(answer["detail"]).lower()
        assert b.peers is not None
        key, cert = b.peers.node_key()  # type: ignore[attr-defined]
        status, answer = _post(client, sign_document(payload, key, cert))
        assert status == 401 and "not issued by the pinned CA" in str(answer["detail"])
        # A node the hub has not pinned.
        assert hub.peers is not None
        own_key, own_cert = hub.peers.node_key()  # type: ignore[attr-defined]
        status, _ = _post(client, sign_document({**payload, "node_id": "stranger"}, own_key, own_cert))
        assert status == 403
        assert aggregates.aggregate(hub, "moj", WEEK).counts["fax_in_pages"] == 31
        assert _audit(hub, "metrics.aggregate_stored") == ["moj/2026-W49", "mhlw/2026-W49"]

        # The government-wide table: both nodes for W49, nobody yet for W50.
        table = aggregates.government_table(hub, WEEK)
        rows = {n["node_id"]: n for n in table["nodes"]}
        assert rows["moj"]["weeks"][WEEK]["fax_pages"] == 36 and rows["moj"]["weeks"][WEEK]["replaced"] == 1
        assert table["late"] == []
        assert aggregates.government_table(hub, "2026-W50")["late"] == ["mhlw", "moj"]
        session = browser_login(hub, "yamada")
        page = client.get(f"/dashboard/government?week={WEEK}",
                          headers={"Cookie": f"inkless_session={session.cookie}"})
        assert page.status_code == 200 and "政府全体の集計" in page.text and "法務省" in page.text
        assert "厚生労働省" in page.text and "訂正" in page.text
        clerk = browser_login(hub, "tanaka")
        assert client.get("/dashboard/government", headers={"Cookie": f"inkless_session={clerk.cookie}"}
                          ).status_code == 403
