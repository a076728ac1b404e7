"""Pickers: offices by name or kana (this node's and a pinned peer's, from its signed directory), people by
name or kana, fax numbers from the office's address book; typed names resolved; the search endpoint."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from inkless.app import Node, init_node
from inkless.config import load_settings
from inkless.delivery.service import NewDocument
from inkless.directory.demo import DEMO_NODE_ID, DEMO_ORGANISATION, create_demo
from inkless.directory.peers import PeerService
from inkless.errors import ValidationError
from inkless.picker import normalise
from inkless.picker.service import UnknownEntryError
from inkless.web.app import create_app
from inkless.web.pickers import picker_of
from tests.conftest import BACKENDS
from tests.helpers.db import fresh_database
from tests.helpers.nodes import ThreadedServer, free_port
from tests.helpers.route_docs import sample_pdf

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from fastapi.testclient import TestClient


@dataclass
class Pair:
    moj: Node
    npa: Node


def _fingerprint(node: Node) -> str:
    with node.db.read() as conn:
        return node.pki.ca_certificate(conn).fingerprint


@pytest.fixture(scope="module", params=BACKENDS)
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """The demo node moj (法務省) and npa (警察庁, one office 警備局), served on loopback and pinned both ways."""
    folder = tmp_path_factory.mktemp("pickers")
    backend = str(request.param)
    ports = free_port(), free_port()
    with fresh_database(backend, folder / "moj") as moj_db, fresh_database(backend, folder / "npa") as npa_db:
        moj = init_node(load_settings(folder / "moj", env={}, overrides={
            "node_id": DEMO_NODE_ID, "organisation": DEMO_ORGANISATION, "database_url": moj_db,
            "base_url": f"http://127.0.0.1:{ports[0]}"}))
        npa = init_node(load_settings(folder / "npa", env={}, overrides={
            "node_id": "npa", "organisation": "警察庁", "database_url": npa_db,
            "base_url": f"http://127.0.0.1:{ports[1]}"}))
        create_demo(moj.directory)
        npa.directory.add_office("security", "警備局", "03-3581-0141")
        npa.directory.set_kana("office", "security", "ケイビキョク", actor="test")
        try:
            with ThreadedServer(create_app(moj), ports[0]) as a, ThreadedServer(create_app(npa), ports[1]) as b:
                for node, other, url in ((moj, npa, b.url), (npa, moj, a.url)):
                    assert isinstance(node.peers, PeerService)
                    node.peers.add(url, _fingerprint(other))
                assert isinstance(moj.peers, PeerService)
                [fetched] = moj.peers.refresh("npa")
                assert fetched.ok, fetched.error
                yield Pair(moj, npa)
        finally:
            moj.close()
            npa.close()


def test_offices_are_found_by_kana_here_and_on_the_pinned_peer(pair: Pair) -> None:
    moj = picker_of(pair.moj)
    # Hiragana finds the katakana reading; the office's organisation is shown beside it.
    [found] = moj.search("けいじ", "civil-affairs", ("office",))
    assert (found.value, found.label, found.detail) == ("criminal-affairs@moj", "刑事局", "法務省")
    # The peer's office comes from its signed directory, with its kana and organisation.
    [remote] = moj.search("ケイビ", "civil-affairs", ("office",))
    assert (remote.value, remote.label, remote.kana, remote.detail) == (
        "security@npa", "警備局", "ケイビキョク", "警察庁")
    # And the other way round: npa's clerks find 法務省 刑事局 by kana.
    [back] = picker_of(pair.npa).search("けいじきょく", "security", ("office",))
    assert (back.value, back.label, back.detail) == ("criminal-affairs@moj", "刑事局", "法務省")
    assert normalise("ミンジ キョク") == normalise("みんじきょく") == "ミンジキョク"


def test_people_fax_numbers_and_typed_entries(pair: Pair) -> None:
    moj = picker_of(pair.moj)
    assert [(m.value, m.label, m.detail) for m in moj.search("さとう", "civil-affairs", ("person",))] == [
        ("sato", "佐藤 一郎", "民事局")]
    assert [m.value for m in moj.search("やまもと", "civil-affairs", ("fax",))] == ["029-876-5432"]
    # The office's own address book only: 刑事局's contact is not 民事局's.
    assert moj.search("けんさつ", "civil-affairs", ("fax",)) == []

    assert moj.resolve_offices(["刑事局", "ミンジキョク", "security@npa", "警備局"], "civil-affairs") == [
        "criminal-affairs@moj", "civil-affairs@moj", "security@npa", "security@npa"]
    assert moj.resolve_people(["佐藤 一郎", "すずき", "tanaka"]) == ["sato", "suzuki", "tanaka"]
    assert moj.resolve_fax("山本司法書士事務所", "civil-affairs") == "029-876-5432"
    assert moj.resolve_fax("06-1234-5678", "civil-affairs") == "06-1234-5678"
    with pytest.raises(UnknownEntryError, match="no office matches '存在しない局'") as unknown:
        moj.resolve_offices(["存在しない局"], "civil-affairs")
    assert unknown.value.candidates == ()
    # 局 is in every office's name: several match, and the clerk is asked to choose.
    with pytest.raises(UnknownEntryError, match="matches several") as several:
        moj.resolve_offices(["局"], "civil-affairs")
    assert "criminal-affairs@moj" in several.value.candidates
    with pytest.raises(ValidationError, match="unknown picker kind"):
        moj.search("x", "civil-affairs", ("planet",))


def test_recent_recipients_come_first_and_the_endpoint_answers_for_the_signed_in_office(pair: Pair) -> None:
    node = pair.moj
    assert node.delivery is not None
    node.delivery.send("tanaka", "civil-affairs", ["secretariat@moj"], [], "照会",
                       [NewDocument("照会.pdf", sample_pdf(1))], 0)
    moj = picker_of(node)
    first = moj.search("", "civil-affairs", ("office",))
    assert first[0].value == "secretariat@moj" and first[0].recent >= 1

    assert node.tokens is not None
    token = node.tokens.create("tanaka", "civil-affairs", "picker", actor="test")
    client = TestClient(create_app(node))
    answer = client.get("/api/v1/directory/search", params={"q": "けいび", "kind": "office"},
                        headers={"Authorization": f"Bearer {token.secret}"})
    assert answer.status_code == 200
    assert [(m["value"], m["label"], m["detail"]) for m in answer.json()["matches"]] == [
        ("security@npa", "警備局", "警察庁")]
    refused = client.get("/api/v1/directory/search", params={"q": "x", "kind": "planet"},
                         headers={"Authorization": f"Bearer {token.secret}"})
    assert refused.status_code == 422
    assert client.get("/api/v1/directory/search", params={"q": "けいび"}).status_code == 401


def test_fax_contacts_are_checked(pair: Pair) -> None:
    directory = pair.moj.directory
    with pytest.raises(ValidationError):
        directory.add_fax_contact("civil-affairs", "", "03-0000-0000")
    with pytest.raises(ValidationError):
        directory.add_fax_contact("civil-affairs", "誤記", "not a number")
