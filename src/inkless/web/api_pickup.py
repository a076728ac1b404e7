"""``/api/v1`` models of secure pickup: an e-mail recipient's state in a sent message's status.

The shape is :func:`inkless.pickup.status.status_json`, the same as ``inkless message status --json``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from inkless.pickup.status import PickupStatus, status_json


class PickupEventOut(BaseModel):
    """One step of an e-mail recipient, with its time (UTC) and its name in the caller's language."""

    state: str = Field(examples=["notified", "opened", "downloaded", "replied", "bounced", "expired"])
    at: datetime
    text: str = Field(examples=["通知済み", "開封"])


class PickupReplyOut(BaseModel):
    """A file the recipient sent back; ``message_id`` is the reply in the sender office's inbox."""

    name: str
    size: int
    received_at: datetime
    message_id: str | None


class PickupRecipientOut(BaseModel):
    """An e-mail recipient (secure pickup): the latest state and the time of each step."""

    kind: Literal["email"] = "email"
    recipient: str = Field(examples=["taro@example.co.jp"])
    pickup_id: int = Field(description="for revoking or unlocking the link")
    state: str = Field(description="queued, notified, opened, downloaded, replied, bounced, locked, revoked or "
                                   "expired: the latest step")
    state_text: str = Field(description="the state in the caller's language", examples=["ダウンロード"])
    events: list[PickupEventOut] = Field(description="every step so far, oldest first")
    created_at: datetime
    expires_at: datetime
    notified_at: datetime | None
    opened_at: datetime | None
    downloaded_at: datetime | None
    replied_at: datetime | None
    bounced_at: datetime | None
    bounce_detail: str | None = Field(description="the mail server's words when the notice was undeliverable")
    expired: bool
    expired_at: datetime | None
    revoked_at: datetime | None
    locked_at: datetime | None
    replies: list[PickupReplyOut]


def pickup_out(p: PickupStatus, gettext: Callable[[str], str]) -> PickupRecipientOut:
    return PickupRecipientOut.model_validate(status_json(p, gettext))
