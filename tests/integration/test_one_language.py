"""One language per page: every page and every error path, rendered in Japanese, holds no English sentence.

The walk is generic: it starts from every GET page of the app's route table that takes no path
parameter and follows the links of each page (same site, no language switch), as a clerk, an approver
and an administrator, so pages added later are covered by themselves; pages that need an id are reached
through the seeded message, route and fax job. ``test_the_walk_reaches_every_page`` names any page
route the walk did not reach. Run alone with
``.venv/bin/python -m pytest -p no:randomly tests/integration/test_one_language.py``.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from sqlalchemy import insert, select

from inkless.app import Node, init_node
from inkless.config import load_settings
from inkless.db.tables import offices
from inkless.db.tables_fax import fax_calls
from inkless.directory.demo import DEMO_NODE_ID, DEMO_ORGANISATION, create_demo
from inkless.seals.routes import StepPlan
from inkless.web.app import create_app
from inkless.web.i18n import LANG_COOKIE
from tests.helpers.nodes import refused_url
from tests.helpers.one_language import english_sentences, unlabelled_controls, visible_text
from tests.helpers.route_docs import sample_pdf
from tests.helpers.web import browser_login

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from fastapi.testclient import TestClient

LIMIT = 256 * 1024
USERS = ("tanaka", "sato", "takahashi", "yamada")  # clerk, approver, another office's clerk, administrator
MAX_PAGES = 400
SAME_SHAPE = 3  # e.g. three messages, three pages of a list: enough to see how that kind of page looks
HREF = re.compile(r'href="([^"]+)"')
# Links the walk does not follow: leaving the session, switching the language, static files.
SKIP_PREFIXES = ("/static/", "/pki/", "/api/", "/healthz", "/logout")
# Routes that answer with a file (PDF, image), not a page, and that the seed data cannot reach without a fax
# line and a worker: a sent fax's transmission report, an unroutable received fax's image.
FILES = {"/fax/jobs/{job_id}/report", "/fax/admin/calls/{call_id}/image",
         # secure pickup: a document the e-mail recipient downloads, a file they sent back
         "/p/{token}/documents/{number}", "/pickups/replies/{reply_id}",
         # an office seal image, linked once one is uploaded
         "/admin/offices/{code}/seal"}
# Pages nothing links to: the page an e-mail recipient opens from the notice mail (a link nobody can
# guess; a made-up one shows the same page, by design, so that links cannot be probed).
PUBLIC_STARTS = ("/p/" + "x" * 43,)


@dataclass
class Site:
    node: Node
    app: FastAPI
    clients: dict[str, TestClient]
    csrf: dict[str, str]
    visited: dict[str, tuple[int, str]] = field(default_factory=dict)  # url → (status, content type)
    english: dict[str, list[str]] = field(default_factory=dict)  # "login url" → sentences found
    pages: dict[str, str] = field(default_factory=dict)  # "login url" → the HTML


def _client(app: FastAPI, node: Node, login: str) -> tuple[TestClient, str]:
    session = browser_login(node, login)
    client = TestClient(app, raise_server_exceptions=False)
    client.cookies.set("inkless_session", session.cookie)
    client.cookies.set(LANG_COOKIE, "ja")
    return client, session.csrf


def _seed(site: Site) -> None:
    """A message each way, a route waiting for an approver and a fax job, sent through the pages."""
    tanaka, takahashi = site.clients["tanaka"], site.clients["takahashi"]
    for client, csrf, to in ((tanaka, site.csrf["tanaka"], "criminal-affairs@moj"),
                             (takahashi, site.csrf["takahashi"], "civil-affairs@moj")):
        sent = client.post("/compose", data={"csrf_token": csrf, "to": to, "subject": "統計資料の送付",
                                             "classification": "0", "priority": "normal"},
                           files=[("files", ("資料.pdf", sample_pdf(1), "application/pdf"))], follow_redirects=False)
        assert sent.status_code == 303, sent.text
    assert site.node.delivery is not None
    site.node.delivery.deliver_due()
    started = tanaka.post("/routes", data={"csrf_token": site.csrf["tanaka"], "name": "研修計画",
                                           "title": ["課長"], "approvers": ["sato"]},
                          files={"document": ("plan.pdf", sample_pdf(1), "application/pdf")}, follow_redirects=False)
    assert started.status_code == 303, started.text
    # A route that went back to its starter and came again as version 2: its versions have pages.
    assert site.node.routes is not None
    returned = site.node.routes.start(sample_pdf(1), "tanaka", [StepPlan("課長", ("sato",), None)],
                                      document_name="予算案")
    site.node.routes.return_route(returned.id, "sato", "数字を確認してください")
    site.node.routes.resubmit(returned.id, "tanaka", sample_pdf(2), "数字を直しました")
    fax = tanaka.post("/fax/send", data={"csrf_token": site.csrf["tanaka"], "number": "03-3581-4111",
                                         "subject": "回答書", "classification": "0", "confirm": "1"},
                      files={"document": ("回答書.pdf", sample_pdf(1), "application/pdf")})
    assert fax.status_code == 200, fax.text
    # A call the line recorded, with spandsp's English result text: the pages say it in plain words.
    with site.node.db.begin() as conn:
        office_id = conn.execute(select(offices.c.id).where(offices.c.code == "civil-affairs")).scalar_one()
        conn.execute(insert(fax_calls).values(
            direction="SEND", line="loopback", started_at=site.node.clock.now(), duration_s=41.0,
            remote_number="0335814111", pages=2, bit_rate=14400, ecm=True, compression="T.6", bad_rows=0,
            t30_code=49, t30_text="The call dropped prematurely", success=False, status="failed",
            office_id=office_id))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    folder: Path = tmp_path_factory.mktemp("one-language")
    settings = load_settings(folder, env={}, overrides={
        "node_id": DEMO_NODE_ID, "organisation": DEMO_ORGANISATION, "base_url": refused_url(),
        "workers": False, "max_message_bytes": LIMIT,
    })
    node = init_node(settings)
    create_demo(node.directory)
    app = create_app(node)
    try:
        pairs = {login: _client(app, node, login) for login in USERS}
        result = Site(node, app, {k: v[0] for k, v in pairs.items()}, {k: v[1] for k, v in pairs.items()})
        _seed(result)
        _walk(result)
        yield result
    finally:
        for client in result.clients.values():
            client.close()
        node.close()


def _page_routes(app: FastAPI) -> list[str]:
    """Paths of the HTML GET routes: the pages' routers stay out of the OpenAPI document, the API's and
    the federation's (JSON for programs and peers) are in it; node files and images left out."""
    paths = []
    for path, route in app.state.route_table:
        if not isinstance(route, APIRoute) or "GET" not in route.methods or path.startswith(SKIP_PREFIXES):
            continue
        if route.include_in_schema and route.response_class is not HTMLResponse:
            continue
        if path.endswith((".png", ".pdf", ".json", ".pem")) or path in FILES:
            continue
        paths.append(path)
    return paths


