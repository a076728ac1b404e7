"""The weekly aggregate goes to the hub by itself (SQLite and PostgreSQL): once the week is over the worker's task
signs it and sends it to every target, once per target and week; a week whose counts changed later goes again
(the hub replaces it); a failure is kept with its reason and retried after a pause; the command shows it all."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert
from typer.testing import CliRunner

from inkless.app import Node, init_node
from inkless.cli.main import app as cli
from inkless.clock import FixedClock
from inkless.config import load_settings
from inkless.db.tables_federation import federation_peers
from inkless.directory.demo import create_demo
from inkless.metrics import aggregates
from inkless.metrics import rollup as r
from inkless.metrics.aggregate_sends import last_week, send_due, send_now, sends
from inkless.metrics.demo import create_demo_procedures
from inkless.metrics.periods import week_monday
from inkless.web.app import create_app
from tests.helpers.db import fresh_database
from tests.helpers.metrics_history import Writer, event_times
from tests.helpers.nodes import refused_url
from tests.helpers.web import TestClient

HUB_URL = "http://hub.invalid"


def _node(backend: str, folder: Path, node_id: str, organisation: str, clock: FixedClock) -> Iterator[Node]:
    with fresh_database(backend, folder) as url:
        settings = load_settings(folder / node_id, env={}, overrides={
            "node_id": node_id, "organisation": organisation, "database_url": url, "base_url": refused_url()})
        node = init_node(settings, clock)
        try:
            create_demo(node.directory)
            yield node
        finally:
            node.close()


def _pin(node: Node, peer: Node, url: str) -> None:
    """What 'inkless peer add URL FINGERPRINT' leaves behind once the fingerprint was checked."""
    with peer.db.read() as conn:
        ca = peer.pki.ca_certificate(conn)
    with node.db.begin() as conn:
        conn.execute(insert(federation_peers).values(node_id=peer.node_id, url=url, ca_der=ca.der,
                                                     fingerprint=ca.fingerprint, added_at=node.clock.now()))


@pytest.fixture
def pair(backend: str, tmp_path: Path) -> Iterator[tuple[Node, Node, FixedClock]]:
    clock = FixedClock(datetime.now(UTC) + timedelta(minutes=1))
    makers = [_node(backend, tmp_path / n, n, org, clock) for n, org in (("moj", "法務省"), ("digital", "デジタル庁"))]
    sender, hub = (next(m) for m in makers)
    try:
        _pin(hub, sender, refused_url())
        _pin(sender, hub, HUB_URL)
        assert sender.procedures is not None
        create_demo_procedures(sender.procedures)
        aggregates.add_target(sender, "digital", "yamada")
        yield sender, hub, clock
    finally:
        for m in makers:
            next(m, None)


def test_the_worker_sends_each_week_once_corrections_again_and_retries_failures(
        pair: tuple[Node, Node, FixedClock]) -> None:
    sender, hub, clock = pair
    assert sender.metrics is not None
    week = last_week(clock.now())
    with sender.db.begin() as conn:
        writer = Writer(conn)
        for at in event_times(week, 3):
            writer.message_out(at, "civil-affairs", "MOJ-MIN-001")
        for at in event_times(week, 2):
            writer.fax("RECV", at, "civil-affairs", "MOJ-MIN-006", 4, "03-5555-0001")
    posted: list[str] = []
    with TestClient(create_app(hub), base_url=hub.settings.base_url) as client:

        def to_hub(url: str, body: bytes) -> tuple[int, str]:
            assert url == HUB_URL + aggregates.AGGREGATE_PATH
            posted.append(url)
            response = client.post(aggregates.AGGREGATE_PATH, content=body,
                                   headers={"Content-Type": "application/jose"})
            return response.status_code, response.text

        # Once the week is over, the task sends it: the hub verifies and keeps it.
        assert send_due(sender, to_hub) == {("digital", week): "stored"}
        kept = aggregates.aggregate(hub, "moj", week)
        assert (kept.counts[r.MESSAGES_OUT], kept.counts[r.FAX_IN], kept.counts[r.FAX_IN_PAGES]) == (3, 2, 8)
        assert kept.organisation == "法務省" and kept.replaced == 0
        # Idempotent per node and week: the next runs (and another process's) send nothing.
        clock.advance(minutes=10)
        assert send_due(sender, to_hub) == {} and len(posted) == 1
        [status] = sends(sender)
        assert (status.target, status.week, status.state, status.attempts, status.last_result) == (
            "digital", week, "sent", 1, "stored")

        # Paper recorded afterwards for that week: the corrected aggregate replaces the earlier one (audited).
        sender.metrics.record_paper("civil-affairs", "MOJ-MIN-001", week_monday(week) + timedelta(days=1),
                                    received=2, sealed=1, actor="tanaka")
        assert send_due(sender, to_hub) == {("digital", week): "replaced"}
        kept = aggregates.aggregate(hub, "moj", week)
        assert (kept.counts[r.PAPER_RECEIVED], kept.counts[r.PAPER_SEALED], kept.replaced) == (2, 1, 1)
        assert send_due(sender, to_hub) == {}

        # The next week is over; the hub is down: the failure is kept with its reason and waits its pause.
        clock.advance(days=7)
        following = last_week(clock.now())
        assert following != week
        assert send_due(sender, lambda url, body: (503, "maintenance")) == {
            ("digital", following): "error 503: maintenance"}
        failed = {x.week: x for x in sends(sender)}[following]
        assert (failed.state, failed.attempts) == ("failed", 1)
        assert failed.next_attempt_at is not None and failed.next_attempt_at > clock.now()
        assert send_due(sender, to_hub) == {}  # not before the pause is over
        clock.advance(minutes=6)
        assert send_due(sender, to_hub) == {("digital", following): "stored"}
        assert aggregates.aggregate(hub, "moj", following).counts[r.MESSAGES_OUT] == 0
        assert {x.week: x.state for x in sends(sender)} == {week: "sent", following: "sent"}

        # By hand: the week again, now (a re-send the hub records as a replacement).
        assert send_now(sender, week, to_hub) == {"digital": "replaced"}

    # The command shows what went where; the task is one of the workers' tasks.
    runner = CliRunner(env={"INKLESS_DATABASE_URL": sender.settings.database_url, "INKLESS_NODE_ID": "moj"})
    shown = runner.invoke(cli, ["metrics", "aggregate", "status", "--json", "--data", str(sender.settings.data_dir)])
    assert shown.exit_code == 0, shown.output
    rows = {(x["target"], x["week"]): x for x in json.loads(shown.output)}
    assert rows[("digital", following)]["attempts"] == 2 and rows[("digital", week)]["state"] == "sent"
    from inkless.workers import TASKS, _load_tasks

    _load_tasks()
    assert "metrics-aggregates" in {t.name for t in TASKS}


def test_a_node_without_targets_sends_nothing(pair: tuple[Node, Node, FixedClock]) -> None:
    sender, _hub, _clock = pair
    aggregates.remove_target(sender, "digital", "yamada")

    def never(url: str, body: bytes) -> tuple[int, str]:
        raise AssertionError("nothing may be sent")

    assert send_due(sender, never) == {} and sends(sender) == []
