"""Receiving: an envelope for an office of this node is decrypted, verified, checked against the delivery
that brought it and stored durably with its signed receipt; deposits of faxes, intake and pickup replies."""

from __future__ import annotations

import hashlib
import io
import tempfile
import uuid
from collections.abc import Sequence
from datetime import UTC
from typing import Any, BinaryIO

from cryptography import x509
from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError as DBIntegrityError

from inkless.audit.model import AuditEvent
from inkless.db.tables_delivery import inbox
from inkless.delivery import envelope as env
from inkless.delivery.base import (
    MAX_ERROR_CHARS,
    PROCEDURE_RE,
    DeliveryBase,
    check_claimed_id,
    check_received_text,
    subject_context,
    thread_id_of,
)
from inkless.delivery.faxnote import FaxFirst
from inkless.delivery.outbox import (
    find_fax_copy,
)
from inkless.delivery.receipt import ReceiptFacts, make_receipt
from inkless.delivery.transport import split_address
from inkless.errors import (
    ConflictError,
    EnvelopeError,
    MessageIdMismatchError,
    NotFoundError,
    ValidationError,
)
from inkless.metrics import rollup
from inkless.pki.model import CertPurpose
from inkless.search.index import inbox_texts
from inkless.search.text import pdf_text
from inkless.streams import ChunkReader, StoredBody
from inkless.text import check_text


