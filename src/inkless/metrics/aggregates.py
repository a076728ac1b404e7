"""Signed weekly aggregates between nodes: counts only, for the government-wide table on a hub.

A node signs, per ISO week, its node-wide counts (no personal data, no content, no office or
remote numbers) and the procedure headline as a JWS with its node key (the same signed-document
format as its directory, see inkless.federation.documents). An administrator chooses the peers or
the hub it goes to; the hub accepts it only from a pinned peer, verifies the signature against
that peer's pinned CA, and keeps one aggregate per node and week: the same document again changes
nothing, a corrected one (issued later) replaces it and is audited, an older one is refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select, update

from inkless.audit.model import AuditEvent
from inkless.db.tables_metrics import metrics_aggregate_targets, metrics_aggregates
from inkless.errors import ConflictError, NotFoundError, PolicyError, ValidationError
from inkless.federation.httpsig import SignatureError
from inkless.metrics import rollup as r
from inkless.metrics.periods import WEEK_RE, parse_week

if TYPE_CHECKING:
    from inkless.app import Node

AGGREGATE_DOCUMENT = "inkless-metrics-aggregate"
AGGREGATE_PATH = "/federation/v1/metrics/aggregates"
MAX_AGGREGATE_BYTES = 64 * 1024
# The figures an aggregate carries: the roll-up metrics and the procedure headline, nothing else.
HEADLINE_KEYS = ("procedures", "fully_digital")


@dataclass(frozen=True)
class StoredAggregate:
    """One node's aggregate of one week, as the hub keeps it."""

    node_id: str
    week: str
    organisation: str
    issued_at: datetime
    counts: dict[str, int]
    received_at: datetime
    replaced: int

    @property
    def digital_share(self) -> float | None:
        from inkless.metrics.figures import digital_share

        return digital_share(self.counts)

    @property
    def procedures_digital_percent(self) -> float | None:
        total = self.counts.get("procedures", 0)
        return round(100.0 * self.counts.get("fully_digital", 0) / total, 1) if total else None


def aggregate_counts(node: Node, week: str) -> dict[str, int]:
    """The node-wide counts of ``week`` an aggregate carries: the roll-up metrics and the procedure headline."""
    assert node.metrics is not None
    report = node.metrics.report(parse_week(week))
    counts = {m: int(report["figures"][m]) for m in r.METRICS}
    counts.update(procedures=int(report["headline"]["procedures"]),
                  fully_digital=int(report["headline"]["fully_digital"]))
    return counts


def build_aggregate(node: Node, week: str, counts: dict[str, int] | None = None) -> str:
    """This node's signed aggregate of ``week`` (JWS), of ``counts`` when given (else computed now)."""
    from inkless.federation.documents import sign_document

    week = parse_week(week)
    assert node.peers is not None
    counts = counts if counts is not None else aggregate_counts(node, week)
    payload = {"type": AGGREGATE_DOCUMENT, "node_id": node.node_id, "organisation": node.settings.organisation,
               "week": week, "issued_at": node.clock.now().isoformat(), "counts": counts}
    key, cert = node.peers.node_key()  # type: ignore[attr-defined]
    return sign_document(payload, key, cert)


def _checked_counts(value: Any) -> dict[str, int]:
    allowed = set(r.METRICS) | set(HEADLINE_KEYS)
    if not isinstance(value, dict) or set(value) - allowed:
        raise ValidationError("the aggregate's counts hold unknown figures")
    out: dict[str, int] = {}
    for key, number in value.items():
        if not isinstance(number, int) or isinstance(number, bool) or not 0 <= number < 10**12:
            raise ValidationError(f"the aggregate's count {key!r} is not a whole number")
        out[key] = number
    return out


def receive_aggregate(node: Node, jws: str) -> tuple[str, StoredAggregate]:
    """Verify and keep an aggregate from a pinned peer; returns (stored | unchanged | replaced, aggregate).

    SignatureError for a bad signature or a signer not under the peer's pinned CA (tampered, forged);
    PolicyError for a node that is not a pinned peer; ConflictError for an older issue than the one kept.
    """
    from inkless.federation.documents import open_document, verify_document

    if len(jws) > MAX_AGGREGATE_BYTES:
        raise ValidationError(f"an aggregate is at most {MAX_AGGREGATE_BYTES} bytes")
    claimed, _cert = open_document(jws)
    node_id = str(claimed.get("node_id", ""))
    assert node.peers is not None
    if not node.peers.is_pinned(node_id):
        raise PolicyError(f"aggregates are accepted only from pinned peers; {node_id!r} is not one")
    ca = node.peers.ca_certificate(node_id)
    now = node.clock.now()
    payload = verify_document(jws, ca, now, AGGREGATE_DOCUMENT)
    week = str(payload.get("week", ""))
    if not WEEK_RE.match(week):
        raise ValidationError(f"the aggregate's week {week!r} is not an ISO week")
    try:
        issued = datetime.fromisoformat(str(payload["issued_at"]))
    except (KeyError, ValueError):
        raise ValidationError("the aggregate has no valid issued_at") from None
    if issued.tzinfo is None or issued > now + timedelta(minutes=10):
        raise ValidationError("the aggregate's issued_at is in the future or has no zone")
    counts = _checked_counts(payload.get("counts"))
    organisation = str(payload.get("organisation", ""))[:200]
    a = metrics_aggregates.c
    with node.db.begin() as conn:
        row = conn.execute(select(metrics_aggregates).where(a.node_id == node_id, a.week == week)).first()
        if row is not None and row.jws == jws:
            outcome = "unchanged"
        elif row is not None and issued <= row.issued_at:
            raise ConflictError(f"an aggregate of {node_id} for {week} issued at {row.issued_at.isoformat()} "
                                "is already kept; only a later (corrected) one replaces it")
        else:
            values = {"organisation": organisation, "issued_at": issued, "counts": json.dumps(counts, sort_keys=True),
                      "jws": jws, "received_at": now}
            if row is None:
                conn.execute(insert(metrics_aggregates).values(node_id=node_id, week=week, replaced=0, **values))
                outcome = "stored"
            else:
                conn.execute(update(metrics_aggregates).where(a.node_id == node_id, a.week == week)
                             .values(replaced=row.replaced + 1, **values))
                outcome = "replaced"
            node.audit.record(conn, AuditEvent(
                actor=node_id, action=f"metrics.aggregate_{outcome}", object_type="aggregate",
                object_id=f"{node_id}/{week}", details={"issued_at": issued.isoformat(),
                                                        "before": row.counts if row is not None else None}), at=now)
    return outcome, aggregate(node, node_id, week)


