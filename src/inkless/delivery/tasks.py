"""Background delivery: every worker process runs outbox passes (claims are safe across processes)."""

from __future__ import annotations

from inkless.app import Node
from inkless.delivery.model import PassResult
from inkless.workers import PeriodicTask, register


def _run(node: Node) -> PassResult | None:
    if node.delivery is None:
        return None
    total = PassResult()
    # Keep going while passes find work, so a backlog drains without waiting for the next tick.
    for _ in range(50):
        result = node.delivery.deliver_due()
        total = PassResult(total.delivered + result.delivered, total.retrying + result.retrying,
                           total.expired + result.expired, total.rejected + result.rejected)
        if result.total == 0:
            break
    return total


OUTBOX_TASK = register(PeriodicTask(
    name="delivery.outbox",
    interval=lambda node: float(node.settings.delivery_poll_seconds),
    run=_run,
))
