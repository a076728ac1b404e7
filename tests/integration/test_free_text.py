"""Every free-text field refuses bidi controls and control characters, and stores NFC (real databases)."""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from inkless.app import Node
from inkless.db import tables as t
from inkless.db.tables_delivery import messages
from inkless.db.tables_seals import routes
from inkless.delivery import envelope as env
from inkless.delivery.service import NewDocument
from inkless.directory.demo import DemoSample
from inkless.errors import EnvelopeError
from inkless.seals.routes import StepPlan
from inkless.text import UnsafeTextError
from tests.helpers.route_docs import sample_pdf

RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: "photo\u202egpj.exe" is displayed as "photoexe.jpg"
DISGUISED = f"photo{RLO}gpj.exe"


def _counts(node: Node) -> tuple[int, ...]:
    with node.db.read() as conn:
        return tuple(conn.execute(select(func.count()).select_from(table)).scalar_one()
                     for table in (t.offices, t.users, t.api_tokens, messages, routes, t.audit_entries))


def _refusals(node: Node) -> list[dict[str, object]]:
    with node.db.read() as conn:
        return [e.details for e in node.audit.entries(conn, 0, 1000, action="message.refused")]


CASES: dict[str, tuple[Callable[[Node], object], str]] = {
    "office name": (lambda n: n.directory.add_office("bidi", f"民事{RLO}局"), "office name"),
    "user name": (lambda n: n.directory.add_user("bidi", "secretariat", "clerk", 1, "山田\u200f太郎"), "name"),
    "token name": (lambda n: n.tokens.create("tanaka", "civil-affairs", "scanner\u2066"), "token name"),  # type: ignore[union-attr]
    "document file name": (lambda n: n.delivery.send(  # type: ignore[union-attr]
        "tanaka", "civil-affairs", ["criminal-affairs@moj"], [], "照会", [NewDocument(DISGUISED, b"%PDF-1.4")]),
        "document name"),
    "message subject": (lambda n: n.delivery.send(  # type: ignore[union-attr]
        "tanaka", "civil-affairs", ["criminal-affairs@moj"], [], f"至急{RLO}照会", [NewDocument("a.pdf", b"%PDF-1.4")]),
        "subject"),
    "route document name": (lambda n: n.routes.start(  # type: ignore[union-attr]
        sample_pdf(), "tanaka", [StepPlan("係長", ("sato",))], document_name=DISGUISED), "document name"),
    "route step title": (lambda n: n.routes.start(  # type: ignore[union-attr]
        sample_pdf(), "tanaka", [StepPlan("係\u2067長", ("sato",))], document_name="稟議書"), "step 1 title"),
    "route comment": (lambda n: n.routes.start(  # type: ignore[union-attr]
        sample_pdf(), "tanaka", [StepPlan("係長", ("sato",))], document_name="稟議書", comment="確認\x1b[2J願います"),
        "comment"),
    "fax subject": (lambda n: n.fax.send(  # type: ignore[union-attr]
        "tanaka", "civil-affairs", "0312345678", [sample_pdf()], cover_page=True, subject=f"送付{RLO}状"),
        "subject"),
}


@pytest.mark.parametrize("field", sorted(CASES))
def test_a_disguising_character_is_refused_and_changes_nothing(node: Node, demo: DemoSample, field: str) -> None:
    action, label = CASES[field]
    before = _counts(node)
    with pytest.raises(UnsafeTextError) as refused:
        action(node)
    assert str(refused.value).startswith(f"{label}: contains U+")
    assert _counts(node) == before


def test_names_are_stored_in_nfc(node: Node, demo: DemoSample) -> None:
    decomposed = unicodedata.normalize("NFD", "バス停管理課")
    assert decomposed != "バス停管理課"
    office = node.directory.add_office("bus-stops", decomposed)
    assert office.name == "バス停管理課"
    assert [o.name for o in node.directory.offices() if o.code == "bus-stops"] == ["バス停管理課"]


def test_an_envelope_with_a_disguised_file_name_is_refused_on_receipt_and_audited(
    node: Node, demo: DemoSample
) -> None:
    # A sender that does not check its own input (another implementation, or a hostile node).
    delivery = node.delivery
    assert delivery is not None
    meta = env.MessageMetadata(
        message_id=str(uuid.uuid4()), sender="secretariat@moj", recipients=("civil-affairs@moj",),
        subject="請求書送付", classification=0, priority="normal", created_at=node.clock.now())
    digest, _size = delivery._seal(meta, [env.Document(DISGUISED, "application/pdf", b"%PDF-1.4")], "secretariat",
                                   [], ["civil-affairs"])  # the envelope, streamed into the blob store
    envelope = node.blobs.get(digest)
    with pytest.raises(EnvelopeError, match="the envelope's document name: contains U\\+202E"):
        delivery.receive(envelope, "secretariat@moj", "civil-affairs@moj")
    [refusal] = _refusals(node)
    assert "U+202E" in str(refusal["reason"])
    assert delivery.inbox("civil-affairs", None) == []
