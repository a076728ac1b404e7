"""The audit log on real SQLite and PostgreSQL: appends, proofs, signed heads, tamper detection, the API."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI, HTTPException
from sqlalchemy import delete, func, select, update

from inkless.app import Node
from inkless.audit import merkle
from inkless.audit.log import AuditEntry, tree_head_bytes, verify_tree_head_signature
from inkless.audit.model import AuditEvent
from inkless.audit.tasks import TREE_HEAD_TASK, sign_tree_head_if_new
from inkless.db import tables as t
from inkless.errors import AuditIntegrityError, NotFoundError, ValidationError
from inkless.web import api_audit
from inkless.web.deps import get_node, require_admin
from inkless.workers import TASKS
from tests.conftest import reopen


def record(node: Node, count: int, action: str = "test.event") -> list[int]:
    indices = []
    for i in range(count):
        with node.db.begin() as conn:
            indices.append(node.audit.record(
                conn,
                AuditEvent(actor="tester", action=action, object_type="thing", object_id=f"t{i}",
                           digests={"sha256": f"{i:064x}"}, details={"n": i, "名前": "山田"}),
            ))
    return indices


def stored_entries(node: Node) -> list[bytes]:
    with node.db.begin() as conn:
        rows = conn.execute(select(t.audit_entries.c.entry).order_by(t.audit_entries.c.idx))
        return [bytes(r.entry) for r in rows]


def sign(node: Node) -> Any:
    with node.db.begin() as conn:
        return node.audit.sign_tree_head(conn, node.pki)


def verify(node: Node) -> Any:
    with node.db.begin() as conn:
        return node.audit.verify(conn)


# --- appending and reading ------------------------------------------------------------------


def test_appends_are_sequential_and_roots_match_an_independent_recomputation(node: Node) -> None:
    assert record(node, 20) == list(range(1, 21))  # entry 0 is node.initialised
    entries = stored_entries(node)
    with node.db.begin() as conn:
        assert node.audit.tree_size(conn) == 21
        for size in range(1, 22):
            assert node.audit.root_hash(conn, size) == merkle.mth(entries[:size])
        # every stored subtree, and no other, is there
        count = conn.execute(select(func.count()).select_from(t.audit_nodes)).scalar_one()
    assert count == sum(21 >> level for level in range(6))
    report = verify(node)
    assert (report.entries, report.tree_heads, report.root_hash) == (21, 0, merkle.mth(entries))


def test_entries_read_back_from_the_hashed_bytes_with_filters(node: Node) -> None:
    record(node, 5)
    record(node, 3, action="other.event")
    with node.db.begin() as conn:
        first = node.audit.entries(conn, 0, 2)
        others = node.audit.entries(conn, 0, 100, action="other.event")
        by_object = node.audit.entries(conn, 0, 100, object_type="thing", object_id="t2")
        assert node.audit.count(conn, action="test.event") == 5
        single = node.audit.entry(conn, 3)
    assert [e.action for e in first] == ["node.initialised", "test.event"]
    assert [e.index for e in others] == [6, 7, 8]
    assert [e.index for e in by_object] == [3, 8]
    assert single.details == {"n": 2, "名前": "山田"}
    assert single.leaf_hash == merkle.leaf_hash(single.entry)
    assert AuditEntry.from_bytes(single.entry) == single


def test_bad_arguments_are_refused_and_change_nothing(node: Node) -> None:
    record(node, 4)
    before = stored_entries(node)
    with node.db.begin() as conn:
        with pytest.raises(ValidationError, match="entry index 5 is not in a tree of 5 entries"):
            node.audit.inclusion_proof(conn, 5)
        with pytest.raises(ValidationError, match="tree_size 9 is larger than the log"):
            node.audit.inclusion_proof(conn, 0, 9)
        with pytest.raises(ValidationError, match="first size 0"):
            node.audit.consistency_proof(conn, 0, 3)
        with pytest.raises(ValidationError, match="first size 4 must be between 1 and the second size 3"):
            node.audit.consistency_proof(conn, 4, 3)
        with pytest.raises(ValidationError, match="limit"):
            node.audit.entries(conn, 0, 0)
        with pytest.raises(NotFoundError, match="no audit entry 99"):
            node.audit.entry(conn, 99)
        with pytest.raises(NotFoundError, match="no signed tree head for size 3"):
            node.audit.tree_head(conn, 3)
    with pytest.raises(ValidationError, match="longer than 64"), node.db.begin() as conn:
        node.audit.record(conn, AuditEvent(actor="x", action="a" * 65))
    with pytest.raises(ValidationError, match="plain JSON"), node.db.begin() as conn:
        node.audit.record(conn, AuditEvent(actor="x", action="bad", details={"when": object()}))
    with node.db.begin() as conn:  # a caller that catches the refusal and commits leaves no gap
        with pytest.raises(ValidationError, match="timezone-aware"):
            node.audit.record(conn, AuditEvent(actor="x", action="naive"), at=datetime(2026, 4, 1))
        with pytest.raises(ValidationError, match="plain JSON"):
            node.audit.record(conn, AuditEvent(actor="x", action="bad", details={"n": float("nan")}))
    assert stored_entries(node) == before
    assert verify(node).entries == 5
    assert record(node, 1) == [5]


def test_a_rolled_back_transaction_leaves_no_entry_and_no_gap(node: Node) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom), node.db.begin() as conn:
        node.audit.record(conn, AuditEvent(actor="x", action="lost"))
        raise Boom
    assert record(node, 1) == [1]
    assert verify(node).entries == 2


def test_concurrent_appenders_get_distinct_consecutive_indices(node: Node) -> None:
    other = reopen(node)
    results: list[int] = []
    errors: list[BaseException] = []

    def work(n: Node) -> None:
        try:
            results.extend(record(n, 15))
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in (node, other)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    other.close()
    assert not errors
    assert sorted(results) == list(range(1, 31))
    assert verify(node).entries == 31


# --- proofs ---------------------------------------------------------------------------------


def test_every_inclusion_and_consistency_proof_verifies_independently(node: Node) -> None:
    record(node, 12)
    entries = stored_entries(node)
    with node.db.begin() as conn:
        for size in range(1, 14):
            root = merkle.mth(entries[:size])
            for index in range(size):
                proof = node.audit.inclusion_proof(conn, index, size)
                assert proof.root_hash == root
                leaf = merkle.leaf_hash(entries[index])
                assert merkle.verify_inclusion(index, size, leaf, proof.path, root)
            for old in range(1, size + 1):
                c = node.audit.consistency_proof(conn, old, size)
                assert (c.first_root, c.second_root) == (merkle.mth(entries[:old]), root)
                assert merkle.verify_consistency(old, size, c.first_root, root, c.path)
        default = node.audit.inclusion_proof(conn, 3)
    assert default.tree_size == 13 and default.verify()


# --- signed tree heads ----------------------------------------------------------------------


def test_tree_heads_are_signed_stored_and_not_repeated(node: Node, tmp_path: Path) -> None:
    record(node, 6)
    head = sign(node)
    assert head.tree_size == 7
    assert head.node_id == node.node_id
    assert head.root_hash == merkle.mth(stored_entries(node))
    assert verify_tree_head_signature(head)
    assert sign(node) == head  # nothing new: the latest head is returned, no new row
    record(node, 2)
    newer = sign(node)
    with node.db.begin() as conn:
        assert node.audit.tree_head_count(conn) == 2
        assert node.audit.latest_tree_head(conn) == newer
        assert node.audit.tree_head(conn, 7) == head
        proof = node.audit.consistency_proof(conn, head.tree_size, newer.tree_size)
    assert merkle.verify_consistency(7, 9, head.root_hash, newer.root_hash, proof.path)
    report = verify(node)
    assert (report.tree_heads, report.latest_head_size) == (2, 9)

    # The documented encoding, checked by the openssl binary with the certificate's public key.
    cert = x509.load_pem_x509_certificate(newer.certificate_pem.encode())
    (tmp_path / "pub.pem").write_bytes(
        cert.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    message = tree_head_bytes(newer.node_id, newer.tree_size, newer.root_hash, newer.timestamp)
    assert message == (
        b"inkless-audit-tree-head-v1\x00" + bytes([len(b"moj")]) + b"moj" + (9).to_bytes(8, "big")
        + newer.to_json()["timestamp_ms"].to_bytes(8, "big") + newer.root_hash
    )
    (tmp_path / "head.bin").write_bytes(message)
    (tmp_path / "head.sig").write_bytes(base64.b64decode(newer.to_json()["signature"]))
    result = subprocess.run(
        ["openssl", "dgst", "-sha256", "-verify", str(tmp_path / "pub.pem"), "-signature",
         str(tmp_path / "head.sig"), str(tmp_path / "head.bin")],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0 and "Verified OK" in result.stdout, result.stderr


def test_the_periodic_task_signs_only_when_there_is_something_new(node: Node) -> None:
    assert TREE_HEAD_TASK in TASKS
    assert TREE_HEAD_TASK.interval(node) == node.settings.tree_head_interval_seconds
    first = sign_tree_head_if_new(node)
    assert first is not None and first.tree_size == 1
    assert sign_tree_head_if_new(node) is None
    record(node, 1)
    second = sign_tree_head_if_new(node)
    assert second is not None and second.tree_size == 2


def test_verify_pages_through_entries_and_heads(node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    from inkless.audit import log as audit_log

    monkeypatch.setattr(audit_log, "_VERIFY_BATCH", 3)  # many pages from a small log
    for _ in range(5):
        record(node, 2)
        sign(node)
    report = verify(node)
    assert (report.entries, report.tree_heads, report.latest_head_size) == (11, 5, 11)
    tamper(node, update(t.audit_tree_heads).where(t.audit_tree_heads.c.tree_size == 9)
           .values(root_hash=b"\x33" * 32))
    with pytest.raises(AuditIntegrityError, match="tree head of size 9 does not match"):
        verify(node)


# --- tampering ------------------------------------------------------------------------------


def tamper(node: Node, statement: Any) -> None:
    with node.db.begin() as conn:
        conn.execute(statement)


def test_an_altered_entry_is_named(node: Node) -> None:
    record(node, 10)
    sign(node)
    original = stored_entries(node)[4]
    forged = original.replace(b'"tester"', b'"someone"')
    tamper(node, update(t.audit_entries).where(t.audit_entries.c.idx == 4).values(entry=forged))
    with pytest.raises(AuditIntegrityError, match="audit entry 4 was altered") as info:
        verify(node)
    assert info.value.entry_index == 4


def test_an_entry_rewritten_with_its_leaf_hash_is_still_named(node: Node) -> None:
    record(node, 10)
    forged = stored_entries(node)[6].replace(b'"n":5', b'"n":7')
    assert forged != stored_entries(node)[6]
    tamper(node, update(t.audit_entries).where(t.audit_entries.c.idx == 6)
           .values(entry=forged, leaf_hash=merkle.leaf_hash(forged)))
    with pytest.raises(AuditIntegrityError, match=r"entry 6 was altered: its leaf .* not match") as info:
        verify(node)
    assert info.value.entry_index == 6


def test_garbage_entry_bytes_are_named_not_a_crash(node: Node) -> None:
    record(node, 2)
    tamper(node, update(t.audit_entries).where(t.audit_entries.c.idx == 1).values(entry=b"\xff not json"))
    with pytest.raises(AuditIntegrityError, match="audit entry 1 is not valid entry JSON"), node.db.begin() as conn:
        node.audit.entries(conn)
    with pytest.raises(AuditIntegrityError, match="audit entry 1 was altered"):
        verify(node)


def test_an_altered_search_column_is_named(node: Node) -> None:
    record(node, 3)
    tamper(node, update(t.audit_entries).where(t.audit_entries.c.idx == 2).values(actor="someone"))
    with pytest.raises(AuditIntegrityError, match="audit entry 2: the stored actor column"):
        verify(node)


def test_an_altered_tree_head_root_is_named(node: Node) -> None:
    record(node, 4)
    sign(node)
    record(node, 3)
    sign(node)
    tamper(node, update(t.audit_tree_heads).where(t.audit_tree_heads.c.tree_size == 5)
           .values(root_hash=b"\x11" * 32))
    with pytest.raises(AuditIntegrityError, match="signed tree head of size 5 does not match the log"):
        verify(node)


def test_a_forged_tree_head_signature_is_named(node: Node) -> None:
    record(node, 2)
    head = sign(node)
    bad = bytearray(head.signature)
    bad[-1] ^= 1
    tamper(node, update(t.audit_tree_heads).values(signature=bytes(bad)))
    with pytest.raises(AuditIntegrityError, match="signature of the tree head of size 3 does not verify"):
        verify(node)


def test_deleting_the_last_entry_is_detected(node: Node) -> None:
    record(node, 7)
    tamper(node, delete(t.audit_entries).where(t.audit_entries.c.idx == 7))
    with pytest.raises(AuditIntegrityError, match="audit entry 7 is missing") as info:
        verify(node)
    assert info.value.entry_index == 7


def test_deleting_the_last_entry_and_covering_tracks_is_caught_by_the_signed_head(node: Node) -> None:
    record(node, 7)
    sign(node)
    # A careful intruder also shrinks the recorded size and removes the leaf's subtrees.
    tamper(node, delete(t.audit_entries).where(t.audit_entries.c.idx == 7))
    tamper(node, delete(t.audit_nodes).where(t.audit_nodes.c.level == 0, t.audit_nodes.c.idx == 7))
    tamper(node, delete(t.audit_nodes).where(t.audit_nodes.c.level == 1, t.audit_nodes.c.idx == 3))
    tamper(node, delete(t.audit_nodes).where(t.audit_nodes.c.level == 2, t.audit_nodes.c.idx == 1))
    tamper(node, delete(t.audit_nodes).where(t.audit_nodes.c.level == 3, t.audit_nodes.c.idx == 0))
    tamper(node, update(t.audit_state).values(tree_size=7))
    with pytest.raises(AuditIntegrityError, match=r"head of size 8 covers entries .* entry 7 is missing"):
        verify(node)


def test_an_entry_slipped_in_past_the_end_is_detected(node: Node) -> None:
    record(node, 3)
    forged = stored_entries(node)[3].replace(b'"index":3', b'"index":4')
    with node.db.begin() as conn:
        conn.execute(t.audit_entries.insert().values(
            idx=4, recorded_at=node.clock.now(), actor="tester", action="test.event", object_type="thing",
            object_id="t2", entry=forged, leaf_hash=merkle.leaf_hash(forged),
        ))
    with pytest.raises(AuditIntegrityError, match=r"audit entry 4 is beyond the recorded size of the log \(4"):
        verify(node)


def test_a_corrupted_stored_subtree_is_detected_and_never_signed(node: Node) -> None:
    record(node, 8)
    sign(node)
    tamper(node, update(t.audit_nodes).where(t.audit_nodes.c.level == 3, t.audit_nodes.c.idx == 0)
           .values(hash=b"\x22" * 32))
    with pytest.raises(AuditIntegrityError, match=r"\(level 3, index 0\) over audit entries 0 to 7"):
        verify(node)
    record(node, 1)
    with pytest.raises(AuditIntegrityError, match="no longer extends the signed tree head of size 9"):
        sign(node)


# --- the HTTP API ---------------------------------------------------------------------------


class ApiClient:
    """Requests through the ASGI app in process (httpx's transport, no server, no socket)."""

    def __init__(self, app: FastAPI) -> None:
        self._app = app

    def get(self, url: str, params: dict[str, Any] | None = None) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self._app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                return await client.get(url, params=params)

        return asyncio.run(go())


def api_client(node: Node, admin: bool = True) -> ApiClient:
    app = FastAPI()
    app.include_router(api_audit.router, prefix="/api/v1")
    app.state.node = node
    app.dependency_overrides[get_node] = lambda: node

    def deny() -> None:
        raise HTTPException(status_code=403, detail="administrators only")

    app.dependency_overrides[require_admin] = (lambda: None) if admin else deny
    return ApiClient(app)


def test_api_tree_head_and_proofs_verify_independently(node: Node) -> None:
    client = api_client(node)
    assert client.get("/api/v1/audit/tree-head").status_code == 404
    record(node, 9)
    sign(node)
    head = client.get("/api/v1/audit/tree-head").json()
    assert head["tree_size"] == 10
    assert head["certificate"].startswith("-----BEGIN CERTIFICATE-----")
    root = bytes.fromhex(head["root_hash"])
    assert base64.b64decode(head["root_hash_base64"]) == root
    entries = stored_entries(node)
    for index in range(10):
        proof = client.get("/api/v1/audit/proof/inclusion", params={"index": index}).json()
        path = [bytes.fromhex(h) for h in proof["audit_path"]]
        assert proof["tree_size"] == 10
        assert merkle.verify_inclusion(index, 10, merkle.leaf_hash(entries[index]), path, root)
    record(node, 3)  # entries after the signed head: proofs still default to the signed size
    assert client.get("/api/v1/audit/proof/inclusion", params={"index": 12}).status_code == 400
    explicit = client.get("/api/v1/audit/proof/inclusion", params={"index": 12, "tree_size": 13})
    assert explicit.status_code == 200
    c = client.get("/api/v1/audit/proof/consistency", params={"first": 10, "second": 13}).json()
    assert bytes.fromhex(c["first_root_hash"]) == root
    assert merkle.verify_consistency(10, 13, root, merkle.mth(stored_entries(node)),
                                     [bytes.fromhex(h) for h in c["consistency_path"]])


def test_api_refuses_bad_parameters_with_a_clear_message(node: Node) -> None:
    client = api_client(node)
    record(node, 2)
    r = client.get("/api/v1/audit/proof/inclusion", params={"index": 3, "tree_size": 3})
    assert r.status_code == 400 and "not in a tree of 3 entries" in r.json()["detail"]
    r = client.get("/api/v1/audit/proof/inclusion", params={"index": 0, "tree_size": 50})
    assert r.status_code == 400 and "larger than the log (3 entries)" in r.json()["detail"]
    r = client.get("/api/v1/audit/proof/consistency", params={"first": 3, "second": 2})
    assert r.status_code == 400 and "between 1 and the second size 2" in r.json()["detail"]
    assert client.get("/api/v1/audit/proof/inclusion", params={"index": -1}).status_code == 422
    assert client.get("/api/v1/audit/proof/consistency", params={"first": 1}).status_code == 422
    assert client.get("/api/v1/audit/entries", params={"limit": 5000}).status_code == 422


def test_api_entries_are_for_administrators_only(node: Node) -> None:
    record(node, 5)
    assert api_client(node, admin=False).get("/api/v1/audit/entries").status_code == 403
    body = api_client(node).get("/api/v1/audit/entries", params={"start": 2, "limit": 2}).json()
    assert body["total"] == 6
    assert [e["index"] for e in body["entries"]] == [2, 3]
    assert body["entries"][0]["details"] == {"n": 1, "名前": "山田"}
    assert body["entries"][0]["leaf_hash"] == merkle.leaf_hash(stored_entries(node)[2]).hex()
    filtered = api_client(node).get("/api/v1/audit/entries", params={"action": "node.initialised"}).json()
    assert filtered["total"] == 1


def test_api_is_documented_in_openapi(node: Node) -> None:
    schema = api_client(node).get("/openapi.json").json()
    paths = schema["paths"]
    for path in ("/api/v1/audit/tree-head", "/api/v1/audit/proof/inclusion",
                 "/api/v1/audit/proof/consistency", "/api/v1/audit/entries"):
        assert path in paths
    assert {"TreeHeadOut", "InclusionProofOut", "ConsistencyProofOut", "AuditEntriesOut"} <= set(
        schema["components"]["schemas"]
    )
