"""A clerk in a real browser (Debian chromium) at 1366 and 390 px, in Japanese: searches the inbox with a
two-character term, and sees a new document arrive — in the list and in the tab title — without
reloading the page. One served node and one browser for the module."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from inkless.app import Node, init_node
from inkless.config import load_settings
from inkless.delivery.service import NewDocument
from inkless.directory.demo import DEMO_NODE_ID, DEMO_ORGANISATION, create_demo
from inkless.web.app import create_app
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.helpers.nodes import ThreadedServer, free_port
from tests.helpers.text_pdf import text_pdf
from tests.helpers.web import browser_login

WIDTHS = (1366, 390)
# live.js asks every 15 s; the browser's clock is moved on instead of waiting.
POLL_MS = 15_000

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Node, str]]:
    folder = tmp_path_factory.mktemp("search-browser")
    settings = load_settings(folder, env={}, overrides={
        "node_id": DEMO_NODE_ID, "organisation": DEMO_ORGANISATION, "database_url": f"sqlite:///{folder / 'db'}",
        "workers": False,
    })
    node = init_node(settings)
    create_demo(node.directory)
    try:
        with ThreadedServer(create_app(node), free_port()) as server:
            yield node, server.url
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


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Screenshots of the pages under test, for a reviewer to look at."""
    return tmp_path_factory.mktemp("screenshots")


def open_as(browser: Any, node: Node, url: str, login: str, width: int) -> Any:
    """A page of a fresh browser context logged in as ``login``, ``width`` px wide, in Japanese."""
    context = browser.new_context(locale="ja-JP", viewport={"width": width, "height": 900})
    context.add_cookies([{"name": "inkless_session", "value": browser_login(node, login).cookie, "url": url}])
    return context.new_page()


def deliver(node: Node, subject: str) -> None:
    assert node.delivery is not None
    node.delivery.send("tanaka", "civil-affairs", ["criminal-affairs@moj"], [], subject,
                       [NewDocument("a.pdf", text_pdf(subject))])
    while node.delivery.deliver_due().delivered:
        pass


def no_horizontal_scroll(page: Any) -> None:
    """The page's content (search, filters, list) fits the width: nothing to scroll sideways."""
    width = page.evaluate("(m => m.scrollWidth - m.clientWidth)(document.querySelector('main'))")
    assert width <= 0, f"{width} px of horizontal scrolling"


@pytest.mark.parametrize("width", WIDTHS)
def test_search_finds_a_two_character_term(served: tuple[Node, str], browser: Any, shots: Path, width: int) -> None:
    from playwright.sync_api import expect

    node, url = served
    tag = f"{width}-{datetime.now(UTC):%H%M%S%f}"
    deliver(node, f"登記事項証明書の請求 {tag}")
    deliver(node, f"戸籍謄本の送付 {tag}")
    page = open_as(browser, node, url, "takahashi", width)
    try:
        page.goto(url + "/offices/criminal-affairs/inbox")
        page.get_by_label("検索", exact=True).fill(f"登記 {tag}")
        page.get_by_role("button", name="検索").click()
        rows = page.locator("#inbox tbody tr")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text(f"登記事項証明書の請求 {tag}")
        expect(rows.first).to_contain_text("民事局")
        expect(rows.first.get_by_role("link", name="返信")).to_be_visible()
        expect(page.get_by_label("検索", exact=True)).to_have_value(f"登記 {tag}")
        page.screenshot(path=str(shots / f"search-ja-{width}.png"), full_page=True)
        no_horizontal_scroll(page)
        # The filters: unread digital messages of today, still one.
        page.get_by_text("絞り込み").click()
        page.get_by_label("未読のみ").check()
        page.get_by_label("種類").select_option("inkless")
        page.get_by_role("button", name="検索").click()
        expect(rows).to_have_count(1)
        page.get_by_role("link", name="検索条件をクリア").click()
        expect(page.locator("#inbox")).to_contain_text(f"戸籍謄本の送付 {tag}")
    finally:
        page.context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_the_inbox_and_the_tab_title_update_themselves(served: tuple[Node, str], browser: Any, shots: Path,
                                                        width: int) -> None:
    from playwright.sync_api import expect

    node, url = served
    # The list exists whatever ran before (in random order this test may be the module's first).
    deliver(node, f"既存の文書 {width}")
    page = open_as(browser, node, url, "takahashi", width)
    try:
        page.clock.install()
        page.goto(url + "/offices/criminal-affairs/inbox")
        title = page.title()
        count = int(m.group(1)) if (m := re.match(r"^\((\d+)\) ", title)) else 0
        assert title.endswith(f"受信箱 — inkless {DEMO_ORGANISATION}"), title
        subject = f"新着の照会 {width}-{datetime.now(UTC):%H%M%S%f}"
        deliver(node, subject)
        expect(page.locator("#inbox")).not_to_contain_text(subject)
        page.clock.fast_forward(POLL_MS + 1000)
        expect(page).to_have_title(f"({count + 1}) 受信箱 — inkless {DEMO_ORGANISATION}")
        expect(page.locator("#inbox tbody tr").first).to_contain_text(subject)
        expect(page.get_by_role("status")).to_have_text("新着文書があります。")
        expect(page.locator("nav.main [data-count=unread]")).to_have_text(str(count + 1))
        no_horizontal_scroll(page)
        page.screenshot(path=str(shots / f"inbox-live-ja-{width}.png"), full_page=True)
        # Another page (the sent items) keeps the count in its title too.
        page.get_by_role("link", name="送信済み").click()
        expect(page).to_have_title(f"({count + 1}) 送信済み — inkless {DEMO_ORGANISATION}")
    finally:
        page.context.close()
