"""The delivery policy and the outbox backoff schedule, as pure functions."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from inkless.delivery.outbox import backoff_delay
from inkless.delivery.policy import Actor, Recipient, check_forward_classification, check_send, check_view
from inkless.directory.model import Role, User
from inkless.errors import NotFoundError, PolicyError

LOCAL = Recipient("police@moj", "police", "moj", local=True, pinned=True)
PINNED = Recipient("security@npa", "security", "npa", local=False, pinned=True)
UNPINNED = Recipient("desk@city", "desk", "city", local=False, pinned=False)


def clerk(clearance: int, office: str = "civil", admin: bool = False) -> Actor:
    return Actor("clerk", office, clearance, admin)


def test_send_matrix() -> None:
    allowed = [
        (clerk(0), "civil", 0, [LOCAL, PINNED, UNPINNED]),
        (clerk(1), "civil", 1, [UNPINNED]),
        (clerk(2), "civil", 2, [LOCAL, PINNED]),
        (Actor.operator(), "any-office", 3, [PINNED]),
    ]
    for actor, office, level, recipients in allowed:
        check_send(actor, office, level, recipients)
    refused = [
        (clerk(1), "civil", 2, [LOCAL], "clearance 1"),
        (clerk(3), "police", 0, [LOCAL], "does not belong"),
        (clerk(3), "civil", 2, [LOCAL, UNPINNED], "city is not pinned"),
        (clerk(3, admin=True), "civil", 3, [UNPINNED], "not pinned"),
    ]
    for actor, office, level, recipients, words in refused:
        with pytest.raises(PolicyError, match=words):
            check_send(actor, office, level, recipients)


def test_view_matrix() -> None:
    check_view(clerk(2), {"civil"}, 2, "m")
    check_view(Actor.operator(), {"police"}, 3, "m")
    with pytest.raises(PolicyError, match=r"^clerk has clearance 1; this message is classified 2$"):
        check_view(clerk(1), {"civil"}, 2, "m")
    # Outside every holding office: not found, whatever the clearance, so ids cannot be probed.
    for level in (0, 3):
        with pytest.raises(NotFoundError, match=r"^no message m-17$"):
            check_view(clerk(3, office="fire"), {"civil", "police"}, level, "m-17")


def test_the_operator_and_users_as_actors() -> None:
    # The operator: no office, full clearance, administrator, audited under its own name.
    assert Actor.operator() == Actor("operator", None, 3, True)
    assert Actor.operator().is_operator and not clerk(3).is_operator
    now = datetime.now(UTC)
    user = User(id=1, login="yamada", display_name="山田 太郎", office_id=4, office_code="secretariat",
                role=Role.ADMIN, clearance=2, totp_confirmed=True, must_change_password=False, active=True,
                created_at=now)
    assert Actor.of(user) == Actor("yamada", "secretariat", 2, True)
    clerk_user = User(id=2, login="tanaka", display_name="田中 花子", office_id=1, office_code="civil-affairs",
                      role=Role.CLERK, clearance=1, totp_confirmed=True, must_change_password=False, active=True,
                      created_at=now)
    assert Actor.of(clerk_user) == Actor("tanaka", "civil-affairs", 1, False)


def test_forward_classification_only_goes_up_without_an_admin() -> None:
    assert check_forward_classification(clerk(3), 2, None) == 2
    assert check_forward_classification(clerk(3), 1, 3) == 3
    assert check_forward_classification(clerk(3, admin=True), 2, 0) == 0
    # Keeping the original level needs no administrator.
    assert check_forward_classification(clerk(3), 2, 2) == 2
    with pytest.raises(PolicyError, match="lower"):
        check_forward_classification(clerk(3), 2, 1)


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    rng = random.Random(7)
    for attempt in range(1, 12):
        step = min(3600.0, 30.0 * 2 ** (attempt - 1))
        delays = [backoff_delay(attempt, 30, 3600, rng) for _ in range(200)]
        assert all(step / 2 <= d <= step for d in delays)
        assert max(delays) - min(delays) > step / 4  # really jittered
    assert backoff_delay(50, 30, 3600, random.Random(1)) <= 3600
