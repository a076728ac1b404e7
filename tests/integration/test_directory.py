"""Offices and users on a real database: creation, validation, credentials."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pyotp
import pytest
from sqlalchemy import func, select

from inkless.app import Node, build_node
from inkless.clock import FixedClock
from inkless.db import tables as t
from inkless.directory.demo import DemoSample
from inkless.directory.model import Role
from inkless.directory.service import DirectoryService
from inkless.errors import AuthenticationError, ConflictError, NotFoundError, ValidationError


def _counts(node: Node) -> tuple[int, int, int, int]:
    with node.db.begin() as conn:
        return tuple(  # type: ignore[return-value]
            conn.execute(select(func.count()).select_from(tbl)).scalar_one()
            for tbl in (t.offices, t.users, t.certificates, t.audit_entries)
        )


def test_demo_directory(node: Node, demo: DemoSample) -> None:
    assert [o.code for o in node.directory.offices()] == ["civil-affairs", "criminal-affairs", "secretariat"]
    assert {u.role for u in node.directory.users()} == set(Role)
    assert {u.clearance for u in node.directory.users()} == {1, 2, 3}
    tanaka = node.directory.user("tanaka")
    assert (tanaka.office_code, tanaka.surname, tanaka.must_change_password) == ("civil-affairs", "田中", True)
    with node.db.begin() as conn:
        actions = conn.execute(select(t.audit_entries.c.action)).scalars().all()
    assert actions.count("office.created") == 3 and actions.count("user.created") == 8


BAD_INPUT: list[tuple[Callable[[DirectoryService], object], type[Exception]]] = [
    (lambda d: d.add_office("Civil Affairs", "民事局"), ValidationError),
    (lambda d: d.add_office("civil-affairs", "民事局"), ConflictError),
    (lambda d: d.add_office("new-office", ""), ValidationError),
    (lambda d: d.add_office("new-office", "局", fax_number="call me"), ValidationError),
    (lambda d: d.add_user("x", "civil-affairs", "clerk", 1, "名前"), ValidationError),
    (lambda d: d.add_user("newuser", "no-such-office", "clerk", 1, "名前"), NotFoundError),
    (lambda d: d.add_user("newuser", "civil-affairs", "boss", 1, "名前"), ValidationError),
    (lambda d: d.add_user("newuser", "civil-affairs", "clerk", 4, "名前"), ValidationError),
    (lambda d: d.add_user("tanaka", "civil-affairs", "clerk", 1, "名前"), ConflictError),
    (lambda d: d.add_user("newuser", "civil-affairs", "clerk", 1, "a\nb"), ValidationError),
    (lambda d: d.add_user("newuser", "civil-affairs", "clerk", 1, "名前", password="short"), ValidationError),
    (lambda d: d.add_user("newuser", "civil-affairs", "clerk", 1, "名前", password="aaaaaaaaaaaa"), ValidationError),
    (lambda d: d.add_user("newuser", "civil-affairs", "clerk", 1, "名前", password="newuser-2026-x"), ValidationError),
    (lambda d: d.add_user("newuser", "civil-affairs", "clerk", 1, "名前", password="iloveyou2026"), ValidationError),
]


def test_bad_input_is_refused_and_changes_nothing(node: Node, demo: DemoSample) -> None:
    before = _counts(node)
    for number, (call, error) in enumerate(BAD_INPUT):
        with pytest.raises(error):
            call(node.directory)
        assert _counts(node) == before, f"case {number} changed something"


def test_password_check(node: Node, demo: DemoSample) -> None:
    account = demo.accounts[0]
    assert node.directory.check_password(account.user.login, account.password).login == account.user.login
    with pytest.raises(AuthenticationError, match="wrong login or password"):
        node.directory.check_password(account.user.login, account.password + "x")
    with pytest.raises(AuthenticationError, match="wrong login or password"):
        node.directory.check_password("nobody", account.password)


def test_password_change(node: Node, demo: DemoSample) -> None:
    node.directory.set_password("tanaka", "a much longer passphrase", actor="tanaka")
    assert not node.directory.user("tanaka").must_change_password
    node.directory.check_password("tanaka", "a much longer passphrase")
    with pytest.raises(ValidationError):
        node.directory.set_password("tanaka", "short", actor="tanaka")
    for weak, rule in [("aaaaaaaaaaaa", "repeated"), ("qwerty123456", "commonly used"),
                       ("Tanaka-Spring-26", "login name"), ("civil-affairs-26", "office code")]:
        with pytest.raises(ValidationError, match=rule):
            node.directory.set_password("tanaka", weak, actor="tanaka")
    node.directory.check_password("tanaka", "a much longer passphrase")  # unchanged


def test_totp_is_accepted_once(node: Node, demo: DemoSample) -> None:
    account = demo.accounts[1]
    assert node.directory.totp_secret(account.user.login) == account.totp_secret
    code = pyotp.TOTP(account.totp_secret).now()
    with pytest.raises(AuthenticationError):
        node.directory.verify_totp(account.user.login, "000000" if code != "000000" else "111111")
    assert not node.directory.user(account.user.login).totp_confirmed
    user = node.directory.verify_totp(account.user.login, code)
    assert user.totp_confirmed
    with pytest.raises(AuthenticationError, match="already used"):
        node.directory.verify_totp(account.user.login, code)
    # Enrolment is audited once, in the transaction that confirmed the first code.
    with node.db.begin() as conn:
        enrolled = conn.execute(
            select(t.audit_entries.c.object_id).where(t.audit_entries.c.action == "user.totp_enrolled")
        ).scalars().all()
    assert enrolled == [account.user.login]


def test_one_totp_code_sent_six_times_at_once_is_accepted_once(node: Node, demo: DemoSample) -> None:
    """Six logins (or office-seal checks) racing with the same code: exactly one wins, every round."""
    clock = FixedClock(datetime(2026, 4, 1, 9, 0, 10, tzinfo=UTC))
    racing = build_node(node.settings, clock)
    login = "sato"
    secret = racing.directory.totp_secret(login)
    try:
        for _round in range(5):
            clock.advance(seconds=30)
            code = pyotp.TOTP(secret).at(clock.now())
            barrier = threading.Barrier(6)

            def attempt(barrier: threading.Barrier = barrier, code: str = code) -> bool:
                barrier.wait()
                try:
                    racing.directory.verify_totp(login, code)
                except AuthenticationError:
                    return False
                return True

            with ThreadPoolExecutor(max_workers=6) as pool:
                outcomes = list(pool.map(lambda _: attempt(), range(6)))
            assert outcomes.count(True) == 1, f"round {_round}: {outcomes.count(True)} of 6 accepted the same code"
        with racing.db.begin() as conn:
            enrolled = conn.execute(select(func.count()).select_from(t.audit_entries).where(
                t.audit_entries.c.action == "user.totp_enrolled", t.audit_entries.c.object_id == login)).scalar_one()
        assert enrolled == 1
    finally:
        racing.close()


def test_provisioning_uri_names_node_and_user(node: Node, demo: DemoSample) -> None:
    assert demo.accounts[0].totp_uri.startswith("otpauth://totp/inkless:tanaka%40moj?secret=")
