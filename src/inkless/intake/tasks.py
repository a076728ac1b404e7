"""Background work of the intake window: forget codes (and the forms waiting on them) a day after they expired."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import delete

from inkless.app import Node
from inkless.db.tables_intake import intake_codes
from inkless.workers import PeriodicTask, register

log = logging.getLogger("inkless.intake")

# Long after the code's 10 minutes and the 受付証明's hour: a day.
KEEP_EXPIRED = timedelta(days=1)


def purge_expired_codes(node: Node) -> int:
    """Delete code rows that expired more than a day ago; the forms and files of submissions that were never
    confirmed are then named by nothing and the blob collector deletes them. Returns how many rows."""
    with node.db.begin() as conn:
        removed = conn.execute(delete(intake_codes).where(
            intake_codes.c.expires_at < node.clock.now() - KEEP_EXPIRED)).rowcount
    if removed:
        log.info("forgot %d expired intake codes", removed)
    return int(removed or 0)


PURGE_TASK = register(PeriodicTask(name="intake.purge-expired-codes", interval=lambda node: 3600.0,
                                   run=purge_expired_codes))
