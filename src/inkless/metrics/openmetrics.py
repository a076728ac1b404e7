"""OpenMetrics for operators: ``/metrics`` with the Prometheus client library.

Every scrape reads the database (so every process of a node answers the same): counters from the
roll-ups (cheap, per month), queue depths by state from indexed columns, the delivery latency
histogram from running totals kept with each delivery, the audit log size and the age of its last
signed tree head, and each worker's last heartbeat. No figure carries personal data or content.

Served unauthenticated only on the separate ``metrics_listen`` address (for a Prometheus on the
same host or network), and on the main port only to an API token with the ``metrics`` scope.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy import Connection, delete, func, select

from inkless.db import tables as t
from inkless.db.tables_metrics import metrics_heartbeats, metrics_rollup
from inkless.errors import ConfigurationError
from inkless.metrics import rollup as r

if TYPE_CHECKING:
    from inkless.app import Node

# Further families from other features (the intake window): each yields Metrics.
EXTRA_FAMILIES: list[Callable[[Connection], Iterator[Metric]]] = []


def _totals(conn: Connection, prefix_filter: Any) -> dict[str, int]:
    c = metrics_rollup.c
    rows = conn.execute(select(c.metric, func.sum(c.value)).where(prefix_filter).group_by(c.metric))
    return {metric: int(value or 0) for metric, value in rows}


class NodeCollector(Collector):
    """Reads a node's figures on each scrape."""

    def __init__(self, node: Node) -> None:
        self._node = node

    def collect(self) -> Iterator[Metric]:
        from inkless.db.tables_delivery import outbox
        from inkless.db.tables_fax import fax_calls, fax_jobs
        from inkless.db.tables_mail import mail_outbox

        node = self._node
        now = node.clock.now()
        with node.db.read() as conn:
            c = metrics_rollup.c
            # Months sum to every event ever counted (weeks would count each event a second time).
            months = _totals(conn, c.period.like("____-__"))
            totals = _totals(conn, c.period == r.TOTAL)
            outbox_states: dict[str, int] = {
                state: int(n) for state, n in conn.execute(select(outbox.c.state, func.count())
                                                           .group_by(outbox.c.state))}
            job_states: dict[str, int] = {
                state: int(n) for state, n in conn.execute(select(fax_jobs.c.state, func.count())
                                                           .group_by(fax_jobs.c.state))}
            calls = conn.execute(select(fax_calls.c.direction, fax_calls.c.status, func.count(),
                                        func.coalesce(func.sum(fax_calls.c.pages), 0))
                                 .group_by(fax_calls.c.direction, fax_calls.c.status)).all()
            audit_size = conn.execute(select(t.audit_state.c.tree_size)).scalar() or 0
            head_at = conn.execute(select(func.max(t.audit_tree_heads.c.signed_at))).scalar()
            mail_states: dict[str, int] = {
                state: int(n) for state, n in conn.execute(select(mail_outbox.c.state, func.count())
                                                           .group_by(mail_outbox.c.state))}
            beats = conn.execute(select(metrics_heartbeats.c.worker, metrics_heartbeats.c.last_seen)).all()
            extra = [m for family in EXTRA_FAMILIES for m in family(conn)]

        messages = CounterMetricFamily("inkless_messages", "Messages sent and received by this node's offices",
                                       labels=["direction"])
        messages.add_metric(["out"], months.get(r.MESSAGES_OUT, 0))
        messages.add_metric(["in"], months.get(r.MESSAGES_IN, 0))
        yield messages
        deliveries = CounterMetricFamily("inkless_deliveries", "Outbox rows that reached a final state",
                                         labels=["result"])
        for state in ("delivered", "expired", "rejected", "fax"):
            deliveries.add_metric([state], int(outbox_states.get(state, 0)))
        yield deliveries
        depth = GaugeMetricFamily("inkless_outbox_depth", "Outbox rows waiting, by state", labels=["state"])
        for state in ("queued", "retrying"):
            depth.add_metric([state], int(outbox_states.get(state, 0)))
        yield depth
        buckets = [(_bound(b), totals.get(r.latency_metric(b), 0)) for b in r.LATENCY_BUCKETS]
        buckets.append(("+Inf", totals.get(r.LATENCY_COUNT, 0)))
        latency = HistogramMetricFamily("inkless_delivery_latency_seconds",
                                        "Time from sending a message to its verified receipt")
        latency.add_metric([], buckets, sum_value=totals.get(r.LATENCY_SUM_MS, 0) / 1000)
        yield latency
        fax_family = CounterMetricFamily("inkless_fax_calls", "Fax calls by direction and result",
                                         labels=["direction", "result"])
        pages = CounterMetricFamily("inkless_fax_pages", "Fax pages by direction and call result",
                                    labels=["direction", "result"])
        for direction, status, count, page_count in calls:
            fax_family.add_metric([direction.lower(), status], int(count))
            pages.add_metric([direction.lower(), status], int(page_count))
        yield fax_family
        yield pages
        jobs = GaugeMetricFamily("inkless_fax_jobs_waiting", "Outbound fax jobs not finished, by state",
                                 labels=["state"])
        for state in ("queued", "sending", "retrying"):
            jobs.add_metric([state], int(job_states.get(state, 0)))
        yield jobs
        seals = CounterMetricFamily("inkless_seals", "Seals applied: digital (routes) and recorded on paper",
                                    labels=["kind"])
        seals.add_metric(["digital"], months.get(r.SEALS_DIGITAL, 0))
        seals.add_metric(["paper"], months.get(r.PAPER_SEALED, 0))
        yield seals
        yield CounterMetricFamily("inkless_intake_submissions", "Submissions through the public intake window",
                                  value=months.get(r.INTAKE, 0))
        mail_depth = GaugeMetricFamily("inkless_mail_outbox_depth", "Mails waiting for the SMTP server, by state",
                                       labels=["state"])
        for state in ("queued", "retrying"):
            mail_depth.add_metric([state], mail_states.get(state, 0))
        yield mail_depth
        mails = CounterMetricFamily("inkless_mails", "Mails that reached a final state", labels=["result"])
        for state in ("sent", "failed", "expired"):
            mails.add_metric([state], mail_states.get(state, 0))
        yield mails
        yield GaugeMetricFamily("inkless_audit_log_entries", "Entries in the audit log", value=int(audit_size))
        age = GaugeMetricFamily("inkless_audit_signed_head_age_seconds",
                                "Seconds since the last signed audit tree head (NaN: none yet)",
                                value=(now - head_at).total_seconds() if head_at else float("nan"))
        yield age
        heartbeat = GaugeMetricFamily("inkless_worker_heartbeat_age_seconds",
                                      "Seconds since each worker process last reported", labels=["worker"])
        for worker, last_seen in beats:
            heartbeat.add_metric([worker], max(0.0, (now - last_seen).total_seconds()))
        yield heartbeat
        yield from extra


