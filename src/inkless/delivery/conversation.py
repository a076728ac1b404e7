"""Conversations: a message and the messages that answer it, linked by ``reply_to``.

A reply names the message it answers in its signed metadata (``reply_to``); the sender's copy keeps it
in ``messages.reply_to`` and every inbox copy in ``inbox.reply_to``. So the conversation of a message,
as one office sees it, is what that office sent in reply and what it received in reply — answers
from other offices, and files an e-mail recipient sent back through a pickup link (source
``pickup``). Subjects are shown only where the viewer is cleared, as in the inbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select

from inkless.db import tables as t
from inkless.db.tables_delivery import inbox, messages

if TYPE_CHECKING:
    from inkless.db.engine import Database
    from inkless.delivery.service import DeliveryService


@dataclass(frozen=True)
class ThreadReply:
    """A message answering another: ``direction`` is ``sent`` (by the viewer's office) or ``received``."""

    message_id: str
    direction: str
    sender: str
    subject: str | None
    classification: int
    at: datetime
    source: str


def replies(db: Database, delivery: DeliveryService, message_id: str, viewer: str | None) -> list[ThreadReply]:
    """The replies to ``message_id`` the viewer's office sent or received, oldest first.

    The caller has already checked that the viewer may see ``message_id`` itself.
    """
    actor = delivery.actor(viewer)
    out: list[ThreadReply] = []
    with db.read() as conn:
        received = select(inbox, t.offices.c.code).join(t.offices, t.offices.c.id == inbox.c.office_id).where(
            inbox.c.reply_to == message_id)
        sent = select(messages, t.offices.c.code).join(t.offices, t.offices.c.id == messages.c.office_id).where(
            messages.c.reply_to == message_id)
        if not actor.is_operator:
            received = received.where(t.offices.c.code == actor.office)
            sent = sent.where(t.offices.c.code == actor.office)
        for r in conn.execute(received).all():
            item = delivery.inbox_item(r, r.code, actor)
            out.append(ThreadReply(item.message_id, "received", item.sender, item.subject, item.classification,
                                   item.received_at, item.source))
        for r in conn.execute(sent).all():
            m = delivery.sent_message(r, r.code, actor, ())
            out.append(ThreadReply(m.message_id, "sent", f"{r.code}@{delivery.node_id}", m.subject,
                                   m.classification, m.created_at, "inkless"))
    return sorted(out, key=lambda reply: reply.at)
