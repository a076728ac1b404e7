"""The outbox passes: claim due deliveries, hand each envelope to its office (local or on a pinned peer),
keep the receipt, retry with backoff, expire."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, Row, select, update

from inkless.audit.model import AuditEvent
from inkless.db import tables as t
from inkless.db.tables_delivery import messages, outbox
from inkless.delivery.base import MAX_ERROR_CHARS, log
from inkless.delivery.model import (
    PassResult,
)
from inkless.delivery.outbox import (
    PENDING,
    backoff_delay,
    claim_due,
    faxed_first,
)
from inkless.delivery.receipt import verify_receipt
from inkless.delivery.receiving import Receiving
from inkless.errors import (
    ConflictError,
    DeliveryRejectedError,
    EnvelopeError,
    InklessError,
    PeerUnreachableError,
)
from inkless.metrics import rollup
from inkless.streams import StoredBody


class OutboxPasses(Receiving):
    """The worker side of the delivery service."""

    def deliver_due(self, limit: int = 20) -> PassResult:
        """One outbox pass: claim due rows (urgent first) and try each once."""
        now = self._clock.now()
        with self._db.begin() as conn:
            rows = claim_due(conn, now, limit, self._lease())
        counts = {"delivered": 0, "retrying": 0, "expired": 0, "rejected": 0}

        def attempt(row: Row[Any]) -> str | None:
            try:
                return self._attempt(row)
            except Exception:  # never let one row stop the pass; the lease brings it back
                log.exception("delivery of %s to %s failed unexpectedly", row.message_id, row.recipient)
                return None

        # Several deliveries in flight: while one waits for its peer's answer, the next is read, sent and
        # its receipt checked (the rows were claimed in priority order and are started in that order).
        workers = min(self._settings.delivery_concurrency, len(rows))
        if workers > 1:
            with ThreadPoolExecutor(workers, thread_name_prefix="inkless-delivery") as pool:
                states = list(pool.map(attempt, rows))
        else:
            states = [attempt(row) for row in rows]
        for state in states:
            if state is not None:
                counts[state] = counts.get(state, 0) + 1
        return PassResult(**counts)

    def claim(self, limit: int = 20) -> list[tuple[str, str]]:
        """Claim due rows without delivering them (for tests of the claim itself); returns (id, recipient)."""
        with self._db.begin() as conn:
            rows = claim_due(conn, self._clock.now(), limit, self._lease())
        return [(r.message_id, r.recipient) for r in rows]

    def _lease(self) -> timedelta:
        # A worker killed mid-pass leaves its claimed rows to the others once the lease runs out.
        return timedelta(seconds=self._settings.delivery_lease_seconds)

    def _attempt(self, row: Row[Any]) -> str:
        now = self._clock.now()
        if now >= row.expires_at:
            reason = (
                f"not delivered within {self._settings.delivery_expiry_hours} h "
                f"after {row.attempts} attempts; last error: {row.last_error or 'none'}"
            )
            return self._finish(row, "expired", reason, "message.expired")
        with self._db.read() as conn:
            msg = conn.execute(select(messages).where(messages.c.id == row.message_id)).one()
            office = conn.execute(select(t.offices.c.code).where(t.offices.c.id == msg.office_id)).scalar_one()
        sender = f"{office}@{self.node_id}"
        try:
            digest = msg.envelope_sha256
            envelope = StoredBody(msg.envelope_size, digest, lambda: self._blobs.stream(digest))
            if row.node_id == self.node_id:
                try:
                    receipt = self.receive(envelope, sender, row.recipient)
                except (EnvelopeError, ConflictError) as exc:
                    raise DeliveryRejectedError(str(exc), reason=str(exc)) from None
            else:
                transport = self._transport()
                if transport is None:
                    raise PeerUnreachableError(
                        "no federation transport on this node to reach {node_id}", node_id=row.node_id
                    )
                faxed = faxed_first(row)
                # Only when the fax went out: fakes and older transports keep their five-argument deliver().
                extra = {"fax_first": faxed} if faxed is not None else {}
                receipt = transport.deliver(row.node_id, sender, row.recipient, row.message_id, envelope, **extra)
            checked = verify_receipt(
                receipt,
                self._trust_anchor(row.node_id),
                self._clock.now(),
                message_id=row.message_id,
                envelope_sha256=msg.envelope_sha256,
                recipient=row.recipient,
            )
        except DeliveryRejectedError as exc:
            return self._finish(row, "rejected", exc.reason or str(exc), "message.rejected")
        except InklessError as exc:
            return self._retry(row, str(exc), getattr(exc, "retry_after", None))
        except Exception as exc:  # an unexpected failure is still a visible, retried state
            return self._retry(row, f"{type(exc).__name__}: {exc}", None)
        done = self._clock.now()

        def store(conn: Connection) -> None:
            result = conn.execute(
                update(outbox)
                .where(outbox.c.id == row.id, outbox.c.state.in_(PENDING))
                .values(
                    state="delivered",
                    receipt=receipt,
                    received_at=checked.facts.received_at,
                    delivered_at=done,
                    attempts=row.attempts,
                    last_error=None,
                    updated_at=done,
                )
            )
            if result.rowcount:
                rollup.add(conn, rollup.delivered(msg.created_at, done))
                self._audit.record(
                    conn,
                    AuditEvent(
                        actor="system",
                        action="message.delivered",
                        object_type="message",
                        object_id=row.message_id,
                        digests={"receipt": hashlib.sha256(receipt).hexdigest()},
                        details={"recipient": row.recipient, "attempts": row.attempts},
                    ),
                    at=done,
                )

        # Receipts coming back together are stored in one transaction (one commit, one fsync).
        self._db.together(store)
        return "delivered"

    def _retry(self, row: Row[Any], error: str, retry_after: float | None) -> str:
        now = self._clock.now()
        attempts = row.attempts  # counted when the row was claimed
        delay = backoff_delay(
            attempts, self._settings.delivery_backoff_base_seconds, self._settings.delivery_backoff_cap_seconds
        )
        if retry_after:
            delay = max(delay, float(retry_after))
        next_at = min(now + timedelta(seconds=delay), row.expires_at)
        error = error[:MAX_ERROR_CHARS]
        with self._db.begin() as conn:
            result = conn.execute(
                update(outbox)
                .where(outbox.c.id == row.id, outbox.c.state.in_(PENDING))
                .values(state="retrying", attempts=attempts, next_attempt_at=next_at, last_error=error, updated_at=now)
            )
            if result.rowcount:
                self._audit.record(
                    conn,
                    AuditEvent(
                        actor="system",
                        action="message.delivery_failed",
                        object_type="message",
                        object_id=row.message_id,
                        details={
                            "recipient": row.recipient,
                            "attempts": attempts,
                            "error": error,
                            "next_attempt_at": next_at.isoformat(),
                        },
                    ),
                    at=now,
                )
        return "retrying"

    def _finish(self, row: Row[Any], state: str, reason: str, action: str) -> str:
        now = self._clock.now()
        reason = reason[:MAX_ERROR_CHARS]
        with self._db.begin() as conn:
            result = conn.execute(
                update(outbox)
                .where(outbox.c.id == row.id, outbox.c.state.in_(PENDING))
                .values(state=state, last_error=reason, updated_at=now)
            )
            if result.rowcount:
                self._audit.record(
                    conn,
                    AuditEvent(
                        actor="system",
                        action=action,
                        object_type="message",
                        object_id=row.message_id,
                        details={"recipient": row.recipient, "reason": reason},
                    ),
                    at=now,
                )
        return state
