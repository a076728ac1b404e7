"""The state of e-mail recipients in the API and CLI contract, with the mails going through a real Postfix:
``GET /api/v1/messages/{id}/status`` and ``inkless message status ID [--json]`` show 通知済み / 開封 /
ダウンロード / 返信 / 期限切れ / 不達 with times — English keys and ISO UTC times for programs, JST for people."""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from inkless import timefmt
from inkless.app import Node, init_node
from inkless.cli.main import app as cli_app
from inkless.config import load_settings
from inkless.db.tables_pickup import pickups
from inkless.delivery.service import NewDocument
from inkless.directory.demo import DEMO_NODE_ID, DEMO_ORGANISATION, create_demo
from inkless.pickup.files import check_reply_file
from inkless.web.app import create_app
from tests.conftest import BACKENDS
from tests.helpers.db import fresh_database
from tests.helpers.postfix import PrivatePostfix, deliver_queued_mail, postfix_available, running_postfix
from tests.helpers.seals import sample_pdf
from tests.helpers.web import TestClient, bearer

pytestmark = pytest.mark.skipif(postfix_available() is not None, reason=str(postfix_available()))

TOKEN = re.compile(r"http://testserver/p/([A-Za-z0-9_-]{43})")


@pytest.fixture(scope="module")
def postfix() -> Iterator[PrivatePostfix]:
    with running_postfix() as instance:
        yield instance


@pytest.fixture(scope="module", params=BACKENDS)
def node(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
         postfix: PrivatePostfix) -> Iterator[Node]:
    folder = tmp_path_factory.mktemp(f"pickup-status-{request.param}") / "node"
    with fresh_database(str(request.param), folder.parent) as url:
        n = init_node(load_settings(folder, env={}, overrides={
            "node_id": DEMO_NODE_ID, "organisation": DEMO_ORGANISATION, "base_url": "http://testserver",
            "workers": False, "database_url": url, "smtp_url": postfix.smtp_url,
            "smtp_from": "法務省 <no-reply@moj.example.go.jp>"}))
        create_demo(n.directory)
        try:
            yield n
        finally:
            n.close()


def auth(node: Node, login: str) -> dict[str, str]:
    """An API token of ``login`` (one per user for the module's node)."""
    tokens = node.extras.setdefault("tokens", {})
    assert isinstance(tokens, dict)
    if login not in tokens:
        tokens[login] = bearer(node, login)
    return dict(tokens[login])


def sent_to(node: Node, *addresses: str) -> str:
    assert node.delivery is not None
    return node.delivery.send("tanaka", "civil-affairs", list(addresses), [], "住民票の写しの送付",
                              [NewDocument("写し.pdf", sample_pdf())])


def collect_and_reply(node: Node, postfix: PrivatePostfix, to: str) -> None:
    """The recipient opens the link with the code from the second mail, downloads, and sends a file back."""
    assert node.pickup is not None
    deliver_queued_mail(node)
    body = postfix.wait_for(to)[0].get_body(("plain",))
    assert body is not None
    found = TOKEN.search(body.get_content())
    assert found
    token = found.group(1)
    assert node.pickup.request_code(token, "192.0.2.1") == to
    deliver_queued_mail(node)
    code_mail = postfix.wait_for(to, count=2)[-1].get_body(("plain",))
    assert code_mail is not None
    code = re.search(r"確認コード: (\d{6})", code_mail.get_content())
    assert code
    session = node.pickup.verify_code(token, code.group(1), "192.0.2.1")
    node.pickup.document(token, session, 1, "192.0.2.1")
    node.pickup.reply(token, session, [check_reply_file("申請書.pdf", sample_pdf())], "", "192.0.2.1")


@contextlib.contextmanager
def _this_node(node: Node, _data: object) -> Iterator[Node]:
    yield node  # the command runs against the test's node, which the fixture closes


