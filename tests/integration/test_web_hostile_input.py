"""Hostile URLs and documents: huge integers in paths and queries, protocol-relative paths, a sender's
HTML or JavaScript served from this node's origin."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import Any, get_args

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from PIL import Image

from inkless.app import Node
from inkless.directory.demo import DemoSample
from inkless.web.app import create_app
from tests.helpers.web import TestClient, bearer, browser_login

THIRTY_DIGITS = "9" * 30


@pytest.fixture
def client(node: Node, demo: DemoSample) -> Iterator[TestClient]:
    with TestClient(create_app(node), raise_server_exceptions=False) as c:
        yield c


def _params(dependant: Dependant, kind: str) -> list[Any]:
    """The path or query parameters of a route and of every dependency it has."""
    found = list(getattr(dependant, f"{kind}_params"))
    for sub in dependant.dependencies:
        found.extend(_params(sub, kind))
    return found


def _is_int(annotation: Any) -> bool:
    if annotation is int:
        return True
    return any(_is_int(arg) for arg in get_args(annotation))


def integer_parameters(app: Any) -> list[tuple[str, APIRoute, str, str, str]]:
    """(full path, route, method, parameter name, 'path' or 'query') for every integer parameter of every route."""
    found = []
    for _path, route in app.state.route_table:
        for kind in ("path", "query"):
            for param in _params(route.dependant, kind):
                if _is_int(param.field_info.annotation):
                    found.extend((_path, route, method, param.name, kind) for method in sorted(route.methods))
    return found


def _url(path: str, route: APIRoute, name: str, kind: str) -> str:
    for param in _params(route.dependant, "path"):
        value = THIRTY_DIGITS if (kind == "path" and param.name == name) else (
            "1" if _is_int(param.field_info.annotation) else "x")
        path = path.replace("{" + param.name + "}", value)
    return path + (f"?{name}={THIRTY_DIGITS}" if kind == "query" else "")


def test_thirty_digit_integers_are_refused_with_422_on_every_route(
    client: TestClient, node: Node, demo: DemoSample
) -> None:
    params = integer_parameters(client.app)
    # The route table has them all: UI and API, paths and queries (e.g. revision=).
    names = {(p, n) for p, _r, _m, n, _k in params}
    assert {("/routes/{route_id}", "route_id"), ("/api/v1/routes/{route_id}", "route_id"),
            ("/api/v1/routes/{route_id}/document", "revision"), ("/fax/jobs/{job_id}/report", "job_id"),
            ("/api/v1/fax/jobs/{job_id}", "job_id")} <= names
    token = bearer(node, "yamada")  # an administrator: admin-only routes reach their parameters too
    login = browser_login(node, "yamada")
    browser = TestClient(client.app, raise_server_exceptions=False, cookies=login.cookies)
    failures = []
    for path, route, method, name, kind in params:
        url = _url(path, route, name, kind)
        api = path.startswith("/api/")
        response = (client if api else browser).request(
            method, url, headers=dict(token) if api else {"X-CSRF-Token": login.csrf}, follow_redirects=False)
        if response.status_code != 422:
            failures.append(f"{method} {url}: {response.status_code} {response.text[:120]}")
        elif api:
            detail = response.json()["detail"]
            named = any(name in e["loc"] for e in detail) if isinstance(detail, list) else name in detail
            if not named:
                failures.append(f"{method} {url}: 422 without naming {name}: {detail}")
        elif "入力内容が正しくありません" not in response.text:
            failures.append(f"{method} {url}: 422 page without the message")
    assert failures == []


def test_language_links_stay_on_this_site(client: TestClient) -> None:
    # A path that starts with two slashes: the old link was "//evil.example/x?lang=en", another host.
    page = client.get("http://testserver//evil.example/x")
    assert page.status_code == 404
    links = re.findall(r'href="([^"]*lang=[^"]*)"', page.text)
    assert links == ["?lang=en"]
    assert "evil.example" not in " ".join(re.findall(r'href="([^"]*)"', page.text))
    english = client.get("http://testserver//evil.example/x?lang=en")
    assert re.findall(r'href="([^"]*lang=[^"]*)"', english.text) == ["?lang=ja"]


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 4), "white").save(out, format="PNG")
    return out.getvalue()


HOSTILE = [
    ("invoice.html", b"<script>fetch('/api/v1/tokens')</script>", "text/html"),
    ("app.js", b"alert(document.cookie)", "text/javascript"),
    ("logo.svg", b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', "image/svg+xml"),
    ("note.txt", b"<html><script>alert(1)</script>", "text/plain"),
]


def test_documents_of_other_types_are_served_opaque_sandboxed_and_attached(
    client: TestClient, node: Node, demo: DemoSample
) -> None:
    png = _png()
    files = [*HOSTILE, ("scan.png", png, "image/png"), ("form.pdf", b"%PDF-1.4\n%%EOF\n", "application/pdf")]
    sent = client.post(
        "/api/v1/messages", headers=bearer(node, "tanaka"),
        data={"to": "criminal-affairs@moj", "subject": "資料", "classification": "0"},
        files=[("files", f) for f in files],
    )
    assert sent.status_code == 201, sent.text
    message_id = sent.json()["message_id"]
    assert node.delivery is not None and node.delivery.deliver_due().delivered == 1

    reader = bearer(node, "takahashi")
    browser = TestClient(client.app, cookies=browser_login(node, "takahashi").cookies)
    for index, (name, data, _declared) in enumerate(files, start=1):
        for url, via in ((f"/api/v1/messages/{message_id}/documents/{index}", client),
                         (f"/messages/{message_id}/documents/{index}", browser)):
            response = via.get(url, headers=reader if via is client else None)
            assert response.status_code == 200, (url, response.text)
            assert response.content == data
            assert response.headers["x-content-type-options"] == "nosniff"
            disposition = response.headers["content-disposition"]
            assert disposition.startswith("attachment;") and f"document-{index}" in disposition
            if name.endswith((".png", ".pdf")):
                assert response.headers["content-type"] == ("image/png" if name.endswith(".png") else "application/pdf")
            else:
                assert response.headers["content-type"] == "application/octet-stream", (name, url)
                assert response.headers["content-security-policy"].startswith("sandbox")
