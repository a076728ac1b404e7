"""Who may send what to whom, and who may open what: the delivery policy, free of I/O."""

from __future__ import annotations

from dataclasses import dataclass

from inkless.directory.model import Clearance, User
from inkless.errors import NotFoundError, PolicyError

OPERATOR_LOGIN = "operator"


@dataclass(frozen=True)
class Actor:
    """Who is acting: a user of an office, or the node operator (CLI on the node, no ``--as``).

    The operator may act for any office with full clearance: whoever runs commands on the node
    holds the master key and so every office key already; every action is still audited as
    ``operator``.
    """

    login: str
    office: str | None
    clearance: int
    admin: bool

    @property
    def is_operator(self) -> bool:
        return self.office is None

    @classmethod
    def of(cls, user: User) -> Actor:
        return cls(login=user.login, office=user.office_code, clearance=user.clearance,
                   admin=user.role.administers)

    @classmethod
    def operator(cls) -> Actor:
        return cls(login=OPERATOR_LOGIN, office=None, clearance=Clearance.STRICTLY_CONFIDENTIAL, admin=True)


@dataclass(frozen=True)
class Recipient:
    """A resolved recipient address."""

    address: str
    office: str
    node_id: str
    local: bool
    pinned: bool


def check_send(actor: Actor, from_office: str, classification: int, recipients: list[Recipient]) -> None:
    """PolicyError unless ``actor`` may send at ``classification`` from ``from_office`` to ``recipients``."""
    if not actor.is_operator and actor.office != from_office:
        raise PolicyError(f"{actor.login} does not belong to office {from_office} and cannot send for it")
    if actor.clearance < classification:
        raise PolicyError(
            f"{actor.login} has clearance {actor.clearance} and cannot send a message classified {classification}"
        )
    if classification >= Clearance.CONFIDENTIAL:
        for r in recipients:
            if not r.local and not r.pinned:
                raise PolicyError(
                    f"classification {classification} may only go to local offices or pinned peers; "
                    f"{r.node_id} is not pinned"
                )


def check_view(actor: Actor, offices: set[str], classification: int, message_id: str) -> None:
    """Raise unless ``actor`` may open a message held by ``offices`` at ``classification``.

    Someone outside every office holding the message gets NotFoundError, not PolicyError, so that
    probing message ids does not tell which exist; a member without clearance gets PolicyError
    (the message is already listed in their office's inbox, so nothing leaks).
    """
    if actor.is_operator:
        return
    if actor.office not in offices:
        raise NotFoundError(f"no message {message_id}")
    if actor.clearance < classification:
        raise PolicyError(
            f"{actor.login} has clearance {actor.clearance}; this message is classified {classification}"
        )


def check_forward_classification(actor: Actor, original: int, requested: int | None) -> int:
    """The classification of a forward/reply: never lower than the original unless an admin says so."""
    if requested is None:
        return original
    if requested < original and not actor.admin:
        raise PolicyError(
            f"only an administrator may lower a classification (from {original} to {requested})"
        )
    return requested
