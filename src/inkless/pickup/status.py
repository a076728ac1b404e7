"""What the sender of a message sees of each e-mail recipient (secure pickup), and its one JSON shape.

The CLI (``inkless message status ID --json``) and the API (``GET /api/v1/messages/{id}/status``) both
give :func:`status_json`: stable English state keys (queued, notified, opened, downloaded, replied,
bounced, locked, revoked, expired) with ISO 8601 UTC times, and each state's label in the reader's
language beside it (通知済み, 開封, ダウンロード, 返信, 不達, ロック中, 取り消し, 期限切れ). People read the
times in Asia/Tokyo on the pages and in the CLI's table; programs read UTC.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any


def N_(message: str) -> str:
    """Mark a message for extraction (babel.cfg); it is translated when shown."""
    return message


# The English msgids of the states; the catalogs give 通知済み / 開封 / ダウンロード / 返信 / 期限切れ / 不達 ...
STATE_LABELS = {
    "queued": N_("Notice queued"), "notified": N_("Notified"), "opened": N_("Opened"),
    "downloaded": N_("Downloaded"), "replied": N_("Replied"), "expired": N_("Expired"),
    "bounced": N_("Undeliverable"), "locked": N_("Locked"), "revoked": N_("Cancelled"),
}


@dataclass(frozen=True)
class PickupReply:
    """A file the recipient sent back; ``message_id`` is its item in the sender office's inbox."""

    id: int
    name: str
    content_type: str
    size: int
    received_at: datetime
    comment: str | None
    message_id: str | None = None


@dataclass(frozen=True)
class PickupStatus:
    """One e-mail recipient of a sent message, as the sender sees it."""

    id: int
    message_id: str
    recipient: str
    mobile: str | None
    created_at: datetime
    expires_at: datetime
    notified_at: datetime | None
    opened_at: datetime | None
    downloaded_at: datetime | None
    replied_at: datetime | None
    bounced_at: datetime | None
    bounce_detail: str | None
    revoked_at: datetime | None
    locked_at: datetime | None
    expired: bool
    replies: tuple[PickupReply, ...] = ()

    @property
    def states(self) -> list[tuple[str, datetime]]:
        """What happened, in order: (state, time) with state one of notified, opened, downloaded, replied,
        bounced, locked, revoked, expired."""
        events = [(name, at) for name, at in (
            ("notified", self.notified_at), ("opened", self.opened_at), ("downloaded", self.downloaded_at),
            ("replied", self.replied_at), ("bounced", self.bounced_at), ("locked", self.locked_at),
            ("revoked", self.revoked_at)) if at is not None]
        if self.expired:
            events.append(("expired", self.expires_at))
        return sorted(events, key=lambda e: e[1])

    @property
    def state(self) -> str:
        """The latest state (``queued`` until the notice is sent); an expired link stays expired."""
        if self.expired:
            return "expired"
        states = self.states
        return states[-1][0] if states else "queued"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def status_json(p: PickupStatus, gettext: Callable[[str], str] = str) -> dict[str, Any]:
    """An e-mail recipient for programs: English state keys, ISO UTC times, labels in the reader's language."""
    return {
        "kind": "email", "recipient": p.recipient, "pickup_id": p.id,
        "state": p.state, "state_text": gettext(STATE_LABELS[p.state]),
        "events": [{"state": state, "at": _iso(at), "text": gettext(STATE_LABELS[state])} for state, at in p.states],
        "created_at": _iso(p.created_at), "expires_at": _iso(p.expires_at),
        "notified_at": _iso(p.notified_at), "opened_at": _iso(p.opened_at),
        "downloaded_at": _iso(p.downloaded_at), "replied_at": _iso(p.replied_at),
        "bounced_at": _iso(p.bounced_at), "bounce_detail": p.bounce_detail,
        "expired": p.expired, "expired_at": _iso(p.expires_at) if p.expired else None,
        "revoked_at": _iso(p.revoked_at), "locked_at": _iso(p.locked_at),
        "replies": [{"name": r.name, "size": r.size, "received_at": _iso(r.received_at),
                     "message_id": r.message_id} for r in p.replies],
    }
