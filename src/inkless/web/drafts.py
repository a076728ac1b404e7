"""Uploaded files kept across a form that comes back with an error.

A refused form (a mistyped address, a missing approver, a fax number to confirm) shows the files it
was sent with as already attached: they are kept server-side for ``DRAFT_MINUTES`` under a random
token that the form carries in a hidden field, bound to the user who uploaded them. The files live in
the node's blob store (encrypted at rest like every document); an expired draft's rows go at the next
draft written, and its blobs with the blob collector's next run.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, insert, select

from inkless.app import Node
from inkless.blobs import BlobStore
from inkless.clock import Clock
from inkless.db.engine import Database
from inkless.db.tables_drafts import form_draft_files, form_drafts
from inkless.workers import PeriodicTask, register

DRAFT_MINUTES = 60
EXPIRE_INTERVAL_SECONDS = 900.0
MAX_TOKEN = 64


@dataclass(frozen=True)
class DraftFile:
    """One kept file: its name, type, size and where its bytes are."""

    name: str
    content_type: str
    size: int
    blob: str


def _key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class DraftStore:
    """Keeps, lists and hands back the uploaded files of refused forms."""

    def __init__(self, db: Database, blobs: BlobStore, clock: Clock, minutes: int = DRAFT_MINUTES) -> None:
        self._db = db
        self._blobs = blobs
        self._clock = clock
        self._lifetime = timedelta(minutes=minutes)

    def keep(self, user_id: int, files: Sequence[tuple[str, str, bytes]]) -> str:
        """A new draft of ``user_id`` holding ``files`` (name, content type, bytes); returns its token."""
        token = secrets.token_urlsafe(24)
        now = self._clock.now()
        stored = [(name, ctype, len(data), self._blobs.put(data)) for name, ctype, data in files]
        with self._db.begin() as conn:
            conn.execute(delete(form_drafts).where(form_drafts.c.expires_at < now))
            conn.execute(insert(form_drafts).values(id=_key(token), user_id=user_id, created_at=now,
                                                    expires_at=now + self._lifetime))
            for position, (name, ctype, size, blob) in enumerate(stored):
                conn.execute(insert(form_draft_files).values(
                    draft_id=_key(token), position=position, name=name[:255], content_type=ctype[:100],
                    size=size, blob=blob))
        return token

    def files(self, user_id: int, token: str) -> list[DraftFile]:
        """The files of ``user_id``'s live draft ``token`` (none for another user's, an expired or unknown one)."""
        if not token or len(token) > MAX_TOKEN:
            return []
        with self._db.begin() as conn:
            rows = conn.execute(
                select(form_draft_files.c.name, form_draft_files.c.content_type, form_draft_files.c.size,
                       form_draft_files.c.blob)
                .join(form_drafts, form_drafts.c.id == form_draft_files.c.draft_id)
                .where(form_drafts.c.id == _key(token), form_drafts.c.user_id == user_id,
                       form_drafts.c.expires_at >= self._clock.now())
                .order_by(form_draft_files.c.position)
            ).all()
        return [DraftFile(r.name, r.content_type, r.size, r.blob) for r in rows]

    def read(self, file: DraftFile) -> bytes:
        """The bytes of a kept file."""
        return self._blobs.get(file.blob)

    def drop(self, user_id: int, token: str) -> None:
        """Forget ``user_id``'s draft ``token`` (the form went through)."""
        if token and len(token) <= MAX_TOKEN:
            with self._db.begin() as conn:
                conn.execute(delete(form_drafts).where(form_drafts.c.id == _key(token),
                                                       form_drafts.c.user_id == user_id))


def expire_drafts(node: Node) -> int:
    """Delete the drafts whose time is up (their blobs become the blob collector's); returns how many."""
    with node.db.begin() as conn:
        return int(conn.execute(delete(form_drafts).where(form_drafts.c.expires_at < node.clock.now())).rowcount)


register(PeriodicTask(name="drafts.expire", interval=lambda _node: EXPIRE_INTERVAL_SECONDS, run=expire_drafts))
