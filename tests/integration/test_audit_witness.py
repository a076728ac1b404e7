"""Peers witness each other's audit logs: a rewritten or truncated history is caught outside the node.

Two real nodes (moj, npa) served over HTTP on loopback, pinned both ways, on SQLite and PostgreSQL.
The operator's tampering is done the way an operator with database access would: straight in the
tables, keeping the log internally consistent so that the node's own ``audit verify`` alone passes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select, update

from inkless.app import Node, init_node
from inkless.audit.cosignature import Cosignature
from inkless.audit.model import AuditEvent
from inkless.audit.tasks import sign_tree_head_if_new, witness_peers
from inkless.audit.witness import COSIGNATURES_PATH, WitnessService, export_head
from inkless.config import load_settings
from inkless.db import tables as t
from inkless.db.tables_witness import audit_cosignatures, witness_refusals, witnessed_heads
from inkless.directory.peers import PeerService
from tests.conftest import BACKENDS
from tests.helpers.db import fresh_database
from tests.helpers.nodes import ThreadedServer, free_port

INKLESS = Path(sys.executable).with_name("inkless")


class Pair:
    def __init__(self, moj: Node, npa: Node, urls: dict[str, str]) -> None:
        self.moj, self.npa, self.urls = moj, npa, urls
        # The audit index each node had reached when the test began: tests see only their own entries.
        self.audit_from: dict[str, int] = {}

    @staticmethod
    def peers(node: Node) -> PeerService:
        assert isinstance(node.peers, PeerService)
        return node.peers

    @staticmethod
    def witness(node: Node) -> WitnessService:
        assert node.witness is not None
        return node.witness


def _fingerprint(node: Node) -> str:
    with node.db.begin() as conn:
        return node.pki.ca_certificate(conn).fingerprint


@pytest.fixture(scope="module", params=BACKENDS)
def served_pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    folder = tmp_path_factory.mktemp("witness")
    backend = str(request.param)
    ports = {"moj": free_port(), "npa": free_port()}
    with fresh_database(backend, folder / "moj") as moj_db, fresh_database(backend, folder / "npa") as npa_db:
        nodes = {}
        for node_id, url in (("moj", moj_db), ("npa", npa_db)):
            settings = load_settings(folder / node_id, env={}, overrides={
                "node_id": node_id, "database_url": url, "base_url": f"http://127.0.0.1:{ports[node_id]}",
                "audit_head_export_dir": "heads"})
            nodes[node_id] = init_node(settings)
        moj, npa = nodes["moj"], nodes["npa"]
        try:
            with ThreadedServer(_app(moj), ports["moj"]) as a, ThreadedServer(_app(npa), ports["npa"]) as b:
                pair = Pair(moj, npa, {"moj": a.url, "npa": b.url})
                Pair.peers(moj).add(pair.urls["npa"], _fingerprint(npa))
                Pair.peers(npa).add(pair.urls["moj"], _fingerprint(moj))
                yield pair
        finally:
            moj.close()
            npa.close()


def _app(node: Node) -> Any:
    from inkless.web.app import create_app

    return create_app(node)


@pytest.fixture
def pair(served_pair: Pair) -> Pair:
    """Both nodes with no witness state: whatever an earlier test did to moj's log is just its log now."""
    for node in (served_pair.moj, served_pair.npa):
        with node.db.begin() as conn:
            for table in (witnessed_heads, witness_refusals, audit_cosignatures):
                conn.execute(delete(table))
            served_pair.audit_from[node.node_id] = node.audit.tree_size(conn)
        # Exported heads of a history an earlier test rewrote stay (that is the point of them): start empty.
        for exported in node.settings.audit_head_export_dir.glob("*.json"):
            exported.unlink()
    return served_pair


def _grow(node: Node, count: int, tag: str) -> int:
    """Append ``count`` entries and sign a head over them; returns the new size."""
    with node.db.begin() as conn:
        for i in range(count):
            node.audit.record(conn, AuditEvent(actor="test", action="test.event", object_type="test",
                                               object_id=f"{tag}-{i}"))
    head = sign_tree_head_if_new(node)
    assert head is not None
    return head.tree_size


def _truncate(node: Node, size: int) -> None:
    """What an operator with database access can do: cut the log back to ``size`` entries, consistently."""
    e, n, h = t.audit_entries.c, t.audit_nodes.c, t.audit_tree_heads.c
    with node.db.begin() as conn:
        conn.execute(delete(t.audit_entries).where(e.idx >= size))
        for level in range(32):
            conn.execute(delete(t.audit_nodes).where(n.level == level, (n.idx + 1) * (2 ** level) > size))
        conn.execute(delete(t.audit_tree_heads).where(h.tree_size > size))
        conn.execute(update(t.audit_state).where(t.audit_state.c.id == 1).values(tree_size=size))


