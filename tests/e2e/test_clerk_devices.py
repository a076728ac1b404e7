"""A clerk on a phone, on a desktop and on the keyboard alone: the daily pages fit 390 px without sideways
scrolling, their buttons and links are at least 44 px, every control has a label, keyboard-only use works
for logging in, opening an inbox item, stamping and sending a fax, and axe-core finds no serious or
critical violation on the main pages.

One in-process node served over real HTTP and one chromium for the whole module. Screenshots go to
``test-artifacts/screenshots/`` (or ``$INKLESS_TEST_ARTIFACTS/screenshots``) for a reviewer.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyotp
import pytest

from inkless.app import Node, init_node
from inkless.config import load_settings
from inkless.delivery.service import NewDocument
from inkless.directory.demo import DEMO_NODE_ID, DEMO_ORGANISATION, create_demo
from inkless.seals.routes import StepPlan
from inkless.web.app import create_app
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.helpers.nodes import ThreadedServer, free_port
from tests.helpers.one_language import english_sentences
from tests.helpers.route_docs import sample_pdf
from tests.helpers.web import browser_login

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "tests" / "e2e" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
SHOTS = Path(os.environ.get("INKLESS_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "screenshots"
PHONE, DESKTOP = 390, 1366
MIN_TARGET = 44
PASSWORD = "kaze-no-tayori-2026"
SUBJECT = "令和9年度 統計資料の送付"
# What counts as a touch target: buttons and links of the page's main content, and the header's controls.
TARGETS = "main a[href], main button, main input[type=submit], main summary, header.site a, header.site button"


@dataclass
class Site:
    node: Node
    url: str
    message_id: str
    route_id: int


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("devices")
    port = free_port()
    settings = load_settings(folder, env={}, overrides={
        "node_id": DEMO_NODE_ID, "organisation": DEMO_ORGANISATION, "base_url": f"http://127.0.0.1:{port}",
        "workers": False,
    })
    node = init_node(settings)
    create_demo(node.directory)
    assert node.delivery is not None and node.routes is not None
    message_id = node.delivery.send("takahashi", "criminal-affairs", ["civil-affairs@moj"], [], SUBJECT,
                                    [NewDocument("統計資料.pdf", sample_pdf(2))], 1, "urgent", None, None)
    node.delivery.deliver_due()
    route = node.routes.start(sample_pdf(1), "tanaka", [StepPlan("課長", ("sato",), None)],
                              document_name="研修計画", comment="ご確認ください")
    try:
        with ThreadedServer(create_app(node), port) as server:
            yield Site(node, server.url, message_id, route.id)
    finally:
        node.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def open_as(site: Site, browser: Any) -> Iterator[Callable[..., Any]]:
    """A page of a fresh browser context, logged in as ``login`` (no login: the login page's visitor)."""
    contexts: list[Any] = []

    def make(login: str | None, width: int = DESKTOP, lang: str = "ja") -> Any:
        context = browser.new_context(viewport={"width": width, "height": 844 if width == PHONE else 900},
                                      locale="ja-JP" if lang == "ja" else "en-GB",
                                      has_touch=width == PHONE, is_mobile=width == PHONE,
                                      device_scale_factor=1)
        contexts.append(context)
        cookies = [{"name": "lang", "value": lang, "url": site.url}]
        if login:
            cookies.append({"name": "inkless_session", "value": browser_login(site.node, login).cookie,
                            "url": site.url})
        context.add_cookies(cookies)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def _shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _daily_pages(site: Site) -> list[tuple[str, str, str]]:
    """(name, login, path) of the pages a clerk uses every day."""
    return [
        ("inbox", "tanaka", "/offices/civil-affairs/inbox"),
        ("message", "tanaka", f"/messages/{site.message_id}"),
        ("route-stamp", "sato", f"/routes/{site.route_id}"),
        ("fax-send", "tanaka", "/fax"),
        ("compose", "tanaka", "/compose"),
    ]


def _small_targets(page: Any) -> list[str]:
    found: list[str] = page.eval_on_selector_all(
        TARGETS,
        """(els, min) => els.filter(e => {
             const r = e.getBoundingClientRect();
             const style = getComputedStyle(e);
             if (style.visibility === 'hidden' || style.display === 'none' || r.width === 0) return false;
             return r.height < min || r.width < min;
           }).map(e => {
             const r = e.getBoundingClientRect();
             const text = (e.textContent || e.value || '').trim().slice(0, 30);
             return `${e.tagName.toLowerCase()} "${text}" ${Math.round(r.width)}x${Math.round(r.height)}`;
           })""",
        MIN_TARGET,
    )
    return found


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_the_daily_pages_fit_a_phone_and_their_targets_are_large(
    site: Site, open_as: Callable[..., Any], lang: str
) -> None:
    for name, login, path in _daily_pages(site):
        page = open_as(login, PHONE, lang)
        page.goto(site.url + path)
        assert page.locator("html").get_attribute("lang") == lang
        width = page.evaluate("document.documentElement.scrollWidth")
        _shot(page, f"{name}-{PHONE}-{lang}")
        assert width <= PHONE, f"{name}: {width} px wide at {PHONE}"
        assert _small_targets(page) == [], name
        if lang == "ja":
            assert english_sentences(page.content()) == [], name
        page.context.close()


def test_the_daily_pages_at_desktop_width(site: Site, open_as: Callable[..., Any]) -> None:
    from playwright.sync_api import expect

    for name, login, path in _daily_pages(site):
        page = open_as(login, DESKTOP)
        page.goto(site.url + path)
        assert page.evaluate("document.documentElement.scrollWidth") <= DESKTOP
        _shot(page, f"{name}-{DESKTOP}-ja")
        if name == "inbox":
            row = page.locator("#inbox tbody tr").filter(has_text=SUBJECT)
            expect(row).to_contain_text("刑事局")
            expect(row).to_contain_text("JST")
        page.context.close()


def _axe(page: Any) -> list[dict[str, Any]]:
    # Evaluated rather than added as a <script>: the pages' CSP allows no inline script, rightly.
    page.evaluate(AXE.read_text(encoding="utf-8"))
    result: dict[str, Any] = page.evaluate(
        "async () => await axe.run(document, {resultTypes: ['violations']})")
    return [v for v in result["violations"] if v["impact"] in ("serious", "critical")]


def test_axe_finds_no_serious_or_critical_violation_on_the_main_pages(
    site: Site, open_as: Callable[..., Any]
) -> None:
    assert AXE.exists(), "run `make browser-test-deps` (npm ci in tests/e2e/axe)"
    pages = [("login", None, "/login"), *_daily_pages(site), ("routes", "tanaka", "/routes"),
             ("routes-new", "tanaka", "/routes/new"), ("sent", "tanaka", "/offices/civil-affairs/sent"),
             ("verify", "tanaka", "/verify"), ("fax-log", "tanaka", "/fax/log"), ("tokens", "tanaka", "/tokens"),
             ("sessions", "tanaka", "/sessions"), ("seals", "tanaka", "/seals"), ("fax-admin", "yamada", "/fax/admin")]
    found: dict[str, list[str]] = {}
    # Every main page at desktop width, the daily ones on a phone too; one tab per user and width.
    runs = [(DESKTOP, pages), (PHONE, [p for p in pages if p[0] in {n for n, _, _ in _daily_pages(site)}])]
    for width, chosen in runs:
        tabs: dict[str | None, Any] = {}
        for name, login, path in chosen:
            page = tabs.get(login) or tabs.setdefault(login, open_as(login, width))
            page.goto(site.url + path)
            serious = _axe(page)
            if serious:
                found[f"{name}@{width}"] = [
                    f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}" for v in serious]
    assert found == {}
    # The check itself works: a control without a label is a critical violation.
    page.evaluate("document.querySelector('main').insertAdjacentHTML('beforeend', '<input type=text>')")
    assert "label" in {v["id"] for v in _axe(page)}


def test_every_control_has_a_label(site: Site, open_as: Callable[..., Any]) -> None:
    pages = [*_daily_pages(site), ("routes-new", "tanaka", "/routes/new"), ("verify", "tanaka", "/verify")]
    for name, login, path in pages:
        page = open_as(login)
        page.goto(site.url + path)
        unlabelled = page.eval_on_selector_all(
            "input:not([type=hidden]), select, textarea, button",
            """els => els.filter(e => {
                 const named = (e.labels && e.labels.length) || e.getAttribute('aria-label')
                   || e.getAttribute('aria-labelledby') || (e.tagName === 'BUTTON' && e.textContent.trim());
                 return !named;
               }).map(e => e.outerHTML.slice(0, 80))""")
        assert unlabelled == [], name
        page.context.close()


def _tab_to(page: Any, selector: str, limit: int = 60) -> None:
    """Press Tab until ``selector`` has the focus (as a keyboard user would), failing after ``limit`` presses."""
    for _ in range(limit):
        if page.evaluate("s => !!document.activeElement && document.activeElement.matches(s)", selector):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"{selector} cannot be reached with the Tab key")


