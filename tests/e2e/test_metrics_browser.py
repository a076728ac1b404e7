"""The migration dashboards in a real browser, in Japanese, at desktop (1366 px) and phone (390 px) widths:
figures, charts and the headline are on screen without JavaScript, and a figure opens its items."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from inkless.app import Node
from inkless.metrics.demo import create_demo_procedures
from inkless.web.app import create_app
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.helpers.metrics_history import generate
from tests.helpers.nodes import ThreadedServer, free_port
from tests.helpers.seals import demo_node
from tests.helpers.web import browser_login

WEEK = "2026-W49"
# Screenshots are kept when this names a folder (to look at them); otherwise they go to the test's tmp folder.
SHOTS_ENV = "INKLESS_SCREENSHOTS"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Node, str]]:
    port = free_port()
    with demo_node("sqlite", tmp_path_factory.mktemp("metrics-browser") / "node",
                   base_url=f"http://127.0.0.1:{port}") as node:
        assert node.procedures is not None and node.metrics is not None
        create_demo_procedures(node.procedures)
        generate(node.db)
        node.metrics.set_target(None, "fax_pages", 90, date(2026, 11, 9), date(2026, 11, 22), date(2027, 3, 31),
                                "yamada")
        with ThreadedServer(create_app(node), port) as server:
            yield node, server.url


@pytest.mark.browser
@pytest.mark.parametrize("width", [1366, 390])
def test_dashboards_in_japanese(served: tuple[Node, str], width: int, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    node, url = served
    shots = Path(os.environ.get(SHOTS_ENV) or tmp_path)
    session = browser_login(node, "yamada")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": width, "height": 900}, java_script_enabled=False,
                                          locale="ja-JP")
            context.add_cookies([{"name": "inkless_session", "value": session.cookie, "url": url}])
            page = context.new_page()
            page.goto(f"{url}/dashboard?week={WEEK}")
            expect(page.locator("h1")).to_contain_text("移行状況")
            expect(page.locator("#headline")).to_have_text("37手続中2手続が完全デジタル（5.4%）")
            expect(page.locator("#fig-fax_in_pages .value")).to_have_text("31")
            expect(page.locator("#fig-share .value")).to_have_text("50.0%")
            expect(page.locator("#fig-intake .value")).to_have_text("3")
            expect(page.locator("#targets")).to_contain_text("FAX枚数を2027年3月までに90%削減")
            # Charts scroll inside their box on a phone; the page itself stays within the screen.
            box = page.locator("div.chart-wrap").first.bounding_box()
            assert box is not None and box["x"] + box["width"] <= width
            page.screenshot(path=str(shots / f"metrics-dashboard-{width}.png"), full_page=True)
            page.goto(f"{url}/dashboard/procedures?week={WEEK}")
            expect(page.locator("#proc-MOJ-MIN-006")).to_contain_text("FAX・紙のみ")
            page.screenshot(path=str(shots / f"metrics-procedures-{width}.png"), full_page=True)
            page.goto(f"{url}/dashboard/who-faxes?week={WEEK}")
            expect(page.locator("#remotes tbody tr").first).to_contain_text("03-5555-0001")
            page.screenshot(path=str(shots / f"metrics-remotes-{width}.png"), full_page=True)
            # A figure opens the items behind it.
            page.goto(f"{url}/dashboard?week={WEEK}&office=criminal-affairs")
            page.locator("#fig-fax_in").click()
            expect(page.locator("#items tbody tr")).to_have_count(3)
            page.emulate_media(media="print")
            page.goto(f"{url}/dashboard?week={WEEK}")
            expect(page.locator("nav.main")).to_be_hidden()
        finally:
            browser.close()
