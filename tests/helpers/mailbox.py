"""Mails a node queued in its mail outbox, read back in tests that run no mail worker.

The bodies are the composed mails as they will go to the SMTP server (decrypted from the outbox);
tests with a worker and a private Postfix read the delivered mails from Postfix instead.
"""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass
from email.message import EmailMessage

from inkless.app import Node
from tests.helpers.nodes import refused_port


def smtp_nowhere() -> str:
    """An ``smtp_url`` that no server answers: mail is queued (the outbox is enabled), never sent."""
    return f"smtp://127.0.0.1:{refused_port()}"


@dataclass
class Mailbox:
    """The plain-text bodies of the mails queued in a node's outbox, by recipient, from a mark on."""

    node: Node
    since: int = 0

    @classmethod
    def of(cls, node: Node) -> Mailbox:
        assert node.mail is not None and node.mail.enabled, "the node needs smtp_url for its outbox"
        box = cls(node)
        box.mark()
        return box

    def mark(self) -> None:
        """Read only mails queued from now on."""
        assert self.node.mail is not None
        newest = self.node.mail.recent(limit=1)
        self.since = newest[0].id if newest else 0

    def mails(self, to: str) -> list[EmailMessage]:
        assert self.node.mail is not None
        found = []
        for status in sorted(self.node.mail.recent(limit=100_000), key=lambda s: s.id):
            if status.id <= self.since or status.recipient != to:
                continue
            raw = self.node.mail.message_bytes(status.id)
            assert raw is not None, status
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            assert isinstance(msg, EmailMessage)
            found.append(msg)
        return found

    def messages(self, to: str) -> list[str]:
        bodies = []
        for msg in self.mails(to):
            part = msg.get_body(preferencelist=("plain",))
            assert part is not None
            bodies.append(str(part.get_content()))
        return bodies

    def wait_for(self, to: str, count: int = 1) -> list[str]:
        """The bodies of the mails to ``to`` (at least ``count``: they are queued before the page answers)."""
        found = self.messages(to)
        assert len(found) >= count, [s.recipient for s in self.node.mail.recent()] if self.node.mail else None
        return found
