"""The audit log service: ``record()`` appends an entry inside the caller's transaction."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from inkless.audit.model import AuditEvent
from inkless.clock import Clock
from inkless.db import tables as t


def canonical_entry(index: int, at: datetime, event: AuditEvent) -> bytes:
    """The exact bytes of an entry: canonical JSON (sorted keys, no spaces, UTF-8)."""
    body: dict[str, Any] = {
        "index": index,
        "at": at.isoformat(),
        "actor": event.actor,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "digests": dict(sorted(event.digests.items())),
        "details": event.details,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def leaf_hash(entry: bytes) -> bytes:
    """RFC 9162 §2.1.1: SHA-256(0x00 || entry)."""
    return hashlib.sha256(b"\x00" + entry).digest()


class AuditLog:
    """Append-only audit log."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def record(self, conn: Connection, event: AuditEvent, at: datetime | None = None) -> int:
        at = at or self._clock.now()
        state = conn.execute(
            select(t.audit_state.c.tree_size).where(t.audit_state.c.id == 1).with_for_update()
        ).scalar_one_or_none()
        if state is None:
            conn.execute(insert(t.audit_state).values(id=1, tree_size=0))
            state = 0
        index = int(state)
        entry = canonical_entry(index, at, event)
        conn.execute(
            insert(t.audit_entries).values(
                idx=index, recorded_at=at, actor=event.actor, action=event.action,
                object_type=event.object_type, object_id=event.object_id,
                entry=entry, leaf_hash=leaf_hash(entry),
            )
        )
        conn.execute(update(t.audit_state).where(t.audit_state.c.id == 1).values(tree_size=index + 1))
        return index
