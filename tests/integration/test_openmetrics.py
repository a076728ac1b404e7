"""/metrics scraped and parsed with prometheus-client's own OpenMetrics parser (SQLite and PostgreSQL):
values from generated history and a real delivery; only a metrics-scoped token on the main port; the
separate unauthenticated listener."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime

import httpx
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from inkless.app import Node
from inkless.delivery.service import NewDocument
from inkless.directory.demo import DemoSample
from inkless.errors import PolicyError, ValidationError
from inkless.metrics.demo import create_demo_procedures
from inkless.metrics.openmetrics import heartbeat, start_listener, stop_listener
from inkless.web.app import create_app
from tests.helpers.metrics_history import generate
from tests.helpers.nodes import free_port
from tests.helpers.route_docs import sample_pdf
from tests.helpers.web import TestClient, bearer


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_metrics_endpoint_values_and_access(node: Node, demo: DemoSample) -> None:
    assert node.procedures is not None and node.delivery is not None and node.tokens is not None
    create_demo_procedures(node.procedures)
    history = generate(node.db)
    node.delivery.send("tanaka", "civil-affairs", ["criminal-affairs@moj"], [], "照会",
                       [NewDocument("a.pdf", sample_pdf(1))], procedure_code="MOJ-MIN-001")
    assert node.delivery.deliver_due().delivered == 1
    heartbeat(node, datetime.now(UTC), name="worker-a")

    metrics_token = node.tokens.create("yamada", "secretariat", "prometheus", scope="metrics").secret
    with pytest.raises(PolicyError, match="only administrators may create a metrics token"):
        node.tokens.create("tanaka", "civil-affairs", "prometheus", scope="metrics")
    with pytest.raises(ValidationError, match="scope must be one of: metrics"):
        node.tokens.create("yamada", "secretariat", "other", scope="everything")

    with TestClient(create_app(node), base_url=node.settings.base_url) as client:
        assert client.get("/metrics").status_code == 401
        office_token = bearer(node, "yamada")
        assert client.get("/metrics", headers=office_token).status_code == 401
        # The metrics token opens nothing of the office API.
        assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {metrics_token}"}).status_code == 401
        response = client.get("/metrics", headers={"Authorization": f"Bearer {metrics_token}"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")
    s = _samples(response.text)
    assert s[("inkless_messages_total", (("direction", "out"),))] == history.total("messages_out") + 1 == 29
    assert s[("inkless_messages_total", (("direction", "in"),))] == history.total("messages_in") + 1
    assert s[("inkless_deliveries_total", (("result", "delivered"),))] == 1
    assert s[("inkless_outbox_depth", (("state", "queued"),))] == 0
    recv = (("direction", "recv"), ("result", "delivered"))
    assert s[("inkless_fax_calls_total", recv)] == history.total("fax_in") == 40
    assert s[("inkless_fax_pages_total", recv)] == history.total("fax_in_pages") == 124
    assert s[("inkless_fax_pages_total", (("direction", "send"), ("result", "done")))] == 20
    assert s[("inkless_seals_total", (("kind", "digital"),))] == history.total("seals_digital") == 16
    assert s[("inkless_intake_submissions_total", ())] == history.total("intake") == 12
    assert s[("inkless_mail_outbox_depth", (("state", "queued"),))] == 0
    # One delivery observed: count 1, in every bucket from its latency up.
    assert s[("inkless_delivery_latency_seconds_count", ())] == 1
    assert s[("inkless_delivery_latency_seconds_bucket", (("le", "+Inf"),))] == 1
    assert s[("inkless_delivery_latency_seconds_bucket", (("le", "86400.0"),))] == 1
    assert s[("inkless_audit_log_entries", ())] > 40
    age = s[("inkless_audit_signed_head_age_seconds", ())]
    assert math.isnan(age) or age >= 0
    assert 0 <= s[("inkless_worker_heartbeat_age_seconds", (("worker", "worker-a"),))] < 600


def test_separate_listener_is_unauthenticated_and_off_when_empty(node: Node, demo: DemoSample) -> None:
    assert start_listener(node) is None  # metrics_listen is empty by default
    port = free_port()
    node.settings = dataclasses.replace(node.settings, metrics_listen=f"127.0.0.1:{port}")
    server = start_listener(node)
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", headers={"Accept": "application/openmetrics-text"})
    finally:
        stop_listener(server)
    assert response.status_code == 200
    s = _samples(response.text)
    assert s[("inkless_messages_total", (("direction", "out"),))] == 0
    assert ("inkless_outbox_depth", (("state", "retrying"),)) in s
    node.settings = dataclasses.replace(node.settings, metrics_listen="localhost")
    with pytest.raises(Exception, match="metrics_listen = 'localhost' must be HOST:PORT"):
        start_listener(node)


def test_rows_of_workers_that_ended_long_ago_are_deleted(node: Node, demo: DemoSample) -> None:
    from datetime import timedelta

    from sqlalchemy import select

    from inkless.clock import FixedClock
    from inkless.db.tables_metrics import metrics_heartbeats
    from inkless.metrics.openmetrics import HEARTBEAT_KEPT_SECONDS

    now = datetime.now(UTC)
    kept = timedelta(seconds=HEARTBEAT_KEPT_SECONDS)
    saved = node.clock
    try:
        for name, when in (("ended-last-month", now - kept - timedelta(hours=1)),
                           ("ended-this-week", now - kept + timedelta(hours=1)), ("worker-a", now)):
            node.clock = FixedClock(when)
            heartbeat(node, when, name=name)
    finally:
        node.clock = saved
    with node.db.read() as conn:
        workers = set(conn.execute(select(metrics_heartbeats.c.worker)).scalars())
    assert workers == {"ended-this-week", "worker-a"}
