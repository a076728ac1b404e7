"""The admin console in Debian's chromium against ``inkless serve``: a node operator's main paths.

One module shares two served nodes (moj with the demo offices, npa to pin) and one browser; the
operator (matsumoto) logs in once. Each test works on its own objects (its own user, token, peer
or block-list entry) and runs at 1366 or 390 px; screenshots of every page go to
``test-artifacts/admin/``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pyotp
import pytest

from inkless.directory.demo import create_demo
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.helpers.nodes import NodeProcess, node_processes, start_nodes

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "admin"
NEW_PASSWORD = "kanri-no-mado-2026-fuyu"
WIDE: Any = {"width": 1366, "height": 900}
PHONE: Any = {"width": 390, "height": 844}
JST = ZoneInfo("Asia/Tokyo")


@dataclass
class Console:
    moj: NodeProcess
    npa: NodeProcess
    accounts: dict[str, dict[str, str]]
    browser: Any
    page: Any  # the operator's logged-in page

    def url(self, path: str) -> str:
        return self.moj.url + path

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def login(page: Any, base: str, login: str, password: str, secret: str) -> None:
    """First login through the pages: password, authenticator enrolment, new password."""
    from playwright.sync_api import expect

    page.goto(base + "/login")
    page.get_by_label("ログイン名").fill(login)
    page.get_by_label("パスワード").fill(password)
    page.get_by_role("button", name="次へ").click()
    expect(page).to_have_url(base + "/login/enrol")
    page.get_by_label("認証アプリに表示される6桁のコード").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="確認").click()
    page.get_by_label("新しいパスワード", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("新しいパスワード（確認）").fill(NEW_PASSWORD)
    page.get_by_role("button", name="パスワードを変更").click()
    expect(page).to_have_url(re.compile(r".*/offices/[a-z-]+/inbox$"))


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    from playwright.sync_api import sync_playwright

    folder = tmp_path_factory.mktemp("admin-console")
    with node_processes("sqlite", folder, ["moj", "npa"]) as nodes:
        moj, npa = nodes["moj"], nodes["npa"]
        moj_init, npa_init = moj.begin_init(), npa.begin_init()
        moj.finish_init(moj_init, ())
        npa.finish_init(npa_init, (("security", "警備局"),))
        control = moj.control()
        try:
            accounts = {a.user.login: {"password": a.password, "totp_secret": a.totp_secret}
                        for a in create_demo(control.directory).accounts}
        finally:
            control.close()
        start_nodes(moj, npa)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_context(locale="ja-JP", viewport=WIDE).new_page()
                operator = accounts["matsumoto"]
                login(page, moj.url, "matsumoto", operator["password"], operator["totp_secret"])
                yield Console(moj, npa, accounts, browser, page)
            finally:
                browser.close()


@pytest.fixture
def ops(console: Console) -> Console:
    """The shared console, back in Japanese at 1366 px."""
    console.page.set_viewport_size(WIDE)
    console.page.goto(console.url("/admin?lang=ja"))
    return console


def _no_horizontal_scroll(page: Any) -> None:
    """The console (its menu and the section) fits the width: nothing in it needs sideways scrolling."""
    assert page.evaluate(
        "[...document.querySelectorAll('.console, .console *')].every("
        "e => e.getBoundingClientRect().right <= window.innerWidth + 1 || e.closest('.table-wrap'))"
    )


def test_add_a_user_and_see_them_listed_with_their_last_login_in_jst(ops: Console) -> None:
    from playwright.sync_api import expect

    page = ops.page
    page.get_by_role("navigation", name="管理").get_by_role("link", name="ユーザー").click()
    expect(page.get_by_role("heading", name="ユーザー", exact=True)).to_be_visible()
    ops.shot("users-1366-ja")
    form = page.locator("#add-user")
    form.get_by_label("ログイン名").fill("nakamura")
    form.get_by_label("名前").fill("中村 愛")
    form.get_by_label("部署").select_option("civil-affairs")
    form.get_by_label("役割").select_option("clerk")
    form.get_by_label("取扱区分").select_option("1")
    form.get_by_role("button", name="ユーザーを追加").click()
    expect(page.get_by_role("status")).to_contain_text("ユーザー nakamura を追加しました")
    password = page.locator("#new-password").inner_text()
    secret = page.locator("#new-totp").inner_text()
    row = page.locator('tr[data-login="nakamura"]')
    expect(row).to_contain_text("中村 愛")
    expect(row.locator(".last-login")).to_have_text("なし")
    ops.shot("users-added-1366-ja")

    # The same login again: refused in Japanese, the form keeps what was typed, nobody is added.
    form.get_by_label("ログイン名").fill("nakamura")
    form.get_by_label("名前").fill("別の 人")
    form.get_by_role("button", name="ユーザーを追加").click()
    expect(page.get_by_role("alert")).to_have_text("ログイン名「nakamura」はすでに使われています。何も追加していません。")
    expect(form.get_by_label("名前")).to_have_value("別の 人")
    expect(page.locator('tr[data-login="nakamura"]')).to_have_count(1)

    # nakamura logs in for the first time in another browser; the list shows when, in JST.
    other = ops.browser.new_context(locale="ja-JP", viewport=PHONE).new_page()
    try:
        login(other, ops.moj.url, "nakamura", password, secret)
    finally:
        other.context.close()
    today = datetime.now(JST)
    page.goto(ops.url("/admin/users?office=civil-affairs"))
    shown = page.locator('tr[data-login="nakamura"] .last-login').inner_text()
    assert shown.startswith(f"{today.year}年{today.month}月") and shown.endswith(" JST"), shown
    page.goto(ops.url("/admin/users?office=civil-affairs&lang=en"))
    shown_en = page.locator('tr[data-login="nakamura"] .last-login').inner_text()
    assert re.fullmatch(rf"{today:%Y-%m}-\d\d \d\d:\d\d JST", shown_en), shown_en
    expect(page.get_by_role("heading", name="Users", exact=True)).to_be_visible()
    ops.shot("users-1366-en")


def test_lock_unlock_and_reset_one_time_codes_on_a_phone(ops: Console) -> None:
    from playwright.sync_api import expect

    page = ops.page
    page.set_viewport_size(PHONE)
    page.goto(ops.url("/admin/users/tanaka"))
    expect(page.get_by_role("heading", name="田中 花子 tanaka")).to_be_visible()
    _no_horizontal_scroll(page)
    ops.shot("user-390-ja")
    lock = page.locator('form[action="/admin/users/tanaka/lock"]')
    lock.get_by_role("button", name="ロック").click()  # not confirmed: the browser asks for the box first
    expect(page).to_have_url(ops.url("/admin/users/tanaka"))
    lock.get_by_role("checkbox").check()
    lock.get_by_role("button", name="ロック").click()
    expect(page.get_by_role("status")).to_contain_text("tanaka をロックしました")
    expect(page.locator("#user-facts .state")).to_contain_text("ロック中")

    # Locked: tanaka's own password no longer opens anything.
    other = ops.browser.new_context(locale="ja-JP").new_page()
    try:
        other.goto(ops.url("/login"))
        other.get_by_label("ログイン名").fill("tanaka")
        other.get_by_label("パスワード").fill(ops.accounts["tanaka"]["password"])
        other.get_by_role("button", name="次へ").click()
        expect(other.get_by_role("alert")).to_have_text("ログイン名またはパスワードが正しくありません。")
    finally:
        other.context.close()

    page.get_by_role("button", name="ロック解除").click()
    expect(page.get_by_role("status")).to_contain_text("tanaka のロックを解除しました")
    expect(page.locator("#user-facts .state")).to_have_text("有効")

    reset = page.locator('form[action="/admin/users/tanaka/reset-totp"]')
    reset.get_by_role("checkbox").check()
    reset.get_by_role("button", name="ワンタイムコードを再設定").click()
    expect(page.get_by_role("status")).to_contain_text("tanaka のワンタイムコードの鍵を再設定しました")
    expect(page.locator("#user-facts .totp")).to_have_text("未登録（次回のログインで登録）")
    _no_horizontal_scroll(page)
    ops.shot("user-reset-390-ja")

    page.goto(ops.url("/admin/audit?object_type=user&object_id=tanaka"))
    actions = page.locator("table.audit tbody tr td:nth-child(4)").all_inner_texts()
    assert actions[:3] == ["user.totp_reset", "user.unlocked", "user.locked"], actions
    expect(page.locator("table.audit tbody tr").first).to_contain_text("matsumoto")


def test_pin_a_peer_by_the_fingerprint_read_aloud(ops: Console) -> None:
    from playwright.sync_api import expect

    page = ops.page
    page.goto(ops.url("/admin/peers"))
    own = page.locator("#own-fingerprint ol.fingerprint li").all_inner_texts()
    assert "".join(own) == ops.moj.fingerprint.split(":", 1)[1] and len(own) == 16
    page.get_by_label("相手ノードのアドレス").fill(ops.npa.url)
    page.get_by_role("button", name="フィンガープリントを表示").click()
    expect(page.locator("#pin")).to_contain_text("npa と名乗り")
    presented = page.locator("#pin ol.fingerprint li").all_inner_texts()
    assert "".join(presented) == ops.npa.fingerprint.split(":", 1)[1]
    ops.shot("peers-compare-1366-ja")

    # Misheard (moj's own fingerprint instead of npa's): refused, nothing pinned.
    page.get_by_label("読み上げられたフィンガープリント").fill(" ".join(own))
    page.get_by_role("checkbox").check()
    page.get_by_role("button", name="登録する").click()
    expect(page.get_by_role("alert")).to_contain_text("入力したフィンガープリントは、そのノードが示すものと一致しません。登録していません。")
    expect(page.locator("#pinned")).to_contain_text("登録済みのノードはまだありません。")

    page.get_by_label("相手ノードのアドレス").fill(ops.npa.url)
    page.get_by_role("button", name="フィンガープリントを表示").click()
    read_aloud = " ".join(g.lower() for g in presented)  # as typed while listening: lower case, spaces
    page.get_by_label("読み上げられたフィンガープリント").fill(read_aloud)
    page.get_by_role("checkbox").check()
    page.get_by_role("button", name="登録する").click()
    expect(page.get_by_role("status")).to_contain_text("ノード npa を登録しました")
    row = page.locator('tr[data-node="npa"]')
    expect(row).to_contain_text(ops.npa.url)
    page.set_viewport_size(PHONE)
    _no_horizontal_scroll(page)
    ops.shot("peers-390-ja")
    page.set_viewport_size(WIDE)

    row.get_by_role("button", name="更新").click()
    expect(page.get_by_role("status")).to_contain_text("npa の部署一覧")
    row = page.locator('tr[data-node="npa"]')
    row.get_by_role("checkbox").check()
    row.get_by_role("button", name="登録解除").click()
    expect(page.get_by_role("status")).to_have_text(
        "ノード npa の登録を解除しました。今後そのノードからの要求は拒否されます。")
    expect(page.locator('tr[data-node="npa"]')).to_have_count(0)


def test_search_the_audit_log_and_see_an_entry_s_inclusion_proof_verify(ops: Console) -> None:
    from playwright.sync_api import expect

    page = ops.page
    ops.moj.cli("audit", "head")  # a signed tree head covering the entries so far
    page.get_by_role("navigation", name="管理").get_by_role("link", name="監査ログ").click()
    page.get_by_label("操作").fill("user.created")
    page.get_by_label("対象", exact=True).fill("sato")
    page.get_by_role("button", name="検索").click()
    expect(page.locator("#audit-count")).to_have_text("該当 1 件。")
    row = page.locator("table.audit tbody tr")
    expect(row).to_contain_text("user.created")
    assert row.locator("td:nth-child(2)").inner_text().endswith(" JST")
    ops.shot("audit-1366-ja")
    row.get_by_role("link").click()
    expect(page.locator("#proof .verdict.ok")).to_contain_text("検証済み：この記録は")
    expect(page.locator("#proof .verdict.ok")).to_contain_text("署名付きツリーヘッド")
    ops.shot("audit-entry-1366-ja")
    page.goto(page.url + "?lang=en")
    expect(page.locator("#proof .verdict.ok")).to_contain_text(
        "Verified: this entry is included in the signed tree head")
    page.set_viewport_size(PHONE)
    _no_horizontal_scroll(page)
    ops.shot("audit-entry-390-en")
    page.goto(ops.url("/admin/audit?lang=ja"))
    page.get_by_role("button", name="今すぐ検証").click()
    expect(page.get_by_role("status")).to_contain_text("監査ログ全体を再計算し、改ざんがないことを確認しました")


def test_revoke_a_token(ops: Console) -> None:
    from playwright.sync_api import expect

    control = ops.moj.control()
    try:
        assert control.tokens is not None
        secret = control.tokens.create("yamada", "secretariat", "会計システム連携", actor="yamada").secret
    finally:
        control.close()
    assert httpx.get(ops.url("/api/v1/me"), headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    page = ops.page
    page.get_by_role("navigation", name="管理").get_by_role("link", name="APIトークン").click()
    row = page.locator("tr", has_text="会計システム連携")
    expect(row.locator(".state")).to_have_text("有効")
    ops.shot("tokens-1366-ja")
    row.get_by_role("checkbox").check()
    row.get_by_role("button", name="失効").click()
    expect(page.get_by_role("status")).to_contain_text("yamada のトークン「会計システム連携」を失効させました")
    expect(page.locator("tr", has_text="会計システム連携").locator(".state")).to_have_text("失効")
    assert httpx.get(ops.url("/api/v1/me"), headers={"Authorization": f"Bearer {secret}"}).status_code == 401


def test_add_a_fax_block_list_number_and_refuse_a_bad_office_fax_number(ops: Console) -> None:
    from playwright.sync_api import expect

    page = ops.page
    page.get_by_role("navigation", name="管理").get_by_role("link", name="FAXの振り分けと拒否リスト").click()
    blocks = page.locator("#blocks")
    blocks.get_by_label("種類").select_option("cid")
    blocks.get_by_label("パターン").fill("0120-444-444")
    blocks.get_by_label("理由").fill("迷惑FAX")
    blocks.get_by_role("button", name="拒否").click()
    expect(page.locator("#blocks table")).to_contain_text("0120-444-444")
    ops.shot("fax-admin-1366-ja")

    page.goto(ops.url("/admin/offices/criminal-affairs"))
    page.get_by_label("FAX番号").fill("03-FAX-4112")
    page.get_by_role("button", name="保存").click()
    expect(page.get_by_role("alert")).to_contain_text("FAX番号は数字で入力してください")
    expect(page.get_by_label("FAX番号")).to_have_value("03-FAX-4112")  # what was typed stays
    page.goto(ops.url("/admin/offices"))
    expect(page.locator('tr[data-office="criminal-affairs"]')).to_contain_text("03-3580-4112")  # unchanged
    page.set_viewport_size(PHONE)
    _no_horizontal_scroll(page)
    ops.shot("offices-390-ja")


def test_a_clerk_sees_no_admin_menu_and_gets_403(ops: Console) -> None:
    from playwright.sync_api import expect

    clerk = ops.accounts["takahashi"]
    page = ops.browser.new_context(locale="ja-JP", viewport=PHONE).new_page()
    try:
        login(page, ops.moj.url, "takahashi", clerk["password"], clerk["totp_secret"])
        menu = page.get_by_role("navigation", name="メイン")
        expect(menu.get_by_role("link", name="管理")).to_have_count(0)
        expect(menu.get_by_role("link", name="APIトークン")).to_have_count(0)
        for path in ("/admin", "/admin/users", "/admin/peers", "/admin/audit", "/tokens"):
            answer = page.goto(ops.url(path))
            assert answer is not None and answer.status == 403, path
            expect(page.get_by_role("heading", name="許可されていません")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "clerk-403-390-ja.png"), full_page=True)
    finally:
        page.context.close()
