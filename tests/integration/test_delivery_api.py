"""/api/v1 delivery routes as an office's program uses them, and the authorisation matrix (403/404)."""

from __future__ import annotations

import dataclasses
import io
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas
from sqlalchemy import func, select

from inkless.app import Node, build_node, init_node
from inkless.config import load_settings
from inkless.db.tables_delivery import inbox, outbox
from inkless.directory.demo import DEMO_NODE_ID, DEMO_ORGANISATION, create_demo
from inkless.directory.tokens import ApiTokenService
from inkless.web.app import create_app
from tests.conftest import BACKENDS
from tests.helpers.db import fresh_database
from tests.helpers.nodes import refused_url, settle_pending_work

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from fastapi.testclient import TestClient

USERS = ("tanaka", "sato", "suzuki", "takahashi", "ito", "yamada")


def pdf(text: str) -> bytes:
    out = io.BytesIO()
    page = canvas.Canvas(out, pagesize=A4, invariant=True)
    page.drawString(72, 720, text)
    page.showPage()
    page.save()
    return out.getvalue()


@pytest.fixture(scope="module", params=BACKENDS)
def api_node(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    folder = tmp_path_factory.mktemp("api")
    with fresh_database(str(request.param), folder) as url:
        settings = load_settings(folder, env={}, overrides={
            "node_id": DEMO_NODE_ID, "organisation": DEMO_ORGANISATION, "database_url": url,
            "base_url": refused_url(), "workers": False,
        })
        node = init_node(settings)
        create_demo(node.directory)
        try:
            yield node
        finally:
            node.close()


@pytest.fixture(scope="module")
def client(api_node: Node) -> Iterator[TestClient]:
    with TestClient(create_app(api_node)) as c:
        yield c


@pytest.fixture(scope="module")
def auth(api_node: Node) -> dict[str, dict[str, str]]:
    tokens = ApiTokenService(api_node.db, api_node.directory, api_node.audit, api_node.clock)
    secrets = {login: tokens.create(login, api_node.directory.user(login).office_code, "api").secret
               for login in USERS}
    return {login: {"Authorization": f"Bearer {secret}"} for login, secret in secrets.items()}


def send(client: TestClient, headers: dict[str, str], to: str, subject: str, classification: int,
         files: list[tuple[str, bytes]]) -> str:
    response = client.post(
        "/api/v1/messages", headers=headers,
        data={"to": to, "subject": subject, "classification": str(classification), "priority": "normal"},
        files=[("files", (name, data, "application/pdf")) for name, data in files],
    )
    assert response.status_code == 201, response.text
    return str(response.json()["message_id"])


def test_send_read_download_status_report(api_node: Node, client: TestClient, auth: dict[str, dict[str, str]]) -> None:
    settle_pending_work(api_node)  # nothing an earlier test queued goes along
    first, second = pdf("Page one"), pdf("Annex")
    message_id = send(client, auth["tanaka"], "criminal-affairs@moj", "照会", 1,
                      [("照会書.pdf", first), ("annex.pdf", second)])
    assert api_node.delivery is not None and api_node.delivery.deliver_due().delivered == 1

    listed = client.get("/api/v1/offices/criminal-affairs/inbox", headers=auth["takahashi"]).json()
    assert listed["office"] == "criminal-affairs@moj"
    [item] = [m for m in listed["messages"] if m["message_id"] == message_id]
    assert item["subject"] == "照会" and item["sender"] == "civil-affairs@moj" and item["documents"] == 2

    meta = client.get(f"/api/v1/messages/{message_id}", headers=auth["takahashi"]).json()
    assert meta["signed_by"] == "civil-affairs@moj" and meta["copy"] == "received"
    assert [(d["number"], d["name"], d["size"]) for d in meta["documents"]] == [
        (1, "照会書.pdf", len(first)), (2, "annex.pdf", len(second))]
    doc = client.get(f"/api/v1/messages/{message_id}/documents/1", headers=auth["takahashi"])
    assert doc.status_code == 200 and doc.content == first
    assert doc.headers["content-type"] == "application/pdf"
    assert "filename*=UTF-8''%E7%85%A7%E4%BC%9A%E6%9B%B8.pdf" in doc.headers["content-disposition"]
    assert client.get(f"/api/v1/messages/{message_id}/documents/3", headers=auth["takahashi"]).status_code == 404

    status = client.get(f"/api/v1/messages/{message_id}/status", headers=auth["tanaka"]).json()
    assert [(s["recipient"], s["state"], s["receipt"]) for s in status] == [("criminal-affairs@moj", "delivered", True)]
    sent = client.get("/api/v1/offices/civil-affairs/sent", headers=auth["tanaka"]).json()
    assert message_id in [m["message_id"] for m in sent]
    report = client.get(f"/api/v1/messages/{message_id}/report", headers=auth["tanaka"])
    assert report.status_code == 200 and report.headers["content-type"] == "application/pdf"
    assert report.content.startswith(b"%PDF")

    forwarded = client.post(f"/api/v1/messages/{message_id}/forward", headers=auth["takahashi"],
                            json={"to": ["secretariat@moj"]})
    assert forwarded.status_code == 201, forwarded.text
    lowered = client.post(f"/api/v1/messages/{message_id}/forward", headers=auth["takahashi"],
                          json={"to": ["secretariat@moj"], "classification": 0})
    assert lowered.status_code == 403

    answered = client.post(f"/api/v1/messages/{message_id}/reply", headers=auth["takahashi"],
                           files=[("files", ("回答.pdf", pdf("Answer"), "application/pdf"))])
    assert answered.status_code == 201, answered.text
    assert [r["recipient"] for r in answered.json()["recipients"]] == ["civil-affairs@moj"]
    api_node.delivery.deliver_due()
    reply_id = answered.json()["message_id"]
    reply = client.get(f"/api/v1/messages/{reply_id}", headers=auth["tanaka"]).json()
    assert reply["reply_to"] == message_id and reply["subject"] == "Re: 照会" and reply["classification"] == 1
    spec = client.get("/api/v1/openapi.json").json()["paths"]["/api/v1/messages"]["post"]
    assert "files" in spec["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]


def test_authorisation_matrix(api_node: Node, client: TestClient, auth: dict[str, dict[str, str]]) -> None:
    # 極秘 (3) from civil-affairs to criminal-affairs: ito (criminal, 3) may read it; takahashi (criminal, 2)
    # sees it listed without its subject; yamada (secretariat) and tanaka (civil, 1) must not learn anything.
    message_id = send(client, auth["suzuki"], "criminal-affairs@moj", "極秘の件", 3, [("s.pdf", pdf("secret"))])
    assert api_node.delivery is not None
    api_node.delivery.deliver_due()
    paths = [f"/api/v1/messages/{message_id}", f"/api/v1/messages/{message_id}/documents/1"]
    expected = {
        "ito": (200, 200),
        "suzuki": (200, 200),  # the sender's own copy
        "takahashi": (403, 403),  # right office, clearance too low
        "tanaka": (403, 403),  # sender office, clearance too low
        "yamada": (404, 404),  # neither sender nor recipient: existence is not revealed
    }
    for login, codes in expected.items():
        got = tuple(client.get(p, headers=auth[login]).status_code for p in paths)
        assert got == codes, login
    for login, code in {"suzuki": 200, "sato": 200, "ito": 404, "yamada": 404}.items():
        assert client.get(f"/api/v1/messages/{message_id}/status", headers=auth[login]).status_code == code, login
    # The transmission report: the sender; sato of the sending office lacks the clearance to open the message;
    # the recipient's office and a third office are told there is no such sent message.
    for login, code in {"suzuki": 200, "sato": 403, "ito": 404, "yamada": 404}.items():
        assert client.get(f"/api/v1/messages/{message_id}/report", headers=auth[login]).status_code == code, login
    listed = client.get("/api/v1/offices/criminal-affairs/inbox", headers=auth["takahashi"]).json()["messages"]
    assert [m["subject"] for m in listed if m["message_id"] == message_id] == [None]
    assert client.get("/api/v1/offices/criminal-affairs/inbox", headers=auth["tanaka"]).status_code == 403
    assert client.get("/api/v1/offices/criminal-affairs/sent", headers=auth["tanaka"]).status_code == 403
    # Sending above one's clearance, or to a confidential level one does not hold.
    refused = client.post("/api/v1/messages", headers=auth["tanaka"],
                          data={"to": "criminal-affairs@moj", "subject": "x", "classification": "2"},
                          files=[("files", ("a.pdf", b"%PDF-1.4", "application/pdf"))])
    assert refused.status_code == 403 and "clearance" in refused.json()["detail"]
    # Lists are for administrators.
    body = {"name": "all-moj", "addresses": ["civil-affairs@moj", "criminal-affairs@moj"]}
    assert client.post("/api/v1/lists", headers=auth["tanaka"], json=body).status_code == 403
    assert client.post("/api/v1/lists", headers=auth["yamada"], json=body).status_code == 201
    assert client.get("/api/v1/lists", headers=auth["tanaka"]).json() == [body]
    assert client.get(f"/api/v1/messages/{message_id}").status_code == 401


def test_a_disguised_file_name_is_refused_naming_the_character(
    api_node: Node, client: TestClient, auth: dict[str, dict[str, str]]
) -> None:
    response = client.post(
        "/api/v1/messages", headers=auth["tanaka"],
        data={"to": "criminal-affairs@moj", "subject": "写真", "classification": "0", "priority": "normal"},
        files=[("files", ("photo\u202egpj.exe", pdf("x"), "application/pdf"))],
    )
    assert response.status_code == 422
    assert response.json()["detail"].startswith("document name: contains U+202E RIGHT-TO-LEFT OVERRIDE")


def test_size_limit_is_enforced_while_uploading(api_node: Node, auth: dict[str, dict[str, str]],
                                                tmp_path: Path) -> None:
    small = build_node(dataclasses.replace(api_node.settings, max_message_bytes=50_000))
    try:
        with TestClient(create_app(small)) as c:
            def counts() -> tuple[int, int]:
                with small.db.begin() as conn:
                    return (conn.execute(select(func.count()).select_from(outbox)).scalar_one(),
                            conn.execute(select(func.count()).select_from(inbox)).scalar_one())

            before = counts()
            for size in (60_000, 3_000_000):  # over the document limit; over it by far (refused by length)
                response = c.post("/api/v1/messages", headers=auth["tanaka"],
                                  data={"to": "criminal-affairs@moj", "subject": "big"},
                                  files=[("files", ("big.pdf", b"%" * size, "application/pdf"))])
                assert response.status_code == 413, (size, response.text)
                assert "50,000 bytes" in response.json()["detail"]
            garbage = c.post("/api/v1/messages", headers=auth["tanaka"], json={"to": "x"})
            assert garbage.status_code == 422
            assert counts() == before
    finally:
        small.close()


def test_the_fallback_decision_and_fax_outcome_in_the_callers_language(
        api_node: Node, client: TestClient, auth: dict[str, dict[str, str]]) -> None:
    message_id = send(client, auth["tanaka"], "criminal-affairs@moj", "至急の件", 1, [("a.pdf", pdf("x"))])
    with api_node.db.begin() as conn:
        conn.execute(outbox.update().where(outbox.c.message_id == message_id).values(
            fax_decision="faxing", fax_decision_params='{"minutes": 61, "node": "mlit", "number": "03-5253-8111"}',
            fax_outcome="failed",
            fax_outcome_params='{"code": 49, "job": 5, "number": "03-5253-8111", "reason": "busy"}'))
    [plain] = client.get(f"/api/v1/messages/{message_id}/status", headers=auth["tanaka"]).json()
    assert plain["fax_decision"]["text"].startswith("送信先ノード")  # the node's default language
    for lang, decision, outcome in (
        ("ja", "送信先ノード mlit に61分以上接続できないため、FAX（03-5253-8111）で送信します。",
         "03-5253-8111 へのFAX送信に失敗しました（FAXジョブ 5、T.30 コード 49）。電子配達を続けます。"),
        ("en", "Peer mlit has been unreachable for 61 minutes: sending by fax to 03-5253-8111.",
         "The fax to 03-5253-8111 failed (fax job 5, T.30 code 49); electronic delivery continues."),
    ):
        [status] = client.get(f"/api/v1/messages/{message_id}/status?lang={lang}", headers=auth["tanaka"]).json()
        assert status["fax_decision"]["code"] == "faxing" and status["fax_decision"]["text"] == decision
        assert status["fax_decision"]["params"] == {"minutes": 61, "node": "mlit", "number": "03-5253-8111"}
        assert status["fax_outcome"]["code"] == "failed" and status["fax_outcome"]["text"] == outcome
        assert status["fax_outcome"]["detail"] == "busy"  # the line's own words, apart from the sentence
    client.cookies.delete("lang")  # ?lang= leaves a cookie on this shared client
