"""Mails the intake window sent, read back in tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from inkless.app import Node
from inkless.intake.mailer import OutgoingMail


@dataclass
class Mailbox:
    """Every mail the node's intake window handed to its mailer, by recipient."""

    sent: list[OutgoingMail] = field(default_factory=list)

    def send(self, mail: OutgoingMail) -> None:
        self.sent.append(mail)

    @classmethod
    def of(cls, node: Node) -> Mailbox:
        box = cls()
        assert node.intake is not None
        node.intake.mailer = box
        return box

    def messages(self, to: str) -> list[str]:
        return [m.text for m in self.sent if m.to == to]

    def wait_for(self, to: str, count: int = 1) -> list[str]:
        found = self.messages(to)
        assert len(found) >= count, self.sent
        return found