class Receiving(DeliveryBase):
    """The receiving side of the delivery service."""

    def receive(
        self,
        envelope: bytes | BinaryIO | StoredBody,
        sender_address: str,
        recipient_address: str,
        fax_first: FaxFirst | None = None,
        message_id: str | None = None,
        *,
        sha256: str | None = None,
    ) -> bytes:
        """Store an envelope for a local office durably and return the signed receipt (CMS DER).

        Idempotent: the same message id with the same envelope returns the same receipt and keeps
        one copy. Raises EnvelopeError (garbage, tampered, wrong recipient, bad or expired signer),
        ConflictError (same message id, different envelope) and MessageIdMismatchError (``message_id``,
        the id the delivery names, is not the one inside the signed envelope); all are audited.
        ``fax_first``: the sending node faxed this message before it could deliver it (kept on the
        inbox row). ``envelope`` may be a seekable file or a stored body: it is read in chunks, never held whole.
        ``sha256``: the hex digest of a seekable file's bytes, when the caller hashed them as they arrived
        (the federation endpoint does, for the Content-Digest); otherwise the file is read once more to hash it.
        """
        if isinstance(envelope, StoredBody):
            if not self._blobs.exists(envelope.sha256):
                # Read several times (opening, storing): a copy of the ciphertext in the data folder.
                with tempfile.TemporaryFile(dir=self._settings.data_dir, prefix="incoming-") as spool:
                    for chunk in envelope.chunks():
                        spool.write(chunk)
                    return self.receive(spool, sender_address, recipient_address, fax_first, message_id,
                                        sha256=envelope.sha256)
            # Already in this node's blob store (a delivery between two offices of this node): read from there,
            # verified by its address as it streams; nothing to copy and nothing to store again.
            stream: BinaryIO | StoredBody = envelope
            digest, size = envelope.sha256, envelope.size
        else:
            stream = io.BytesIO(envelope) if isinstance(envelope, bytes) else envelope
            if sha256 is None:
                digest, size = _digest_of(stream)
            else:
                digest, size = sha256, stream.seek(0, io.SEEK_END)
        try:
            return self._receive(stream, digest, size, sender_address, recipient_address, fax_first, message_id)
        except (EnvelopeError, ConflictError) as exc:
            replay = isinstance(exc, ConflictError) and not isinstance(exc, MessageIdMismatchError)
            action = "message.replay_refused" if replay else "message.refused"
            with self._db.begin() as conn:
                self._audit.record(
                    conn,
                    AuditEvent(
                        actor=sender_address[:128],
                        action=action,
                        object_type="office",
                        object_id=recipient_address[:128],
                        digests={"envelope": digest},
                        details={"reason": str(exc)[:MAX_ERROR_CHARS], "size": size},
                    ),
                )
            raise

    def _receive(
        self,
        envelope: BinaryIO | StoredBody,
        digest: str,
        size: int,
        sender_address: str,
        recipient_address: str,
        fax_first: FaxFirst | None,
        claimed_id: str | None,
    ) -> bytes:
        limit = self._settings.max_envelope_bytes
        if size > limit:
            raise EnvelopeError(
                "the envelope is {count:,} bytes, over this node's limit of {limit:,}", count=size, limit=limit
            )
        try:
            code, node = split_address(recipient_address)
            sender_code, sender_node = split_address(sender_address)
        except ValidationError as exc:
            raise EnvelopeError(str(exc)) from None
        if node != self.node_id:
            raise EnvelopeError(
                "recipient {recipient_address} is not an office of node {node_id}",
                recipient_address=recipient_address,
                node_id=self.node_id,
            )
        try:
            office = self._directory.office(code)
        except NotFoundError:
            raise EnvelopeError(
                "recipient {recipient_address}: no such office on node {node_id}",
                recipient_address=recipient_address,
                node_id=self.node_id,
            ) from None

        # Fast path for a repeated delivery: same office, same bytes → the receipt we already gave.
        # Lookups read without the write lock: envelopes arriving together are opened side by side.
        with self._db.read() as conn:
            row = conn.execute(
                select(inbox).where(
                    inbox.c.office_id == office.id, inbox.c.envelope_sha256 == digest, inbox.c.sender == sender_address
                )
            ).first()
        if row is not None and row.receipt is not None:
            check_claimed_id(claimed_id, row.message_id)
            return bytes(row.receipt)

        with self._db.read() as conn:
            key, cert = self._key(conn, CertPurpose.OFFICE_ENCRYPTION, office.code)
        # One pass, in bounded memory: decrypted, the signed content hashed and its MIME read (documents hashed).
        read = env.read_envelope(_reopen(envelope), cert, key)
        env.verify_read(
            read.signed,
            self._trust_anchor(sender_node),
            self._clock.now(),
            expected_signer=f"{sender_code}@{sender_node}",
            is_revoked=self._is_revoked if sender_node == self.node_id else None,
        )
        meta, docs = read.message()
        check_received_text(meta, docs)
        if meta.sender != sender_address:
            raise EnvelopeError(
                "the envelope says it is from {sender}, the delivery claims {sender_address}",
                sender=meta.sender,
                sender_address=sender_address,
            )
        if recipient_address not in meta.recipients:
            raise EnvelopeError(
                "the envelope is not addressed to {recipient_address}", recipient_address=recipient_address
            )
        try:
            uuid.UUID(meta.message_id)
        except ValueError:
            raise EnvelopeError("the message id is not a UUID") from None
        check_claimed_id(claimed_id, meta.message_id)
        return self._store_received(
            office.id,
            office.code,
            meta,
            envelope,
            digest,
            size,
            len(docs),
            sender_address,
            source="inkless",
            authenticated=True,
            fax_first=fax_first,
        )

    def _store_received(
        self,
        office_id: int,
        office_code: str,
        meta: env.MessageMetadata,
        envelope: BinaryIO | StoredBody | None,
        digest: str,
        size: int,
        document_count: int,
        sender: str,
        source: str,
        authenticated: bool,
        fax_first: FaxFirst | None = None,
        search_texts: Sequence[str] = (),
    ) -> bytes:
        """Store the inbox row (and the envelope from ``envelope``, unless it is None: stored already) and sign
        the receipt; ``digest`` and ``size`` are the envelope's."""
        recipient = f"{office_code}@{self.node_id}"
        # A peer's procedure code is kept only when it is well-formed: counted, never trusted further.
        procedure = meta.procedure_code if meta.procedure_code and PROCEDURE_RE.match(meta.procedure_code) else None
        with self._db.read() as conn:
            existing = conn.execute(
                select(inbox).where(inbox.c.message_id == meta.message_id, inbox.c.office_id == office_id)
            ).first()
        if existing is not None and existing.envelope_sha256 != digest:
            raise ConflictError(
                f"message {meta.message_id} was already received for {recipient} with a different envelope: "
                "replay or tampering refused"
            )
        if existing is None:
            # Durable first: the blob is fsynced, then the row commits with its receipt; the receipt leaves
            # only after that commit. A kill -9 before it leaves nothing to answer for (the sender retries).
            if envelope is not None and not self._blobs.exists(digest):
                if self._blobs.put_stream(_reopen(envelope)) != digest:
                    raise EnvelopeError("the envelope changed while it was being stored")
            now = self._clock.now().astimezone(UTC)
            # Looked up before the write transaction (a second connection inside it waits behind the lock);
            # the receipt is signed before it too, so that row and receipt commit together, in one transaction
            # that holds the write lock only for the inserts.
            sender_name = self._office_name(sender)
            receipt = (self._sign_receipt(office_code, ReceiptFacts(meta.message_id, digest, recipient, now))
                       if authenticated else None)

            def store(conn: Connection) -> None:
                inserted = conn.execute(
                    insert(inbox).values(
                        message_id=meta.message_id,
                        office_id=office_id,
                        sender=sender[:200],
                        classification=meta.classification,
                        priority=meta.priority,
                        subject_enc=self._box.seal(meta.subject.encode(), subject_context(meta.message_id)),
                        envelope_sha256=digest,
                        envelope_size=size,
                        document_count=document_count,
                        source=source,
                        authenticated=authenticated,
                        received_at=now,
                        receipt=receipt,
                        fax_first=fax_first.header() if fax_first else None,
                        fax_copy_message_id=find_fax_copy(conn, office_id, fax_first) if fax_first else None,
                        procedure_code=procedure,
                        reply_to=thread_id_of(meta.reply_to),
                    )
                )
                key = inserted.inserted_primary_key
                assert key is not None  # inbox rows have an integer key
                self.search_index.add_inbox(
                    conn,
                    int(key[0]),
                    inbox_texts(meta.subject, sender, sender_name, "\n".join(search_texts) or None),
                )
                rollup.add(conn, rollup.message_in(now, office_code, procedure, source))
                self._audit.record(
                    conn,
                    AuditEvent(
                        actor=sender[:128],
                        action="message.received",
                        object_type="message",
                        object_id=meta.message_id,
                        digests={"envelope": digest},
                        details={
                            "recipient": recipient,
                            "classification": meta.classification,
                            "source": source,
                            "authenticated": authenticated,
                        },
                    ),
                    at=now,
                )
                for listener in self.on_received:
                    listener(conn, office_id, office_code, now)

            try:
                # Envelopes arriving together share one transaction (one commit, one fsync); each thread
                # returns only once it has committed.
                self._db.together(store)
                return receipt or b""
            except DBIntegrityError:
                # A concurrent delivery of the same message stored it first: fall through to its row.
                pass
        with self._db.read() as conn:
            row = conn.execute(
                select(inbox).where(inbox.c.message_id == meta.message_id, inbox.c.office_id == office_id)
            ).one()
        if row.envelope_sha256 != digest:
            raise ConflictError(
                "message {message_id} was already received with a different envelope", message_id=meta.message_id
            )
        if row.receipt is not None:
            return bytes(row.receipt)
        if not authenticated:
            return b""
        # A row stored without its receipt (by an earlier version, which signed it in a second transaction).
        receipt = self._sign_receipt(office_code, ReceiptFacts(meta.message_id, digest, recipient, row.received_at))
        with self._db.begin() as conn:
            conn.execute(update(inbox).where(inbox.c.id == row.id, inbox.c.receipt.is_(None)).values(receipt=receipt))
            stored = conn.execute(select(inbox.c.receipt).where(inbox.c.id == row.id)).scalar_one()
        return bytes(stored)

    def _sign_receipt(self, office_code: str, facts: ReceiptFacts) -> bytes:
        """The receipt for ``facts``, signed with the receiving office's signing key."""
        with self._db.read() as conn:
            key, cert = self._key(conn, CertPurpose.OFFICE_SIGNING, office_code)
            ca = x509.load_der_x509_certificate(self._pki.ca_certificate(conn).der)
        return make_receipt(facts, key, cert, [ca])

    def deposit_external(
        self,
        office_code: str,
        documents: list[tuple[str, bytes, str]],
        source: str,
        facts: dict[str, Any],
        subject: str,
        classification: int = 1,
        procedure_code: str | None = None,
        reply_to: str | None = None,
    ) -> str:
        """Put documents that arrived outside inkless (an inbound fax, the intake window, files an e-mail
        recipient sent back through a pickup link) into an office's inbox; ``reply_to`` threads a deposit
        into the conversation of a message the office sent.

        They are sealed like any message — signed by the receiving office's own key, which only
        attests that this node deposited them, and encrypted to the office — and marked
        unauthenticated: nobody vouches for the sender. ``facts`` (e.g. the calling fax number)
        travel inside the envelope.
        """
        if source not in ("fax", "intake", "pickup"):
            raise ValidationError("unknown source {source!r} (expected 'fax', 'intake' or 'pickup')", source=source)
        if not documents:
            raise ValidationError("a deposit needs at least one document")
        if not 0 <= classification <= 3:
            raise ValidationError("classification must be 0-3")
        if procedure_code is not None and not PROCEDURE_RE.match(procedure_code):
            raise ValidationError(f"procedure code {procedure_code!r} is not valid")
        office = self._directory.office(office_code)
        self.check_size(sum(len(d[1]) for d in documents))
        message_id = str(uuid.uuid4())
        now = self._clock.now()
        origin = str(facts.get("from") or "unknown")
        sender = f"{source}:{origin}"[:200]
        address = f"{office.code}@{self.node_id}"
        meta = env.MessageMetadata(
            message_id=message_id,
            sender=sender,
            recipients=(address,),
            subject=check_text(subject, "subject").strip()[:200] or source,
            classification=classification,
            priority="normal",
            created_at=now,
            source=source,
            facts={str(k): v for k, v in facts.items()},
            procedure_code=procedure_code,
            reply_to=reply_to,
        )
        docs = [env.Document(name, ctype, data) for name, data, ctype in documents]
        digest, size = self._seal(meta, docs, office.code, [], [])
        # The text layer of the deposited PDFs (a fax's OCR) and the sender's station id make it searchable.
        texts = [str(facts.get("tsi") or "")] + [
            pdf_text(data) for _name, data, ctype in documents if ctype == "application/pdf"
        ]
        self._store_received(
            office.id,
            office.code,
            meta,
            None,
            digest,
            size,
            len(docs),
            sender,
            source=source,
            authenticated=False,
            search_texts=[t for t in texts if t.strip()],
        )
        return message_id


def _reopen(envelope: BinaryIO | StoredBody) -> BinaryIO:
    """The envelope from its first byte: a file rewound, a stored body read afresh."""
    if isinstance(envelope, StoredBody):
        return ChunkReader(envelope.chunks()).as_binary()
    envelope.seek(0)
    return envelope


def _digest_of(stream: BinaryIO) -> tuple[str, int]:
    """Hex SHA-256 and size of everything in a seekable stream, read in chunks."""
    stream.seek(0)
    sha = hashlib.sha256()
    size = 0
    for chunk in iter(lambda: stream.read(env.CHUNK), b""):
        sha.update(chunk)
        size += len(chunk)
    return sha.hexdigest(), size
