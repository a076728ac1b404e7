"""The delivery service: send, receive, inbox, open, reply, forward, status, export, outbox passes.

Local and remote recipients take the same path: the outbox worker hands every envelope to
:meth:`DeliveryService.receive` — directly for an office of this node, through the peer's
federation endpoint (which calls ``receive`` there) for a remote one.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from cryptography import x509
from sqlalchemy import Connection, Row, delete, insert, select, update
from sqlalchemy.exc import IntegrityError as DBIntegrityError

from inkless.audit.model import AuditEvent, AuditRecorder
from inkless.blobs import BlobStore
from inkless.clock import Clock
from inkless.config import Settings
from inkless.db import tables as t
from inkless.db.engine import Database
from inkless.db.tables_delivery import distribution_list_members, distribution_lists, inbox, messages, outbox
from inkless.delivery import envelope as env
from inkless.delivery.faxnote import FaxFirst, note, parse_fax_first
from inkless.delivery.model import (
    OUTBOX_STATES,
    DistributionList,
    InboxItem,
    OpenedMessage,
    OutboxRow,
    PassResult,
    ReceiptInfo,
    RecipientStatus,
    SentMessage,
)
from inkless.delivery.outbox import (
    PENDING,
    PRIORITY_RANK,
    RANK_PRIORITY,
    backoff_delay,
    claim_due,
    faxed_first,
    find_fax_copy,
)
from inkless.delivery.policy import Actor, Recipient, check_forward_classification, check_send, check_view
from inkless.delivery.receipt import ReceiptFacts, make_receipt, verify_receipt
from inkless.delivery.transport import PeerLookup, PeerTransport, split_address
from inkless.directory.service import DirectoryService
from inkless.errors import (
    ConflictError,
    DeliveryRejectedError,
    EnvelopeError,
    InklessError,
    MessageIdMismatchError,
    MessageTooLargeError,
    NotFoundError,
    PeerUnreachableError,
    PolicyError,
    ValidationError,
)
from inkless.metrics import memory, rollup
from inkless.pki.ca import NodeCA
from inkless.pki.keystore import SecretBox
from inkless.pki.model import CertPurpose
from inkless.search.index import SearchIndex, inbox_texts, sent_texts, tokens_of
from inkless.search.text import pdf_text
from inkless.text import UnsafeTextError, check_text

if TYPE_CHECKING:
    from inkless.pickup.model import NewPickup


class EmailRecipients(Protocol):
    """Secure pickup as sending uses it (:class:`inkless.pickup.service.PickupService`)."""

    @property
    def enabled(self) -> bool: ...

    def check(self, actor: Actor, office_code: str, classification: int, recipients: Sequence[NewPickup],
              confirmed: bool) -> None: ...

    def record(self, conn: Connection, *, message_id: str, office_id: int, office_code: str, sender_login: str,
               subject: str, recipients: Sequence[NewPickup], now: datetime) -> list[int]: ...

log = logging.getLogger("inkless.delivery")

LIST_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
PROCEDURE_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# CMS and base64 add about a third to the documents; refuse envelopes far beyond the limit early.
ENVELOPE_OVERHEAD = 1.5
MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class NewDocument:
    """A document handed to :meth:`DeliveryService.send`."""

    name: str
    data: bytes
    content_type: str = "application/pdf"


def _subject_context(message_id: str) -> str:
    return f"inkless/subject/{message_id}"


class DeliveryService:
    """Sends and receives CMS envelopes between offices (local or on pinned peers)."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        blobs: BlobStore,
        pki: NodeCA,
        directory: DirectoryService,
        audit: AuditRecorder,
        box: SecretBox,
        clock: Clock,
        transport: Callable[[], PeerTransport | None] = lambda: None,
        peers: Callable[[], PeerLookup | None] = lambda: None,
    ) -> None:
        self._settings = settings
        self._db = db
        self.database = db
        self.directory = directory
        self._blobs = blobs
        self._pki = pki
        self._directory = directory
        self._audit = audit
        self._box = box
        self._clock = clock
        self._transport = transport
        self._peers = peers
        self.node_id = settings.node_id
        self._key_cache: dict[int, tuple[Any, x509.Certificate]] = {}
        # Keyed gram tokens of subjects, addresses and fax text, written with the rows they describe.
        self.search_index = SearchIndex(tokens_of(box))
        self._cache_lock = threading.Lock()
        # Secure pickup (e-mail recipients), set by the composition root when the node has it.
        self.pickup: EmailRecipients | None = None
        # Called in the transaction that stores a new inbox item: (conn, office id, office code, time).
        self.on_received: list[Callable[[Connection, int, str, datetime], None]] = []

    # --- actors --------------------------------------------------------------------------

    def actor(self, login: str | None) -> Actor:
        """The acting user by login, or the node operator for None."""
        if login is None:
            return Actor.operator()
        user = self._directory.user(login)
        if not user.active:
            raise PolicyError("user {login} is deactivated", login=login)
        return Actor.of(user)

    # --- sending -------------------------------------------------------------------------

    def send(
        self,
        sender_login: str | None,
        from_office: str,
        to: Sequence[str],
        list_names: Sequence[str],
        subject: str,
        documents: Sequence[NewDocument],
        classification: int = 0,
        priority: str = "normal",
        procedure_code: str | None = None,
        reply_to: str | None = None,
        *,
        confirm: bool = False,
        mobiles: Mapping[str, str] | None = None,
    ) -> str:
        """Encrypt, sign and queue a message for every recipient; returns the message id.

        Addresses with a dotted domain (``taro@example.co.jp``) are e-mail recipients: they get a pickup
        link (see inkless.pickup), classification 1 only with ``confirm``, never 2 or 3. ``mobiles`` maps
        an e-mail address to a mobile number (the clerk may then read the code out on the phone).
        """
        actor = self.actor(sender_login)
        return self._send(actor, from_office, to, list_names, subject, documents, classification, priority,
                          procedure_code, reply_to, confirm=confirm, mobiles=mobiles)

    def _send(
        self,
        actor: Actor,
        from_office: str,
        to: Sequence[str],
        list_names: Sequence[str],
        subject: str,
        documents: Sequence[NewDocument],
        classification: int,
        priority: str,
        procedure_code: str | None,
        reply_to: str | None,
        *,
        confirm: bool = False,
        mobiles: Mapping[str, str] | None = None,
    ) -> str:
        subject = check_text(subject, "subject").strip()
        if not subject or len(subject) > 200:
            raise ValidationError("the subject must be 1-200 characters without control characters")
        if not 0 <= classification <= 3:
            raise ValidationError(
                "classification {classification} must be 0-3 (0 公開, 1 内部, 2 秘, 3 極秘)",
                classification=classification)
        if priority not in PRIORITY_RANK:
            raise ValidationError("priority {priority!r} must be normal or urgent", priority=priority)
        if procedure_code is not None and not PROCEDURE_RE.match(procedure_code):
            raise ValidationError("the procedure code must be 1-64 letters, digits, '.', '_' or '-'")
        if not documents:
            raise ValidationError("a message needs at least one document")
        names = set()
        documents = [NewDocument(check_text(d.name, "document name"), d.data, d.content_type) for d in documents]
        for doc in documents:
            if not doc.name or "/" in doc.name or "\\" in doc.name or doc.name in (".", ".."):
                raise ValidationError("document name {doc_name!r} is not a plain file name", doc_name=doc.name)
            if doc.name in names:
                raise ValidationError("two documents are named {doc_name!r}", doc_name=doc.name)
            names.add(doc.name)
        self.check_size(sum(len(d.data) for d in documents))
        office = self._directory.office(from_office)
        from inkless.pickup.model import NewPickup, check_mobile, split_recipients

        office_to, email_to = split_recipients(to)
        recipients = self._resolve(office_to, list_names) if office_to or list_names or not email_to else []
        check_send(actor, office.code, classification, recipients)
        new_pickups = [NewPickup(a, check_mobile((mobiles or {}).get(a))) for a in dict.fromkeys(email_to)]
        if new_pickups:
            if self.pickup is None or not self.pickup.enabled:
                raise ValidationError("this node sends no e-mail (smtp_url is not set): "
                                      "it cannot send to an e-mail address")
            self.pickup.check(actor, office.code, classification, new_pickups, confirm)

        message_id = str(uuid.uuid4())
        now = self._clock.now()
        sender = f"{office.code}@{self.node_id}"
        meta = env.MessageMetadata(
            message_id=message_id, sender=sender, recipients=tuple(r.address for r in recipients),
            subject=subject, classification=classification, priority=priority, created_at=now,
            procedure_code=procedure_code, reply_to=reply_to,
        )
        docs = [env.Document(d.name, d.content_type, d.data) for d in documents]
        envelope = self._seal(meta, docs, office.code, [r for r in recipients if not r.local],
                              [r.office for r in recipients if r.local])
        digest = self._blobs.put(envelope)
        expires = now + timedelta(hours=self._settings.delivery_expiry_hours)
        with self._db.begin() as conn:
            conn.execute(insert(messages).values(
                id=message_id, office_id=office.id, sender_login=actor.login, classification=classification,
                priority=priority, procedure_code=procedure_code, reply_to=reply_to,
                subject_enc=self._box.seal(subject.encode(), _subject_context(message_id)),
                envelope_sha256=digest, envelope_size=len(envelope), document_count=len(docs), created_at=now,
            ))
            rollup.add(conn, rollup.message_out(now, office.code, procedure_code))
            if procedure_code:
                # The next message of the office to an address typed here starts with the same procedure chosen
                # (members of a distribution list are not counterparts the clerk chose).
                memory.remember(conn, office.id, [memory.address_counterpart(a) for a in [*office_to, *email_to]],
                                procedure_code, actor.login, now)
            if recipients:
                conn.execute(insert(outbox), [
                    {"message_id": message_id, "recipient": r.address, "node_id": r.node_id,
                     "priority": PRIORITY_RANK[priority], "state": "queued", "attempts": 0, "next_attempt_at": now,
                     "last_error": None, "expires_at": expires, "updated_at": now}
                    for r in recipients
                ])
            if new_pickups:
                assert self.pickup is not None
                self.pickup.record(conn, message_id=message_id, office_id=office.id, office_code=office.code,
                                   sender_login=actor.login, subject=subject, recipients=new_pickups, now=now)
            self.search_index.add_sent(conn, message_id, sent_texts(
                subject, [r.address for r in recipients],
                [n for n in (self._office_name(r.address) for r in recipients) if n], actor.login))
            self._audit.record(conn, AuditEvent(
                actor=actor.login, action="message.sent", object_type="message", object_id=message_id,
                digests={"envelope": digest},
                details={"from": sender, "recipients": [r.address for r in recipients],
                         "email_recipients": len(new_pickups),
                         "classification": classification, "priority": priority,
                         "documents": len(docs), "size": len(envelope), "reply_to": reply_to},
            ), at=now)
        return message_id

    def check_size(self, size: int) -> None:
        """MessageTooLargeError if ``size`` bytes of documents exceed the node's limit."""
        limit = self._settings.max_message_bytes
        if size > limit:
            raise MessageTooLargeError(
                f"the message is {size:,} bytes; this node accepts at most {limit:,} bytes "
                f"(max_message_bytes)", limit=limit,
            )

    def _resolve(self, to: Sequence[str], list_names: Sequence[str]) -> list[Recipient]:
        addresses: list[str] = []
        for a in to:
            if a.strip():
                addresses.append(a.strip())
        for name in list_names:
            addresses.extend(self.distribution_list(name).addresses)
        if not addresses:
            raise ValidationError("a message needs at least one recipient (--to or --list)")
        seen: dict[str, Recipient] = {}
        peers = self._peers()
        for address in addresses:
            code, node = split_address(address)
            address = f"{code}@{node}"
            if address in seen:
                continue
            if node == self.node_id:
                self._directory.office(code)
                seen[address] = Recipient(address, code, node, local=True, pinned=True)
            else:
                if peers is None:
                    raise NotFoundError(
                        "unknown recipient {address}: node {node} is not a peer of this node",
                        address=address, node=node)
                peers.office(address)
                seen[address] = Recipient(address, code, node, local=False, pinned=peers.is_pinned(node))
        return list(seen.values())

    def _seal(self, meta: env.MessageMetadata, docs: list[env.Document], from_office: str,
              remote: Iterable[Recipient], local_offices: Iterable[str]) -> bytes:
        """MIME → signed by the sending office → encrypted to every recipient and the sender."""
        mime = env.build_mime(meta, docs)
        with self._db.begin() as conn:
            key, cert = self._key(conn, CertPurpose.OFFICE_SIGNING, from_office)
            ca = x509.load_der_x509_certificate(self._pki.ca_certificate(conn).der)
            certs = [self._encryption_cert(conn, from_office)]
            certs += [self._encryption_cert(conn, code) for code in local_offices]
        peers = self._peers()
        for r in remote:
            assert peers is not None
            certs.append(peers.office(r.address).encryption_certificate)
        signed = env.sign(mime, key, cert, [ca])
        return env.encrypt(signed, certs)

    def _key(self, conn: Connection, purpose: CertPurpose, owner: str) -> tuple[Any, x509.Certificate]:
        """An office key and its certificate, kept in memory per certificate once opened.

        Opening an RSA-3072 key (decrypt under the master key, parse, validate) costs more than the
        whole CMS work of a message; the cache is keyed by the current certificate's id, so a renewed
        or revoked certificate is never served from it.
        """
        info = self._pki.certificate(conn, purpose, owner)
        with self._cache_lock:
            cached = self._key_cache.get(info.id)
        if cached is None:
            cached = self._pki.key_and_certificate(conn, purpose, owner)
            with self._cache_lock:
                self._key_cache[info.id] = cached
        return cached

    def _encryption_cert(self, conn: Connection, office: str) -> x509.Certificate:
        return x509.load_der_x509_certificate(
            self._pki.certificate(conn, CertPurpose.OFFICE_ENCRYPTION, office).der
        )

    # --- receiving -----------------------------------------------------------------------

    def receive(self, envelope: bytes, sender_address: str, recipient_address: str,
                fax_first: FaxFirst | None = None, message_id: str | None = None) -> bytes:
        """Store an envelope for a local office durably and return the signed receipt (CMS DER).

        Idempotent: the same message id with the same envelope returns the same receipt and keeps
        one copy. Raises EnvelopeError (garbage, tampered, wrong recipient, bad or expired signer),
        ConflictError (same message id, different envelope) and MessageIdMismatchError (``message_id``,
        the id the delivery names, is not the one inside the signed envelope); all are audited.
        ``fax_first``: the sending node faxed this message before it could deliver it (kept on the
        inbox row).
        """
        digest = hashlib.sha256(envelope).hexdigest()
        try:
            return self._receive(envelope, digest, sender_address, recipient_address, fax_first, message_id)
        except (EnvelopeError, ConflictError) as exc:
            replay = isinstance(exc, ConflictError) and not isinstance(exc, MessageIdMismatchError)
            action = "message.replay_refused" if replay else "message.refused"
            with self._db.begin() as conn:
                self._audit.record(conn, AuditEvent(
                    actor=sender_address[:128], action=action, object_type="office",
                    object_id=recipient_address[:128], digests={"envelope": digest},
                    details={"reason": str(exc)[:MAX_ERROR_CHARS], "size": len(envelope)},
                ))
            raise

    def _receive(self, envelope: bytes, digest: str, sender_address: str, recipient_address: str,
                 fax_first: FaxFirst | None, claimed_id: str | None) -> bytes:
        limit = int(self._settings.max_message_bytes * ENVELOPE_OVERHEAD) + 65536
        if len(envelope) > limit:
            raise EnvelopeError(
                "the envelope is {count:,} bytes, over this node's limit of {limit:,}",
                count=len(envelope), limit=limit)
        try:
            code, node = split_address(recipient_address)
            sender_code, sender_node = split_address(sender_address)
        except ValidationError as exc:
            raise EnvelopeError(str(exc)) from None
        if node != self.node_id:
            raise EnvelopeError(
                "recipient {recipient_address} is not an office of node {node_id}",
                recipient_address=recipient_address, node_id=self.node_id)
        try:
            office = self._directory.office(code)
        except NotFoundError:
            raise EnvelopeError(
                "recipient {recipient_address}: no such office on node {node_id}",
                recipient_address=recipient_address, node_id=self.node_id) from None

        # Fast path for a repeated delivery: same office, same bytes → the receipt we already gave.
        with self._db.begin() as conn:
            row = conn.execute(select(inbox).where(
                inbox.c.office_id == office.id, inbox.c.envelope_sha256 == digest,
                inbox.c.sender == sender_address)).first()
        if row is not None and row.receipt is not None:
            _check_claimed_id(claimed_id, row.message_id)
            return bytes(row.receipt)

        with self._db.begin() as conn:
            key, cert = self._key(conn, CertPurpose.OFFICE_ENCRYPTION, office.code)
        signed = env.decrypt(envelope, cert, key)
        verified = env.verify(
            signed, self._trust_anchor(sender_node), self._clock.now(), expected_signer=f"{sender_code}@{sender_node}",
            is_revoked=self._is_revoked if sender_node == self.node_id else None,
        )
        meta, docs = env.parse_mime(verified.content)
        _check_received_text(meta, docs)
        if meta.sender != sender_address:
            raise EnvelopeError(
                "the envelope says it is from {sender}, the delivery claims {sender_address}",
                sender=meta.sender, sender_address=sender_address)
        if recipient_address not in meta.recipients:
            raise EnvelopeError(
                "the envelope is not addressed to {recipient_address}",
                recipient_address=recipient_address)
        try:
            uuid.UUID(meta.message_id)
        except ValueError:
            raise EnvelopeError("the message id is not a UUID") from None
        _check_claimed_id(claimed_id, meta.message_id)
        return self._store_received(office.id, office.code, meta, envelope, digest, len(docs), sender_address,
                                    source="inkless", authenticated=True, fax_first=fax_first)

    def _store_received(self, office_id: int, office_code: str, meta: env.MessageMetadata, envelope: bytes,
                        digest: str, document_count: int, sender: str, source: str, authenticated: bool,
                        fax_first: FaxFirst | None = None, search_texts: Sequence[str] = ()) -> bytes:
        recipient = f"{office_code}@{self.node_id}"
        # A peer's procedure code is kept only when it is well-formed: counted, never trusted further.
        procedure = meta.procedure_code if meta.procedure_code and PROCEDURE_RE.match(meta.procedure_code) else None
        with self._db.begin() as conn:
            existing = conn.execute(select(inbox).where(
                inbox.c.message_id == meta.message_id, inbox.c.office_id == office_id)).first()
        if existing is not None and existing.envelope_sha256 != digest:
            raise ConflictError(
                f"message {meta.message_id} was already received for {recipient} with a different envelope: "
                "replay or tampering refused"
            )
        if existing is None:
            # Durable first: the blob is fsynced, then the row commits; only then is a receipt signed.
            if not self._blobs.exists(digest):
                self._blobs.put(envelope)
            now = self._clock.now()
            try:
                with self._db.begin() as conn:
                    inserted = conn.execute(insert(inbox).values(
                        message_id=meta.message_id, office_id=office_id, sender=sender[:200],
                        classification=meta.classification, priority=meta.priority,
                        subject_enc=self._box.seal(meta.subject.encode(), _subject_context(meta.message_id)),
                        envelope_sha256=digest, envelope_size=len(envelope), document_count=document_count,
                        source=source, authenticated=authenticated, received_at=now, receipt=None,
                        fax_first=fax_first.header() if fax_first else None,
                        fax_copy_message_id=find_fax_copy(conn, office_id, fax_first) if fax_first else None,
                        procedure_code=procedure, reply_to=_thread_id(meta.reply_to),
                    ))
                    key = inserted.inserted_primary_key
                    assert key is not None  # inbox rows have an integer key
                    self.search_index.add_inbox(conn, int(key[0]), inbox_texts(
                        meta.subject, sender, self._office_name(sender), "\n".join(search_texts) or None))
                    rollup.add(conn, rollup.message_in(now, office_code, procedure, source))
                    self._audit.record(conn, AuditEvent(
                        actor=sender[:128], action="message.received", object_type="message",
                        object_id=meta.message_id, digests={"envelope": digest},
                        details={"recipient": recipient, "classification": meta.classification,
                                 "source": source, "authenticated": authenticated},
                    ), at=now)
                    for listener in self.on_received:
                        listener(conn, office_id, office_code, now)
            except DBIntegrityError:
                # A concurrent delivery of the same message stored it first: fall through to its row.
                pass
        with self._db.begin() as conn:
            row = conn.execute(select(inbox).where(
                inbox.c.message_id == meta.message_id, inbox.c.office_id == office_id)).one()
        if row.envelope_sha256 != digest:
            raise ConflictError(
                "message {message_id} was already received with a different envelope",
                message_id=meta.message_id)
        if row.receipt is not None:
            return bytes(row.receipt)
        if not authenticated:
            return b""
        facts = ReceiptFacts(meta.message_id, digest, recipient, row.received_at)
        with self._db.begin() as conn:
            key, cert = self._key(conn, CertPurpose.OFFICE_SIGNING, office_code)
            ca = x509.load_der_x509_certificate(self._pki.ca_certificate(conn).der)
        receipt = make_receipt(facts, key, cert, [ca])
        with self._db.begin() as conn:
            conn.execute(update(inbox).where(inbox.c.id == row.id, inbox.c.receipt.is_(None)).values(receipt=receipt))
            stored = conn.execute(select(inbox.c.receipt).where(inbox.c.id == row.id)).scalar_one()
        return bytes(stored)

    def _trust_anchor(self, node_id: str) -> x509.Certificate:
        if node_id == self.node_id:
            with self._db.read() as conn:
                return x509.load_der_x509_certificate(self._pki.ca_certificate(conn).der)
        peers = self._peers()
        if peers is None or not peers.is_pinned(node_id):
            raise EnvelopeError(
                f"node {node_id} is not a pinned peer of {self.node_id}: its signatures are not trusted"
            )
        return peers.ca_certificate(node_id)

    def _is_revoked(self, cert: x509.Certificate) -> bool:
        with self._db.begin() as conn:
            revoked = conn.execute(select(t.certificates.c.revoked_at).where(
                t.certificates.c.serial == format(cert.serial_number, "x"))).scalar()
        return revoked is not None

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
            message_id=message_id, sender=sender, recipients=(address,),
            subject=check_text(subject, "subject").strip()[:200] or source,
            classification=classification, priority="normal", created_at=now, source=source,
            facts={str(k): v for k, v in facts.items()}, procedure_code=procedure_code, reply_to=reply_to,
        )
        docs = [env.Document(name, ctype, data) for name, data, ctype in documents]
        envelope = self._seal(meta, docs, office.code, [], [])
        digest = hashlib.sha256(envelope).hexdigest()
        # The text layer of the deposited PDFs (a fax's OCR) and the sender's station id make it searchable.
        texts = [str(facts.get("tsi") or "")] + [pdf_text(data) for _name, data, ctype in documents
                                                 if ctype == "application/pdf"]
        self._store_received(office.id, office.code, meta, envelope, digest, len(docs), sender,
                             source=source, authenticated=False, search_texts=[t for t in texts if t.strip()])
        return message_id

    def _office_name(self, address: str) -> str | None:
        """The name of a sending office of this node (found by name as well as by address)."""
        code, _, node = address.partition("@")
        if node != self.node_id:
            return None
        try:
            return self._directory.office(code).name
        except NotFoundError:
            return None

    # --- outbox worker -------------------------------------------------------------------

    def deliver_due(self, limit: int = 20) -> PassResult:
        """One outbox pass: claim due rows (urgent first) and try each once."""
        now = self._clock.now()
        with self._db.begin() as conn:
            rows = claim_due(conn, now, limit, self._lease())
        counts = {"delivered": 0, "retrying": 0, "expired": 0, "rejected": 0}
        for row in rows:
            try:
                state = self._attempt(row)
            except Exception:  # never let one row stop the pass; the lease brings it back
                log.exception("delivery of %s to %s failed unexpectedly", row.message_id, row.recipient)
                continue
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
            reason = (f"not delivered within {self._settings.delivery_expiry_hours} h "
                      f"after {row.attempts} attempts; last error: {row.last_error or 'none'}")
            return self._finish(row, "expired", reason, "message.expired")
        with self._db.begin() as conn:
            msg = conn.execute(select(messages).where(messages.c.id == row.message_id)).one()
            office = conn.execute(select(t.offices.c.code).where(t.offices.c.id == msg.office_id)).scalar_one()
        sender = f"{office}@{self.node_id}"
        try:
            envelope = self._blobs.get(msg.envelope_sha256)
            if row.node_id == self.node_id:
                try:
                    receipt = self.receive(envelope, sender, row.recipient)
                except (EnvelopeError, ConflictError) as exc:
                    raise DeliveryRejectedError(str(exc), reason=str(exc)) from None
            else:
                transport = self._transport()
                if transport is None:
                    raise PeerUnreachableError(
                        "no federation transport on this node to reach {node_id}",
                        node_id=row.node_id)
                faxed = faxed_first(row)
                # Only when the fax went out: fakes and older transports keep their five-argument deliver().
                extra = {"fax_first": faxed} if faxed is not None else {}
                receipt = transport.deliver(row.node_id, sender, row.recipient, row.message_id, envelope, **extra)
            checked = verify_receipt(
                receipt, self._trust_anchor(row.node_id), self._clock.now(), message_id=row.message_id,
                envelope_sha256=msg.envelope_sha256, recipient=row.recipient,
            )
        except DeliveryRejectedError as exc:
            return self._finish(row, "rejected", exc.reason or str(exc), "message.rejected")
        except InklessError as exc:
            return self._retry(row, str(exc), getattr(exc, "retry_after", None))
        except Exception as exc:  # an unexpected failure is still a visible, retried state
            return self._retry(row, f"{type(exc).__name__}: {exc}", None)
        done = self._clock.now()
        with self._db.begin() as conn:
            result = conn.execute(update(outbox).where(outbox.c.id == row.id, outbox.c.state.in_(PENDING))
                                  .values(state="delivered", receipt=receipt, received_at=checked.facts.received_at,
                                          delivered_at=done, attempts=row.attempts, last_error=None,
                                          updated_at=done))
            if result.rowcount:
                rollup.add(conn, rollup.delivered(msg.created_at, done))
                self._audit.record(conn, AuditEvent(
                    actor="system", action="message.delivered", object_type="message", object_id=row.message_id,
                    digests={"receipt": hashlib.sha256(receipt).hexdigest()},
                    details={"recipient": row.recipient, "attempts": row.attempts},
                ), at=done)
        return "delivered"

    def _retry(self, row: Row[Any], error: str, retry_after: float | None) -> str:
        now = self._clock.now()
        attempts = row.attempts  # counted when the row was claimed
        delay = backoff_delay(attempts, self._settings.delivery_backoff_base_seconds,
                              self._settings.delivery_backoff_cap_seconds)
        if retry_after:
            delay = max(delay, float(retry_after))
        next_at = min(now + timedelta(seconds=delay), row.expires_at)
        error = error[:MAX_ERROR_CHARS]
        with self._db.begin() as conn:
            result = conn.execute(update(outbox).where(outbox.c.id == row.id, outbox.c.state.in_(PENDING))
                                  .values(state="retrying", attempts=attempts, next_attempt_at=next_at,
                                          last_error=error, updated_at=now))
            if result.rowcount:
                self._audit.record(conn, AuditEvent(
                    actor="system", action="message.delivery_failed", object_type="message",
                    object_id=row.message_id,
                    details={"recipient": row.recipient, "attempts": attempts, "error": error,
                             "next_attempt_at": next_at.isoformat()},
                ), at=now)
        return "retrying"

    def _finish(self, row: Row[Any], state: str, reason: str, action: str) -> str:
        now = self._clock.now()
        reason = reason[:MAX_ERROR_CHARS]
        with self._db.begin() as conn:
            result = conn.execute(update(outbox).where(outbox.c.id == row.id, outbox.c.state.in_(PENDING))
                                  .values(state=state, last_error=reason, updated_at=now))
            if result.rowcount:
                self._audit.record(conn, AuditEvent(
                    actor="system", action=action, object_type="message", object_id=row.message_id,
                    details={"recipient": row.recipient, "reason": reason},
                ), at=now)
        return state

    # --- reading -------------------------------------------------------------------------

    def inbox(self, office_code: str, viewer: str | None) -> list[InboxItem]:
        """An office's inbox, newest first; subjects only where the viewer is cleared."""
        actor = self.actor(viewer)
        office = self._directory.office(office_code)
        if not actor.is_operator and actor.office != office.code:
            raise PolicyError(
                "{login} does not belong to office {office_code}",
                login=actor.login, office_code=office.code)
        with self._db.read() as conn:
            rows = conn.execute(select(inbox).where(inbox.c.office_id == office.id)
                                .order_by(inbox.c.received_at.desc(), inbox.c.id.desc())).all()
        return [self.inbox_item(r, office.code, actor) for r in rows]

    def inbox_item(self, r: Row[Any], office_code: str, actor: Actor) -> InboxItem:
        """An inbox row as the viewer ``actor`` sees it (the subject only where cleared)."""
        return InboxItem(
            message_id=r.message_id, office=office_code, sender=r.sender,
            subject=self._subject(r.subject_enc, r.message_id) if actor.clearance >= r.classification else None,
            classification=r.classification, priority=r.priority, received_at=r.received_at,
            document_count=r.document_count, envelope_sha256=r.envelope_sha256, source=r.source,
            authenticated=r.authenticated, opened=r.opened_at is not None,
            fax_first=_fax_first(r.fax_first), fax_copy_message_id=r.fax_copy_message_id,
        )

    def sent(self, office_code: str, viewer: str | None) -> list[SentMessage]:
        """Messages sent by an office, newest first, with per-recipient status."""
        actor = self.actor(viewer)
        office = self._directory.office(office_code)
        if not actor.is_operator and actor.office != office.code:
            raise PolicyError(
                "{login} does not belong to office {office_code}",
                login=actor.login, office_code=office.code)
        with self._db.read() as conn:
            rows = conn.execute(select(messages).where(messages.c.office_id == office.id)
                                .order_by(messages.c.created_at.desc())).all()
            return [self._sent(conn, r, office.code, actor) for r in rows]

    def _sent(self, conn: Connection, r: Row[Any], office_code: str, actor: Actor) -> SentMessage:
        statuses = conn.execute(select(outbox).where(outbox.c.message_id == r.id).order_by(outbox.c.id)).all()
        return self.sent_message(r, office_code, actor, statuses)

    def sent_message(self, r: Row[Any], office_code: str, actor: Actor, statuses: Sequence[Row[Any]]) -> SentMessage:
        """A sent message row and its outbox rows as the viewer ``actor`` sees them."""
        return SentMessage(
            message_id=r.id, office=office_code, sender_login=r.sender_login,
            subject=self._subject(r.subject_enc, r.id) if actor.clearance >= r.classification else None,
            classification=r.classification, priority=r.priority, procedure_code=r.procedure_code,
            reply_to=r.reply_to, created_at=r.created_at, envelope_sha256=r.envelope_sha256,
            envelope_size=r.envelope_size, document_count=r.document_count,
            recipients=tuple(_status(s) for s in statuses),
        )

    def _subject(self, sealed: bytes, message_id: str) -> str:
        return self._box.open(sealed, _subject_context(message_id)).decode()

    def _holders(self, message_id: str) -> tuple[Row[Any] | None, dict[str, Row[Any]], int]:
        """The sender's copy (if sent from here), the inbox copies by office code, and the classification."""
        with self._db.read() as conn:
            sent = conn.execute(select(messages, t.offices.c.code)
                                .join(t.offices, t.offices.c.id == messages.c.office_id)
                                .where(messages.c.id == message_id)).first()
            received = conn.execute(select(inbox, t.offices.c.code)
                                    .join(t.offices, t.offices.c.id == inbox.c.office_id)
                                    .where(inbox.c.message_id == message_id)).all()
        copies = {r.code: r for r in received}
        if sent is None and not copies:
            raise NotFoundError("no message {message_id}", message_id=message_id)
        levels = [r.classification for r in received] + ([sent.classification] if sent is not None else [])
        return sent, copies, max(levels)

    def message(self, message_id: str, viewer: str | None) -> SentMessage | InboxItem:
        """What is known about a message without decrypting it: the sent copy, or the viewer's inbox copy."""
        actor = self.actor(viewer)
        sent, copies, level = self._holders(message_id)
        offices = set(copies) | ({sent.code} if sent is not None else set())
        check_view(actor, offices, level, message_id)
        if sent is not None and (actor.is_operator or actor.office == sent.code):
            with self._db.read() as conn:
                return self._sent(conn, sent, sent.code, actor)
        office = actor.office if actor.office in copies else next(iter(copies))
        # The row at hand, not the whole inbox: opening one message costs the same in any inbox.
        return self.inbox_item(copies[office], office, actor)

    def open_message(self, message_id: str, viewer: str | None) -> OpenedMessage:
        """Decrypt a message in memory for an authorised viewer; audited as ``message.opened``."""
        actor = self.actor(viewer)
        opened = self._open(actor, message_id)
        now = self._clock.now()
        with self._db.begin() as conn:
            if opened.copy == "received":
                office_id = conn.execute(select(t.offices.c.id).where(t.offices.c.code == opened.office)).scalar_one()
                conn.execute(update(inbox).where(inbox.c.message_id == message_id, inbox.c.office_id == office_id,
                                                 inbox.c.opened_at.is_(None)).values(opened_at=now))
            self._audit.record(conn, AuditEvent(
                actor=actor.login, action="message.opened", object_type="message", object_id=message_id,
                digests={"envelope": opened.envelope_sha256},
                details={"office": opened.office, "copy": opened.copy},
            ), at=now)
        return opened

    def _open(self, actor: Actor, message_id: str) -> OpenedMessage:
        sent, copies, level = self._holders(message_id)
        offices = set(copies) | ({sent.code} if sent is not None else set())
        check_view(actor, offices, level, message_id)
        if actor.office in copies or (actor.is_operator and copies and sent is None):
            office = actor.office if actor.office in copies else next(iter(copies))
            row = copies[office]
            copy, digest, authenticated, sender = "received", row.envelope_sha256, row.authenticated, row.sender
        else:
            assert sent is not None
            office, copy, digest, authenticated = sent.code, "sent", sent.envelope_sha256, True
            sender = f"{sent.code}@{self.node_id}"
        envelope = self._blobs.get(digest)
        with self._db.begin() as conn:
            key, cert = self._key(conn, CertPurpose.OFFICE_ENCRYPTION, office)
        signed = env.decrypt(envelope, cert, key)
        if authenticated:
            _, sender_node = split_address(sender)
            anchor_node = sender_node
        else:
            anchor_node = self.node_id  # deposits are sealed by the receiving office itself
        # Opening re-checks the signature: stored bytes are trusted no more than received ones.
        verified = env.verify(signed, self._trust_anchor(anchor_node), self._clock.now())
        meta, docs = env.parse_mime(verified.content)
        return OpenedMessage(metadata=meta, documents=docs, envelope_sha256=digest,
                             signer_address=verified.signer_address, authenticated=authenticated,
                             copy=copy, office=office)

    def status(self, message_id: str, viewer: str | None) -> list[RecipientStatus]:
        """Per-recipient delivery status, for the sending office."""
        actor = self.actor(viewer)
        sent, _copies, _level = self._holders(message_id)
        if sent is None or not (actor.is_operator or actor.office == sent.code):
            raise NotFoundError("no sent message {message_id}", message_id=message_id)
        with self._db.read() as conn:
            rows = conn.execute(select(outbox).where(outbox.c.message_id == message_id).order_by(outbox.c.id)).all()
        return [_status(r) for r in rows]

    def receipts(self, message_id: str, viewer: str | None) -> list[ReceiptInfo]:
        """The receipts of a sent message (re-verified), or the one issued for the viewer's inbox copy."""
        actor = self.actor(viewer)
        sent, copies, _level = self._holders(message_id)
        offices = set(copies) | ({sent.code} if sent is not None else set())
        check_view(actor, offices, 0, message_id)
        out: list[ReceiptInfo] = []
        if sent is not None and (actor.is_operator or actor.office == sent.code):
            with self._db.read() as conn:
                rows = conn.execute(select(outbox).where(outbox.c.message_id == message_id,
                                                         outbox.c.receipt.is_not(None)).order_by(outbox.c.id)).all()
            for r in rows:
                out.append(self._receipt_info(bytes(r.receipt), message_id, sent.envelope_sha256, r.recipient,
                                              r.node_id, r.received_at))
        else:
            for code, row in copies.items():
                if (actor.is_operator or actor.office == code) and row.receipt is not None:
                    out.append(self._receipt_info(bytes(row.receipt), message_id, row.envelope_sha256,
                                                  f"{code}@{self.node_id}", self.node_id, row.received_at))
        return out

    def _receipt_info(self, receipt: bytes, message_id: str, digest: str, recipient: str, node: str,
                      received_at: datetime | None) -> ReceiptInfo:
        # A receipt proves what happened when it was made: checked as of its time of receipt, so a report
        # printed after the signer's certificate has expired still shows it as valid.
        try:
            v = verify_receipt(receipt, self._trust_anchor(node), received_at or self._clock.now(),
                               message_id=message_id, envelope_sha256=digest, recipient=recipient)
            return ReceiptInfo(recipient, receipt, v.facts.received_at, v.signer_address, "valid")
        except InklessError as exc:
            return ReceiptInfo(recipient, receipt, None, None, str(exc))

    def export(self, message_id: str, viewer: str | None, out_dir: Path) -> list[Path]:
        """Write the documents, the raw ``envelope.p7m`` and the receipts (``.p7s``) into ``out_dir``."""
        actor = self.actor(viewer)
        opened = self._open(actor, message_id)
        receipts = self.receipts(message_id, viewer)
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for i, doc in enumerate(opened.documents, 1):
            name = Path(doc.name).name or f"document-{i}"
            path = out_dir / name
            path.write_bytes(doc.data)
            written.append(path)
        path = out_dir / "envelope.p7m"
        path.write_bytes(self._blobs.get(opened.envelope_sha256))
        written.append(path)
        for r in receipts:
            path = out_dir / f"receipt-{r.recipient.replace('@', '_at_')}.p7s"
            path.write_bytes(r.receipt)
            written.append(path)
        with self._db.begin() as conn:
            self._audit.record(conn, AuditEvent(
                actor=actor.login, action="message.exported", object_type="message", object_id=message_id,
                digests={"envelope": opened.envelope_sha256},
                details={"office": opened.office, "files": len(written)},
            ))
        return written

    def report_facts(self, message_id: str, viewer: str | None) -> tuple[SentMessage, OpenedMessage, list[ReceiptInfo]]:
        """What a transmission report shows (sending office only); audited as ``message.reported``."""
        actor = self.actor(viewer)
        sent = self.message(message_id, viewer)
        if not isinstance(sent, SentMessage):
            raise NotFoundError(
                "no sent message {message_id}: transmission reports are for the sending office",
                message_id=message_id)
        opened = self._open(actor, message_id)
        receipts = self.receipts(message_id, viewer)
        with self._db.begin() as conn:
            self._audit.record(conn, AuditEvent(
                actor=actor.login, action="message.reported", object_type="message", object_id=message_id,
                digests={"envelope": opened.envelope_sha256}, details={"office": sent.office},
            ))
        return sent, opened, receipts

    # --- reply and forward ---------------------------------------------------------------

    def reply(self, message_id: str, viewer: str | None, subject: str | None, documents: Sequence[NewDocument],
              classification: int | None = None, priority: str = "normal", from_office: str | None = None) -> str:
        """Answer the sender of a received message from the viewer's office."""
        actor = self.actor(viewer)
        opened = self._open(actor, message_id)
        if opened.copy != "received" or not opened.authenticated:
            raise ValidationError("only messages received from an inkless office can be answered")
        level = check_forward_classification(actor, opened.metadata.classification, classification)
        office = from_office or actor.office or opened.office
        subject = subject or f"Re: {opened.metadata.subject}"
        return self._send(actor, office, [opened.metadata.sender], [], subject[:200], documents, level, priority,
                          opened.metadata.procedure_code, message_id)

    def forward(self, message_id: str, viewer: str | None, to: Sequence[str], list_names: Sequence[str] = (),
                classification: int | None = None, subject: str | None = None, priority: str | None = None,
                from_office: str | None = None) -> str:
        """Send a message's documents on to other offices, re-encrypted to them."""
        actor = self.actor(viewer)
        opened = self._open(actor, message_id)
        level = check_forward_classification(actor, opened.metadata.classification, classification)
        office = from_office or actor.office or opened.office
        docs = [NewDocument(d.name, d.data, d.content_type) for d in opened.documents]
        subject = subject or f"Fw: {opened.metadata.subject}"
        return self._send(actor, office, to, list_names, subject[:200], docs, level,
                          priority or opened.metadata.priority, opened.metadata.procedure_code, message_id)

    # --- distribution lists and operators' views -----------------------------------------

    def set_list(self, name: str, addresses: Sequence[str], actor: str = "operator") -> DistributionList:
        """Create or replace a distribution list."""
        if not LIST_NAME_RE.match(name):
            raise ValidationError("list name {name!r} must be lower-case letters, digits, '.', '_' or '-'", name=name)
        clean: list[str] = []
        for a in addresses:
            code, node = split_address(a)
            if f"{code}@{node}" not in clean:
                clean.append(f"{code}@{node}")
        if not clean:
            raise ValidationError("a distribution list needs at least one address")
        now = self._clock.now()
        with self._db.begin() as conn:
            list_id = conn.execute(select(distribution_lists.c.id).where(distribution_lists.c.name == name)).scalar()
            if list_id is None:
                list_id = conn.execute(insert(distribution_lists).values(name=name, created_at=now)
                                       ).inserted_primary_key[0]  # type: ignore[index]
            conn.execute(delete(distribution_list_members).where(distribution_list_members.c.list_id == list_id))
            conn.execute(insert(distribution_list_members), [{"list_id": list_id, "address": a} for a in clean])
            self._audit.record(conn, AuditEvent(actor=actor, action="list.saved", object_type="list", object_id=name,
                                                details={"addresses": clean}), at=now)
        return DistributionList(name, tuple(clean))

    def distribution_list(self, name: str) -> DistributionList:
        with self._db.read() as conn:
            list_id = conn.execute(select(distribution_lists.c.id).where(distribution_lists.c.name == name)).scalar()
            if list_id is None:
                raise NotFoundError("no distribution list {name!r}", name=name)
            rows = conn.execute(select(distribution_list_members.c.address)
                                .where(distribution_list_members.c.list_id == list_id)
                                .order_by(distribution_list_members.c.address)).scalars().all()
        return DistributionList(name, tuple(rows))

    def distribution_lists(self) -> list[DistributionList]:
        with self._db.read() as conn:
            names = conn.execute(select(distribution_lists.c.name).order_by(distribution_lists.c.name)).scalars().all()
        return [self.distribution_list(n) for n in names]

    def outbox_rows(self, state: str | None = None) -> list[OutboxRow]:
        """Every outbox row (operators' view), optionally in one state."""
        if state is not None and state not in OUTBOX_STATES:
            raise ValidationError(f"state {state!r} must be one of {', '.join(OUTBOX_STATES)}")
        query = select(outbox).order_by(outbox.c.id)
        if state is not None:
            query = query.where(outbox.c.state == state)
        with self._db.read() as conn:
            rows = conn.execute(query).all()
        return [OutboxRow(r.message_id, r.recipient, r.state, RANK_PRIORITY[r.priority], r.attempts,
                          r.next_attempt_at, r.last_error, r.expires_at, r.delivered_at) for r in rows]


