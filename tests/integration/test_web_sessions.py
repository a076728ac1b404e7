"""Login CSRF, sessions that end with the browser, the list of one's sessions, and HSTS under https."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from inkless.app import Node, build_node
from inkless.db import tables as t
from inkless.directory.demo import DemoSample
from inkless.web.app import create_app
from tests.helpers.web import TestClient, bearer, browser_login

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"
EDGE = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/141.0 Safari/537.36 Edg/141.0"


@pytest.fixture
def client(node: Node, demo: DemoSample) -> Iterator[TestClient]:
    with TestClient(create_app(node)) as c:
        yield c


def password_of(demo: DemoSample, login: str) -> str:
    return next(a.password for a in demo.accounts if a.user.login == login)


def session_rows(node: Node) -> list[dict[str, object]]:
    with node.db.begin() as conn:
        return [dict(r._mapping) for r in conn.execute(select(t.web_sessions)).all()]


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
def test_a_login_posted_from_another_site_is_refused(
    client: TestClient, node: Node, demo: DemoSample, headers: dict[str, str]
) -> None:
    # The attacker's page submits its own account's credentials to log the victim's browser in.
    refused = client.post("/login", data={"login": "tanaka", "password": password_of(demo, "tanaka")},
                          headers=headers, follow_redirects=False)
    assert refused.status_code == 403
    assert "別のサイトから送信されました" in refused.text
    assert "set-cookie" not in refused.headers or "inkless_session" not in refused.headers["set-cookie"]
    assert session_rows(node) == []


def test_a_login_from_this_site_still_works(client: TestClient, node: Node, demo: DemoSample) -> None:
    # (Chromium under a no-referrer policy sends "Origin: null" with "Sec-Fetch-Site: same-origin".)
    base = urlsplit(node.settings.base_url)
    for headers in ({"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"},
                    {"Origin": "null", "Sec-Fetch-Site": "same-origin"},
                    {"Origin": f"{base.scheme}://{base.netloc}"}, {}):
        ok = client.post("/login", data={"login": "tanaka", "password": password_of(demo, "tanaka")},
                         headers=headers, follow_redirects=False)
        assert ok.status_code == 303 and ok.headers["location"] == "/login/enrol", headers
    # The next steps check the origin too.
    step = client.post("/login/enrol", data={"code": "000000"}, headers={"Origin": "https://evil.example"})
    assert step.status_code == 403


def test_a_login_over_a_live_session_does_not_replace_it(client: TestClient, node: Node, demo: DemoSample) -> None:
    clerk = browser_login(node, "sato")
    client.cookies.set("inkless_session", clerk.cookie)
    refused = client.post("/login", data={"login": "tanaka", "password": password_of(demo, "tanaka")},
                          follow_redirects=False)
    assert refused.status_code == 409
    assert "すでにログインしています" in refused.text and "ログアウトしてください" in refused.text
    assert "set-cookie" not in refused.headers
    assert [(r["user_id"], r["stage"]) for r in session_rows(node)] == [(node.directory.user("sato").id, "active")]
    assert client.get("/api/v1/me").json()["login"] == "sato"


def test_the_session_cookie_ends_with_the_browser(client: TestClient, demo: DemoSample) -> None:
    response = client.post("/login", data={"login": "tanaka", "password": password_of(demo, "tanaka")},
                           follow_redirects=False)
    cookie = response.headers["set-cookie"].lower()
    assert cookie.startswith("inkless_session=")
    assert "max-age" not in cookie and "expires" not in cookie
    assert "httponly" in cookie and "samesite=lax" in cookie


def test_hsts_is_sent_only_under_an_https_base_url(client: TestClient, node: Node) -> None:
    assert "strict-transport-security" not in client.get("/login").headers
    https = build_node(dataclasses.replace(node.settings, base_url="https://inkless.example.go.jp"))
    try:
        with TestClient(create_app(https), base_url="https://testserver") as secure:
            for path in ("/login", "/healthz", "/no-such-page"):
                assert secure.get(path).headers["strict-transport-security"] == "max-age=63072000; includeSubDomains"
    finally:
        https.close()


def test_sessions_page_lists_own_sessions_and_signs_them_out(client: TestClient, node: Node) -> None:
    here = browser_login(node, "sato", user_agent=FIREFOX, client="192.0.2.10")
    there = browser_login(node, "sato", user_agent=EDGE, client="198.51.100.7")
    other = browser_login(node, "tanaka", user_agent="TanakaBrowser/1.0")
    client.cookies.set("inkless_session", here.cookie)
    page = client.get("/sessions")
    assert page.status_code == 200
    assert "ログイン中の端末" in page.text and "最終利用（日本時間）" in page.text
    assert "Firefox/140.0" in page.text and "Edg/141.0" in page.text and "198.51.100.7" in page.text
    assert "TanakaBrowser" not in page.text  # only one's own sessions
    assert "このブラウザ" in page.text
    # Times are shown in JST.
    with node.db.begin() as conn:
        seen = conn.execute(select(t.web_sessions.c.last_seen_at)).scalars().first()
    assert seen is not None
    from inkless import timefmt
    assert timefmt.format_datetime(seen, "ja") in page.text  # 2026年12月3日 23:05 JST

    refs = re.findall(r'action="/sessions/([0-9a-f]{16})/end"', page.text)
    assert len(refs) == 2
    listed = client.get("/api/v1/sessions").json()
    assert {s["user_agent"]: s["current"] for s in listed} == {FIREFOX: True, EDGE: False}
    edge_ref = next(s["ref"] for s in listed if s["user_agent"] == EDGE)
    # Another user's session cannot be named.
    tanaka_ref = TestClient(client.app, cookies=other.cookies).get("/api/v1/sessions").json()[0]["ref"]
    assert client.post(f"/sessions/{tanaka_ref}/end", data={"csrf_token": here.csrf}).status_code == 200
    assert len(session_rows(node)) == 3

    ended = client.post(f"/sessions/{edge_ref}/end", data={"csrf_token": here.csrf})
    assert ended.status_code == 200 and "セッションをサインアウトしました" in ended.text
    assert TestClient(client.app, cookies=there.cookies).get("/api/v1/me").status_code == 401
    assert client.get("/api/v1/me").json()["login"] == "sato"

    # Sign out everywhere: this browser too; tanaka is untouched.
    browser_login(node, "sato", user_agent=EDGE)
    gone = client.post("/sessions/end-all", data={"csrf_token": here.csrf}, follow_redirects=False)
    assert gone.status_code == 303 and gone.headers["location"] == "/login"
    assert client.get("/api/v1/me").status_code == 401
    assert [r["user_id"] for r in session_rows(node)] == [node.directory.user("tanaka").id]


def test_sign_out_everywhere_through_the_api(client: TestClient, node: Node) -> None:
    for agent in (FIREFOX, EDGE):
        browser_login(node, "sato", user_agent=agent)
    token = bearer(node, "sato")
    assert len(client.get("/api/v1/sessions", headers=token).json()) == 2
    assert client.delete("/api/v1/sessions/0000000000000000", headers=token).status_code == 404
    assert client.post("/api/v1/sessions/end-all", headers=token).json() == {"ended": 2}
    assert session_rows(node) == []
