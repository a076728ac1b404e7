"""What an audit entry says: who did what to which object, when — never document plaintext."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection


@dataclass(frozen=True)
class AuditEvent:
    """One state change worth recording.

    ``details`` holds identifiers, counts and digests only; callers must never put
    document content, passwords, TOTP codes or key material in it.
    """

    actor: str
    action: str
    object_type: str | None = None
    object_id: str | None = None
    digests: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


class AuditRecorder(Protocol):
    """The one entry point every feature uses to record an event."""

    def record(self, conn: Connection, event: AuditEvent, at: datetime | None = None) -> int:
        """Append ``event`` inside the caller's transaction; returns the entry's index."""
