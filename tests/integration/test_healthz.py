"""/healthz as a load balancer reads it: the database reachable or not (503), the workers' heartbeats."""

from __future__ import annotations

import warnings
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.engine import make_url

from inkless.app import Node, init_node
from inkless.config import load_settings
from inkless.db.tables_metrics import metrics_heartbeats
from inkless.directory.demo import DEMO_NODE_ID
from inkless.metrics.openmetrics import heartbeat
from inkless.web.app import create_app
from tests.helpers.db import fresh_database
from tests.helpers.tcp_relay import TcpRelay

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from fastapi.testclient import TestClient


def test_healthz_lists_the_workers_heartbeats(node: Node) -> None:
    heartbeat(node, node.clock.now(), name="host-a:101")
    heartbeat(node, node.clock.now(), name="host-b:202")
    with node.db.begin() as conn:  # host-b was killed two minutes ago
        conn.execute(
            update(metrics_heartbeats)
            .where(metrics_heartbeats.c.worker == "host-b:202")
            .values(last_seen=node.clock.now() - timedelta(minutes=2))
        )
    with TestClient(create_app(node)) as client:
        health = client.get("/healthz")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok" and body["database_reachable"] is True
    assert body["workers_alive"] == 1
    assert [(w["worker"], w["alive"]) for w in body["workers"]] == [("host-a:101", True), ("host-b:202", False)]
    assert body["blobs"] == ("database" if node.settings.backend == "postgresql" else "files")


@pytest.mark.postgres
def test_healthz_answers_503_while_the_database_is_unreachable_and_200_once_it_is_back(tmp_path: Path) -> None:
    with fresh_database("postgresql", tmp_path / "node") as url:
        parsed = make_url(url)
        relay = TcpRelay((parsed.host or "127.0.0.1", parsed.port or 5432))
        through = parsed.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False)
        node = init_node(
            load_settings(tmp_path / "node", env={}, overrides={"node_id": DEMO_NODE_ID, "database_url": through})
        )
        try:
            with TestClient(create_app(node)) as client:
                assert client.get("/healthz").status_code == 200
                relay.cut()
                down = client.get("/healthz")
                assert down.status_code == 503
                assert down.json()["status"] == "unavailable" and down.json()["database_reachable"] is False
                relay.restore()
                assert client.get("/healthz").status_code == 200
        finally:
            relay.cut()
            node.close()
