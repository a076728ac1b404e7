"""Peers witness each other's audit logs: signed tree heads leave the node, and come back cosigned.

A node's own database cannot prove that its history was never rewritten: whoever can write to
it can empty ``audit_tree_heads``, rebuild the log and have the node sign the new history. So
every node checks the tree heads of the peers it has pinned, in the spirit of the C2SP
``tlog-witness`` and ``tlog-cosignature`` specifications:

1. fetch the peer's latest signed tree head (``GET /api/v1/audit/tree-head``, public) and check
   its signature with the peer's node certificate under the pinned CA;
2. check that it extends the newest head already witnessed for that peer: an RFC 9162
   consistency proof (``GET /api/v1/audit/proof/consistency``) for a larger size, the same
   root for the same size, never a smaller size;
3. keep the head and sign a **cosignature** over it with this node's key, and return it to the
   peer (``POST /federation/v1/audit/cosignatures``, a signed federation request), which keeps
   the cosignatures it received.

A head that fails any check is refused: kept as a refusal the administrators see
(``inkless audit witness``), and audited once per distinct offence. ``inkless audit verify``
on the witnessed node asks each witness for the newest head it holds
(``GET /federation/v1/audit/witnessed/NODE``) and fails, naming the witness, when the local log
no longer contains that head: truncated, or rewritten.

The cosignature and tree-head formats are in :mod:`inkless.audit.cosignature`.

Receiving and storing a cosignature writes no audit entry: an entry would make a new tree head,
which the witness would cosign again, for ever. The cosignatures are signed records by themselves.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Connection, and_, insert, select, update

from inkless.audit import merkle
from inkless.audit.cosignature import Cosignature, cosignature_bytes, parse_tree_head
from inkless.audit.log import AuditLog, TreeHead, verify_tree_head_signature
from inkless.audit.model import AuditEvent
from inkless.clock import Clock
from inkless.db.engine import Database
from inkless.db.tables_witness import audit_cosignatures, witness_refusals, witnessed_heads
from inkless.errors import (
    AuthenticationError,
    ConflictError,
    InklessError,
    NotFoundError,
    PeerUnreachableError,
    PKIError,
    ValidationError,
)
from inkless.federation.httpsig import SignatureError

if TYPE_CHECKING:
    from inkless.directory.peers import Peer, PeerService

log = logging.getLogger("inkless.audit.witness")

TREE_HEAD_PATH = "/api/v1/audit/tree-head"
CONSISTENCY_PATH = "/api/v1/audit/proof/consistency"
COSIGNATURES_PATH = "/federation/v1/audit/cosignatures"
WITNESSED_PATH = "/federation/v1/audit/witnessed/"
# A tree head document is a few kilobytes; a consistency proof at most 64 hashes.
MAX_DOCUMENT_BYTES = 64 * 1024


@dataclass(frozen=True)
class WitnessOutcome:
    """What one witnessing round did with one peer."""

    peer: str
    outcome: str  # cosigned | unchanged | refused | unreachable | no-head
    tree_size: int | None = None
    detail: str = ""
    delivered: bool = False


@dataclass(frozen=True)
class WitnessCheck:
    """One witness's newest head of this node, compared with the local log."""

    witness: str
    outcome: str  # ok | truncated | rewritten | no-head | unreachable | invalid
    tree_size: int | None = None
    cosigned_at: datetime | None = None
    detail: str = ""

    @property
    def failed(self) -> bool:
        """True when the witness proves that the local log lost or changed what it once published."""
        return self.outcome in ("truncated", "rewritten")

    def to_json(self) -> dict[str, Any]:
        return {"witness": self.witness, "outcome": self.outcome, "tree_size": self.tree_size,
                "cosigned_at": self.cosigned_at.isoformat() if self.cosigned_at else None, "detail": self.detail}