def _normalise(href: str) -> str | None:
    parts = urlsplit(href)
    if parts.scheme or parts.netloc or not parts.path.startswith("/") or parts.path.startswith(SKIP_PREFIXES):
        return None
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "lang"]
    return parts.path + ("?" + urlencode(query) if query else "")


def _shape(url: str) -> str:
    """A URL with its ids and query values left out: pages of one shape are visited a few times only."""
    parts = urlsplit(url)
    path = re.sub(r"/[0-9a-f-]{8,}|/\d+", "/#", parts.path)
    return path + "?" + ",".join(sorted(k for k, _ in parse_qsl(parts.query)))


def _walk(site: Site) -> None:
    starts = [p for p in _page_routes(site.app) if "{" not in p] + list(PUBLIC_STARTS)
    for login, client in site.clients.items():
        queue = list(starts)
        seen: set[str] = set(queue)
        shapes: dict[str, int] = {}
        while queue and len(seen) < MAX_PAGES:
            url = queue.pop(0)
            shapes[_shape(url)] = shapes.get(_shape(url), 0) + 1
            if shapes[_shape(url)] > SAME_SHAPE:
                continue
            response = client.get(url)
            site.visited[url] = (response.status_code, response.headers.get("content-type", ""))
            if not response.headers.get("content-type", "").startswith("text/html"):
                continue
            site.pages[f"{login} {url}"] = response.text
            found = english_sentences(response.text)
            if found:
                site.english[f"{login} {url} ({response.status_code})"] = found
            for href in HREF.findall(response.text):
                target = _normalise(href.replace("&amp;", "&"))
                if target and target not in seen:
                    seen.add(target)
                    queue.append(target)


