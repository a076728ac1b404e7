"""Periodic task of the metrics: each worker process's heartbeat (shown by OpenMetrics)."""

from __future__ import annotations

from datetime import datetime

from inkless.app import Node
from inkless.workers import PeriodicTask, register

HEARTBEAT_SECONDS = 15.0
_started: dict[int, datetime] = {}


def _beat(node: Node) -> None:
    from inkless.metrics.openmetrics import heartbeat

    started = _started.setdefault(id(node), node.clock.now())
    heartbeat(node, started)


register(PeriodicTask("metrics-heartbeat", lambda _node: HEARTBEAT_SECONDS, _beat))
