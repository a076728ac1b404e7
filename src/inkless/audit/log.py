"""The audit log service: appends, signed tree heads, proofs and a full recomputation (the types it
hands out are in :mod:`inkless.audit.entries`).

``record()`` appends an entry inside the caller's transaction in O(log n): it stores
the entry, its leaf hash and the hash of every perfect subtree the new leaf
completes (``audit_nodes``), reading only the O(log n) left siblings it needs.
Every root and proof is then a fold of O(log n) stored subtree hashes; only
``verify()`` reads every entry, and it recomputes the tree without trusting
``audit_nodes``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Connection, Select, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from inkless.audit import merkle
from inkless.audit.entries import (
    TREE_HEAD_CONTEXT,
    AuditEntry,
    ConsistencyProof,
    InclusionProof,
    TreeHead,
    VerificationReport,
    canonical_entry,
    tree_head_bytes,
    verify_tree_head_signature,
)
from inkless.audit.merkle import leaf_hash
from inkless.audit.model import AuditEvent
from inkless.clock import Clock
from inkless.db import tables as t
from inkless.errors import AuditIntegrityError, NotFoundError, ValidationError
from inkless.pki.ca import NodeCA
from inkless.pki.model import CertPurpose

__all__ = [
    "TREE_HEAD_CONTEXT",
    "AuditEntry",
    "AuditLog",
    "ConsistencyProof",
    "InclusionProof",
    "TreeHead",
    "VerificationReport",
    "canonical_entry",
    "leaf_hash",
    "tree_head_bytes",
    "verify_tree_head_signature",
]

MAX_PAGE = 1000
_VERIFY_BATCH = 1000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Lengths of the searchable columns (db/tables.py): checked up front for a clear error on every backend.
_COLUMN_LIMITS = {"actor": 128, "action": 64, "object_type": 32, "object_id": 128}


# Statements built once: record() runs in every state change, so it skips rebuilding them.
_NEXT_INDEX = (
    update(t.audit_state)
    .where(t.audit_state.c.id == 1)
    .values(tree_size=t.audit_state.c.tree_size + 1)
    .returning(t.audit_state.c.tree_size)
)
_INSERT_ENTRY = insert(t.audit_entries)
_INSERT_NODES = insert(t.audit_nodes)


@functools.cache
def _siblings(count: int) -> Select[Any]:
    """SELECT of ``count`` subtrees by (level, idx) bound parameters l0, i0, l1, i1, ..."""
    n = t.audit_nodes.c
    return select(n.level, n.idx, n.hash).where(
        or_(*(and_(n.level == bindparam(f"l{j}"), n.idx == bindparam(f"i{j}")) for j in range(count)))
    )


# --- the service -------------------------------------------------------------------------------


class AuditLog:
    """Append-only audit log: an RFC 9162 Merkle tree with signed tree heads."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    # --- appending ---------------------------------------------------------------------

    def record(self, conn: Connection, event: AuditEvent, at: datetime | None = None) -> int:
        """Append ``event`` inside the caller's transaction; returns the entry's index."""
        at = at or self._clock.now()
        for name, limit in _COLUMN_LIMITS.items():
            value = getattr(event, name)
            if value is not None and len(value) > limit:
                raise ValidationError(f"audit event {name} is longer than {limit} characters")
        if not event.actor or not event.action:
            raise ValidationError("an audit event needs an actor and an action")
        # Everything that can refuse the event does so before the index is taken: a caller
        # that catches the error and commits must not leave a gap in the log.
        canonical_entry(0, at, event)
        # Taking the next index is an UPDATE of the one audit_state row: on PostgreSQL its row
        # lock serialises appends across processes until the caller commits; on SQLite the
        # transaction already holds the write lock (BEGIN IMMEDIATE).
        new_size = conn.execute(_NEXT_INDEX).scalar()
        if new_size is None:
            conn.execute(insert(t.audit_state).values(id=1, tree_size=1))
            new_size = 1
        index = int(new_size) - 1
        entry = canonical_entry(index, at, event)
        leaf = leaf_hash(entry)
        wanted = merkle.append_siblings(index)
        siblings: list[bytes] = []
        if wanted:
            params = {f"l{j}": level for j, (level, _) in enumerate(wanted)}
            params.update({f"i{j}": position for j, (_, position) in enumerate(wanted)})
            found = {(int(r.level), int(r.idx)): bytes(r.hash) for r in conn.execute(_siblings(len(wanted)), params)}
            if len(found) != len(wanted):
                self._subtrees(conn, wanted)  # raises, naming the missing subtree
            siblings = [found[s] for s in wanted]
        nodes = merkle.append_leaf(index, leaf, siblings)
        conn.execute(
            _INSERT_ENTRY,
            {
                "idx": index, "recorded_at": at, "actor": event.actor, "action": event.action,
                "object_type": event.object_type, "object_id": event.object_id, "entry": entry, "leaf_hash": leaf,
            },
        )
        conn.execute(_INSERT_NODES, [{"level": lv, "idx": i, "hash": h} for lv, i, h in nodes])
        return index

    # --- reading -----------------------------------------------------------------------

    def tree_size(self, conn: Connection) -> int:
        """The number of entries in the log."""
        value = conn.execute(select(t.audit_state.c.tree_size).where(t.audit_state.c.id == 1)).scalar()
        return int(value or 0)

    def root_hash(self, conn: Connection, tree_size: int | None = None) -> bytes:
        """MTH of the first ``tree_size`` entries (default: all), from O(log n) stored subtrees."""
        size = self._check_size(conn, tree_size, "tree_size")
        if size == 0:
            return merkle.EMPTY_ROOT
        wanted = merkle.perfect_subtrees(0, size)
        return merkle.range_hash_from_subtrees(0, size, self._subtrees(conn, wanted))

    def entries(
        self,
        conn: Connection,
        start: int = 0,
        limit: int = 100,
        action: str | None = None,
        object_type: str | None = None,
        object_id: str | None = None,
        actor: str | None = None,
    ) -> list[AuditEntry]:
        """Entries from index ``start`` on, oldest first, optionally filtered."""
        if start < 0:
            raise ValidationError("start must not be negative")
        if not 0 < limit <= MAX_PAGE:
            raise ValidationError(f"limit must be between 1 and {MAX_PAGE}")
        query = (
            select(t.audit_entries.c.idx, t.audit_entries.c.entry)
            .where(t.audit_entries.c.idx >= start, *self._filters(action, object_type, object_id, actor))
            .order_by(t.audit_entries.c.idx)
            .limit(limit)
        )
        return [_parse(int(r.idx), bytes(r.entry)) for r in conn.execute(query)]

    def count(
        self,
        conn: Connection,
        action: str | None = None,
        object_type: str | None = None,
        object_id: str | None = None,
        actor: str | None = None,
    ) -> int:
        """How many entries match the filters."""
        query = select(func.count()).select_from(t.audit_entries).where(
            *self._filters(action, object_type, object_id, actor)
        )
        return int(conn.execute(query).scalar_one())

    def entry(self, conn: Connection, index: int) -> AuditEntry:
        """The entry at ``index``."""
        raw = conn.execute(select(t.audit_entries.c.entry).where(t.audit_entries.c.idx == index)).scalar()
        if raw is None:
            raise NotFoundError(f"no audit entry {index} (the log has {self.tree_size(conn)} entries)")
        return _parse(index, bytes(raw))

    @staticmethod
    def _filters(
        action: str | None, object_type: str | None, object_id: str | None, actor: str | None
    ) -> list[ColumnElement[bool]]:
        c = t.audit_entries.c
        conditions: list[ColumnElement[bool]] = []
        if action is not None:
            conditions.append(c.action == action)
        if object_type is not None:
            conditions.append(c.object_type == object_type)
        if object_id is not None:
            conditions.append(c.object_id == object_id)
        if actor is not None:
            conditions.append(c.actor == actor)
        return conditions

    # --- proofs ------------------------------------------------------------------------

    def inclusion_proof(self, conn: Connection, index: int, tree_size: int | None = None) -> InclusionProof:
        """Proof that entry ``index`` is in the tree of ``tree_size`` entries (default: all)."""
        size = self._check_size(conn, tree_size, "tree_size")
        if not 0 <= index < size:
            raise ValidationError(f"entry index {index} is not in a tree of {size} entries (0 to {size - 1})")
        ranges = merkle.inclusion_ranges(index, size)
        wanted = merkle.subtrees_for_ranges([*ranges, (0, size), (index, index + 1)])
        stored = self._subtrees(conn, wanted)
        return InclusionProof(
            index=index,
            tree_size=size,
            leaf_hash=stored[(0, index)],
            path=merkle.inclusion_proof(index, size, merkle.subtree_range_hash(stored)),
            root_hash=merkle.range_hash_from_subtrees(0, size, stored),
        )

    def consistency_proof(self, conn: Connection, first: int, second: int | None = None) -> ConsistencyProof:
        """Proof that the tree of ``first`` entries is a prefix of the tree of ``second`` (default: all)."""
        size = self._check_size(conn, second, "second")
        if not 0 < first <= size:
            raise ValidationError(f"first size {first} must be between 1 and the second size {size}")
        ranges = merkle.consistency_ranges(first, size)
        wanted = merkle.subtrees_for_ranges([*ranges, (0, first), (0, size)])
        stored = self._subtrees(conn, wanted)
        return ConsistencyProof(
            first=first,
            second=size,
            first_root=merkle.range_hash_from_subtrees(0, first, stored),
            second_root=merkle.range_hash_from_subtrees(0, size, stored),
            path=merkle.consistency_proof(first, size, merkle.subtree_range_hash(stored)),
        )

    def _check_size(self, conn: Connection, size: int | None, name: str) -> int:
        current = self.tree_size(conn)
        if size is None:
            return current
        if size < 0:
            raise ValidationError(f"{name} must not be negative")
        if size > current:
            raise ValidationError(f"{name} {size} is larger than the log ({current} entries)")
        return size

    def _subtrees(self, conn: Connection, wanted: Iterable[merkle.Subtree]) -> dict[merkle.Subtree, bytes]:
        by_level: dict[int, list[int]] = {}
        for level, index in wanted:
            by_level.setdefault(level, []).append(index)
        if not by_level:
            return {}
        n = t.audit_nodes.c
        rows = conn.execute(
            select(n.level, n.idx, n.hash).where(
                or_(*(and_(n.level == level, n.idx.in_(idx)) for level, idx in by_level.items()))
            )
        )
        found = {(int(r.level), int(r.idx)): bytes(r.hash) for r in rows}
        for level, indices in sorted(by_level.items()):
            for index in sorted(indices):
                if (level, index) not in found:
                    raise AuditIntegrityError(
                        f"the stored subtree hash (level {level}, index {index}) is missing from the "
                        "audit log; run 'inkless audit verify'",
                        entry_index=index << level,
                    )
        return found

    # --- tree heads ----------------------------------------------------------------------

    def lock(self, conn: Connection) -> int:
        """Take the log's lock (the one record() takes) for the rest of the transaction; returns the size."""
        locked = conn.execute(
            select(t.audit_state.c.tree_size).where(t.audit_state.c.id == 1).with_for_update()
        ).scalar()
        return int(locked or 0)

    def sign_tree_head(self, conn: Connection, pki: NodeCA) -> TreeHead:
        """Sign a head for the current size with the node key; returns the latest if it already covers it."""
        # Same lock as record(): the head's size and root are those of one consistent state.
        size = self.lock(conn)
        latest = self.latest_tree_head(conn)
        if latest is not None and latest.tree_size >= size:
            return latest
        root = self.root_hash(conn, size)
        if latest is not None and latest.tree_size > 0:
            # Never sign a fork: the stored tree must extend what was signed before.
            proof = self.consistency_proof(conn, latest.tree_size, size)
            if proof.first_root != latest.root_hash or not proof.verify():
                raise AuditIntegrityError(
                    f"the stored tree no longer extends the signed tree head of size {latest.tree_size}; "
                    "refusing to sign; run 'inkless audit verify'"
                )
        node_id = self._node_id(conn)
        key, cert = pki.key_and_certificate(conn, CertPurpose.NODE, node_id)
        info = pki.certificate(conn, CertPurpose.NODE, node_id)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise AuditIntegrityError("the node key is not an ECDSA key; cannot sign tree heads")
        now = self._clock.now().astimezone(UTC)
        # Milliseconds: what the signed encoding carries, so the stored time round-trips exactly.
        timestamp = now.replace(microsecond=now.microsecond // 1000 * 1000)
        signature = key.sign(tree_head_bytes(node_id, size, root, timestamp), ec.ECDSA(hashes.SHA256()))
        conn.execute(
            insert(t.audit_tree_heads).values(
                tree_size=size, root_hash=root, signed_at=timestamp, signature=signature,
                certificate_id=info.id,
            )
        )
        der = cert.public_bytes(serialization.Encoding.DER)
        return TreeHead(node_id, size, root, timestamp, signature, der)

    def latest_tree_head(self, conn: Connection) -> TreeHead | None:
        """The signed head of the largest size, or None before the first is signed."""
        heads = self._heads(conn, order_desc=True, limit=1)
        return heads[0] if heads else None

    def tree_head(self, conn: Connection, tree_size: int) -> TreeHead:
        """The signed head for exactly ``tree_size`` entries."""
        heads = self._heads(conn, size=tree_size)
        if not heads:
            raise NotFoundError(f"no signed tree head for size {tree_size}")
        return heads[0]

    def tree_heads(self, conn: Connection, after: int = -1, limit: int = 100) -> list[TreeHead]:
        """Signed heads with ``tree_size > after``, smallest first."""
        return self._heads(conn, after=after, limit=limit)

    def tree_head_count(self, conn: Connection) -> int:
        return int(conn.execute(select(func.count()).select_from(t.audit_tree_heads)).scalar_one())

    def _heads(
        self,
        conn: Connection,
        *,
        size: int | None = None,
        after: int | None = None,
        order_desc: bool = False,
        limit: int | None = None,
    ) -> list[TreeHead]:
        h, c = t.audit_tree_heads.c, t.certificates.c
        query = select(h.tree_size, h.root_hash, h.signed_at, h.signature, c.der).join(
            t.certificates, c.id == h.certificate_id
        )
        if size is not None:
            query = query.where(h.tree_size == size)
        if after is not None:
            query = query.where(h.tree_size > after)
        query = query.order_by(h.tree_size.desc() if order_desc else h.tree_size)
        if limit is not None:
            query = query.limit(limit)
        rows = conn.execute(query).all()
        if not rows:
            return []
        node_id = self._node_id(conn)
        return [
            TreeHead(
                node_id, int(r.tree_size), bytes(r.root_hash), r.signed_at, bytes(r.signature), bytes(r.der)
            )
            for r in rows
        ]

    @staticmethod
    def _node_id(conn: Connection) -> str:
        value = conn.execute(select(t.node_meta.c.value).where(t.node_meta.c.key == "node_id")).scalar()
        if value is None:
            raise NotFoundError("this database holds no node (node_meta has no node_id)")
        return str(value)

    # --- verification --------------------------------------------------------------------

    def verify(self, conn: Connection) -> VerificationReport:
        """Recompute the whole log from the entry bytes; raise AuditIntegrityError at the first mismatch."""
        state = self.tree_size(conn)
        node_id = self._node_id(conn)
        builder = merkle.TreeBuilder()
        heads = _HeadChecker(conn, node_id)
        heads.check_until(builder)
        subtrees = 0
        for batch in self._entry_batches(conn, state):
            stored = self._stored_window(conn, batch[0].idx, batch[-1].idx)
            for row in batch:
                index = builder.size
                if row.idx != index:
                    raise AuditIntegrityError(
                        f"audit entry {index} is missing (the next stored entry is {row.idx})",
                        entry_index=index,
                    )
                entry = bytes(row.entry)
                leaf = leaf_hash(entry)
                if leaf != bytes(row.leaf_hash):
                    raise AuditIntegrityError(
                        f"audit entry {index} was altered: its bytes no longer match its leaf hash",
                        entry_index=index,
                    )
                _check_columns(row, entry)
                for level, position, value in builder.append(leaf):
                    got = stored.get((level, position))
                    if got != value:
                        raise _subtree_mismatch(index, level, position, missing=got is None)
                    subtrees += 1
                heads.check_until(builder)
        if builder.size < state:
            raise AuditIntegrityError(
                f"audit entry {builder.size} is missing: the log says it has {state} entries "
                f"but only {builder.size} are stored",
                entry_index=builder.size,
            )
        self._check_tail(conn, state, heads)
        return VerificationReport(
            entries=builder.size, tree_heads=heads.count, subtrees=subtrees, root_hash=builder.root(),
            latest_head_size=heads.latest_size,
        )

    def _check_tail(self, conn: Connection, state: int, heads: _HeadChecker) -> None:
        """Nothing may lie beyond the end of the log: no entry, subtree or tree head.

        On PostgreSQL other processes may append while we verify; what they add past
        ``state`` is legitimate if the size read *after* these queries covers it.
        """
        e, n, h = t.audit_entries.c, t.audit_nodes.c, t.audit_tree_heads.c
        first_entry = conn.execute(select(func.min(e.idx)).where(e.idx >= state)).scalar()
        top = max(state.bit_length(), 1)
        beyond = or_(n.level >= top, *(and_(n.level == lv, n.idx >= state >> lv) for lv in range(top)))
        query = select(n.level, n.idx).where(beyond).order_by(n.level, n.idx).limit(_VERIFY_BATCH)
        rows = conn.execute(query)
        subtrees = [(int(r.level), int(r.idx)) for r in rows]
        head_size = conn.execute(select(func.max(h.tree_size))).scalar()
        end = self.tree_size(conn)
        if first_entry is not None and first_entry >= end:
            raise AuditIntegrityError(
                f"audit entry {first_entry} is beyond the recorded size of the log ({end} entries)",
                entry_index=int(first_entry),
            )
        for level, index in subtrees:
            if (index + 1) << level > end:
                raise AuditIntegrityError(
                    f"the stored subtree hash (level {level}, index {index}) covers entries beyond "
                    f"the end of the log ({end} entries)",
                    entry_index=end,
                )
        if head_size is not None and head_size > end:
            raise AuditIntegrityError(
                f"the signed tree head of size {head_size} covers entries the log no longer has "
                f"(it holds {end}); audit entry {end} is missing",
                entry_index=end,
            )

    @staticmethod
    def _entry_batches(conn: Connection, state: int) -> Iterator[Sequence[Any]]:
        e = t.audit_entries.c
        after = -1
        while True:
            rows = conn.execute(
                select(
                    e.idx, e.recorded_at, e.actor, e.action, e.object_type, e.object_id, e.entry, e.leaf_hash
                )
                .where(e.idx > after, e.idx < state)
                .order_by(e.idx)
                .limit(_VERIFY_BATCH)
            ).all()
            if not rows:
                return
            yield rows
            after = int(rows[-1].idx)

    @staticmethod
    def _stored_window(conn: Connection, first: int, last: int) -> dict[merkle.Subtree, bytes]:
        """Stored subtrees completed by leaves ``first..last``: per level, one index range."""
        n = t.audit_nodes.c
        ranges = []
        for level in range((last + 1).bit_length()):
            lo = math.ceil((first + 1) / (1 << level)) - 1
            hi = ((last + 1) >> level) - 1
            if lo <= hi:
                ranges.append(and_(n.level == level, n.idx >= lo, n.idx <= hi))
        if not ranges:
            return {}
        rows = conn.execute(select(n.level, n.idx, n.hash).where(or_(*ranges)))
        return {(int(r.level), int(r.idx)): bytes(r.hash) for r in rows}


def _subtree_mismatch(index: int, level: int, position: int, missing: bool) -> AuditIntegrityError:
    what = "is missing" if missing else "does not match the recomputation from the entry bytes"
    if level == 0:
        # The entry and its leaf hash agree, but not with the tree: both were rewritten together.
        return AuditIntegrityError(
            f"audit entry {index} was altered: its leaf in the stored Merkle tree "
            f"(level 0, index {index}) {what}",
            entry_index=index,
        )
    first, last = position << level, ((position + 1) << level) - 1
    return AuditIntegrityError(
        f"the stored subtree hash (level {level}, index {position}) over audit entries {first} to {last} "
        f"{what}",
        entry_index=first,
    )


def _parse(index: int, entry: bytes) -> AuditEntry:
    try:
        return AuditEntry.from_bytes(entry)
    except (ValueError, KeyError, TypeError, AttributeError):
        raise AuditIntegrityError(
            f"audit entry {index} is not valid entry JSON; run 'inkless audit verify'", entry_index=index
        ) from None


def _check_columns(row: Any, entry: bytes) -> None:
    """The searchable columns must say what the hashed bytes say, or listings would mislead."""
    index = int(row.idx)
    parsed = _parse(index, entry)
    expected = {
        "index": (parsed.index, index),
        "time": (parsed.at, row.recorded_at),
        "actor": (parsed.actor, row.actor),
        "action": (parsed.action, row.action),
        "object_type": (parsed.object_type, row.object_type),
        "object_id": (parsed.object_id, row.object_id),
    }
    for name, (signed, column) in expected.items():
        if signed != column:
            raise AuditIntegrityError(
                f"audit entry {index}: the stored {name} column ({column!r}) differs from the hashed entry "
                f"({signed!r})",
                entry_index=index,
            )


class _HeadChecker:
    """Walks the signed tree heads in size order alongside the recomputation."""

    def __init__(self, conn: Connection, node_id: str) -> None:
        self._conn = conn
        self._node_id = node_id
        self._after = -1
        self._pending: list[Any] = []
        self._exhausted = False
        self._certs: dict[int, tuple[bytes, str, str]] = {}
        self.count = 0
        self.latest_size: int | None = None
        self._fill()

    def _fill(self) -> None:
        h = t.audit_tree_heads.c
        self._pending = list(
            self._conn.execute(
                select(h.tree_size, h.root_hash, h.signed_at, h.signature, h.certificate_id)
                .where(h.tree_size > self._after)
                .order_by(h.tree_size)
                .limit(_VERIFY_BATCH)
            ).all()
        )
        # A short page means no more heads: do not ask again for every entry.
        self._exhausted = len(self._pending) < _VERIFY_BATCH
        self._pending.reverse()

    def _next(self) -> Any | None:
        if not self._pending and not self._exhausted:
            self._fill()
        return self._pending[-1] if self._pending else None

    def check_until(self, builder: merkle.TreeBuilder) -> None:
        """Check every head whose size equals the number of leaves appended so far."""
        while (row := self._next()) is not None and int(row.tree_size) <= builder.size:
            self._pending.pop()
            self._after = int(row.tree_size)
            self._check(row, builder.root())

    def _check(self, row: Any, root: bytes) -> None:
        size = int(row.tree_size)
        stored_root = bytes(row.root_hash)
        if stored_root != root:
            raise AuditIntegrityError(
                f"the signed tree head of size {size} does not match the log: its root {stored_root.hex()} "
                f"differs from {root.hex()} recomputed from entries 0 to {size - 1}"
            )
        der, purpose, owner = self._certificate(int(row.certificate_id))
        if purpose != CertPurpose.NODE.value or owner != self._node_id:
            raise AuditIntegrityError(
                f"the signed tree head of size {size} was signed with a certificate that is not "
                f"this node's ({purpose} {owner!r})"
            )
        head = TreeHead(self._node_id, size, stored_root, row.signed_at, bytes(row.signature), der)
        if not verify_tree_head_signature(head):
            raise AuditIntegrityError(f"the signature of the tree head of size {size} does not verify")
        self.count += 1
        self.latest_size = size

    def _certificate(self, cert_id: int) -> tuple[bytes, str, str]:
        if cert_id not in self._certs:
            c = t.certificates.c
            row = self._conn.execute(select(c.der, c.purpose, c.owner).where(c.id == cert_id)).first()
            if row is None:
                raise AuditIntegrityError(
                    f"a signed tree head names certificate {cert_id}, which does not exist"
                )
            self._certs[cert_id] = (bytes(row.der), str(row.purpose), str(row.owner))
        return self._certs[cert_id]