def test_keyboard_only_login_open_an_inbox_item_stamp_and_send_a_fax(
    site: Site, open_as: Callable[..., Any]
) -> None:
    from playwright.sync_api import expect

    node = site.node
    for login in ("tanaka", "sato"):
        node.directory.set_password(login, PASSWORD, actor="test")
        secret = node.directory.totp_secret(login)
        node.directory.verify_totp(login, pyotp.TOTP(secret).at(node.clock.now() - timedelta(seconds=30)))

    page = open_as(None, PHONE)
    page.goto(site.url + "/login")
    _tab_to(page, "#login")
    page.keyboard.type("tanaka")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/login/totp$"))
    _tab_to(page, "input[name=code]")
    page.keyboard.type(pyotp.TOTP(node.directory.totp_secret("tanaka")).now())
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/offices/civil-affairs/inbox$"))

    # Open the received document with the keyboard.
    _tab_to(page, f'a[href="/messages/{site.message_id}"]')
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(f"/messages/{site.message_id}"))
    expect(page.locator("h1")).to_contain_text(SUBJECT)
    focus_ring = page.evaluate("""() => { const a = document.querySelector('main a[href]'); a.focus();
        const s = getComputedStyle(a); return s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2; }""")
    assert focus_ring, "a focused link shows a visible focus ring"

    # Send a fax: choose the file, then confirm, all from the keyboard.
    page.goto(site.url + "/fax")
    _tab_to(page, "#number")
    page.keyboard.type("03-3580-4112")
    page.locator("#document").set_input_files(
        files=[{"name": "回答書.pdf", "mimeType": "application/pdf", "buffer": sample_pdf(1)}])
    _tab_to(page, "#fax-send button[type=submit]")
    page.keyboard.press("Enter")
    expect(page.locator("#fax-confirm .recipient")).to_have_text("刑事局")
    _tab_to(page, "button[value=send]")
    _shot(page, f"fax-confirm-{PHONE}-ja")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("03-3580-4112")

    # sato stamps the route from the keyboard.
    page = open_as(None, PHONE)
    page.goto(site.url + "/login")
    _tab_to(page, "#login")
    page.keyboard.type("sato")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/login/totp$"))
    _tab_to(page, "input[name=code]")
    page.keyboard.type(pyotp.TOTP(node.directory.totp_secret("sato")).now())
    page.keyboard.press("Enter")
    expect(page).not_to_have_url(re.compile(r"/login"))
    page.goto(site.url + f"/routes/{site.route_id}")
    _tab_to(page, "#stamp-dialog button[type=submit]")
    page.keyboard.press("Enter")
    expect(page.locator("#route-state")).not_to_have_text("承認待ち")
    _shot(page, f"route-stamped-{PHONE}-ja")