def _bound(value: float) -> str:
    return f"{value:g}" if value != int(value) else f"{int(value)}.0"


def registry_for(node: Node) -> CollectorRegistry:
    """A registry with the node's collector only (no process or platform collectors of the client)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(node))
    return registry


def exposition(node: Node) -> tuple[bytes, str]:
    """The OpenMetrics text and its content type."""
    from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST, generate_latest

    text: bytes = generate_latest(registry_for(node))  # type: ignore[no-untyped-call]
    return text, CONTENT_TYPE_LATEST


def parse_listen(text: str) -> tuple[str, int] | None:
    """``metrics_listen`` as (host, port); None when empty (off)."""
    text = text.strip()
    if not text:
        return None
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigurationError(f"metrics_listen = {text!r} must be HOST:PORT, e.g. 127.0.0.1:9464")
    return host, int(port)


def start_listener(node: Node) -> Any:
    """Serve /metrics unauthenticated on ``metrics_listen`` in a thread; returns the server (or None)."""
    from prometheus_client.exposition import start_http_server

    address = parse_listen(node.settings.metrics_listen)
    if address is None:
        return None
    server, _thread = start_http_server(address[1], addr=address[0], registry=registry_for(node))
    return server


def stop_listener(server: Any) -> None:
    """Stop the listener of :func:`start_listener` and close its socket."""
    server.shutdown()
    server.server_close()


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:128]


# A worker that has not beaten for this long (three missed beats of metrics.tasks) counts as gone.
HEARTBEAT_STALE_SECONDS = 45.0
# /healthz lists workers seen within this; older rows are processes that ended long ago.
HEARTBEAT_LISTED_SECONDS = 3600.0
# A worker row is deleted this long after its last beat: each process start adds a row (host:pid), and
# /metrics shows every row as a series, so ended processes must not pile up for ever.
HEARTBEAT_KEPT_SECONDS = 7 * 24 * 3600.0


def worker_heartbeats(node: Node) -> list[dict[str, object]]:
    """The workers seen within the last hour, newest first: name, seconds since the last beat, alive or not."""
    now = node.clock.now()
    since = now - timedelta(seconds=HEARTBEAT_LISTED_SECONDS)
    with node.db.read() as conn:
        rows = conn.execute(
            select(metrics_heartbeats.c.worker, metrics_heartbeats.c.last_seen)
            .where(metrics_heartbeats.c.last_seen >= since).order_by(metrics_heartbeats.c.last_seen.desc())
        ).all()
    beats = []
    for worker, last_seen in rows:
        age = max(0.0, (now - last_seen).total_seconds())
        beats.append({"worker": worker, "last_seen_seconds": round(age, 1), "alive": age <= HEARTBEAT_STALE_SECONDS})
    return beats


def heartbeat(node: Node, started_at: datetime, name: str | None = None) -> None:
    """Record that this worker process is alive (a periodic task)."""
    from sqlalchemy.dialects import postgresql, sqlite

    now = node.clock.now()
    with node.db.begin() as conn:
        stmt: Any = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(metrics_heartbeats)
        conn.execute(stmt.values(worker=name or worker_name(), started_at=started_at, last_seen=now)
                     .on_conflict_do_update(index_elements=[metrics_heartbeats.c.worker],
                                            set_={"last_seen": now}))
        conn.execute(delete(metrics_heartbeats)
                     .where(metrics_heartbeats.c.last_seen < now - timedelta(seconds=HEARTBEAT_KEPT_SECONDS)))