def cli(node: Node, monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    monkeypatch.setattr("inkless.cli.delivery.open_node", lambda data: _this_node(node, data))
    result = CliRunner().invoke(cli_app, list(args))
    assert result.exit_code == 0, (result.stdout, result.exception)
    return result.stdout


def email_rows(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["recipient"]: r for r in rows if r["kind"] == "email"}


def test_the_api_and_the_cli_show_every_step_of_an_email_recipient_with_times(
        node: Node, postfix: PrivatePostfix, monkeypatch: pytest.MonkeyPatch) -> None:
    taro = f"taro-{uuid.uuid4().hex[:8]}@example.co.jp"
    gone = f"bounce-{uuid.uuid4().hex[:8]}@example.co.jp"
    message_id = sent_to(node, "criminal-affairs@moj", taro, gone)
    collect_and_reply(node, postfix, taro)
    with node.db.read() as conn:
        row = conn.execute(select(pickups).where(pickups.c.recipient == taro)).one()

    api, tanaka = TestClient(create_app(node)), auth(node, "tanaka")  # type: ignore[arg-type]
    answer = api.get(f"/api/v1/messages/{message_id}/status", headers=tanaka)
    assert answer.status_code == 200, answer.text
    rows = answer.json()
    assert [r["kind"] for r in rows] == ["office", "email", "email"]
    assert rows[0]["recipient"] == "criminal-affairs@moj"
    mine = email_rows(rows)[taro]
    assert mine["state"] == "replied" and mine["state_text"] == "返信"
    assert [(e["state"], e["text"]) for e in mine["events"]] == [
        ("notified", "通知済み"), ("opened", "開封"), ("downloaded", "ダウンロード"), ("replied", "返信")]
    for key, at in (("notified_at", row.notified_at), ("opened_at", row.opened_at),
                    ("downloaded_at", row.downloaded_at), ("replied_at", row.replied_at)):
        assert datetime.fromisoformat(mine[key].replace("Z", "+00:00")) == at
    assert all(e["at"].endswith(("Z", "+00:00")) for e in mine["events"])  # UTC for programs
    assert [r["name"] for r in mine["replies"]] == ["申請書.pdf"]

    # The reply is in the conversation for programs too: below the sent message, and pointing back at it.
    [reply] = api.get(f"/api/v1/messages/{message_id}/replies", headers=tanaka).json()
    assert (reply["direction"], reply["source"], reply["sender"], reply["subject"]) == (
        "received", "pickup", f"pickup:{taro}", "Re: 住民票の写しの送付")
    assert mine["replies"][0]["message_id"] == reply["message_id"]
    opened = api.get(f"/api/v1/messages/{reply['message_id']}", headers=tanaka).json()
    assert opened["reply_to"] == message_id and opened["authenticated"] is False
    assert opened["facts"]["email"] == taro and [d["name"] for d in opened["documents"]] == ["申請書.pdf"]
    inbox = api.get("/api/v1/offices/civil-affairs/inbox", headers=tanaka).json()["messages"]
    assert [i["source"] for i in inbox if i["message_id"] == reply["message_id"]] == ["pickup"]
    other = auth(node, "takahashi")  # another office: the same 404 as for the message itself
    assert api.get(f"/api/v1/messages/{message_id}/replies", headers=other).status_code == 404
    bounced = email_rows(rows)[gone]
    assert bounced["state"] == "bounced" and bounced["state_text"] == "不達" and "550 5.1.1" in bounced["bounce_detail"]
    assert api.get(f"/api/v1/messages/{message_id}/status?lang=en", headers=tanaka).json()[1]["state_text"] == "Replied"

    # The CLI gives programs the same keys, and people the Japanese words with JST times.
    as_json = email_rows(json.loads(cli(node, monkeypatch, "message", "status", message_id, "--as", "tanaka",
                                        "--json")))
    assert [(e["state"], e["text"], datetime.fromisoformat(e["at"])) for e in as_json[taro]["events"]] == [
        (e["state"], e["text"], datetime.fromisoformat(e["at"].replace("Z", "+00:00"))) for e in mine["events"]]
    assert datetime.fromisoformat(as_json[taro]["replied_at"]) == row.replied_at
    table = cli(node, monkeypatch, "message", "status", message_id, "--as", "tanaka")
    line = next(x for x in table.splitlines() if x.startswith(taro))
    tz = node.settings.tz
    for label, at in (("通知済み", row.notified_at), ("開封", row.opened_at), ("ダウンロード", row.downloaded_at),
                      ("返信", row.replied_at)):
        assert f"{label} {timefmt.format_datetime(at, 'en', tz)}" in line
    assert "JST" in line and "不達" in next(x for x in table.splitlines() if x.startswith(gone))
    english = cli(node, monkeypatch, "message", "status", message_id, "--as", "tanaka", "--lang", "en")
    assert "Replied" in english and "返信" not in english


def test_an_expired_link_shows_expired_with_its_time_and_other_offices_see_nothing(
        node: Node, postfix: PrivatePostfix, monkeypatch: pytest.MonkeyPatch) -> None:
    hanako = f"hanako-{uuid.uuid4().hex[:8]}@example.co.jp"
    message_id = sent_to(node, hanako)
    deliver_queued_mail(node)
    past = datetime.now(UTC) - timedelta(minutes=1)
    with node.db.begin() as conn:
        conn.execute(update(pickups).where(pickups.c.recipient == hanako).values(
            notified_at=past - timedelta(days=7), expires_at=past))
    [row] = json.loads(cli(node, monkeypatch, "message", "status", message_id, "--as", "tanaka", "--json"))
    assert row["state"] == "expired" and row["expired"] is True
    assert [e["state"] for e in row["events"]] == ["notified", "expired"]
    assert datetime.fromisoformat(row["expired_at"]) == past
    table = cli(node, monkeypatch, "message", "status", message_id, "--as", "tanaka")
    assert f"期限切れ {timefmt.format_datetime(past, 'en', node.settings.tz)}" in table
    # Another office's clerk gets the same 404 as for a message that does not exist.
    api = TestClient(create_app(node))  # type: ignore[arg-type]
    other = api.get(f"/api/v1/messages/{message_id}/status", headers=auth(node, "takahashi"))
    missing = api.get(f"/api/v1/messages/{uuid.uuid4()}/status", headers=auth(node, "takahashi"))
    assert other.status_code == missing.status_code == 404