@pytest.mark.parametrize("width", [PHONE, DESKTOP])
def test_a_refused_message_keeps_its_files_in_the_browser(
    site: Site, open_as: Callable[..., Any], width: int
) -> None:
    from playwright.sync_api import expect

    page = open_as("tanaka", width)
    page.goto(site.url + "/compose")
    page.get_by_label("宛先（部署アドレスまたはメールアドレス、カンマ区切り）").fill("criminal-afairs@moj")
    page.get_by_label("件名").fill("回答書の送付")
    page.get_by_label("文書（PDF。その他の形式は添付ファイルとして）").set_input_files(
        files=[{"name": "回答書.pdf", "mimeType": "application/pdf", "buffer": sample_pdf(1)}])
    page.get_by_role("button", name="送信", exact=True).click()
    expect(page.get_by_role("alert").first).to_contain_text("宛先または配信リストが見つかりません。")
    expect(page.locator("#kept-files")).to_contain_text("回答書.pdf")
    expect(page.get_by_label("件名")).to_have_value("回答書の送付")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    _shot(page, f"compose-kept-files-{width}-ja")
    page.get_by_label("宛先（部署アドレスまたはメールアドレス、カンマ区切り）").fill("criminal-affairs@moj")
    page.get_by_role("button", name="送信", exact=True).click()
    expect(page.get_by_text("送信を受け付けました")).to_be_visible()
    expect(page.locator("main")).to_contain_text("回答書.pdf")
