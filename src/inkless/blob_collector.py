"""The blob garbage collector: deletes blobs that no record names, once they are older than a grace period.

A blob is written before the transaction that records it; when that transaction fails (disk full,
a crash, a refused input) the blob stays behind with nothing pointing at it. The grace period
(``blob_gc_grace_hours``) leaves every write in progress alone: a blob is only a candidate once it
has been on disk for longer than any transaction can take. Each run that deletes something leaves
one audit entry (``blob.collected``) with the count and the addresses.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from sqlalchemy import select

from inkless.app import Node
from inkless.audit.model import AuditEvent
from inkless.blobs import LocalBlobStore
from inkless.db.schema import blob_columns
from inkless.workers import PeriodicTask, register

log = logging.getLogger("inkless.blobs")

INTERVAL_SECONDS = 3600.0
# The audit entry lists at most this many addresses (the count is always exact).
AUDIT_LISTED = 100


@dataclass(frozen=True)
class Collection:
    """What one run of the collector removed."""

    blobs: tuple[str, ...]
    temporary_files: int


def referenced_blobs(node: Node) -> set[str]:
    """Every blob address a record of the node names."""
    names: set[str] = set()
    with node.db.read() as conn:
        for column in blob_columns():
            names.update(v for v in conn.execute(select(column).where(column.is_not(None)).distinct()).scalars())
    return names


def collect_orphan_blobs(node: Node, now: float | None = None) -> Collection:
    """Delete the blobs older than the grace period that no record names; audited when any go."""
    cutoff = (time.time() if now is None else now) - node.settings.blob_gc_grace_hours * 3600
    stale_tmp = node.blobs.remove_stale_temporary_files(cutoff) if isinstance(node.blobs, LocalBlobStore) else 0
    candidates = set(node.blobs.stored_before(cutoff))
    if not candidates:
        return Collection((), stale_tmp)
    # Read the references after listing the candidates: a record committed in between still protects its blob.
    orphans = tuple(d for d in sorted(candidates - referenced_blobs(node))
                    if node.blobs.delete_if_stored_before(d, cutoff))
    if orphans:
        with node.db.begin() as conn:
            node.audit.record(conn, AuditEvent(
                actor="system", action="blob.collected", object_type="blob_store", object_id=node.node_id,
                details={"count": len(orphans), "grace_hours": node.settings.blob_gc_grace_hours,
                         "blobs": list(orphans[:AUDIT_LISTED])}))
        log.info("blob collector: removed %d blob(s) that no record names", len(orphans))
    return Collection(orphans, stale_tmp)


register(PeriodicTask(name="blobs.collect", interval=lambda _node: INTERVAL_SECONDS, run=collect_orphan_blobs))
