"""The procedure remembered per counterpart, in a real browser (Japanese, SQLite): on the fax page and the compose
page, once the number or the recipient is filled in, the procedure the office chose for it last time appears in
the empty procedure field; a procedure the clerk typed is left alone."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from inkless.app import Node
from inkless.delivery.service import NewDocument
from inkless.metrics.demo import create_demo_procedures
from inkless.web.app import create_app
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.helpers.nodes import ThreadedServer, free_port
from tests.helpers.seals import demo_node, sample_pdf
from tests.helpers.web import browser_login

SHOTS_ENV = "INKLESS_SCREENSHOTS"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Node, str]]:
    port = free_port()
    with demo_node("sqlite", tmp_path_factory.mktemp("procedure-memory") / "node",
                   base_url=f"http://127.0.0.1:{port}") as node:
        assert node.procedures is not None and node.fax is not None and node.delivery is not None
        create_demo_procedures(node.procedures)
        node.fax.send("tanaka", "civil-affairs", "06-1234-0000", [sample_pdf(1)], procedure_code="MOJ-MIN-006")
        node.delivery.send("tanaka", "civil-affairs", ["criminal-affairs@moj"], [], "照会",
                           [NewDocument("a.pdf", sample_pdf(1))], procedure_code="MOJ-MIN-001")
        with ThreadedServer(create_app(node), port) as server:
            yield node, server.url


@pytest.mark.browser
def test_the_remembered_procedure_is_filled_in(served: tuple[Node, str], tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    node, url = served
    shots = Path(os.environ.get(SHOTS_ENV) or tmp_path)
    session = browser_login(node, "tanaka")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="ja-JP")
            context.add_cookies([{"name": "inkless_session", "value": session.cookie, "url": url}])
            page = context.new_page()
            page.goto(f"{url}/fax")
            expect(page.locator("label[for=procedure_code]")).to_have_text("手続コード（任意）")
            page.fill("#number", "+81 6 1234 0000")
            page.locator("#subject").focus()  # leaving the field is a change
            expect(page.locator("#procedure_code")).to_have_value("MOJ-MIN-006")
            page.screenshot(path=str(shots / "fax-send-remembered-procedure.png"), full_page=True)
            # Another number with nothing remembered empties what the script filled in, not what the clerk typed.
            page.fill("#number", "06-9999-0000")
            page.locator("#subject").focus()
            expect(page.locator("#procedure_code")).to_have_value("")
            page.fill("#procedure_code", "MOJ-MIN-005")
            page.fill("#number", "06-1234-0000")
            page.locator("#subject").focus()
            page.wait_for_timeout(300)
            expect(page.locator("#procedure_code")).to_have_value("MOJ-MIN-005")

            page.goto(f"{url}/compose")
            page.fill("#to", "刑事局")
            page.locator("#subject").focus()
            expect(page.locator("#procedure_code")).to_have_value("MOJ-MIN-001")
            page.screenshot(path=str(shots / "compose-remembered-procedure.png"), full_page=True)
        finally:
            browser.close()