def _route_reached(path: str, visited: list[str]) -> bool:
    pattern = re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + r"(\?.*)?$")
    return any(pattern.match(url) for url in visited)


def test_every_page_a_clerk_approver_or_administrator_reaches_is_japanese(site: Site) -> None:
    assert len(site.visited) >= 15, sorted(site.visited)
    # The seeded items were reached (a walk that stops at the inbox proves little).
    assert any(u.startswith("/messages/") for u in site.visited)
    assert any(re.fullmatch(r"/routes/\d+", u) for u in site.visited)
    assert site.english == {}


def test_every_control_on_every_page_has_a_label(site: Site) -> None:
    # The same walk, for screen readers: a field nobody can name cannot be filled in without sight.
    missing = {page: found for page, html in site.pages.items() if (found := unlabelled_controls(html))}
    assert missing == {}


def test_the_walk_reaches_every_page(site: Site) -> None:
    missed = [p for p in _page_routes(site.app) if not _route_reached(p, list(site.visited))]
    assert missed == [], f"seed data (or a link) so that the walk reaches these pages: {missed}"


def _assert_japanese(response_text: str, *expected: str) -> None:
    assert english_sentences(response_text) == []
    shown = " ".join(visible_text(response_text))
    for text in expected:
        assert text in shown, shown


def test_fax_results_are_plain_words_with_the_code_in_a_detail_line(site: Site) -> None:
    log = site.clients["tanaka"].get("/fax/log")
    _assert_japanese(log.text, "送信速度 14.4kbps・誤り訂正あり", "送信中に通話が切れました。", "T.30コード 49")
    assert "ECM" not in " ".join(visible_text(log.text))
    english = site.clients["tanaka"].get("/fax/log?lang=en")
    shown = " ".join(visible_text(english.text))
    assert "Speed 14.4 kbps, error correction on" in shown
    assert "The call was cut off during the transmission." in shown and "T.30 code 49: The call dropped" in shown
    site.clients["tanaka"].get("/fax/log?lang=ja")  # the language link's cookie, back to Japanese


def test_error_pages_are_japanese(site: Site) -> None:
    tanaka = site.clients["tanaka"]
    missing = tanaka.get("/no-such-page")
    assert missing.status_code == 404
    _assert_japanese(missing.text, "見つかりません")

    no_message = tanaka.get("/messages/00000000-0000-4000-8000-000000000000")
    assert no_message.status_code == 404
    _assert_japanese(no_message.text)

    no_route = tanaka.get("/routes/999999")
    assert no_route.status_code == 404
    _assert_japanese(no_route.text)

    foreign = tanaka.get("/offices/criminal-affairs/inbox")
    assert foreign.status_code == 403
    _assert_japanese(foreign.text, "自分の部署のページしか開くことができません")

    wrong_method = tanaka.delete("/compose")
    assert wrong_method.status_code == 405
    _assert_japanese(wrong_method.text)

    no_csrf = tanaka.post("/compose", data={"to": "criminal-affairs@moj", "subject": "x"})
    assert no_csrf.status_code == 403
    _assert_japanese(no_csrf.text)

    too_large = tanaka.post("/compose", data={"csrf_token": site.csrf["tanaka"], "to": "criminal-affairs@moj",
                                              "subject": "大きい文書"},
                            files=[("files", ("big.pdf", b"%PDF-1.4\n" + b"0" * (LIMIT * 2), "application/pdf"))])
    assert too_large.status_code == 413
    _assert_japanese(too_large.text)

    bad_form = tanaka.post("/fax/send", data={"csrf_token": site.csrf["tanaka"], "classification": "9"})
    assert bad_form.status_code == 422
    _assert_japanese(bad_form.text)

    not_admin = tanaka.get("/fax/admin")
    assert not_admin.status_code == 403
    _assert_japanese(not_admin.text)


