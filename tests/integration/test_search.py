"""Finding things in the inbox, the sent items and the fax log, on SQLite (FTS5) and PostgreSQL (GIN):
Japanese terms of two and more characters, senders, fax numbers and the text of a received fax, filters,
pages, unread counts, and who may find what."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import insert, select

from inkless.app import Node, init_node
from inkless.config import load_settings
from inkless.db.tables_fax import fax_calls
from inkless.db.tables_search import search_index
from inkless.delivery.service import NewDocument
from inkless.directory.demo import DEMO_NODE_ID, DEMO_ORGANISATION, create_demo
from inkless.search.listing import ListFilter, MessageListing
from inkless.web.app import create_app
from tests.conftest import BACKENDS
from tests.helpers.db import fresh_database
from tests.helpers.nodes import refused_url
from tests.helpers.text_pdf import text_pdf
from tests.helpers.web import TestClient, browser_login


@pytest.fixture(scope="module", params=BACKENDS)
def node(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    folder = tmp_path_factory.mktemp("search")
    with fresh_database(str(request.param), folder) as url:
        settings = load_settings(folder, env={}, overrides={
            "node_id": DEMO_NODE_ID, "organisation": DEMO_ORGANISATION, "database_url": url,
            "base_url": refused_url(), "workers": False,
        })
        built = init_node(settings)
        create_demo(built.directory)
        try:
            yield built
        finally:
            built.close()


@pytest.fixture(scope="module")
def app_client(node: Node) -> Iterator[TestClient]:
    with TestClient(create_app(node)) as client:
        yield client


def page(client: TestClient, node: Node, login: str, path: str) -> tuple[int, str]:
    """GET ``path`` as ``login`` (a fresh session each time: clients share nothing)."""
    log_in(client, node, login)
    response = client.get(path)
    return response.status_code, response.text


def log_in(client: TestClient, node: Node, login: str) -> None:
    """Make ``client`` a browser with a fresh session of ``login``."""
    client.cookies.clear()
    client.cookies.set("inkless_session", browser_login(node, login).cookie)


def subjects(html: str) -> list[str]:
    """The subjects of the listed messages, in order."""
    return re.findall(r'<a href="/messages/[0-9a-f-]{36}">([^<]+)</a>', html)


def send(node: Node, login: str, office: str, to: str, subject: str, classification: int = 0) -> str:
    assert node.delivery is not None
    message_id = node.delivery.send(login, office, [to], [], subject, [NewDocument("a.pdf", text_pdf(subject))],
                                    classification=classification)
    while node.delivery.deliver_due().delivered:
        pass
    return message_id


def fax_in(node: Node, office: str, number: str, text: str) -> str:
    """A received fax as the fax service deposits it: a PDF with its OCR text layer, from ``number``."""
    assert node.delivery is not None
    return node.delivery.deposit_external(office, [("fax.pdf", text_pdf(text), "application/pdf")], "fax",
                                          {"from": number}, f"FAX受信 {number}（1枚）", classification=1)


def test_japanese_terms_of_two_and_more_characters_senders_and_sent_items(node: Node, app_client: TestClient) -> None:
    tag = f"t{datetime.now(UTC):%H%M%S%f}"
    send(node, "tanaka", "civil-affairs", "criminal-affairs@moj", f"登記簿謄本の交付について {tag}")
    send(node, "tanaka", "civil-affairs", "criminal-affairs@moj", f"戸籍の照会 {tag}")
    send(node, "tanaka", "civil-affairs", "criminal-affairs@moj", f"Monthly REPORT {tag}")
    inbox = "/offices/criminal-affairs/inbox?q="

    def found(query: str) -> list[str]:
        status, html = page(app_client, node, "takahashi", inbox + query + f" {tag}")
        assert status == 200
        return sorted(s.replace(f" {tag}", "") for s in subjects(html))

    assert found("登記") == ["登記簿謄本の交付について"]          # two characters: below a trigram
    assert found("謄本の交付") == ["登記簿謄本の交付について"]    # five: its trigrams
    assert found("照") == ["戸籍の照会"]                         # one
    assert found("report") == ["Monthly REPORT"]                  # case does not matter
    assert found("ＲＥＰＯＲＴ") == ["Monthly REPORT"]            # full-width letters are the same letters
    assert found("交付 登記") == ["登記簿謄本の交付について"]      # every word must be there
    assert found("登記 戸籍") == []
    assert found("民事局") == ["Monthly REPORT", "戸籍の照会", "登記簿謄本の交付について"]  # the sender's name
    assert found("civil-affairs") == ["Monthly REPORT", "戸籍の照会", "登記簿謄本の交付について"]
    # The sender finds them in the sent items, by subject and by the recipient's name.
    status, html = page(app_client, node, "tanaka", f"/offices/civil-affairs/sent?q=謄本+{tag}")
    assert status == 200 and [s.replace(f" {tag}", "") for s in subjects(html)] == ["登記簿謄本の交付について"]
    status, html = page(app_client, node, "tanaka", f"/offices/civil-affairs/sent?q=刑事局+照会+{tag}")
    assert [s.replace(f" {tag}", "") for s in subjects(html)] == ["戸籍の照会"]
    status, html = page(app_client, node, "takahashi", inbox + f"存在しない語 {tag}")
    assert status == 200 and "条件に合う文書はありません。" in html


def test_received_fax_found_by_its_text_and_number_in_inbox_and_fax_log(node: Node, app_client: TestClient) -> None:
    number = f"03-5{datetime.now(UTC):%M%S}-{datetime.now(UTC).microsecond % 10000:04d}"
    message_id = fax_in(node, "civil-affairs", number, "固定資産税評価証明書の交付申請")
    other = fax_in(node, "criminal-affairs", "06-1111-2222", "固定資産税評価証明書の交付申請")
    for query in ("評価証明", "証明", number, number.replace("-", "")):
        status, html = page(app_client, node, "tanaka", f"/offices/civil-affairs/inbox?q={query}")
        assert status == 200
        assert f'data-message="{message_id}"' in html, query
        assert other not in html
    # "FAXで返信" opens the fax form with the caller's number filled in.
    assert f'/fax?number={number}' in html and "FAXで返信" in html
    status, opened = page(app_client, node, "tanaka", f"/messages/{message_id}")
    assert status == 200 and f'/fax?number={number}' in opened and "FAXで返信" in opened
    status, form = page(app_client, node, "tanaka", f"/fax?number={number}")
    assert status == 200 and f'value="{number}"' in form
    # The fax log finds the call by the fax's text (in the caller's office only) and by number.
    with node.db.begin() as conn:
        for office_id, msg, remote in ((node.directory.office("civil-affairs").id, message_id, number),
                                       (node.directory.office("criminal-affairs").id, other, "06-1111-2222")):
            conn.execute(insert(fax_calls).values(
                direction="RECV", line="loopback", started_at=datetime.now(UTC), duration_s=20.0,
                remote_number=remote, pages=1, bit_rate=14400, ecm=True, compression="T.6", bad_rows=0,
                t30_code=0, t30_text="OK", success=True, status="delivered", office_id=office_id, message_id=msg))
    status, log = page(app_client, node, "tanaka", "/fax/log?q=評価証明")
    assert status == 200 and number in log and "06-1111-2222" not in log
    status, log = page(app_client, node, "tanaka", f"/fax/log?q={number.replace('-', '')}")
    assert number in log
    # An administrator of another office sees every call, but not what civil-affairs' fax says.
    status, log = page(app_client, node, "yamada", "/fax/log?q=評価証明")
    assert status == 200 and number not in log and "条件に合う文書はありません。" in log


def test_a_clerk_finds_only_what_they_may_see(node: Node, app_client: TestClient) -> None:
    tag = f"k{datetime.now(UTC):%H%M%S%f}"
    send(node, "sato", "civil-affairs", "civil-affairs@moj", f"人事異動の内示 {tag}", classification=2)
    send(node, "sato", "civil-affairs", "civil-affairs@moj", f"人事異動の告示 {tag}", classification=0)
    send(node, "takahashi", "criminal-affairs", "criminal-affairs@moj", f"人事異動の予定 {tag}")
    # tanaka (内部) does not find the 秘 message by its subject; sato (秘) does.
    status, html = page(app_client, node, "tanaka", f"/offices/civil-affairs/inbox?q=人事+{tag}")
    assert status == 200 and [s.replace(f" {tag}", "") for s in subjects(html)] == ["人事異動の告示"]
    assert "内示" not in html
    status, html = page(app_client, node, "sato", f"/offices/civil-affairs/inbox?q=人事+{tag}")
    assert sorted(s.replace(f" {tag}", "") for s in subjects(html)) == ["人事異動の内示", "人事異動の告示"]
    # The classification filter offers only what the clerk is cleared for, and finds nothing above it.
    status, html = page(app_client, node, "tanaka", f"/offices/civil-affairs/inbox?cls=2&q={tag}")
    assert status == 200 and subjects(html) == []
    assert '<option value="2"' not in html.split('id="cls"')[1].split("</select>")[0]
    # Another office's inbox: 403, search or not; the sent items too.
    assert page(app_client, node, "tanaka", f"/offices/criminal-affairs/inbox?q={tag}")[0] == 403
    assert page(app_client, node, "tanaka", f"/offices/criminal-affairs/sent?q={tag}")[0] == 403
    # The index holds no text: neither the subject nor its grams are in the database.
    with node.db.begin() as conn:
        stored = " ".join(conn.execute(select(search_index.c.tokens)).scalars())
    assert "人事" not in stored and tag not in stored


def test_filters_pages_and_unread_counts(node: Node, app_client: TestClient) -> None:
    office = "secretariat"
    assert node.delivery is not None
    log_in(app_client, node, "yamada")
    before = app_client.get(f"/offices/{office}/inbox/unread.json").json()
    faxes = [fax_in(node, office, f"045-000-{n:04d}", f"案内 {n}") for n in range(52)]
    digital = send(node, "yamada", office, f"{office}@moj", "電子の通知")
    counts = app_client.get(f"/offices/{office}/inbox/unread.json")
    assert counts.status_code == 200 and counts.headers["cache-control"] == "no-store"
    assert counts.json()["unread"] == before["unread"] + 53
    assert counts.json()["fax"] == before["fax"] + 52 and counts.json()["digital"] == before["digital"] + 1
    # Pages of 50, newest first; the older page continues exactly where the first ended.
    status, first = page(app_client, node, "yamada", f"/offices/{office}/inbox?kind=fax&q=045-000")
    rows = re.findall(r'data-message="([0-9a-f-]{36})"', first)
    assert status == 200 and rows == list(reversed(faxes))[:50]
    assert f"<title>({counts.json()['unread']}) 受信箱 — inkless" in first
    older = re.search(r'href="(\?[^"]*before=[^"]+)" rel="next"', first)
    assert older, first
    status, second = page(app_client, node, "yamada", f"/offices/{office}/inbox" + older.group(1).replace("&amp;", "&"))
    assert re.findall(r'data-message="([0-9a-f-]{36})"', second) == list(reversed(faxes))[50:]
    newer = re.search(r'href="(\?[^"]*after=[^"]+)" rel="prev"', second)
    assert newer and 'rel="next"' not in second
    status, back = page(app_client, node, "yamada", f"/offices/{office}/inbox" + newer.group(1).replace("&amp;", "&"))
    assert re.findall(r'data-message="([0-9a-f-]{36})"', back) == rows
    # Reading one lowers the counts; the unread filter leaves it out; digital and fax filters split.
    node.delivery.open_message(faxes[0], "yamada")
    log_in(app_client, node, "yamada")
    assert app_client.get(f"/offices/{office}/inbox/unread.json").json()["fax"] == counts.json()["fax"] - 1
    listing = MessageListing(node.delivery, node.settings.tz)
    unread = [i.message_id for i in listing.inbox(office, "yamada", ListFilter(unread=True, source="fax"), 1000).items]
    assert faxes[0] not in unread and faxes[1] in unread and digital not in unread
    status, kind = page(app_client, node, "yamada", f"/offices/{office}/inbox?kind=inkless")
    assert digital in kind and faxes[1] not in kind and "返信" in kind
    # Dates are the office's days (JST): today finds them, yesterday does not.
    today = datetime.now(UTC).astimezone(node.settings.tz).date()
    status, html = page(app_client, node, "yamada", f"/offices/{office}/inbox?from={today}&to={today}&q=電子")
    assert digital in html
    yesterday = today - timedelta(days=1)
    status, html = page(app_client, node, "yamada", f"/offices/{office}/inbox?to={yesterday}&q=電子")
    assert digital not in html


def test_bad_search_input_is_refused_in_the_page_language(node: Node, app_client: TestClient) -> None:
    status, html = page(app_client, node, "tanaka", "/offices/civil-affairs/inbox?from=2026-13-40")
    assert status == 422 and "日付は YYYY-MM-DD の形式で入力してください。" in html
    assert 'value="2026-13-40"' in html  # what was typed stays in the form
    status, html = page(app_client, node, "tanaka",
                        "/offices/civil-affairs/inbox?from=2026-12-03&to=2026-12-01&lang=en")
    assert status == 422 and "The start date is after the end date." in html
    for position in ("before=garbage", "before=1764720000000000.abc", "after=99999999999999999999.1-2"):
        status, html = page(app_client, node, "tanaka", f"/offices/civil-affairs/inbox?{position}")
        assert status == 422 and "検索条件を読み取れませんでした" in html, position
    status, html = page(app_client, node, "tanaka", "/offices/civil-affairs/inbox?q=" + "長" * 101)
    assert status == 422 and "検索語が長すぎます" in html


def test_the_unread_endpoint_needs_a_login_and_does_not_keep_it_alive(node: Node, app_client: TestClient) -> None:
    app_client.cookies.clear()
    assert app_client.get("/offices/civil-affairs/inbox/unread.json").status_code == 401
    log_in(app_client, node, "tanaka")
    assert app_client.get("/offices/criminal-affairs/inbox/unread.json").status_code == 403
    from inkless.db import tables as t

    with node.db.begin() as conn:
        conn.execute(t.web_sessions.update().values(last_seen_at=datetime.now(UTC) - timedelta(minutes=10)))
        seen = dict(conn.execute(select(t.web_sessions.c.id, t.web_sessions.c.last_seen_at)).all())
    assert app_client.get("/offices/civil-affairs/inbox/unread.json").status_code == 200
    with node.db.begin() as conn:
        after = dict(conn.execute(select(t.web_sessions.c.id, t.web_sessions.c.last_seen_at)).all())
    assert after == seen  # polling did not extend the idle time


def test_the_migration_indexes_messages_that_were_there_before(backend: str, tmp_path: Path) -> None:
    from inkless.db.migrate import downgrade, upgrade

    with fresh_database(backend, tmp_path) as url:
        settings = load_settings(tmp_path, env={}, overrides={
            "node_id": DEMO_NODE_ID, "organisation": DEMO_ORGANISATION, "database_url": url,
            "base_url": refused_url(), "workers": False,
        })
        older = init_node(settings)
        try:
            create_demo(older.directory)
            received = send(older, "tanaka", "civil-affairs", "criminal-affairs@moj", "登記簿の照会")
            faxed = fax_in(older, "criminal-affairs", "03-9999-0001", "本文")
            # Back to the schema before search: no index at all.
            if older.settings.backend == "sqlite":
                pytest.xfail("known defect: on SQLite, downgrading a node that holds messages below "
                             "0003_delivery_fax_state stops with 'database table is locked' when the metrics "
                             "roll-up migration rebuilds the inbox while the search index exists")
            downgrade(older.db, "0003_delivery_fax_state")
            with older.db.begin() as conn:
                assert "search_index" not in sa.inspect(conn).get_table_names()
            # Without the master key the migration refuses rather than leave messages unfindable.
            with pytest.raises(RuntimeError, match="master key"):
                upgrade(older.db)
            upgrade(older.db, box=older.box)
            listing = MessageListing(older.delivery, older.settings.tz)  # type: ignore[arg-type]
            found = listing.inbox("criminal-affairs", "takahashi", ListFilter(q="登記")).items
            assert [i.message_id for i in found] == [received]
            found = listing.inbox("criminal-affairs", "takahashi", ListFilter(q="0399990001")).items
            assert [i.message_id for i in found] == [faxed]
            sent = listing.sent("civil-affairs", "tanaka", ListFilter(q="刑事")).items
            assert [m.message_id for m in sent] == [received]
        finally:
            older.close()
