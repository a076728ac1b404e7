"""Logging in through the browser UI: password, TOTP or enrolment, password change, sessions, CSRF, limits."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from sqlalchemy import select

from inkless.app import Node, build_node
from inkless.clock import FixedClock
from inkless.db import tables as t
from inkless.db.tables_traffic import anonymous_requests
from inkless.directory.demo import DemoSample
from inkless.directory.model import NewAccount
from inkless.directory.tokens import ApiTokenService
from inkless.web.app import create_app

with warnings.catch_warnings():
    # Starlette warns that its test client prefers the httpx2 package; httpx is what we have.
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from fastapi.testclient import TestClient

NEW_PASSWORD = "kawa-no-nagare-2026"
MAX_FAILURES = 3
WINDOW_SECONDS = 600


@pytest.fixture
def clock() -> FixedClock:
    # Ten seconds into a TOTP step, so that "the code of the previous step" is well defined.
    now = datetime.now(UTC).replace(microsecond=0)
    return FixedClock(now - timedelta(seconds=now.timestamp() % 30) + timedelta(seconds=10))


@pytest.fixture
def web_node(node: Node, demo: DemoSample, clock: FixedClock) -> Iterator[Node]:
    settings = dataclasses.replace(
        node.settings, login_max_failures=MAX_FAILURES, login_window_seconds=WINDOW_SECONDS
    )
    n = build_node(settings, clock)
    try:
        yield n
    finally:
        n.close()


@pytest.fixture
def client(web_node: Node) -> Iterator[TestClient]:
    with TestClient(create_app(web_node)) as c:
        yield c


def account(demo: DemoSample, login: str) -> NewAccount:
    return next(a for a in demo.accounts if a.user.login == login)


def code_at(node: Node, login: str, when: datetime) -> str:
    return pyotp.TOTP(node.directory.totp_secret(login)).at(when)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF field in the page"
    return match.group(1)


def error_of(html: str) -> str:
    match = re.search(r'<p class="error" role="alert">([^<]*)</p>', html)
    assert match, "no error message in the page"
    return match.group(1)


def make_ready(node: Node, clock: FixedClock, login: str) -> None:
    """A user who enrolled their authenticator and chose a password some time ago."""
    node.directory.verify_totp(login, code_at(node, login, clock.now() - timedelta(seconds=30)))
    node.directory.set_password(login, NEW_PASSWORD, actor="test")


def sessions(node: Node) -> list[dict[str, object]]:
    with node.db.begin() as conn:
        return [dict(r._mapping) for r in conn.execute(select(t.web_sessions)).all()]


def audit_actions(node: Node) -> list[str]:
    with node.db.begin() as conn:
        return [r.action for r in conn.execute(select(t.audit_entries).order_by(t.audit_entries.c.idx)).all()]


def login_fully(client: TestClient, node: Node, clock: FixedClock, login: str) -> str:
    """Log a ready user in; returns the inbox page."""
    page = client.post("/login", data={"login": login, "password": NEW_PASSWORD})
    assert page.url.path == "/login/totp"
    page = client.post(
        "/login/totp", data={"code": code_at(node, login, clock.now()), "csrf_token": csrf_of(page.text)}
    )
    assert page.status_code == 200, page.text
    return page.text


def test_login_page_is_japanese_by_default_and_english_on_request(client: TestClient) -> None:
    page = client.get("/login")
    assert page.status_code == 200
    assert '<html lang="ja">' in page.text and "ログイン名" in page.text and "パスワード" in page.text
    english = client.get("/login?lang=en")
    assert (
        '<html lang="en">' in english.text
        and "Login name" in english.text
        and "ログイン名" not in english.text
    )
    # The choice sticks (cookie) for the following pages.
    assert '<html lang="en">' in client.get("/login").text
    assert '<html lang="ja">' in client.get("/login?lang=ja").text


def test_first_login_enrols_totp_and_changes_password(
    client: TestClient, web_node: Node, demo: DemoSample, clock: FixedClock
) -> None:
    tanaka = account(demo, "tanaka")
    page = client.post("/login", data={"login": "tanaka", "password": tanaka.password})
    assert page.url.path == "/login/enrol"
    assert "<svg" in page.text and "認証アプリ" in page.text
    secret = web_node.directory.totp_secret("tanaka")
    assert secret[:4] in page.text.replace(" ", "")
    # Nothing else is reachable before the login is finished.
    assert client.get("/offices/civil-affairs/inbox").url.path == "/login/enrol"

    page = client.post(
        "/login/enrol",
        data={"code": code_at(web_node, "tanaka", clock.now()), "csrf_token": csrf_of(page.text)},
    )
    assert page.url.path == "/login/password"
    assert "新しいパスワード" in page.text
    assert client.get("/").url.path == "/login/password"

    page = client.post(
        "/login/password",
        data={
            "new_password": NEW_PASSWORD,
            "new_password_again": NEW_PASSWORD,
            "csrf_token": csrf_of(page.text),
        },
    )
    assert page.status_code == 200
    assert page.url.path == "/offices/civil-affairs/inbox"
    assert "受信箱" in page.text and "受信文書はありません" in page.text
    assert "田中 花子" in page.text and "民事局" in page.text and "内部" in page.text

    user = web_node.directory.user("tanaka")
    assert user.totp_confirmed and not user.must_change_password
    web_node.directory.check_password("tanaka", NEW_PASSWORD)
    actions = audit_actions(web_node)
    assert {"user.totp_enrolled", "auth.login", "user.password_changed"} <= set(actions)
    with web_node.db.begin() as conn:
        entries = b"".join(r.entry for r in conn.execute(select(t.audit_entries)).all())
    assert tanaka.password.encode() not in entries and NEW_PASSWORD.encode() not in entries
    assert secret.encode() not in entries


def test_password_change_refuses_bad_input_and_changes_nothing(
    client: TestClient, web_node: Node, demo: DemoSample, clock: FixedClock
) -> None:
    tanaka = account(demo, "tanaka")
    page = client.post("/login", data={"login": "tanaka", "password": tanaka.password})
    page = client.post(
        "/login/enrol",
        data={"code": code_at(web_node, "tanaka", clock.now()), "csrf_token": csrf_of(page.text)},
    )
    csrf = csrf_of(page.text)
    cases = [
        (NEW_PASSWORD, NEW_PASSWORD + "x", "一致しません"),
        ("short", "short", "12文字以上"),
        ("aaaaaaaaaaaa", "aaaaaaaaaaaa", "同じ文字や短い文字列の繰り返し"),
        ("password2026", "password2026", "よく使われるパスワード"),
        ("tanaka-no-pass", "tanaka-no-pass", "ログイン名を含めない"),
        ("civil-affairs-77", "civil-affairs-77", "部署コードを含めない"),
        (tanaka.password, tanaka.password, "異なるパスワード"),
    ]
    for first, second, message in cases:
        refused = client.post(
            "/login/password", data={"new_password": first, "new_password_again": second, "csrf_token": csrf}
        )
        assert refused.status_code == 422
        assert message in error_of(refused.text)
    english = client.post(
        "/login/password?lang=en",
        data={"new_password": "aaaaaaaaaaaa", "new_password_again": "aaaaaaaaaaaa", "csrf_token": csrf},
    )
    assert english.status_code == 422
    assert error_of(english.text) == (
        "the password must not be one character or a short pattern repeated, or a simple sequence"
    )
    assert web_node.directory.user("tanaka").must_change_password
    web_node.directory.check_password("tanaka", tanaka.password)
    assert client.get("/").url.path == "/login/password"


def test_login_with_totp_then_logout(client: TestClient, web_node: Node, clock: FixedClock) -> None:
    make_ready(web_node, clock, "sato")
    page = login_fully(client, web_node, clock, "sato")
    assert "佐藤 一郎" in page and "秘" in page
    assert client.get("/").url.path == "/offices/civil-affairs/inbox"
    cookie = client.cookies.get("inkless_session")
    assert cookie

    # The database holds only the SHA-256 of the cookie.
    rows = sessions(web_node)
    assert [r["stage"] for r in rows] == ["active"]
    assert rows[0]["id"] == hashlib.sha256(cookie.encode()).hexdigest()
    assert all(cookie not in str(value) for row in rows for value in row.values())

    inbox = client.get("/offices/civil-affairs/inbox")
    assert inbox.headers["cache-control"] == "no-store"
    page = client.post("/logout", data={"csrf_token": csrf_of(inbox.text)})
    assert page.url.path == "/login"
    assert sessions(web_node) == []
    assert "auth.logout" in audit_actions(web_node)
    # The old cookie is worthless now.
    client.cookies.set("inkless_session", cookie)
    assert client.get("/offices/civil-affairs/inbox").url.path == "/login"


def test_wrong_and_replayed_totp_codes_are_refused(
    client: TestClient, web_node: Node, clock: FixedClock
) -> None:
    make_ready(web_node, clock, "sato")
    page = client.post("/login", data={"login": "sato", "password": NEW_PASSWORD})
    csrf = csrf_of(page.text)
    good = code_at(web_node, "sato", clock.now())
    wrong = f"{(int(good) + 1) % 1_000_000:06d}"
    refused = client.post("/login/totp", data={"code": wrong, "csrf_token": csrf})
    assert refused.status_code == 401
    assert "ワンタイムコードが正しくない" in error_of(refused.text)
    assert [r["stage"] for r in sessions(web_node)] == ["totp"]

    assert (
        client.post("/login/totp", data={"code": good, "csrf_token": csrf}).url.path
        == "/offices/civil-affairs/inbox"
    )
    inbox = client.get("/")
    client.post("/logout", data={"csrf_token": csrf_of(inbox.text)})

    # Same code again, still within its 30 seconds: refused.
    page = client.post("/login", data={"login": "sato", "password": NEW_PASSWORD})
    replay = client.post("/login/totp", data={"code": good, "csrf_token": csrf_of(page.text)})
    assert replay.status_code == 401
    assert "すでに使用" in error_of(replay.text)
    clock.advance(seconds=30)
    fresh = client.post(
        "/login/totp", data={"code": code_at(web_node, "sato", clock.now()), "csrf_token": csrf_of(page.text)}
    )
    assert fresh.url.path == "/offices/civil-affairs/inbox"


def test_wrong_password_and_unknown_login_look_the_same(client: TestClient, web_node: Node) -> None:
    wrong = client.post("/login", data={"login": "tanaka", "password": "not-the-password"})
    unknown = client.post("/login", data={"login": "nobody", "password": "not-the-password"})
    assert wrong.status_code == unknown.status_code == 401
    assert error_of(wrong.text) == error_of(unknown.text) == "ログイン名またはパスワードが正しくありません。"
    assert sessions(web_node) == []
    # Failed passwords are anyone's: tallied per address and minute, not one permanent audit entry each.
    assert audit_actions(web_node).count("auth.login_failed") == 0
    with web_node.db.begin() as conn:
        tallied = conn.execute(
            select(anonymous_requests.c.count).where(
                anonymous_requests.c.endpoint == "login", anonymous_requests.c.outcome == "password-failed"
            )
        ).scalar_one()
    assert tallied == 2


def test_wrong_totp_codes_count_towards_the_limit(
    client: TestClient, web_node: Node, clock: FixedClock
) -> None:
    make_ready(web_node, clock, "sato")
    page = client.post("/login", data={"login": "sato", "password": NEW_PASSWORD})
    csrf = csrf_of(page.text)
    for _ in range(MAX_FAILURES):
        wrong = client.post(
            "/login/totp",
            data={
                "code": "000000" if code_at(web_node, "sato", clock.now()) != "000000" else "111111",
                "csrf_token": csrf,
            },
        )
        assert wrong.status_code == 401
    blocked = client.post(
        "/login/totp", data={"code": code_at(web_node, "sato", clock.now()), "csrf_token": csrf}
    )
    assert blocked.status_code == 429
    assert [r["stage"] for r in sessions(web_node)] == ["totp"]


def test_state_changes_without_csrf_token_are_refused(
    client: TestClient, web_node: Node, clock: FixedClock
) -> None:
    make_ready(web_node, clock, "sato")
    login_fully(client, web_node, clock, "sato")
    for data in ({}, {"csrf_token": "forged"}):
        refused = client.post("/logout", data=data)
        assert refused.status_code == 403
        assert "不正な送信" in refused.text
    assert [r["stage"] for r in sessions(web_node)] == ["active"]
    refused = client.post("/tokens", data={"name": "sneaky"})
    assert refused.status_code == 403
    with web_node.db.begin() as conn:
        assert conn.execute(select(t.api_tokens)).all() == []


def test_csrf_is_checked_during_login_steps_too(
    client: TestClient, web_node: Node, clock: FixedClock
) -> None:
    make_ready(web_node, clock, "sato")
    client.post("/login", data={"login": "sato", "password": NEW_PASSWORD})
    refused = client.post("/login/totp", data={"code": code_at(web_node, "sato", clock.now())})
    assert refused.status_code == 403
    assert [r["stage"] for r in sessions(web_node)] == ["totp"]


def test_inbox_of_another_office_is_forbidden_even_for_admins(
    client: TestClient, web_node: Node, clock: FixedClock
) -> None:
    make_ready(web_node, clock, "sato")
    login_fully(client, web_node, clock, "sato")
    page = client.get("/offices/criminal-affairs/inbox")
    assert page.status_code == 403
    assert "自分の部署のページしか開くことができません" in page.text
    assert "受信文書" not in page.text

    admin = TestClient(client.app)
    make_ready(web_node, clock, "yamada")
    clock.advance(seconds=30)
    login_fully(admin, web_node, clock, "yamada")
    assert admin.get("/offices/civil-affairs/inbox").status_code == 403
    assert admin.get("/offices/secretariat/inbox").status_code == 200


def test_session_expires_when_idle(client: TestClient, web_node: Node, clock: FixedClock) -> None:
    make_ready(web_node, clock, "sato")
    login_fully(client, web_node, clock, "sato")
    clock.advance(minutes=61)
    assert client.get("/offices/civil-affairs/inbox").url.path == "/login"
    assert sessions(web_node) == []


def test_unfinished_login_expires(client: TestClient, web_node: Node, clock: FixedClock) -> None:
    make_ready(web_node, clock, "sato")
    page = client.post("/login", data={"login": "sato", "password": NEW_PASSWORD})
    clock.advance(minutes=11)
    late = client.post(
        "/login/totp", data={"code": code_at(web_node, "sato", clock.now()), "csrf_token": csrf_of(page.text)}
    )
    assert late.url.path == "/login"


def test_tokens_page_creates_shows_once_and_revokes(
    client: TestClient, web_node: Node, clock: FixedClock
) -> None:
    # API tokens are for administrators and integrators (a scanner's account, for instance).
    web_node.directory.add_user("renkei", "civil-affairs", "integrator", 1, "連携 一郎", actor="test")
    make_ready(web_node, clock, "renkei")
    inbox = login_fully(client, web_node, clock, "renkei")
    assert 'href="/tokens"' in inbox
    page = client.post(
        "/tokens", data={"name": "scanner", "expires_days": "30", "csrf_token": csrf_of(inbox)}
    )
    assert page.status_code == 200
    secret = re.search(r'<code class="secret" id="new-token">(ink_[^<]+)</code>', page.text)
    assert secret
    assert "この一度だけ" in page.text
    listing = client.get("/tokens")
    assert "scanner" in listing.text and secret.group(1) not in listing.text
    token_id = re.search(r'action="/tokens/(\d+)/revoke"', listing.text)
    assert token_id
    bad = client.post("/tokens", data={"name": " ", "csrf_token": csrf_of(listing.text)})
    assert bad.status_code == 422 and "トークン名は1〜100文字" in bad.text
    page = client.post(f"/tokens/{token_id.group(1)}/revoke", data={"csrf_token": csrf_of(listing.text)})
    assert "失効" in page.text
    tokens = ApiTokenService(web_node.db, web_node.directory, web_node.audit, clock).list("renkei")
    assert [(tok.name, tok.state(clock.now())) for tok in tokens] == [("scanner", "revoked")]


def test_clerks_and_approvers_see_no_api_tokens(client: TestClient, web_node: Node, clock: FixedClock) -> None:
    make_ready(web_node, clock, "sato")
    inbox = login_fully(client, web_node, clock, "sato")
    assert 'href="/tokens"' not in inbox and 'href="/admin"' not in inbox
    refused = client.get("/tokens")
    assert refused.status_code == 403 and "APIトークンは管理者と連携担当者のためのものです。" in refused.text


def test_session_cookie_is_secure_on_an_https_node(web_node: Node, clock: FixedClock) -> None:
    settings = dataclasses.replace(web_node.settings, base_url="https://inkless.example.go.jp")
    https_node = build_node(settings, clock)
    try:
        make_ready(https_node, clock, "sato")
        with TestClient(create_app(https_node), base_url="https://testserver") as client:
            response = client.post(
                "/login", data={"login": "sato", "password": NEW_PASSWORD}, follow_redirects=False
            )
        cookie = response.headers["set-cookie"].lower()
        assert "secure" in cookie and "httponly" in cookie and "samesite=lax" in cookie
    finally:
        https_node.close()


def test_abandoned_sessions_are_purged_at_the_next_login(
    client: TestClient, web_node: Node, clock: FixedClock
) -> None:
    make_ready(web_node, clock, "sato")
    client.post("/login", data={"login": "sato", "password": NEW_PASSWORD})
    clock.advance(minutes=11)
    TestClient(client.app).post("/login", data={"login": "sato", "password": NEW_PASSWORD})
    assert [r["stage"] for r in sessions(web_node)] == ["totp"]