def test_form_and_service_errors_are_japanese(site: Site) -> None:
    tanaka, csrf = site.clients["tanaka"], site.csrf["tanaka"]
    unknown = tanaka.post("/compose", data={"csrf_token": csrf, "to": "nobody@moj", "subject": "件名",
                                            "classification": "0", "priority": "normal"},
                          files=[("files", ("a.pdf", sample_pdf(1), "application/pdf"))])
    assert unknown.status_code == 404
    _assert_japanese(unknown.text, "宛先または配信リストが見つかりません。")

    no_subject = tanaka.post("/compose", data={"csrf_token": csrf, "to": "criminal-affairs@moj",
                                               "classification": "0", "priority": "normal"},
                             files=[("files", ("a.pdf", sample_pdf(1), "application/pdf"))])
    assert no_subject.status_code == 422
    _assert_japanese(no_subject.text)

    ghost = tanaka.post("/routes", data={"csrf_token": csrf, "title": ["課長"], "approvers": ["ghost"]},
                        files={"document": ("plan.pdf", sample_pdf(1), "application/pdf")})
    assert ghost.status_code == 422
    _assert_japanese(ghost.text)

    broken = tanaka.post("/routes", data={"csrf_token": csrf, "title": ["課長"], "approvers": ["sato"]},
                         files={"document": ("plan.pdf", b"not a pdf", "application/pdf")})
    assert broken.status_code == 422
    _assert_japanese(broken.text)

    bad_number = tanaka.post("/fax/send", data={"csrf_token": csrf, "number": "abc", "classification": "0"},
                             files={"document": ("a.pdf", sample_pdf(1), "application/pdf")})
    assert bad_number.status_code == 422
    _assert_japanese(bad_number.text)

    garbage = tanaka.post("/verify", data={"csrf_token": csrf},
                          files={"document": ("x.pdf", b"garbage", "application/pdf")})
    assert garbage.status_code == 422
    _assert_japanese(garbage.text)

    weak = site.clients["sato"].post("/tokens", data={"csrf_token": site.csrf["sato"], "name": "", "days": "x"})
    _assert_japanese(weak.text)


def test_a_verification_report_of_a_stamped_document_is_japanese(site: Site) -> None:
    tanaka, sato = site.clients["tanaka"], site.clients["sato"]
    queue = sato.get("/routes")
    route_id = re.search(r'href="/routes/(\d+)"', queue.text)
    assert route_id, queue.text
    stamped = sato.post(f"/routes/{route_id.group(1)}/stamp", data={"csrf_token": site.csrf["sato"],
                                                                    "kind": "personal", "comment": "確認しました"})
    assert stamped.status_code in (200, 303), stamped.text
    pdf = sato.get(f"/routes/{route_id.group(1)}/document.pdf")
    assert pdf.content.startswith(b"%PDF")
    report = tanaka.post("/verify", files={"file": ("研修計画.pdf", pdf.content, "application/pdf")})
    assert report.status_code == 200
    _assert_japanese(report.text, "検証結果")


def test_a_server_error_page_is_japanese(site: Site) -> None:
    # A bug in a page: the browser gets the error page in its language, not the server's plain text.
    app = create_app(site.node)

    @app.get("/broken-page")
    def broken() -> None:
        raise RuntimeError("an unexpected failure")

    with TestClient(app, raise_server_exceptions=False) as client:
        client.cookies.set(LANG_COOKIE, "ja")
        response = client.get("/broken-page")
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("text/html")
    _assert_japanese(response.text, "サーバーで要求を処理できませんでした")
    assert "an unexpected failure" not in response.text
