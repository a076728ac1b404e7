"""Approval routes over HTTP: /api/v1/routes with API tokens, and the pages with a browser session and CSRF."""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterator
from datetime import timedelta

import pyotp
import pytest

from inkless.app import Node
from inkless.directory.demo import DemoSample
from inkless.directory.tokens import ApiTokenService
from inkless.web.app import create_app
from tests.helpers.route_docs import sample_pdf

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from fastapi.testclient import TestClient

PASSWORD = "yama-no-ue-no-2026"


@pytest.fixture
def client(node: Node, demo: DemoSample) -> Iterator[TestClient]:
    with TestClient(create_app(node)) as c:
        yield c


def _token(node: Node, login: str, office: str) -> dict[str, str]:
    created = ApiTokenService(node.db, node.directory, node.audit, node.clock).create(
        login, office, "routes", None, actor="test"
    )
    return {"Authorization": f"Bearer {created.secret}"}


def test_routes_through_the_api_and_the_pages(node: Node, client: TestClient) -> None:
    tanaka, sato, suzuki = (_token(node, u, "civil-affairs") for u in ("tanaka", "sato", "suzuki"))
    steps = [{"title": "担当", "approvers": ["tanaka"]}, {"title": "課長", "approvers": ["sato", "suzuki"],
                                                        "deadline": "2026-12-24"}]
    started = client.post(
        "/api/v1/routes", headers=tanaka, data={"steps": json.dumps(steps), "name": "研修計画"},
        files={"document": ("plan.pdf", sample_pdf(1), "application/pdf")},
    )
    assert started.status_code == 201, started.text
    rid = started.json()["id"]
    assert started.json()["waiting_for"] == ["tanaka"]
    for bad, status in (("not json", 422), (json.dumps([{"title": "担当", "approvers": ["ghost"]}]), 422)):
        refused = client.post("/api/v1/routes", headers=tanaka, data={"steps": bad},
                              files={"document": ("x.pdf", sample_pdf(1), "application/pdf")})
        assert refused.status_code == status, refused.text
    broken = client.post("/api/v1/routes", headers=tanaka, data={"steps": json.dumps(steps)},
                         files={"document": ("x.pdf", b"garbage", "application/pdf")})
    assert broken.status_code == 422 and "not a readable PDF" in broken.json()["detail"]

    early = client.post(f"/api/v1/routes/{rid}/stamp", headers=sato, json={"kind": "personal"})
    assert early.status_code == 403 and "not sato's turn" in early.json()["detail"]
    assert client.get("/api/v1/routes/queue", headers=tanaka).json()[0]["id"] == rid
    assert client.post(f"/api/v1/routes/{rid}/stamp", headers=tanaka, json={"kind": "date"}).status_code == 200
    back = client.post(f"/api/v1/routes/{rid}/return", headers=sato, json={"comment": "日付を確認", "to_step": 1})
    assert back.status_code == 200 and back.json()["current_step"] == 1
    assert client.post(f"/api/v1/routes/{rid}/stamp", headers=tanaka, json={}).status_code == 200
    assert client.post(f"/api/v1/routes/{rid}/stamp", headers=suzuki, json={}).status_code == 200
    outsider = _token(node, "ito", "criminal-affairs")
    assert client.get(f"/api/v1/routes/{rid}", headers=outsider).status_code == 404

    # sato, the last 課長, stamps in the browser: session cookie plus CSRF token.
    node.directory.set_password("sato", PASSWORD, actor="test")
    secret = node.directory.totp_secret("sato")
    # Enrolled with an earlier code; each code (time step) is accepted once: login now, office seal next step.
    node.directory.verify_totp("sato", pyotp.TOTP(secret).at(node.clock.now() - timedelta(seconds=30)))
    login = client.post("/login", data={"login": "sato", "password": PASSWORD})
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', login.text)
    assert csrf
    landed = client.post("/login/totp", data={"code": pyotp.TOTP(secret).at(node.clock.now()),
                                              "csrf_token": csrf.group(1)})
    assert landed.status_code == 200, landed.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', landed.text)
    assert token
    queue = client.get("/routes")
    assert queue.status_code == 200 and "承認待ち" in queue.text and "研修計画" in queue.text
    page = client.get(f"/routes/{rid}")
    assert 'id="stamp-dialog"' in page.text and "青枠の欄に押印されます" in page.text
    preview = client.get(f"/routes/{rid}/preview.png")
    assert preview.status_code == 200 and preview.content.startswith(b"\x89PNG")
    assert client.post(f"/routes/{rid}/stamp", data={"kind": "personal"}).status_code == 403  # no CSRF token
    stamped = client.post(f"/routes/{rid}/stamp", data={"kind": "personal", "csrf_token": token.group(1)})
    assert stamped.status_code == 200 and "押印しました" in stamped.text
    assert 'id="office-seal-dialog"' in stamped.text

    # The office seal asks for the one-time code again.
    wrong = client.post(f"/routes/{rid}/office-seal", data={"code": "000000", "csrf_token": token.group(1)})
    assert wrong.status_code == 401 and "ワンタイムコード" in wrong.text
    assert client.get(f"/api/v1/routes/{rid}", headers=sato).json()["state"] == "awaiting_office_seal"
    api_wrong = client.post(f"/api/v1/routes/{rid}/office-seal", headers=sato, json={"totp": "123456"})
    assert api_wrong.status_code == 401
    next_code = pyotp.TOTP(secret).at(node.clock.now() + timedelta(seconds=30))
    sealed = client.post(f"/api/v1/routes/{rid}/office-seal", headers=sato, json={"totp": next_code})
    assert sealed.status_code == 200, sealed.text
    assert sealed.json()["state"] == "completed" and sealed.json()["office_sealed_by"] == "sato"
    pdf = client.get(f"/api/v1/routes/{rid}/document", headers=tanaka)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert node.sealing is not None
    assert node.sealing.verify(pdf.content).indication.value == "PASSED"
    done = client.get(f"/routes/{rid}")
    assert "完了" in done.text and "日付を確認" in done.text
    # Starting a route from the form: a missing file is refused, a good one opens the route page.
    form = {"csrf_token": token.group(1), "name": "出張報告", "title": ["担当", "課長", ""],
            "approvers": ["sato", "suzuki", ""], "deadline": ["", "2026-12-25", ""]}
    missing = client.post("/routes", data=form)
    assert missing.status_code == 422 and "PDFファイルを選んでください" in missing.text
    created = client.post("/routes", data=form, files={"document": ("report.pdf", sample_pdf(1), "application/pdf")})
    assert created.status_code == 200 and "稟議を起案しました" in created.text and "出張報告" in created.text
    assert 'id="stamp-dialog"' in created.text  # sato is the 担当 of the new route
