"""The procedure catalogue (手続一覧): demo sample, CSV in UTF-8 and CP932, versions, audit, bad files."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import delete, select

from inkless.app import Node, init_node
from inkless.config import load_settings
from inkless.db import tables as t
from inkless.db.tables_metrics import procedure_versions, procedures
from inkless.directory.demo import DEMO_NODE_ID, DEMO_ORGANISATION, create_demo
from inkless.errors import NotFoundError, ValidationError
from inkless.metrics.catalogue import ProcedureCatalogue
from inkless.metrics.catalogue_csv import CatalogueFileError
from inkless.metrics.demo import DEMO_PROCEDURES, create_demo_procedures
from inkless.metrics.model import ProcedureFields, SealRequirement
from tests.conftest import BACKENDS
from tests.helpers.db import fresh_database
from tests.helpers.nodes import refused_url


@pytest.fixture(scope="module", params=BACKENDS)
def shared_node(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """One demo node per backend for the module; ``catalogue`` puts the demo catalogue back before each test."""
    folder = tmp_path_factory.mktemp("catalogue")
    with fresh_database(str(request.param), folder) as url:
        settings = load_settings(folder / "node", env={}, overrides={
            "node_id": DEMO_NODE_ID, "organisation": DEMO_ORGANISATION, "database_url": url,
            "base_url": refused_url()})
        node = init_node(settings)
        try:
            create_demo(node.directory)
            yield node
        finally:
            node.close()


@pytest.fixture
def node(shared_node: Node) -> Node:
    return shared_node


@pytest.fixture
def catalogue(shared_node: Node) -> ProcedureCatalogue:
    assert shared_node.procedures is not None
    with shared_node.db.begin() as conn:
        conn.execute(delete(procedure_versions))
        conn.execute(delete(procedures))
    create_demo_procedures(shared_node.procedures)
    return shared_node.procedures


def _audit(node: Node, action_prefix: str) -> list[tuple[str, str | None, str]]:
    with node.db.read() as conn:
        rows = conn.execute(select(t.audit_entries).order_by(t.audit_entries.c.idx)).all()
    return [(r.action, r.object_id, r.actor) for r in rows if r.action.startswith(action_prefix)]


def test_demo_sample_spans_offices_and_lists_per_office(catalogue: ProcedureCatalogue) -> None:
    everything = catalogue.procedures()
    assert len(everything) == len(DEMO_PROCEDURES) == 37
    offices = {p.fields.office_code for p in everything}
    assert offices == {"civil-affairs", "criminal-affairs", "secretariat", None}
    civil = catalogue.procedures("civil-affairs")
    # The office's own procedures and the node-wide ones (情報公開, 個人情報, 審査請求), nothing else.
    assert {p.fields.office_code for p in civil} == {"civil-affairs", None}
    assert len(civil) == 15 + 3
    koseki = catalogue.get("MOJ-MIN-005")
    assert koseki.name == "戸籍謄本等の交付請求" and koseki.fields.seal_required is SealRequirement.NONE
    assert catalogue.get("MOJ-KEI-001").fields.seal_required.label == "公印"


def test_csv_round_trip_in_utf8_and_cp932(catalogue: ProcedureCatalogue) -> None:
    utf8 = catalogue.export_csv("utf-8")
    sjis = catalogue.export_csv("cp932")
    assert utf8.decode("utf-8") == sjis.decode("cp932")
    lines = utf8.decode("utf-8").split("\r\n")
    assert lines[0] == "手続コード,手続名,府省,担当部署,根拠法令,押印,FAX・紙"
    assert "MOJ-MIN-002,所有権移転登記の申請,法務省,civil-affairs,不動産登記法第18条,実印,可" in lines
    assert "MOJ-KAN-001,行政文書開示請求,法務省,,行政機関の保有する情報の公開に関する法律第4条,なし,可" in lines
    # Importing its own export changes nothing, in either encoding (CP932 is recognised without a hint).
    for data in (utf8, sjis):
        summary = catalogue.import_csv(data, actor="yamada")
        assert (summary.created, summary.changed, len(summary.unchanged)) == ((), (), 37)
    assert catalogue.get("MOJ-MIN-002").version == 1


def test_import_creates_changes_and_versions_with_audit(node: Node, catalogue: ProcedureCatalogue) -> None:
    # A ministry's Shift_JIS file with English headers in another order, office given by its name.
    text = ("name,code,office,seal,fax_or_paper_allowed,ministry,legal_basis\r\n"
            "所有権移転登記の申請,MOJ-MIN-002,民事局,実印,不可,法務省,不動産登記法第18条\r\n"
            "商号の仮登記,MOJ-MIN-099,民事局,認印,可,法務省,商業登記法第35条\r\n")
    summary = catalogue.import_csv(text.encode("cp932"), actor="yamada", encoding="shift_jis")
    assert summary.created == ("MOJ-MIN-099",) and summary.changed == ("MOJ-MIN-002",)
    changed = catalogue.get("MOJ-MIN-002")
    assert changed.version == 2 and changed.fields.fax_or_paper_allowed is False and changed.updated_by == "yamada"
    assert catalogue.get("MOJ-MIN-099").fields.office_code == "civil-affairs"
    history = catalogue.history("MOJ-MIN-002")
    assert [(v.version, v.change, v.changed_fields, v.changed_by) for v in history] == [
        (1, "created", (), "demo"), (2, "changed", ("fax_or_paper_allowed",), "yamada")]
    assert history[0].fields.fax_or_paper_allowed is True  # the earlier version is kept as it was
    audit = _audit(node, "procedure.")
    assert ("procedure.changed", "MOJ-MIN-002", "yamada") in audit
    assert ("procedure.created", "MOJ-MIN-099", "yamada") in audit
    assert audit[-1] == ("procedure.imported", "procedures", "yamada")
    # Each version names the audit entry that records it.
    with node.db.read() as conn:
        entry = conn.execute(select(t.audit_entries).where(t.audit_entries.c.idx == history[1].audit_index)).one()
    assert (entry.action, entry.object_id) == ("procedure.changed", "MOJ-MIN-002")


def test_retire_and_restore(catalogue: ProcedureCatalogue) -> None:
    retired = catalogue.retire("MOJ-KAN-011", actor="yamada")
    assert retired.retired and retired.version == 2
    assert "MOJ-KAN-011" not in {p.code for p in catalogue.procedures()}
    assert "MOJ-KAN-011" in {p.code for p in catalogue.procedures(include_retired=True)}
    restored = catalogue.save(retired.fields, actor="yamada")
    assert not restored.retired and restored.version == 3
    assert [v.change for v in catalogue.history("MOJ-KAN-011")] == ["created", "retired", "restored"]


def test_bad_file_names_every_bad_line_and_changes_nothing(node: Node, catalogue: ProcedureCatalogue) -> None:
    before = _audit(node, "procedure.")
    text = ("手続コード,手続名,府省,担当部署,根拠法令,押印,FAX・紙\n"
            "MOJ-MIN-001,登記事項証明書の交付請求（改）,法務省,civil-affairs,不動産登記法第119条,なし,不可\n"
            "MOJ-X-1,何か,法務省,civil-affairs,,拇印,可\n"
            "MOJ-X-2,何か,法務省,no-such-office,,なし,可\n"
            "MOJ X 3,何か,法務省,,,なし,可\n"
            "MOJ-X-4,,法務省,,,なし,たぶん\n"
            "MOJ-MIN-001,重複,法務省,,,なし,可\n")
    with pytest.raises(CatalogueFileError) as caught:
        catalogue.import_csv(text.encode("utf-8"), actor="yamada")
    lines = [line for line, _ in caught.value.problems]
    assert lines == [3, 4, 5, 6, 7]
    message = str(caught.value)
    assert "line 3: seal: '拇印' is not one of なし, 認印, 実印, 公印" in message
    assert "line 4: office: this node has no office 'no-such-office'" in message
    assert "line 5: code: 'MOJ X 3' is not a procedure code" in message
    assert "line 7: code MOJ-MIN-001 already on line 2" in message
    # Line 2 was fine, but nothing of a bad file is imported.
    assert catalogue.get("MOJ-MIN-001").name == "登記事項証明書の交付請求"
    assert _audit(node, "procedure.") == before


def test_bad_header_encoding_and_fields(catalogue: ProcedureCatalogue) -> None:
    with pytest.raises(ValidationError, match="line 1: the header has no column 手続名"):
        catalogue.import_csv("手続コード,押印\nA,なし\n".encode(), actor="x")
    with pytest.raises(ValidationError, match="line 1: unknown column"):
        catalogue.import_csv("手続コード,手続名,色\nA,B,赤\n".encode(), actor="x")
    with pytest.raises(ValidationError, match="not valid utf-8"):
        catalogue.import_csv("手続コード,手続名\nA,戸籍\n".encode("cp932"), actor="x", encoding="utf-8")
    with pytest.raises(ValidationError, match="not utf-8 or cp932"):
        catalogue.export_csv("latin-1")
    with pytest.raises(ValidationError, match="name: contains U\\+202E"):
        catalogue.save(ProcedureFields.checked("A-1", "申請\u202etxt", "", None, "", "なし", True), actor="x")
    with pytest.raises(NotFoundError):
        catalogue.get("NOPE")
    # cp932 cannot hold every character: the export says so instead of writing '?'.
    catalogue.save(ProcedureFields.checked("A-2", "𠮷野家の届出", "", None, "", "なし", True), actor="x")
    with pytest.raises(ValidationError, match="cannot encode: export as utf-8"):
        catalogue.export_csv("cp932")
