"""Background work of the audit log: sign a tree head whenever new entries exist, export it, witness peers'
heads, tally anonymous traffic."""

from __future__ import annotations

import logging
from pathlib import Path

from inkless.app import Node
from inkless.audit.log import TreeHead
from inkless.audit.traffic import AnonymousTraffic
from inkless.audit.witness import WitnessOutcome, export_head
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
    export_signed_head(node, head)
    return head


def sign_tree_head_when_due(node: Node) -> TreeHead | None:
    """The periodic task: sign a head when there is something new and the node's last head is at least
    ``tree_head_interval_seconds`` old.

    The schedule is the newest head's time in the database, read under the audit log's lock, so the
    worker processes of a node together sign one head per interval, however many of them run.
    """
    with node.db.begin() as conn:
        node.audit.lock(conn)
        latest = node.audit.latest_tree_head(conn)
        if latest is not None:
            if latest.tree_size >= node.audit.tree_size(conn):
                return None
            age = (node.clock.now() - latest.timestamp).total_seconds()
            if age < node.settings.tree_head_interval_seconds:
                return None
        head = node.audit.sign_tree_head(conn, node.pki)
    log.info("signed audit tree head: size %d, root %s", head.tree_size, head.root_hash.hex())
    export_signed_head(node, head)
    return head


def export_signed_head(node: Node, head: TreeHead) -> None:
    """Write the head to ``audit_head_export_dir`` (if set), one file per head, never overwritten."""
    folder = node.settings.audit_head_export_dir
    if folder == Path():
        return
    try:
        export_head(folder, head)
    except OSError as exc:
        # The head is signed and kept in the database; the copy is retried with the next head.
        log.error("could not export tree head %d to %s: %s", head.tree_size, folder, exc)


TREE_HEAD_TASK = register(
    PeriodicTask(
        name="audit.sign-tree-head",
        interval=lambda node: float(node.settings.tree_head_interval_seconds),
        run=sign_tree_head_when_due,
    )
)


def witness_peers(node: Node) -> list[WitnessOutcome]:
    """Check and cosign every pinned peer's latest tree head (see :mod:`inkless.audit.witness`)."""
    if node.witness is None or node.settings.audit_witness_interval_seconds == 0:
        return []
    outcomes = node.witness.witness_all()
    for o in outcomes:
        if o.outcome in ("refused", "unreachable"):
            log.warning("witnessing %s: %s: %s", o.peer, o.outcome, o.detail)
    return outcomes


WITNESS_TASK = register(
    PeriodicTask(
        name="audit.witness-peers",
        # Off (0): look again in an hour whether the setting changed; it only changes with a restart anyway.
        interval=lambda node: float(node.settings.audit_witness_interval_seconds or 3600),
        run=witness_peers,
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