def _check_received_text(meta: env.MessageMetadata, docs: Sequence[env.Document]) -> None:
    """A peer's subject and file names pass the same text check as ours (a disguised file name is refused)."""
    fields = [("subject", meta.subject)] + [("document name", d.name) for d in docs]
    for field, value in fields:
        try:
            check_text(value, field)
        except UnsafeTextError as exc:
            raise EnvelopeError("the envelope's {exc}", exc=exc) from None


def _thread_id(reply_to: str | None) -> str | None:
    """The id a received message answers, kept for threading only when it looks like a message id."""
    if reply_to and len(reply_to) <= 36 and all(c.isalnum() or c == "-" for c in reply_to):
        return reply_to
    return None


def _check_claimed_id(claimed: str | None, signed: str) -> None:
    """The id a delivery names must be the signed one: receipts, replay checks and logs all go by it."""
    if claimed is not None and claimed != signed:
        raise MessageIdMismatchError(
            f"the Inkless-Message-Id header says {claimed[:128]!r}, the signed envelope says {signed!r}")


def _status(r: Row[Any]) -> RecipientStatus:
    pending = r.state in ("queued", "retrying")
    return RecipientStatus(
        recipient=r.recipient, state=r.state, attempts=r.attempts,
        next_attempt_at=r.next_attempt_at if pending else None, last_error=r.last_error, expires_at=r.expires_at,
        delivered_at=r.delivered_at, received_at=r.received_at, has_receipt=r.receipt is not None,
        fax_decision=note(r.fax_decision, r.fax_decision_params, r.fax_updated_at),
        fax_outcome=note(r.fax_outcome, r.fax_outcome_params, r.fax_updated_at),
    )


def _fax_first(stored: str | None) -> FaxFirst | None:
    if not stored:
        return None
    try:
        return parse_fax_first(stored)
    except ValidationError:
        return None


def build_delivery(node: Any) -> DeliveryService:
    """The delivery service of ``node`` (a :class:`inkless.app.Node`); transport and peers are read late,
    so federation may fill them in after this runs."""
    return DeliveryService(
        node.settings, node.db, node.blobs, node.pki, node.directory, node.audit, node.box, node.clock,
        transport=lambda: node.transport, peers=lambda: node.peers,
    )
