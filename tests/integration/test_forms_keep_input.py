"""Forms keep what was entered: a refused compose, route or fax form shows the uploaded files as already
attached and the typed fields as typed; an empty approver is pointed at; a fax is confirmed before it is
queued, with the number, the recipient from the address book, the page count and the classification."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select

from inkless.app import Node, init_node
from inkless.config import load_settings
from inkless.db.tables_drafts import form_drafts
from inkless.directory.demo import DEMO_NODE_ID, DEMO_ORGANISATION, create_demo
from inkless.web.app import create_app
from inkless.web.drafts import DraftStore, expire_drafts
from inkless.web.i18n import LANG_COOKIE
from tests.helpers.nodes import refused_url
from tests.helpers.one_language import visible_text
from tests.helpers.route_docs import sample_pdf
from tests.helpers.web import browser_login

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from fastapi.testclient import TestClient

DRAFT = re.compile(r'name="draft" value="([^"]+)"')


@dataclass
class Clerk:
    client: TestClient
    csrf: str
    user_id: int


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Node, dict[str, Clerk]]]:
    folder: Path = tmp_path_factory.mktemp("forms")
    settings = load_settings(folder, env={}, overrides={
        "node_id": DEMO_NODE_ID, "organisation": DEMO_ORGANISATION, "base_url": refused_url(), "workers": False,
    })
    node = init_node(settings)
    create_demo(node.directory)
    app = create_app(node)
    clerks: dict[str, Clerk] = {}
    try:
        for login in ("tanaka", "takahashi"):
            session = browser_login(node, login)
            client = TestClient(app)
            client.cookies.set("inkless_session", session.cookie)
            clerks[login] = Clerk(client, session.csrf, node.directory.user(login).id)
        yield node, clerks
    finally:
        for clerk in clerks.values():
            clerk.client.close()
        node.close()


@pytest.fixture
def clerks(shared: tuple[Node, dict[str, Clerk]]) -> dict[str, Clerk]:
    for clerk in shared[1].values():
        clerk.client.cookies.set(LANG_COOKIE, "ja")
    return shared[1]


@pytest.fixture
def node(shared: tuple[Node, dict[str, Clerk]]) -> Node:
    return shared[0]


def _shown(html: str) -> str:
    return " ".join(visible_text(html))


def test_a_refused_message_keeps_its_files_and_sends_them_once_corrected(node: Node, clerks: dict[str, Clerk]) -> None:
    tanaka = clerks["tanaka"]
    fields = {"csrf_token": tanaka.csrf, "subject": "統計資料の送付", "classification": "0", "priority": "normal"}
    files = [("files", ("統計資料.pdf", sample_pdf(2), "application/pdf")),
             ("files", ("別紙.pdf", sample_pdf(1), "application/pdf"))]
    refused = tanaka.client.post("/compose", data={**fields, "to": "criminal-afairs@moj"}, files=files)
    assert refused.status_code == 404
    shown = _shown(refused.text)
    assert "宛先または配信リストが見つかりません。" in shown
    assert "添付済み:" in shown and "統計資料.pdf" in shown and "別紙.pdf" in shown
    assert 'value="統計資料の送付"' in refused.text and 'value="criminal-afairs@moj"' in refused.text
    # The address is the field in error: marked, described by the message, focused.
    to = re.search(r'<input id="to"[^>]*>', refused.text)
    described = re.search(r'aria-describedby="([^"]*)"', to.group(0)) if to else None
    assert to and 'aria-invalid="true"' in to.group(0) and described and "compose-error" in described.group(1).split()
    assert "autofocus" in to.group(0)
    draft = DRAFT.search(refused.text)
    assert draft
    # Another clerk cannot use the token: the draft is bound to the user who uploaded the files.
    takahashi = clerks["takahashi"]
    stolen = takahashi.client.post("/compose", data={**fields, "csrf_token": takahashi.csrf,
                                                     "to": "civil-affairs@moj", "draft": draft.group(1)})
    assert stolen.status_code == 422 and "文書を1つ以上添付してください" in _shown(stolen.text)

    sent = tanaka.client.post("/compose", data={**fields, "to": "criminal-affairs@moj", "draft": draft.group(1)},
                              follow_redirects=False)
    assert sent.status_code == 303, sent.text
    message_id = sent.headers["location"].split("/")[2].split("?")[0]
    page = tanaka.client.get(f"/messages/{message_id}")
    assert "統計資料.pdf" in page.text and "別紙.pdf" in page.text
    # The draft is gone once the message went out.
    assert DraftStore(node.db, node.blobs, node.clock).files(tanaka.user_id, draft.group(1)) == []


def test_an_expired_draft_holds_nothing(node: Node, clerks: dict[str, Clerk]) -> None:
    expired = DraftStore(node.db, node.blobs, node.clock, minutes=-1)
    token = expired.keep(clerks["tanaka"].user_id, [("a.pdf", "application/pdf", sample_pdf(1))])
    assert expired.files(clerks["tanaka"].user_id, token) == []
    assert DraftStore(node.db, node.blobs, node.clock).files(clerks["tanaka"].user_id, token) == []
    # The workers' task removes expired drafts, so that their files are collected with the blobs.
    assert expire_drafts(node) >= 1
    with node.db.begin() as conn:
        assert conn.execute(select(func.count()).select_from(form_drafts)
                            .where(form_drafts.c.expires_at < node.clock.now())).scalar_one() == 0


def test_an_empty_approver_is_pointed_at_and_the_pdf_stays_attached(clerks: dict[str, Clerk]) -> None:
    tanaka = clerks["tanaka"]
    data = {"csrf_token": tanaka.csrf, "name": "研修計画", "title": ["担当", "係長"], "approvers": ["tanaka", ""],
            "comment": "ご確認ください"}
    refused = tanaka.client.post("/routes", data=data, files={"document": ("plan.pdf", sample_pdf(1),
                                                                          "application/pdf")})
    assert refused.status_code == 422
    field = re.search(r'<input name="approvers"[^>]*aria-invalid="true"[^>]*>', refused.text)
    assert field and 'id="approvers-2"' in field.group(0) and "autofocus" in field.group(0)
    assert 'aria-describedby="approvers-2-error"' in field.group(0)
    message = re.search(r'<span class="field-error" id="approvers-2-error">([^<]+)</span>', refused.text)
    assert message and message.group(1) == "2段目（係長）の承認者を入力するか、役職名を消してください。"
    assert "plan.pdf" in _shown(refused.text) and "ご確認ください" in refused.text
    draft = DRAFT.search(refused.text)
    assert draft
    started = tanaka.client.post("/routes", data={**data, "approvers": ["tanaka", "sato"], "draft": draft.group(1)},
                                 follow_redirects=False)
    assert started.status_code == 303, started.text
    route = tanaka.client.get(started.headers["location"])
    assert "研修計画" in route.text, route.text[:600]
    assert re.search(r"<td>2</td><td>係長</td><td>sato</td>", route.text)


def test_a_fax_is_confirmed_before_it_is_queued(node: Node, clerks: dict[str, Clerk]) -> None:
    assert node.fax is not None
    tanaka = clerks["tanaka"]
    before = len(node.fax.jobs("civil-affairs"))
    form = {"csrf_token": tanaka.csrf, "number": "03-3580-4112", "subject": "回答書", "classification": "1",
            "confirm": "1"}
    check = tanaka.client.post("/fax/send", data=form, files={"document": ("回答書.pdf", sample_pdf(3),
                                                                           "application/pdf")})
    assert check.status_code == 200
    facts = re.search(r'<dl class="facts" id="fax-confirm">(.*?)</dl>', check.text, re.S)
    assert facts
    shown = _shown(facts.group(1))
    assert "03-3580-4112" in shown and "刑事局" in shown and "3ページ" in shown and "1 内部" in shown
    assert len(node.fax.jobs("civil-affairs")) == before  # nothing queued yet
    draft = DRAFT.search(check.text)
    assert draft

    # "Change" goes back to the form with everything as entered and the PDF attached.
    edit = tanaka.client.post("/fax/send", data={**form, "draft": draft.group(1), "step": "edit"})
    assert edit.status_code == 200
    assert 'value="03-3580-4112"' in edit.text and 'value="回答書"' in edit.text and "回答書.pdf" in _shown(edit.text)
    assert re.search(r'name="confirm" value="1" checked', edit.text)
    again = DRAFT.search(edit.text)
    assert again and len(node.fax.jobs("civil-affairs")) == before

    # A number nobody in the address book has: the known numbers are listed to compare with.
    unknown = tanaka.client.post("/fax/send", data={**form, "number": "06-1234-0000", "draft": again.group(1)})
    shown = _shown(unknown.text)
    assert "アドレス帳にない番号です。番号を確認してください。" in shown and "刑事局: 03-3580-4112" in shown
    last = DRAFT.search(unknown.text)
    assert last

    sent = tanaka.client.post("/fax/send", data={**form, "draft": last.group(1), "step": "send"})
    assert sent.status_code == 200 and "を受け付けました" in _shown(sent.text)
    jobs = node.fax.jobs("civil-affairs")
    assert len(jobs) == before + 1
    [job] = [j for j in jobs if j.number == "03-3580-4112"]
    assert (job.pages, job.classification, job.created_by) == (3, 1, "tanaka")


def test_a_refused_fax_keeps_the_pdf_and_the_typed_number(clerks: dict[str, Clerk]) -> None:
    tanaka = clerks["tanaka"]
    refused = tanaka.client.post("/fax/send", data={"csrf_token": tanaka.csrf, "number": "03-abc",
                                                    "classification": "0"},
                                 files={"document": ("通知.pdf", sample_pdf(1), "application/pdf")})
    assert refused.status_code == 422
    shown = _shown(refused.text)
    assert "FAX番号「03-abc」は数字で入力してください" in shown and "通知.pdf" in shown
    assert 'value="03-abc"' in refused.text and DRAFT.search(refused.text)


def test_a_file_chosen_again_replaces_the_kept_one(clerks: dict[str, Clerk]) -> None:
    tanaka = clerks["tanaka"]
    fields = {"csrf_token": tanaka.csrf, "subject": "再送", "classification": "0", "priority": "normal",
              "to": "criminal-afairs@moj"}
    first = tanaka.client.post("/compose", data=fields,
                               files=[("files", ("資料.pdf", sample_pdf(1), "application/pdf"))])
    draft = DRAFT.search(first.text)
    assert draft
    # The browser forgets the chosen file; a clerk who picks it again must not end up with two.
    again = tanaka.client.post("/compose", data={**fields, "draft": draft.group(1)},
                               files=[("files", ("資料.pdf", sample_pdf(2), "application/pdf"))])
    kept = re.search(r'<div class="kept" id="kept-files">(.*?)</div>', again.text, re.S)
    assert kept and kept.group(1).count("資料.pdf") == 1
    sent = tanaka.client.post("/compose", data={**fields, "to": "criminal-affairs@moj",
                                                "draft": DRAFT.search(again.text).group(1)},  # type: ignore[union-attr]
                              files=[("files", ("資料.pdf", sample_pdf(2), "application/pdf"))],
                              follow_redirects=False)
    assert sent.status_code == 303, sent.text
