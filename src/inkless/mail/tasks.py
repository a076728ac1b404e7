"""Background mail: every worker process sends due mails from the outbox (claims are safe across processes)."""

from __future__ import annotations

from inkless.app import Node
from inkless.mail.outbox import MailPass
from inkless.workers import PeriodicTask, register


def _run(node: Node) -> MailPass | None:
    if node.mail is None:
        return None
    total = MailPass()
    # Keep going while passes find work, so a backlog drains without waiting for the next tick.
    for _ in range(50):
        result = node.mail.deliver_due()
        total += result
        if result.total == 0:
            break
    return total


MAIL_TASK = register(PeriodicTask(
    name="mail.outbox",
    interval=lambda node: float(node.settings.mail_poll_seconds),
    run=_run,
))
