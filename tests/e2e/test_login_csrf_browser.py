"""Login CSRF with a real browser: a page on another site posts the login form of a real ``inkless serve``."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, ServedNode
from tests.helpers.nodes import free_port


@contextmanager
def attacker_site(target: str, login: str, password: str) -> Iterator[str]:
    """http://localhost:PORT/ — another site than http://127.0.0.1:… — with a form that posts itself."""
    page = (
        f'<!doctype html><html><body><form id="f" method="post" action="{target}/login">'
        f'<input name="login" value="{login}"><input name="password" value="{password}"></form>'
        '<script>document.getElementById("f").submit()</script></body></html>'
    ).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *_args: object) -> None:
            pass

    port = free_port()
    server = http.server.HTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{port}/"
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


@pytest.mark.browser
def test_a_foreign_page_cannot_log_the_browser_in(served_node: ServedNode) -> None:
    from playwright.sync_api import sync_playwright

    attacker = served_node.accounts["tanaka"]
    with attacker_site(served_node.url, "tanaka", attacker["password"]) as evil, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(locale="ja-JP")
            page = context.new_page()
            page.goto(evil)
            page.wait_for_url(served_node.url + "/login")
            assert "別のサイトから送信されました" in page.content()
            assert not [c for c in context.cookies() if c["name"] == "inkless_session"]
        finally:
            browser.close()