class _Refused(Exception):
    def __init__(self, reason: str, offered: TreeHead | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.offered = offered


class WitnessService:
    """Witnesses pinned peers' audit logs and keeps the cosignatures peers return for this node's log."""

    def __init__(
        self,
        db: Database,
        node_id: str,
        audit: AuditLog,
        peers: PeerService,
        clock: Clock,
    ) -> None:
        self._db = db
        self._node_id = node_id
        self._audit = audit
        self._peers = peers
        self._clock = clock

    # --- as a witness --------------------------------------------------------------------

    def witness_all(self) -> list[WitnessOutcome]:
        """One round over every pinned peer; failures are recorded, not raised."""
        return [self.witness(peer.node_id) for peer in self._peers.all()]

    def witness(self, peer_id: str) -> WitnessOutcome:
        """Check ``peer_id``'s latest tree head against the newest one witnessed, cosign it and send it back."""
        peer = self._peers.get(peer_id)
        held = self._held(peer_id)
        try:
            offered = self._fetch_head(peer)
        except PeerUnreachableError as exc:
            return WitnessOutcome(peer_id, "unreachable", detail=str(exc))
        except _Refused as refused:
            return self._refuse(peer_id, held, refused)
        if offered is None:
            return WitnessOutcome(peer_id, "no-head")
        try:
            self._check_extends(peer, held, offered)
        except PeerUnreachableError as exc:
            return WitnessOutcome(peer_id, "unreachable", offered.tree_size, str(exc))
        except _Refused as refused:
            return self._refuse(peer_id, held, refused)
        if held is not None and held.tree_size == offered.tree_size:
            cosignature = held
            outcome = "unchanged"
            delivered = held.delivered
        else:
            cosignature = self._cosign(offered)
            outcome = "cosigned"
            delivered = False
        detail = ""
        if not delivered:
            detail = self._deliver(peer, cosignature.cosignature)
            delivered = not detail
        return WitnessOutcome(peer_id, outcome, offered.tree_size, detail, delivered)

    def _fetch_head(self, peer: Peer) -> TreeHead | None:
        answer = self._peers.client.request("GET", peer.url.rstrip("/") + TREE_HEAD_PATH, peer=peer.node_id,
                                            ca=None, sign=False)
        if answer.status == 404:
            return None
        if answer.status != 200:
            raise PeerUnreachableError(f"{peer.node_id} answered HTTP {answer.status} for its tree head")
        try:
            head = parse_tree_head(_json(answer.body))
        except ValidationError as exc:
            raise _Refused(f"the tree head is malformed: {exc}") from None
        if head.node_id != peer.node_id:
            raise _Refused(f"the tree head is of node {head.node_id!r}, not of {peer.node_id!r}", head)
        from inkless.federation.documents import check_node_certificate

        try:
            check_node_certificate(x509.load_der_x509_certificate(head.certificate_der), peer.ca_certificate,
                                   self._clock.now())
        except (SignatureError, PKIError) as exc:
            raise _Refused(f"the tree head is not signed by the node certificate of {peer.node_id}: {exc}",
                           head) from None
        if not verify_tree_head_signature(head):
            raise _Refused("the tree head's signature does not verify", head)
        return head

    def _check_extends(self, peer: Peer, held: _Held | None, offered: TreeHead) -> None:
        if held is None:
            return  # the first head a witness sees is taken as it is (trust on first use)
        if offered.tree_size < held.tree_size:
            raise _Refused(
                f"the log shrank: a head of size {held.tree_size} was witnessed, now it offers size "
                f"{offered.tree_size} (entries were removed or the history was rewritten)", offered)
        if offered.tree_size == held.tree_size:
            if offered.root_hash != held.root_hash:
                raise _Refused(
                    f"a different root for size {offered.tree_size} than the one witnessed (a fork: "
                    "the history was rewritten)", offered)
            return
        url = (f"{peer.url.rstrip('/')}{CONSISTENCY_PATH}?first={held.tree_size}&second={offered.tree_size}")
        answer = self._peers.client.request("GET", url, peer=peer.node_id, ca=None, sign=False)
        if answer.status >= 500:
            raise PeerUnreachableError(f"{peer.node_id} answered HTTP {answer.status} for a consistency proof")
        proof: list[bytes] | None = None
        if answer.status == 200:
            try:
                value = _json(answer.body)
                path = value["consistency_path"]
                if not isinstance(path, list) or len(path) > 128:
                    raise TypeError
                proof = [bytes.fromhex(str(p)) for p in path]
            except (KeyError, TypeError, ValueError, ValidationError):
                proof = None
        if proof is None or not merkle.verify_consistency(
            held.tree_size, offered.tree_size, held.root_hash, offered.root_hash, proof
        ):
            raise _Refused(
                f"the head of size {offered.tree_size} does not extend the witnessed head of size "
                f"{held.tree_size}: no valid consistency proof (the history was rewritten)", offered)

    def _cosign(self, head: TreeHead) -> _Held:
        key, cert = self._peers.node_key()
        now = self._clock.now().astimezone(UTC)
        cosigned_at = now.replace(microsecond=now.microsecond // 1000 * 1000)
        der = cert.public_bytes(serialization.Encoding.DER)
        signature = key.sign(cosignature_bytes(self._node_id, cosigned_at, head.signed_bytes()),
                             ec.ECDSA(hashes.SHA256()))
        cosignature = Cosignature(self._node_id, head.node_id, head.tree_size, head.root_hash, head.timestamp,
                                  cosigned_at, signature, der)
        with self._db.begin() as conn:
            exists = conn.execute(select(witnessed_heads.c.tree_size).where(
                witnessed_heads.c.peer_node_id == head.node_id,
                witnessed_heads.c.tree_size == head.tree_size)).first()
            if exists is None:
                conn.execute(insert(witnessed_heads).values(
                    peer_node_id=head.node_id, tree_size=head.tree_size, root_hash=head.root_hash,
                    head_timestamp=head.timestamp, head_signature=head.signature,
                    head_certificate=head.certificate_der, cosigned_at=cosigned_at, cosignature=signature,
                    cosignature_certificate=der,
                ))
        log.info("cosigned tree head of %s: size %d", head.node_id, head.tree_size)
        return _Held(head.tree_size, head.root_hash, None, cosignature)

    def _deliver(self, peer: Peer, cosignature: Cosignature) -> str:
        """Send the cosignature to the peer; '' when it accepted it, else why not."""
        body = json.dumps(cosignature.to_json()).encode("utf-8")
        try:
            answer = self._peers.client.request(
                "POST", peer.url.rstrip("/") + COSIGNATURES_PATH, peer=peer.node_id, ca=peer.ca_certificate,
                body=body, content_type="application/json",
            )
        except PeerUnreachableError as exc:
            return str(exc)
        if answer.status not in (200, 201) or not answer.verified:
            return f"{peer.node_id} did not take the cosignature (HTTP {answer.status}): {answer.detail()}"
        with self._db.begin() as conn:
            conn.execute(update(witnessed_heads).where(
                witnessed_heads.c.peer_node_id == peer.node_id,
                witnessed_heads.c.tree_size == cosignature.tree_size,
            ).values(delivered_at=self._clock.now()))
        return ""

    def _refuse(self, peer_id: str, held: _Held | None, refused: _Refused) -> WitnessOutcome:
        """Keep the refusal for the administrators; audit it once per distinct offence."""
        now = self._clock.now()
        offered = refused.offered
        values = {
            "peer_node_id": peer_id, "reason": refused.reason[:2000],
            "held_size": held.tree_size if held else None, "held_root": held.root_hash if held else None,
            "offered_size": offered.tree_size if offered else None,
            "offered_root": offered.root_hash if offered else None,
        }
        r = witness_refusals.c
        with self._db.begin() as conn:
            same = conn.execute(select(r.id).where(and_(*(
                (r[k].is_(None) if v is None else r[k] == v) for k, v in values.items()
            ))).order_by(r.id.desc()).limit(1)).scalar()
            if same is not None:
                conn.execute(update(witness_refusals).where(r.id == same).values(
                    last_seen_at=now, count=r.count + 1))
            else:
                conn.execute(insert(witness_refusals).values(**values, first_seen_at=now, last_seen_at=now, count=1))
                self._audit.record(conn, AuditEvent(
                    actor="system", action="audit.witness_refused", object_type="node", object_id=peer_id,
                    details={
                        "reason": refused.reason[:500],
                        "held_size": values["held_size"], "offered_size": values["offered_size"],
                        "held_root": held.root_hash.hex() if held else None,
                        "offered_root": offered.root_hash.hex() if offered else None,
                    },
                ))
        log.warning("refused the tree head of %s: %s", peer_id, refused.reason)
        return WitnessOutcome(peer_id, "refused", offered.tree_size if offered else None, refused.reason)

    def _held(self, peer_id: str) -> _Held | None:
        with self._db.read() as conn:
            return _newest_held(conn, self._node_id, peer_id)

    def newest_witnessed(self, log_id: str) -> Cosignature | None:
        """The newest head of ``log_id`` this node cosigned (what ``GET …/audit/witnessed/NODE`` answers)."""
        held = self._held(log_id)
        return held.cosignature if held else None

    # --- as a witnessed log --------------------------------------------------------------

    def accept_cosignature(self, witness_id: str, document: Any) -> Cosignature:
        """Keep a cosignature that pinned peer ``witness_id`` made over one of this node's signed heads.

        ValidationError if malformed or about another node, AuthenticationError if it does not verify,
        ConflictError if this node never signed that head.
        """
        cosignature = Cosignature.from_json(document)
        if cosignature.witness_id != witness_id:
            raise ValidationError(f"the cosignature names witness {cosignature.witness_id!r}, "
                                  f"but {witness_id} sent it")
        if cosignature.log_id != self._node_id:
            raise ValidationError(f"the cosignature is for node {cosignature.log_id!r}, not {self._node_id!r}")
        try:
            cosignature.verify(self._peers.ca_certificate(witness_id), self._clock.now())
        except (SignatureError, PKIError) as exc:
            raise AuthenticationError(str(exc)) from None
        with self._db.begin() as conn:
            try:
                ours = self._audit.tree_head(conn, cosignature.tree_size)
            except NotFoundError:
                ours = None
            if ours is None or ours.root_hash != cosignature.root_hash or ours.timestamp != cosignature.head_timestamp:
                raise ConflictError(f"this node signed no tree head of size {cosignature.tree_size} "
                                    "with that root and time")
            c = audit_cosignatures.c
            exists = conn.execute(select(c.tree_size).where(
                c.witness_node_id == witness_id, c.tree_size == cosignature.tree_size)).first()
            if exists is None:
                conn.execute(insert(audit_cosignatures).values(
                    witness_node_id=witness_id, tree_size=cosignature.tree_size, root_hash=cosignature.root_hash,
                    head_timestamp=cosignature.head_timestamp, cosigned_at=cosignature.cosigned_at,
                    signature=cosignature.signature, certificate=cosignature.certificate_der,
                    received_at=self._clock.now(),
                ))
        return cosignature

    def check_witnesses(self, *, online: bool = True) -> list[WitnessCheck]:
        """Compare the local log with the newest head each witness holds of it.

        Online, every pinned peer is asked (the answer outlives anything an operator can do to this
        database); the cosignatures kept here are checked too, and stand in for a witness that
        cannot be reached.
        """
        checks: dict[str, WitnessCheck] = {}
        for witness_id, cosignature in self._stored_cosignatures().items():
            checks[witness_id] = self._compare(witness_id, cosignature, source="kept here")
        if online:
            for peer in self._peers.all():
                check = self._ask(peer)
                kept = checks.get(peer.node_id)
                if check.outcome == "unreachable" and kept is not None:
                    checks[peer.node_id] = WitnessCheck(
                        kept.witness, kept.outcome if kept.failed else "unreachable", kept.tree_size,
                        kept.cosigned_at, f"{check.detail}; {kept.detail}" if kept.detail else check.detail)
                elif kept is None or check.failed or check.outcome == "ok" or not kept.failed:
                    checks[peer.node_id] = check
        return [checks[k] for k in sorted(checks)]

    def _ask(self, peer: Peer) -> WitnessCheck:
        url = peer.url.rstrip("/") + WITNESSED_PATH + self._node_id
        try:
            answer = self._peers.client.request("GET", url, peer=peer.node_id, ca=peer.ca_certificate)
        except PeerUnreachableError as exc:
            return WitnessCheck(peer.node_id, "unreachable", detail=str(exc))
        if not answer.verified:
            return WitnessCheck(peer.node_id, "invalid",
                                detail=f"the answer is not signed by {peer.node_id}: {answer.signature_problem}")
        if answer.status == 404:
            return WitnessCheck(peer.node_id, "no-head", detail=answer.detail())
        if answer.status != 200:
            return WitnessCheck(peer.node_id, "unreachable", detail=f"HTTP {answer.status}: {answer.detail()}")
        try:
            cosignature = Cosignature.from_json(_json(answer.body))
            if cosignature.witness_id != peer.node_id or cosignature.log_id != self._node_id:
                raise ValidationError("the cosignature names another witness or log")
            cosignature.verify(peer.ca_certificate, self._clock.now())
        except (ValidationError, SignatureError, PKIError) as exc:
            return WitnessCheck(peer.node_id, "invalid", detail=str(exc))
        return self._compare(peer.node_id, cosignature, source="asked now")

    def _compare(self, witness_id: str, cosignature: Cosignature, source: str) -> WitnessCheck:
        size = cosignature.tree_size
        with self._db.read() as conn:
            local = self._audit.tree_size(conn)
            if local < size:
                return WitnessCheck(
                    witness_id, "truncated", size, cosignature.cosigned_at,
                    f"witness {witness_id} cosigned a head of {size} entries ({source}), but the log holds "
                    f"only {local}: entries were removed")
            try:
                root = self._audit.root_hash(conn, size)
            except (InklessError, KeyError) as exc:
                return WitnessCheck(witness_id, "rewritten", size, cosignature.cosigned_at,
                                    f"the log cannot compute its root at size {size}: {exc}")
        if root != cosignature.root_hash:
            return WitnessCheck(
                witness_id, "rewritten", size, cosignature.cosigned_at,
                f"witness {witness_id} cosigned root {cosignature.root_hash.hex()} for size {size} ({source}), "
                f"but the log's root at that size is {root.hex()}: the history was rewritten")
        return WitnessCheck(witness_id, "ok", size, cosignature.cosigned_at, source)

    def _stored_cosignatures(self) -> dict[str, Cosignature]:
        c = audit_cosignatures.c
        with self._db.read() as conn:
            rows = conn.execute(select(audit_cosignatures).order_by(c.witness_node_id, c.tree_size)).all()
        newest: dict[str, Cosignature] = {}
        for r in rows:
            newest[r.witness_node_id] = Cosignature(
                r.witness_node_id, self._node_id, int(r.tree_size), bytes(r.root_hash), r.head_timestamp,
                r.cosigned_at, bytes(r.signature), bytes(r.certificate))
        return newest

    # --- what the administrators see -----------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Who witnesses this node (newest cosignature each), and the peers this node witnesses."""
        with self._db.read() as conn:
            c = audit_cosignatures.c
            cosigned = conn.execute(select(audit_cosignatures).order_by(c.witness_node_id, c.tree_size)).all()
            witnesses: dict[str, dict[str, Any]] = {}
            for r in cosigned:
                witnesses[r.witness_node_id] = {
                    "witness": r.witness_node_id, "tree_size": int(r.tree_size), "root_hash": bytes(r.root_hash).hex(),
                    "cosigned_at": r.cosigned_at.isoformat(), "received_at": r.received_at.isoformat(),
                    "cosignatures": witnesses.get(r.witness_node_id, {}).get("cosignatures", 0) + 1,
                }
            peers = []
            for peer in self._peers.all():
                held = _newest_held(conn, self._node_id, peer.node_id)
                rf = witness_refusals.c
                refusals = conn.execute(select(witness_refusals).where(rf.peer_node_id == peer.node_id)
                                        .order_by(rf.last_seen_at.desc()).limit(5)).all()
                peers.append({
                    "peer": peer.node_id,
                    "tree_size": held.tree_size if held else None,
                    "root_hash": held.root_hash.hex() if held else None,
                    "cosigned_at": held.cosignature.cosigned_at.isoformat() if held else None,
                    "delivered": held.delivered if held else False,
                    "refusals": [{
                        "reason": r.reason, "held_size": r.held_size, "offered_size": r.offered_size,
                        "first_seen_at": r.first_seen_at.isoformat(), "last_seen_at": r.last_seen_at.isoformat(),
                        "count": int(r._mapping["count"]),
                    } for r in refusals],
                })
        return {"node_id": self._node_id, "witnesses": [witnesses[k] for k in sorted(witnesses)],
                "witnessed": peers}


@dataclass(frozen=True)
class _Held:
    tree_size: int
    root_hash: bytes
    delivered_at: datetime | None
    cosignature: Cosignature

    @property
    def delivered(self) -> bool:
        return self.delivered_at is not None


def _newest_held(conn: Connection, own_id: str, peer_id: str) -> _Held | None:
    w = witnessed_heads.c
    row = conn.execute(select(witnessed_heads).where(w.peer_node_id == peer_id)
                       .order_by(w.tree_size.desc()).limit(1)).one_or_none()
    if row is None:
        return None
    cosignature = Cosignature(own_id, peer_id, int(row.tree_size), bytes(row.root_hash), row.head_timestamp,
                              row.cosigned_at, bytes(row.cosignature), bytes(row.cosignature_certificate))
    return _Held(int(row.tree_size), bytes(row.root_hash), row.delivered_at, cosignature)


def _json(body: bytes) -> Any:
    if len(body) > MAX_DOCUMENT_BYTES:
        raise ValidationError("the answer is too large")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ValidationError("the answer is not JSON") from None


def export_head(directory: Path, head: TreeHead) -> Path | None:
    """Write ``head`` to ``directory`` as ``NODE-SIZE.json`` unless that file exists; never overwrite.

    Meant for a write-once (WORM) mount: each signed head becomes one file that nobody rewrites.
    """
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{head.node_id}-{head.tree_size:012d}.json"
    data = json.dumps(head.to_json(), ensure_ascii=False, sort_keys=True, indent=1).encode("utf-8") + b"\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return None
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


__all__ = ["Cosignature", "WitnessCheck", "WitnessOutcome", "WitnessService", "export_head", "parse_tree_head"]
