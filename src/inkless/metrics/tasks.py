"""Periodic tasks of the metrics: each worker process's heartbeat (shown by OpenMetrics), and the weekly
aggregate sent to the chosen peers or hub once the week is over (see metrics.aggregate_sends)."""

from __future__ import annotations

from datetime import datetime

from inkless.app import Node
from inkless.workers import PeriodicTask, register

HEARTBEAT_SECONDS = 15.0
AGGREGATE_CHECK_SECONDS = 300.0
_started: dict[int, datetime] = {}


def _beat(node: Node) -> None:
    from inkless.metrics.openmetrics import heartbeat

    started = _started.setdefault(id(node), node.clock.now())
    heartbeat(node, started)


def _send_aggregates(node: Node) -> None:
    from inkless.metrics.aggregate_sends import send_due

    if node.peers is not None and node.metrics is not None:
        send_due(node)


register(PeriodicTask("metrics-heartbeat", lambda _node: HEARTBEAT_SECONDS, _beat))
register(PeriodicTask("metrics-aggregates", lambda _node: AGGREGATE_CHECK_SECONDS, _send_aggregates))
