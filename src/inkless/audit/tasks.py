"""Background work of the audit log: sign a tree head whenever new entries exist; tally anonymous traffic."""

from __future__ import annotations

import logging

from inkless.app import Node
from inkless.audit.log import TreeHead
from inkless.audit.traffic import AnonymousTraffic
from inkless.workers import PeriodicTask, register

log = logging.getLogger("inkless.audit")


def sign_tree_head_if_new(node: Node) -> TreeHead | None:
    """Sign a head for the current log size unless the latest head already covers it."""
    with node.db.begin() as conn:
        latest = node.audit.latest_tree_head(conn)
        if latest is not None and latest.tree_size >= node.audit.tree_size(conn):
            return None
        head = node.audit.sign_tree_head(conn, node.pki)
    log.info("signed audit tree head: size %d, root %s", head.tree_size, head.root_hash.hex())
    return head


TREE_HEAD_TASK = register(
    PeriodicTask(
        name="audit.sign-tree-head",
        interval=lambda node: float(node.settings.tree_head_interval_seconds),
        run=sign_tree_head_if_new,
    )
)


def tally_anonymous_traffic(node: Node) -> int:
    """Fold finished periods of anonymous traffic into one audit entry per endpoint each."""
    settings = node.settings
    traffic = AnonymousTraffic(
        node.db, node.clock, node.audit, settings.public_requests_per_minute, settings.audit_tally_seconds
    )
    written = traffic.flush()
    if written:
        log.info("audited %d tallies of anonymous traffic", written)
    return written


TALLY_TASK = register(
    PeriodicTask(
        name="audit.tally-anonymous-traffic",
        interval=lambda node: float(min(60, node.settings.audit_tally_seconds)),
        run=tally_anonymous_traffic,
    )
)
