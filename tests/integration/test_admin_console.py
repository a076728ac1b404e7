"""The admin console over HTTP (real database, the app's own pages): scope, bad input, audit entries.

Who may open what is checked route by route in test_authorisation_matrix.py; here each action is
followed to what it changed (or did not change), and the Administration service is called directly
to show that the scope is enforced below the pages too.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Iterator

import pytest
from PIL import Image
from sqlalchemy import select

from inkless.app import Node
from inkless.db import tables as t
from inkless.directory.demo import DemoSample
from inkless.errors import AuthenticationError, PolicyError, ValidationError
from inkless.web.app import create_app
from tests.helpers.web import BrowserLogin, browser_login

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from fastapi.testclient import TestClient


@pytest.fixture
def app(node: Node, demo: DemoSample) -> Iterator[TestClient]:
    node.directory.add_user("kanri", "civil-affairs", "admin", 3, "管理 一郎", actor="test")
    with TestClient(create_app(node), follow_redirects=False) as client:
        yield client


def _as(client: TestClient, login: BrowserLogin) -> TestClient:
    client.cookies.set("inkless_session", login.cookie)
    return client


def _audit_actions(node: Node, since: int) -> list[tuple[str, str, str | None]]:
    with node.db.read() as conn:
        return [(e.actor, e.action, e.object_id) for e in node.audit.entries(conn, since, 100)]


def _size(node: Node) -> int:
    with node.db.read() as conn:
        return node.audit.tree_size(conn)


def _png(size: int = 120) -> bytes:
    image = Image.new("RGB", (size, size), "white")
    for i in range(size):
        image.putpixel((i, i), (200, 0, 0))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def test_office_admin_adds_a_user_to_their_office_and_sees_the_first_login_secrets(
    app: TestClient, node: Node
) -> None:
    kanri = browser_login(node, "kanri")
    client = _as(app, kanri)
    before = _size(node)
    page = client.post("/admin/users", data={"login": "nakamura", "display_name": "中村 愛", "office": "civil-affairs",
                                             "role": "clerk", "clearance": "1", "csrf_token": kanri.csrf})
    assert page.status_code == 200, page.text
    assert "ユーザー nakamura を追加しました" in page.text
    password = re.search(r'id="new-password">([^<]+)<', page.text)
    assert password and node.directory.check_password("nakamura", password.group(1)).office_code == "civil-affairs"
    assert 'data-login="nakamura"' in page.text
    assert ("kanri", "user.created", "nakamura") in _audit_actions(node, before)


def test_bad_input_is_refused_in_japanese_and_changes_nothing(app: TestClient, node: Node) -> None:
    kanri = browser_login(node, "kanri")
    client = _as(app, kanri)
    users_before = node.directory.count_users()
    size = _size(node)
    duplicate = client.post("/admin/users", data={"login": "tanaka", "display_name": "別人", "office": "civil-affairs",
                                                  "role": "clerk", "clearance": "1", "csrf_token": kanri.csrf})
    assert duplicate.status_code == 409
    assert "ログイン名「tanaka」はすでに使われています。何も追加していません。" in duplicate.text
    assert 'value="別人"' in duplicate.text  # the form keeps what was typed
    bad_fax = client.post("/admin/offices/civil-affairs", data={
        "name": "民事局", "kana": "ミンジキョク", "fax_number": "03-FAX-0000", "csrf_token": kanri.csrf})
    assert bad_fax.status_code == 422
    assert "FAX番号は数字" in bad_fax.text and "何も変更していません" in bad_fax.text
    assert node.directory.office("civil-affairs").fax_number == "03-3580-4111"
    # A text file named .png, and a PNG cut short: judged by what they contain.
    for name, data in (("seal.png", b"not an image at all"), ("seal.png", _png()[:200])):
        refused = client.post("/admin/offices/civil-affairs/seal", data={"csrf_token": kanri.csrf},
                              files={"image": (name, data, "image/png")})
        assert refused.status_code == 422
        assert "印影の画像は PNG または JPEG" in refused.text
    assert node.admin is not None and node.admin.seal_image(None, "civil-affairs") is None
    assert node.directory.count_users() == users_before
    assert _size(node) == size  # nothing changed, nothing audited


def test_an_office_admin_manages_only_their_own_office_in_the_service_too(app: TestClient, node: Node) -> None:
    admin = node.admin
    assert admin is not None
    kanri = node.directory.user("kanri")
    with pytest.raises(PolicyError):
        admin.add_user(kanri, "spy", "criminal-affairs", "clerk", 1, "間者 一")
    with pytest.raises(PolicyError):
        admin.lock(kanri, "takahashi")
    with pytest.raises(PolicyError):
        admin.update_office(kanri, "criminal-affairs", "刑事局", None, "03-0000-0000")
    with pytest.raises(PolicyError):
        admin.add_user(kanri, "boss", "civil-affairs", "operator", 3, "上司 一")
    with pytest.raises(PolicyError):
        admin.add_office(kanri, "new-office", "新局")
    with pytest.raises(PolicyError):
        admin.lock(kanri, "kanri")  # nobody locks themselves out
    clerk = node.directory.user("tanaka")
    with pytest.raises(PolicyError):
        admin.users(clerk)
    assert [u.office_code for u in admin.users(kanri)] == ["civil-affairs"] * 5
    operator = node.directory.user("matsumoto")
    assert {u.office_code for u in admin.users(operator)} == {"civil-affairs", "criminal-affairs", "secretariat"}
    assert admin.add_office(operator, "tokyo", "東京法務局", "03-5213-1234", "トウキョウホウムキョク").kana == (
        "トウキョウホウムキョク")


def test_lock_ends_sessions_and_login_until_unlocked_then_last_login_is_kept(app: TestClient, node: Node) -> None:
    admin = node.admin
    assert admin is not None
    tanaka = browser_login(node, "tanaka")
    kanri = browser_login(node, "kanri")
    node.directory.set_password("tanaka", "hikari-no-michi-2026", actor="test")
    client = _as(app, kanri)
    missing = client.post("/admin/users/tanaka/lock", data={"csrf_token": kanri.csrf})
    assert missing.status_code == 422 and "確認のチェックを入れてください" in missing.text
    assert not node.directory.user("tanaka").locked
    locked = client.post("/admin/users/tanaka/lock", data={"csrf_token": kanri.csrf, "confirm": "yes"})
    assert locked.status_code == 303
    assert "ロック中" in client.get(locked.headers["location"]).text
    with pytest.raises(AuthenticationError):
        node.directory.check_password("tanaka", "hikari-no-michi-2026")
    with node.db.read() as conn:
        sessions = conn.execute(select(t.web_sessions.c.id).where(
            t.web_sessions.c.user_id == node.directory.user("tanaka").id)).all()
    assert sessions == []  # tanaka's browser session ended with the lock
    assert tanaka.cookie  # (the cookie the browser still holds now opens nothing)
    admin.unlock(node.directory.user("kanri"), "tanaka")
    assert node.directory.check_password("tanaka", "hikari-no-michi-2026").login == "tanaka"


def test_seal_image_is_stored_and_served_as_its_content_type(app: TestClient, node: Node) -> None:
    kanri = browser_login(node, "kanri")
    client = _as(app, kanri)
    saved = client.post("/admin/offices/civil-affairs/seal", data={"csrf_token": kanri.csrf},
                        files={"image": ("kakuin.bin", _png(), "application/octet-stream")})
    assert saved.status_code == 303
    image = client.get("/admin/offices/civil-affairs/seal")
    assert image.headers["content-type"] == "image/png" and image.content == _png()
    with pytest.raises(ValidationError):
        node.admin.set_seal_image(None, "civil-affairs", _png(8))  # type: ignore[union-attr]  # too small to be a seal


def test_an_office_admin_opens_and_closes_the_intake_window_from_the_console(app: TestClient, node: Node) -> None:
    assert node.intake is not None
    kanri = browser_login(node, "kanri")
    client = _as(app, kanri)
    before = _size(node)
    page = client.get("/admin/offices/civil-affairs").text
    assert '<section class="card" id="intake" data-open="0">' in page and "受付窓口を開く" in page
    assert "http://" in page.split('id="intake"')[1].split("</section>")[0]  # the window's URL, to print

    # No CSRF token, or neither open nor close: refused, the window stays closed, nothing audited.
    assert client.post("/admin/offices/civil-affairs/intake", data={"open": "1"}).status_code == 403
    bad = client.post("/admin/offices/civil-affairs/intake", data={"open": "yes", "csrf_token": kanri.csrf})
    assert bad.status_code == 422 and "受付窓口を開くか閉じるかを選んでください。何も変更していません。" in bad.text
    assert not node.intake.window("civil-affairs").is_open
    assert _audit_actions(node, before) == []

    opened = client.post("/admin/offices/civil-affairs/intake", data={"open": "1", "csrf_token": kanri.csrf})
    assert opened.status_code == 303
    page = client.get(opened.headers["location"]).text
    assert "受付窓口を開きました。" in page and 'data-open="1"' in page and "受付窓口を閉じる" in page
    assert node.intake.window("civil-affairs").is_open
    assert app.get("/intake/civil-affairs").status_code == 200  # the public form

    english = client.get("/admin/offices/civil-affairs?lang=en").text.split('id="intake"')[1].split("</section>")[0]
    assert "Close the intake window" in english and not any("\u3040" <= c <= "\u9fff" for c in english)

    # Another office's administrator cannot touch it.
    yamada = browser_login(node, "yamada")
    other = TestClient(app.app, follow_redirects=False)
    other.cookies.set("inkless_session", yamada.cookie)
    assert other.post("/admin/offices/civil-affairs/intake",
                      data={"open": "0", "csrf_token": yamada.csrf}).status_code == 403
    assert node.intake.window("civil-affairs").is_open

    closed = client.post("/admin/offices/civil-affairs/intake", data={"open": "0", "csrf_token": kanri.csrf})
    assert closed.status_code == 303
    # (?lang=en above left the language cookie on English)
    assert "The intake window is closed" in client.get(closed.headers["location"]).text
    assert not node.intake.window("civil-affairs").is_open
    assert _audit_actions(node, before) == [("kanri", "intake.opened", "civil-affairs"),
                                            ("kanri", "intake.closed", "civil-affairs")]