def aggregate(node: Node, node_id: str, week: str) -> StoredAggregate:
    a = metrics_aggregates.c
    with node.db.read() as conn:
        row = conn.execute(select(metrics_aggregates).where(a.node_id == node_id, a.week == week)).first()
    if row is None:
        raise NotFoundError(f"no aggregate of {node_id} for {week}")
    return _stored(row)


def _stored(row: Any) -> StoredAggregate:
    return StoredAggregate(row.node_id, row.week, row.organisation, row.issued_at, json.loads(row.counts),
                           row.received_at, row.replaced)


def government_table(node: Node, week: str, weeks: int = 8) -> dict[str, Any]:
    """The hub's table: every node (ministry) × the ``weeks`` weeks up to ``week``, and who is late."""
    from inkless.metrics.periods import weeks_back

    week = parse_week(week)
    columns = weeks_back(week, weeks)
    a = metrics_aggregates.c
    with node.db.read() as conn:
        rows = conn.execute(select(metrics_aggregates).where(a.week.in_(columns))).all()
        senders = {x for (x,) in conn.execute(select(a.node_id).distinct())}
    assert node.peers is not None
    expected = senders | {p.node_id for p in node.peers.all()}  # type: ignore[attr-defined]
    cells: dict[str, dict[str, StoredAggregate]] = {}
    names: dict[str, str] = {}
    for row in rows:
        stored = _stored(row)
        cells.setdefault(stored.node_id, {})[stored.week] = stored
        names[stored.node_id] = stored.organisation
    late = sorted(n for n in expected if week not in cells.get(n, {}))
    table = []
    for node_id in sorted(expected):
        table.append({
            "node_id": node_id, "organisation": names.get(node_id, ""),
            "weeks": {w: ({"digital_share": c.digital_share, "fax_pages": c.counts.get(r.FAX_IN_PAGES, 0)
                           + c.counts.get(r.FAX_OUT_PAGES, 0), "procedures_digital": c.procedures_digital_percent,
                           "replaced": c.replaced} if (c := cells.get(node_id, {}).get(w)) else None)
                      for w in columns},
        })
    return {"week": week, "weeks": columns, "nodes": table, "late": late}


# --- the sending side: targets (sending itself: inkless.metrics.aggregate_sends) ---------------------

def add_target(node: Node, node_id: str, actor: str) -> None:
    assert node.peers is not None
    if not node.peers.is_pinned(node_id):
        raise NotFoundError(f"{node_id!r} is not a pinned peer: pin it first ('inkless peer add')")
    with node.db.begin() as conn:
        if conn.execute(select(metrics_aggregate_targets).where(metrics_aggregate_targets.c.node_id == node_id)
                        ).first():
            raise ConflictError(f"aggregates already go to {node_id}")
        conn.execute(insert(metrics_aggregate_targets).values(node_id=node_id, added_by=actor,
                                                               added_at=node.clock.now()))
        node.audit.record(conn, AuditEvent(actor=actor, action="metrics.aggregate_target_added",
                                           object_type="peer", object_id=node_id), at=node.clock.now())


def remove_target(node: Node, node_id: str, actor: str) -> None:
    with node.db.begin() as conn:
        if not conn.execute(delete(metrics_aggregate_targets)
                            .where(metrics_aggregate_targets.c.node_id == node_id)).rowcount:
            raise NotFoundError(f"aggregates do not go to {node_id}")
        node.audit.record(conn, AuditEvent(actor=actor, action="metrics.aggregate_target_removed",
                                           object_type="peer", object_id=node_id), at=node.clock.now())


def targets(node: Node) -> list[str]:
    with node.db.read() as conn:
        return sorted(x for (x,) in conn.execute(select(metrics_aggregate_targets.c.node_id)))


__all__ = ["SignatureError", "aggregate_counts", "build_aggregate", "government_table", "receive_aggregate"]