def _refusal_entries(pair: Pair) -> list[dict[str, Any]]:
    """The witness (npa) refusals audited since the test began."""
    e = t.audit_entries.c
    with pair.npa.db.begin() as conn:
        rows = conn.execute(select(e.entry).where(e.action == "audit.witness_refused", e.idx >= pair.audit_from["npa"])
                            .order_by(e.idx)).all()
    return [json.loads(r.entry) for r in rows]


def _cli(node: Node, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    return subprocess.run([str(INKLESS), *args, "--data", str(node.settings.data_dir)], capture_output=True,
                          text=True, env=env, check=False, timeout=120)


def test_a_witness_cosigns_each_extension_and_the_log_lists_its_witnesses(pair: Pair) -> None:
    size = _grow(pair.moj, 3, "a")
    [first] = Pair.witness(pair.npa).witness_all()
    assert (first.peer, first.outcome, first.tree_size, first.delivered) == ("moj", "cosigned", size, True)
    # The same head again: nothing new to cosign, nothing sent twice.
    [again] = Pair.witness(pair.npa).witness_all()
    assert again.outcome == "unchanged" and again.delivered

    bigger = _grow(pair.moj, 5, "b")
    # The periodic task is what a running node does.
    [outcome] = witness_peers(pair.npa)
    assert outcome.outcome == "cosigned" and outcome.tree_size == bigger

    status = Pair.witness(pair.moj).status()
    [witness] = status["witnesses"]
    assert witness["witness"] == "npa" and witness["tree_size"] == bigger and witness["cosignatures"] == 2
    with pair.moj.db.begin() as conn:
        ours = pair.moj.audit.tree_head(conn, bigger)
    assert witness["root_hash"] == ours.root_hash.hex()

    [check] = Pair.witness(pair.moj).check_witnesses()
    assert (check.witness, check.outcome, check.tree_size) == ("npa", "ok", bigger)

    listing = _cli(pair.moj, "audit", "witness", "--json")
    assert listing.returncode == 0, listing.stderr
    shown = json.loads(listing.stdout)
    assert shown["witnesses"][0]["witness"] == "npa" and shown["witnesses"][0]["tree_size"] == bigger
    table = _cli(pair.npa, "audit", "witness")
    assert table.returncode == 0, table.stderr
    # The peer npa witnesses, its size, and a time in the node's zone.
    assert "moj" in table.stdout and str(bigger) in table.stdout and "JST" in table.stdout

    verified = _cli(pair.moj, "audit", "verify", "--json")
    assert verified.returncode == 0, verified.stderr
    [shown_check] = json.loads(verified.stdout)["witnesses"]
    assert (shown_check["witness"], shown_check["outcome"], shown_check["tree_size"]) == ("npa", "ok", bigger)


def test_a_rewritten_history_is_refused_by_the_witness_and_named_by_verify(pair: Pair) -> None:
    witnessed = _grow(pair.moj, 4, "honest")
    assert Pair.witness(pair.npa).witness("moj").outcome == "cosigned"

    # The operator cuts the log back, writes another history over it, lets the node sign it, and
    # also empties the cosignatures kept on moj. Internally, moj's log is consistent again.
    _truncate(pair.moj, witnessed - 2)
    with pair.moj.db.begin() as conn:
        conn.execute(delete(audit_cosignatures))
    rewritten = _grow(pair.moj, 6, "forged")
    assert rewritten > witnessed
    own = _cli(pair.moj, "audit", "verify", "--offline")
    assert own.returncode == 0, own.stderr  # nothing inside the node can tell

    outcome = Pair.witness(pair.npa).witness("moj")
    assert outcome.outcome == "refused" and "does not extend" in outcome.detail
    [entry] = _refusal_entries(pair)
    assert entry["object_id"] == "moj" and entry["details"]["held_size"] == witnessed
    assert entry["details"]["offered_size"] == rewritten
    # The witness kept its head: the forged one was not cosigned, nor sent to moj.
    status = Pair.witness(pair.npa).status()
    [peer] = status["witnessed"]
    assert peer["tree_size"] == witnessed and "does not extend" in peer["refusals"][0]["reason"]
    with pair.moj.db.begin() as conn:
        assert conn.execute(select(func.count()).select_from(audit_cosignatures)).scalar_one() == 0

    # The same offence on the next round is counted, not audited again.
    assert Pair.witness(pair.npa).witness("moj").outcome == "refused"
    assert len(_refusal_entries(pair)) == 1
    assert Pair.witness(pair.npa).status()["witnessed"][0]["refusals"][0]["count"] == 2

    result = _cli(pair.moj, "audit", "verify")
    assert result.returncode == 5
    assert "witness npa" in result.stderr and "rewritten" in result.stderr and str(witnessed) in result.stderr
    shown = _cli(pair.npa, "audit", "witness")
    assert "REFUSED" in shown.stdout and "does not extend" in shown.stdout


def test_a_truncated_tail_is_caught_by_the_witness_and_by_verify(pair: Pair) -> None:
    witnessed = _grow(pair.moj, 3, "kept")
    assert Pair.witness(pair.npa).witness("moj").outcome == "cosigned"
    _truncate(pair.moj, witnessed - 1)
    # The node signs a head for what is left: smaller than what the witness holds.
    with pair.moj.db.begin() as conn:
        pair.moj.audit.sign_tree_head(conn, pair.moj.pki)

    outcome = Pair.witness(pair.npa).witness("moj")
    assert outcome.outcome == "refused" and "shrank" in outcome.detail
    result = _cli(pair.moj, "audit", "verify")
    assert result.returncode == 5
    assert "witness npa" in result.stderr and f"only {witnessed - 1}" in result.stderr


def test_a_head_whose_signature_fails_is_refused_and_never_cosigned(pair: Pair) -> None:
    good = _grow(pair.moj, 2, "first")
    assert Pair.witness(pair.npa).witness("moj").outcome == "cosigned"
    bad = _grow(pair.moj, 2, "second")
    heads = t.audit_tree_heads
    with pair.moj.db.begin() as conn:
        root = conn.execute(select(heads.c.root_hash).where(heads.c.tree_size == bad)).scalar_one()
        conn.execute(update(heads).where(heads.c.tree_size == bad).values(root_hash=bytes(32)))
    try:
        outcome = Pair.witness(pair.npa).witness("moj")
        assert outcome.outcome == "refused" and "signature does not verify" in outcome.detail
        assert Pair.witness(pair.npa).status()["witnessed"][0]["tree_size"] == good
        [entry] = _refusal_entries(pair)
        assert entry["details"]["offered_size"] == bad
    finally:
        with pair.moj.db.begin() as conn:
            conn.execute(update(heads).where(heads.c.tree_size == bad).values(root_hash=root))


def test_the_log_refuses_cosignatures_it_cannot_trust(pair: Pair) -> None:
    size = _grow(pair.moj, 2, "c")
    with pair.moj.db.begin() as conn:
        head = pair.moj.audit.tree_head(conn, size)
    key, cert = Pair.peers(pair.npa).node_key()
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from inkless.audit.cosignature import cosignature_bytes

    def cosign(root: bytes, signer: ec.EllipticCurvePrivateKey = key) -> Cosignature:
        at = head.timestamp
        sig = signer.sign(cosignature_bytes("npa", at, head.signed_bytes() if root == head.root_hash else
                                            head.signed_bytes()[:-32] + root), ec.ECDSA(hashes.SHA256()))
        return Cosignature("npa", "moj", size, root, head.timestamp, at, sig,
                           cert.public_bytes(serialization.Encoding.DER))

    def post(document: dict[str, Any], sign: bool = True) -> tuple[int, str]:
        answer = Pair.peers(pair.npa).client.request(
            "POST", pair.urls["moj"] + COSIGNATURES_PATH, peer="moj", ca=Pair.peers(pair.npa).ca_certificate("moj"),
            body=json.dumps(document).encode(), content_type="application/json", sign=sign)
        return answer.status, answer.detail()

    assert post(cosign(bytes(32)).to_json()) == (409, f"this node signed no tree head of size {size} with that root "
                                                        "and time")
    status, detail = post(cosign(head.root_hash, ec.generate_private_key(ec.SECP256R1())).to_json())
    assert status == 422 and "does not verify" in detail
    status, detail = post({**cosign(head.root_hash).to_json(), "witness": "someone"})
    assert status == 422 and "names witness 'someone'" in detail
    status, _ = post(cosign(head.root_hash).to_json(), sign=False)
    assert status == 401
    with pair.moj.db.begin() as conn:
        assert conn.execute(select(func.count()).select_from(audit_cosignatures)).scalar_one() == 0
    assert post(cosign(head.root_hash).to_json()) == (201, "HTTP 201")
    [witness] = Pair.witness(pair.moj).status()["witnesses"]
    assert witness["tree_size"] == size


def test_every_signed_head_is_exported_once(pair: Pair) -> None:
    folder = pair.moj.settings.audit_head_export_dir
    size = _grow(pair.moj, 1, "export")
    path = folder / f"moj-{size:012d}.json"
    exported = json.loads(path.read_text())
    with pair.moj.db.begin() as conn:
        head = pair.moj.audit.tree_head(conn, size)
    assert exported == head.to_json()
    # Never overwritten: the same head again leaves the file as it was.
    before = path.stat().st_mtime_ns
    assert export_head(folder, head) is None
    assert path.stat().st_mtime_ns == before
    printed = _cli(pair.moj, "audit", "head", "--json")
    assert printed.returncode == 0, printed.stderr
    assert (folder / f"moj-{json.loads(printed.stdout)['tree_size']:012d}.json").exists()
