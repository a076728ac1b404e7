"""The document in view, 差し戻し as a loop, and pickers, in Debian's chromium against ``inkless serve``.

One served demo node and one browser for the module; each clerk logs in once (first-login enrolment)
and every test opens fresh pages from the saved sessions, at 1366 px and 390 px, in Japanese and
English. Screenshots of the pages land in ``test-artifacts/screenshots/docview/``.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyotp
import pytest

from inkless.app import Node, build_node
from inkless.config import load_settings
from inkless.delivery.service import NewDocument
from inkless.seals.route_service import RouteService
from inkless.seals.routes import StepPlan
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, INKLESS, ServedNode, _clean_env, _wait_until_healthy
from tests.e2e.test_approver_browser import _vermilion_pixels
from tests.helpers.db import fresh_database
from tests.helpers.nodes import free_port
from tests.helpers.route_docs import sample_pdf

pytestmark = pytest.mark.browser

NEW_PASSWORD = "hanko-to-fax-no-owari-2026"
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots" / "docview"
WIDE = {"width": 1366, "height": 900}
NARROW = {"width": 390, "height": 844}
CLERKS = ("tanaka", "sato", "takahashi")


@dataclass
class Browsing:
    node: ServedNode
    control: Node  # the node's data opened in this process, as the CLI would (quicker than a process per call)
    browser: Any
    sessions: dict[str, Any]  # login → storage state

    @property
    def routes(self) -> RouteService:
        assert self.control.routes is not None
        return self.control.routes

    def seal(self, action: Callable[..., Any], *args: Any) -> Any:
        """A sealing call of the route service, run off this thread (Playwright's loop runs here)."""
        with ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(action, *args).result()

    def page(self, login: str, viewport: dict[str, int] = WIDE, lang: str = "ja") -> Any:
        context = self.browser.new_context(
            storage_state=self.sessions[login], viewport=viewport, locale="ja-JP" if lang == "ja" else "en-GB")
        context.add_cookies([{"name": "lang", "value": lang, "url": self.node.url}])
        return context.new_page()

    def start_route(self, pages: int, name: str, *steps: str) -> int:
        plans = [StepPlan(title, (login,)) for login, title in zip(steps[::2], steps[1::2], strict=True)]
        return self.routes.start(sample_pdf(pages), "tanaka", plans, document_name=name).id


def _first_login(page: Any, url: str, login: str, account: dict[str, Any]) -> None:
    from playwright.sync_api import expect

    page.goto(url + "/login")
    page.get_by_label("ログイン名").fill(login)
    page.get_by_label("パスワード").fill(account["password"])
    page.get_by_role("button", name="次へ").click()
    expect(page).to_have_url(url + "/login/enrol")
    page.get_by_label("認証アプリに表示される6桁のコード").fill(pyotp.TOTP(account["totp_secret"]).now())
    page.get_by_role("button", name="確認").click()
    page.get_by_label("新しいパスワード", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("新しいパスワード（確認）").fill(NEW_PASSWORD)
    page.get_by_role("button", name="パスワードを変更").click()
    expect(page.get_by_role("button", name="ログアウト")).to_be_visible()


# SQLite only: the same pages on PostgreSQL are covered by tests/integration/test_route_versions.py and
# test_pickers.py on both engines; a browser on each engine doubled this module's time for no new finding.
@pytest.fixture(scope="module", params=["sqlite"])
def browsing(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browsing]:
    """A served demo node, one chromium, and a signed-in session for each clerk."""
    from playwright.sync_api import sync_playwright

    tmp = tmp_path_factory.mktemp("docview")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    backend = str(request.param)
    with fresh_database(backend, tmp) as database_url:
        env = _clean_env({"INKLESS_DATABASE_URL": database_url} if backend == "postgresql" else {})
        init = subprocess.run([INKLESS, "init", "--data", str(tmp / "node"), "--demo", "--url", url, "--json"],
                              capture_output=True, text=True, env=env, check=False, timeout=300)
        assert init.returncode == 0, init.stderr
        accounts = {a["login"]: a for a in json.loads(init.stdout)["accounts"]}
        log = tmp / "serve.log"
        with log.open("wb") as out:
            process = subprocess.Popen([INKLESS, "serve", "--data", str(tmp / "node"), "--port", str(port)],
                                       stdout=out, stderr=subprocess.STDOUT, env=env)
        node = ServedNode(url=url, data=tmp / "node", env=env, process=process, log=log, accounts=accounts)
        try:
            _wait_until_healthy(node)
            SHOTS.mkdir(parents=True, exist_ok=True)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    sessions = {}
                    for login in CLERKS:
                        context = browser.new_context(locale="ja-JP", viewport=WIDE)
                        _first_login(context.new_page(), url, login, accounts[login])
                        sessions[login] = context.storage_state()
                        context.close()
                    control = build_node(load_settings(node.data, env=env))
                    try:
                        yield Browsing(node, control, browser, sessions)
                    finally:
                        control.close()
                finally:
                    browser.close()
        finally:
            node.stop()


def _shot(page: Any, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _no_sideways_scroll(page: Any) -> None:
    """Nothing in the page's content reaches past the right edge (the site menu is the phone layout's own work)."""
    wide = page.evaluate("""() => Array.from(document.querySelectorAll('main *'))
        .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
        .map(e => e.tagName + '#' + e.id + '.' + e.className)""")
    assert wide == []


def _load_every_image(page: Any) -> None:
    """Scroll to each lazy image in turn and wait until it has loaded (the server renders it on first view)."""
    images = page.locator("img[loading=lazy]")
    for i in range(images.count()):
        image = images.nth(i)
        image.scroll_into_view_if_needed()
        # Polled from here: the page's CSP (script-src 'self') refuses the eval behind wait_for_function.
        for _ in range(300):
            if image.evaluate("i => i.complete && i.naturalWidth > 0"):
                break
            page.wait_for_timeout(100)
        else:
            raise AssertionError(f"page image {i + 1} did not load")


def test_an_approver_sees_every_page_of_a_long_document_with_the_seal_imprint(browsing: Browsing) -> None:
    from playwright.sync_api import expect

    rid = browsing.start_route(13, "令和9年度事業計画書", "tanaka", "担当", "sato", "係長")
    browsing.seal(browsing.routes.approve, rid, "tanaka")

    page = browsing.page("sato")
    page.goto(f"{browsing.node.url}/routes/{rid}")
    pages = page.locator("#document-pages figure.page-image")
    expect(pages).to_have_count(13)
    expect(page.locator("#pages-heading")).to_contain_text("13 ページ")
    expect(pages.nth(12).locator("figcaption")).to_contain_text("13 / 13 ページ")
    # Images below the fold wait until they are scrolled to: page by page.
    assert page.locator("#document-pages img[loading=lazy]").count() == 13
    _load_every_image(page)
    # The strip is on page 13: 担当's imprint (vermilion) shows where it is, and nowhere on page 1.
    assert _vermilion_pixels(pages.nth(12).locator("img").screenshot()) > 30
    assert _vermilion_pixels(pages.nth(0).locator("img").screenshot()) == 0
    link = page.get_by_role("link", name="PDFを開く").first
    assert link.get_attribute("href") == f"/routes/{rid}/document.pdf?view=inline"
    opened = page.context.request.get(browsing.node.url + link.get_attribute("href"))
    assert opened.status == 200 and opened.headers["content-type"] == "application/pdf"
    assert opened.headers["content-disposition"].startswith("inline;")
    assert opened.headers["x-content-type-options"] == "nosniff"
    enlarged = page.context.request.get(f"{browsing.node.url}/routes/{rid}/pages/13.png?zoom=1")
    small = page.context.request.get(f"{browsing.node.url}/routes/{rid}/pages/13.png")
    assert enlarged.headers["content-type"] == "image/png" and len(enlarged.body()) > len(small.body())
    _shot(page, "route-approver-1366-ja")
    page.context.close()

    narrow = browsing.page("sato", NARROW, "en")
    narrow.goto(f"{browsing.node.url}/routes/{rid}")
    expect(narrow.locator("#document-pages figure.page-image").nth(12).locator("figcaption")).to_contain_text(
        "Page 13 / 13")
    expect(narrow.get_by_role("link", name="Open the PDF").first).to_be_visible()
    _no_sideways_scroll(narrow)
    _load_every_image(narrow)
    _shot(narrow, "route-approver-390-en")
    narrow.context.close()


def test_another_offices_clerk_gets_404_on_page_images(browsing: Browsing) -> None:
    rid = browsing.start_route(2, "人事異動案", "sato", "係長")
    assert browsing.control.delivery is not None
    message_id = browsing.control.delivery.send(
        "tanaka", "civil-affairs", ["secretariat@moj"], [], "照会", [NewDocument("照会.pdf", sample_pdf(2))], 0)

    # 刑事局's clerk is on neither the route nor the message: every page image is refused, as the documents are.
    outsider = browsing.page("takahashi")
    for path in (f"/routes/{rid}/pages/1.png", f"/routes/{rid}/pages/1.png?zoom=1",
                 f"/routes/{rid}/versions/1/pages/1.png", f"/routes/{rid}/versions/1.pdf",
                 f"/messages/{message_id}/documents/1/pages/1.png", f"/messages/{message_id}/documents/1"):
        refused = outsider.context.request.get(browsing.node.url + path)
        assert refused.status == 404, path
        assert refused.headers["content-type"].startswith("text/html")
        assert "見つかりません" in refused.text(), path
    # 民事局's clerk (the route's office, the message's sender) sees them.
    insider = browsing.page("tanaka")
    for path in (f"/routes/{rid}/pages/1.png", f"/messages/{message_id}/documents/1/pages/2.png"):
        seen = insider.context.request.get(browsing.node.url + path)
        assert seen.status == 200 and seen.headers["content-type"] == "image/png", path
    insider.context.close()
    outsider.context.close()


def test_return_to_the_starter_a_corrected_version_and_the_seals_verify(browsing: Browsing, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    url = browsing.node.url
    rid = browsing.start_route(2, "出張命令書", "tanaka", "担当", "sato", "係長")
    browsing.seal(browsing.routes.approve, rid, "tanaka")

    # 係長 returns it to the starter: reason, confirmation, and a button unlike 押印.
    sato = browsing.page("sato")
    sato.goto(f"{url}/routes/{rid}")
    assert "warning" in (sato.get_by_role("button", name="差し戻す").get_attribute("class") or "")
    assert "danger" in (sato.get_by_role("button", name="却下する").get_attribute("class") or "")
    expect(sato.get_by_label("差し戻し先")).to_have_value("starter")
    sato.locator("#return-comment").fill("日程表を添付してください")
    sato.get_by_label("この稟議を差し戻します。").check()
    sato.get_by_role("button", name="差し戻す").click()
    expect(sato.get_by_text("差し戻しました。")).to_be_visible()
    expect(sato.locator("#route-state")).to_have_text("差し戻し")

    # The starter finds it under 差し戻し with the approver's comment, and uploads v2 (12 pages).
    tanaka = browsing.page("tanaka")
    tanaka.goto(f"{url}/routes")
    returned = tanaka.locator("#returned-to-me")
    expect(returned).to_contain_text("差し戻し")
    expect(returned).to_contain_text("日程表を添付してください")
    _shot(tanaka, "routes-returned-1366-ja")
    returned.get_by_role("link", name="出張命令書").click()
    expect(tanaka.locator("#returned")).to_contain_text("日程表を添付してください")
    v2 = tmp_path / "出張命令書-修正.pdf"
    v2.write_bytes(sample_pdf(12))
    tanaka.get_by_label("修正版のPDF（第2版になります）").set_input_files(str(v2))
    tanaka.get_by_label("修正した点").fill("日程表を追加しました")
    _shot(tanaka, "route-returned-starter-1366-ja")
    tanaka.get_by_role("button", name="修正版を再提出する").click()
    expect(tanaka.get_by_text("修正版を再提出しました。稟議が再開します。")).to_be_visible()
    expect(tanaka.locator("#route-version")).to_have_text("v2")
    versions = tanaka.locator("#versions")
    expect(versions).to_contain_text("2 → 12")
    expect(versions).to_contain_text("変更あり")
    tanaka.context.close()

    # The route resumed at the 係長, who now sees v2's twelve pages and stamps it.
    sato.goto(f"{url}/routes/{rid}")
    expect(sato.locator("#route-state")).to_have_text("承認待ち")
    expect(sato.locator("#document-pages figure.page-image")).to_have_count(12)
    sato.get_by_role("button", name="押印する").click()
    expect(sato.get_by_text("押印しました。")).to_be_visible()
    _shot(sato, "route-resumed-stamped-1366-ja")
    sato.context.close()
    browsing.seal(browsing.routes.office_seal, rid, "sato")

    final = tmp_path / "final.pdf"
    final.write_bytes(browsing.routes.document(rid))
    out = subprocess.run(["pdfsig", str(final)], capture_output=True, text=True, check=False).stdout
    seals = [b for b in out.split("Signature #")[1:] if "Timestamp-" not in b]
    assert len(seals) == 2  # 係長 and the office seal, both on v2
    for block in seals:
        assert "Signature Validation: Signature is Valid." in block, block
    status = browsing.routes.status(rid).to_dict()
    assert status["state"] == "completed" and [v["pages"] for v in status["versions"]] == [2, 12]


def test_return_and_reject_need_a_reason_and_a_confirmation(browsing: Browsing) -> None:
    from playwright.sync_api import expect

    url = browsing.node.url
    rid = browsing.start_route(1, "備品購入伺", "sato", "係長")
    sato = browsing.page("sato")
    sato.goto(f"{url}/routes/{rid}")
    # A browser that ignores `required` (or a hand-made form) still gets a clear refusal, and nothing changes.
    sato.evaluate("document.querySelectorAll('[required]').forEach(e => e.removeAttribute('required'))")
    sato.get_by_label("この稟議を差し戻します。").check()
    sato.get_by_role("button", name="差し戻す").click()
    expect(sato.get_by_role("alert")).to_have_text("理由を入力してください。何も変更していません。")
    expect(sato.locator("#route-state")).to_have_text("承認待ち")
    _shot(sato, "route-return-no-reason-1366-ja")
    sato.evaluate("document.querySelectorAll('[required]').forEach(e => e.removeAttribute('required'))")
    sato.locator("#reject-comment").fill("予算超過")
    sato.get_by_role("button", name="却下する").click()
    expect(sato.get_by_role("alert")).to_have_text("確認のチェックを入れてください。何も変更していません。")
    expect(sato.locator("#route-state")).to_have_text("承認待ち")
    sato.context.close()

    narrow = browsing.page("sato", NARROW, "en")
    narrow.goto(f"{url}/routes/{rid}")
    narrow.evaluate("document.querySelectorAll('[required]').forEach(e => e.removeAttribute('required'))")
    narrow.get_by_label("I reject this route.").check()
    narrow.get_by_role("button", name="Reject the route").click()
    expect(narrow.get_by_role("alert")).to_have_text("Enter the reason. Nothing was changed.")
    _no_sideways_scroll(narrow)
    _shot(narrow, "route-reject-no-reason-390-en")
    narrow.context.close()
    status = browsing.routes.status(rid).to_dict()
    assert status["state"] == "in_progress" and [e["action"] for e in status["events"]] == ["started"]


def test_pickers_find_offices_and_people_by_kana_and_accept_typed_names(browsing: Browsing, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    url = browsing.node.url
    page = browsing.page("tanaka")
    page.goto(f"{url}/compose")
    to = page.locator("#to")
    to.press_sequentially("けいじ")
    expect(to).to_have_attribute("data-picker-ready", "1")
    options = page.locator("#known-offices option")
    expect(options).to_have_count(1)
    assert options.first.get_attribute("value") == "criminal-affairs@moj"
    assert "刑事局" in (options.first.get_attribute("label") or "")
    _shot(page, "compose-picker-1366-ja")

    # Typed as a name, without choosing: the server resolves it to the office's address.
    to.fill("刑事局")
    page.get_by_label("件名").fill("照会（ピッカー）")
    document = tmp_path / "照会.pdf"
    document.write_bytes(sample_pdf(1))
    page.locator("input[type=file][name=files]").set_input_files(str(document))
    page.get_by_role("button", name="送信").click()
    expect(page.locator("#facts")).to_contain_text("刑事局 criminal-affairs@moj")

    page.goto(f"{url}/compose")
    page.locator("#to").fill("存在しない局")
    page.get_by_label("件名").fill("x")
    page.locator("input[type=file][name=files]").set_input_files(str(document))
    page.get_by_role("button", name="送信").click()
    expect(page.get_by_role("alert")).to_contain_text("「存在しない局」に当たる部署がありません。")

    page.goto(f"{url}/routes/new")
    approvers = page.get_by_label("承認者（ログイン名） 2")
    approvers.press_sequentially("さとう")
    expect(approvers).to_have_attribute("data-picker-ready", "1")
    assert page.locator("#people option").first.get_attribute("value") == "sato"
    page.context.close()

    narrow = browsing.page("tanaka", NARROW, "en")
    narrow.goto(f"{url}/compose")
    field = narrow.locator("#to")
    field.press_sequentially("minji")  # no match in kana typed as romaji: the list empties, nothing breaks
    expect(field).to_have_attribute("data-picker-ready", "0")
    field.fill("")
    field.press_sequentially("ミンジ")
    expect(field).to_have_attribute("data-picker-ready", "1")
    _no_sideways_scroll(narrow)
    _shot(narrow, "compose-picker-390-en")
    narrow.context.close()
