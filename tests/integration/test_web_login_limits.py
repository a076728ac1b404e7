"""Failed logins slow down the one who fails, not everyone else.

Failures are counted per (login, client address) pair with a growing delay, and per address
with a looser limit against password spraying. A stranger cannot lock the administrator out
from elsewhere, one clerk's typos do not lock the office sharing a NAT address, and empty
logins count for nothing. The state is in the database: two web processes agree.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from inkless.app import Node, build_node
from inkless.clock import FixedClock
from inkless.db import tables as t
from inkless.directory.demo import DemoSample
from inkless.web.app import create_app
from tests.integration.test_web_login import NEW_PASSWORD, account, code_at, csrf_of, error_of, make_ready, sessions

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from fastapi.testclient import TestClient

MAX_FAILURES = 3
WINDOW_SECONDS = 600
BACKOFF_SECONDS = 30
ADDRESS_MAX = 8
WRONG = "guess-guess-guess"


@pytest.fixture
def clock() -> FixedClock:
    now = datetime.now(UTC).replace(microsecond=0)
    return FixedClock(now - timedelta(seconds=now.timestamp() % 30) + timedelta(seconds=10))


@pytest.fixture
def web_node(node: Node, demo: DemoSample, clock: FixedClock) -> Iterator[Node]:
    settings = dataclasses.replace(
        node.settings,
        login_max_failures=MAX_FAILURES,
        login_window_seconds=WINDOW_SECONDS,
        login_backoff_seconds=BACKOFF_SECONDS,
        login_address_max_failures=ADDRESS_MAX,
    )
    n = build_node(settings, clock)
    try:
        yield n
    finally:
        n.close()


def at(node: Node, address: str) -> TestClient:
    """A browser at ``address`` (each call: a new browser, no cookies)."""
    return TestClient(create_app(node), client=(address, 50000))


def fail(client: TestClient, login: str) -> int:
    return client.post("/login", data={"login": login, "password": WRONG}).status_code


def log_in(client: TestClient, node: Node, clock: FixedClock, login: str) -> str:
    """Password and TOTP; returns the path the browser ends on."""
    page = client.post("/login", data={"login": login, "password": NEW_PASSWORD})
    if page.status_code != 200 or page.url.path != "/login/totp":
        return f"{page.status_code} {page.url.path}"
    code = code_at(node, login, clock.now())
    done = client.post("/login/totp", data={"code": code, "csrf_token": csrf_of(page.text)})
    return done.url.path


def attempts(node: Node) -> int:
    with node.db.begin() as conn:
        return int(conn.execute(select(func.count()).select_from(t.login_attempts)).scalar_one())


def test_the_pair_waits_even_with_the_right_password(
    web_node: Node, demo: DemoSample, clock: FixedClock
) -> None:
    browser = at(web_node, "198.51.100.7")
    tanaka = account(demo, "tanaka")
    assert [fail(browser, "tanaka") for _ in range(MAX_FAILURES)] == [401] * MAX_FAILURES
    blocked = browser.post("/login", data={"login": "tanaka", "password": tanaka.password})
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) == BACKOFF_SECONDS
    assert "1分後にもう一度お試しください" in error_of(blocked.text)
    english = browser.post("/login?lang=en", data={"login": "tanaka", "password": tanaka.password})
    assert english.status_code == 429 and "Try again in 1 minutes" in error_of(english.text)
    assert sessions(web_node) == []
    clock.advance(seconds=BACKOFF_SECONDS)
    allowed = browser.post("/login", data={"login": "tanaka", "password": tanaka.password})
    assert allowed.url.path == "/login/enrol"


def test_the_delay_doubles_with_each_failure_up_to_the_window(web_node: Node, clock: FixedClock) -> None:
    browser = at(web_node, "198.51.100.8")
    for _ in range(MAX_FAILURES):
        fail(browser, "sato")
    waits = []
    for _ in range(6):
        refused = browser.post("/login", data={"login": "sato", "password": WRONG})
        assert refused.status_code == 429
        waits.append(int(refused.headers["retry-after"]))
        clock.advance(seconds=waits[-1])
        assert fail(browser, "sato") == 401  # allowed again, and wrong again
    assert waits == [30, 60, 120, 240, 480, 600]


def test_strangers_elsewhere_cannot_lock_the_administrator_out(web_node: Node, clock: FixedClock) -> None:
    make_ready(web_node, clock, "yamada")
    for n in range(5):
        stranger = at(web_node, f"203.0.113.{n + 1}")
        for _ in range(MAX_FAILURES + 2):
            fail(stranger, "yamada")
        assert stranger.post("/login", data={"login": "yamada", "password": NEW_PASSWORD}).status_code == 429
    # The administrator, from the office, with the right password and code: in.
    office = at(web_node, "192.0.2.50")
    assert log_in(office, web_node, clock, "yamada") == "/offices/secretariat/inbox"


def test_one_clerks_typos_do_not_lock_the_office_behind_one_address(web_node: Node, clock: FixedClock) -> None:
    make_ready(web_node, clock, "sato")
    nat = "192.0.2.10"
    typist = at(web_node, nat)
    for _ in range(MAX_FAILURES + 1):
        fail(typist, "tanaka")
    assert typist.post("/login", data={"login": "tanaka", "password": WRONG}).status_code == 429
    colleague = at(web_node, nat)
    assert log_in(colleague, web_node, clock, "sato") == "/offices/civil-affairs/inbox"


def test_empty_logins_count_for_nothing(web_node: Node, clock: FixedClock) -> None:
    make_ready(web_node, clock, "sato")
    browser = at(web_node, "192.0.2.11")
    for _ in range(ADDRESS_MAX + 2):
        assert browser.post("/login", data={"login": "", "password": WRONG}).status_code == 401
        assert browser.post("/login", data={"login": "   ", "password": ""}).status_code == 401
    assert attempts(web_node) == 0
    assert log_in(browser, web_node, clock, "sato") == "/offices/civil-affairs/inbox"


def test_an_address_spraying_many_logins_is_refused(web_node: Node, clock: FixedClock) -> None:
    make_ready(web_node, clock, "sato")
    sprayer = at(web_node, "203.0.113.99")
    assert [fail(sprayer, f"user{n:02d}") for n in range(ADDRESS_MAX)] == [401] * ADDRESS_MAX
    # One guess at each of many logins: the address, not any pair, reached its limit.
    refused = sprayer.post("/login", data={"login": "sato", "password": NEW_PASSWORD})
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) == WINDOW_SECONDS
    # The same account from another address is not affected.
    assert log_in(at(web_node, "192.0.2.12"), web_node, clock, "sato") == "/offices/civil-affairs/inbox"


def test_a_success_clears_the_pair(web_node: Node, clock: FixedClock) -> None:
    make_ready(web_node, clock, "sato")
    browser = at(web_node, "192.0.2.13")
    for _ in range(MAX_FAILURES - 1):
        fail(browser, "sato")
    assert log_in(browser, web_node, clock, "sato") == "/offices/civil-affairs/inbox"
    clock.advance(seconds=30)  # a fresh code step
    again = at(web_node, "192.0.2.13")
    for _ in range(MAX_FAILURES - 1):
        assert fail(again, "sato") == 401  # counted afresh: not blocked


def test_two_web_processes_share_the_count(web_node: Node, clock: FixedClock) -> None:
    other = build_node(web_node.settings, clock)  # another process of the same node (same database)
    try:
        first, second = at(web_node, "198.51.100.20"), at(other, "198.51.100.20")
        for n in range(MAX_FAILURES):
            assert fail(first if n % 2 == 0 else second, "ito") == 401
        assert fail(first, "ito") == 429 and fail(second, "ito") == 429
    finally:
        other.close()


def test_guesses_sent_at_once_are_each_counted_before_any_is_checked(
    web_node: Node, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twelve wrong passwords sent together: each counts as it is let through, not once its hash is done,
    so no more of them are checked than the pair may fail; the others wait like any later guess."""
    make_ready(web_node, clock, "yamada")
    check_password = web_node.directory.check_password

    def slow_check(login: str, password: str) -> object:
        time.sleep(0.3)  # what a real Argon2 hash costs (the suite hashes at the smallest cost)
        return check_password(login, password)

    monkeypatch.setattr(web_node.directory, "check_password", slow_check)
    browsers = [at(web_node, "198.51.100.30") for _ in range(12)]
    for browser in browsers:  # each app builds its login form once, before the burst (an empty login counts nothing)
        assert browser.post("/login", data={"login": "", "password": WRONG}).status_code == 401
    start = threading.Barrier(12)

    def guess(browser: TestClient) -> int:
        start.wait()
        return fail(browser, "yamada")

    with ThreadPoolExecutor(12) as pool:
        statuses = sorted(pool.map(guess, browsers))
    assert statuses == [401] * MAX_FAILURES + [429] * (12 - MAX_FAILURES)
    assert attempts(web_node) == MAX_FAILURES  # refused guesses are not rows; checked ones are one each
    assert log_in(at(web_node, "203.0.113.30"), web_node, clock, "yamada") != ""  # elsewhere: not locked
    with web_node.db.begin() as conn:
        failures = conn.execute(
            select(func.count()).select_from(t.login_attempts).where(
                t.login_attempts.c.client == "198.51.100.30", t.login_attempts.c.success.is_(False))
        ).scalar_one()
    assert failures == MAX_FAILURES


def test_a_right_password_is_not_held_against_the_pair(web_node: Node, clock: FixedClock) -> None:
    make_ready(web_node, clock, "suzuki")
    browser = at(web_node, "192.0.2.31")
    for _ in range(MAX_FAILURES - 1):
        fail(browser, "suzuki")
    before = attempts(web_node)
    page = browser.post("/login", data={"login": "suzuki", "password": NEW_PASSWORD})
    assert page.url.path == "/login/totp"
    assert attempts(web_node) == before  # counted while checked, forgiven once the password was right
    assert fail(at(web_node, "192.0.2.31"), "suzuki") == 401  # still one failure short of the limit
