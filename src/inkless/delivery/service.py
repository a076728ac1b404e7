"""The delivery service: send, receive, inbox, open, reply, forward, status, export, outbox passes.

Local and remote recipients take the same path: the outbox worker hands every envelope to
:meth:`DeliveryService.receive` — directly for an office of this node, through the peer's
federation endpoint (which calls ``receive`` there) for a remote one.
"""

from __future__ import annotations

import dataclasses
import io
import secrets
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import Connection, Row, delete, insert, select, update

from inkless.audit.model import AuditEvent
from inkless.db import tables as t
from inkless.db.tables_delivery import distribution_list_members, distribution_lists, inbox, messages, outbox
from inkless.delivery import envelope as env
from inkless.delivery.base import (
    LIST_NAME_RE,
    PROCEDURE_RE,
    EmailRecipients,
    NewDocument,
    recipient_status,
    stored_fax_first,
    subject_context,
)
from inkless.delivery.model import (
    OUTBOX_STATES,
    DistributionList,
    InboxItem,
    OpenedMessage,
    OutboxRow,
    ReceiptInfo,
    RecipientStatus,
    SentMessage,
)
from inkless.delivery.outbox import (
    PRIORITY_RANK,
    RANK_PRIORITY,
)
from inkless.delivery.passes import OutboxPasses
from inkless.delivery.policy import Actor, Recipient, check_forward_classification, check_send, check_view
from inkless.delivery.receipt import verify_receipt
from inkless.delivery.transport import split_address
from inkless.errors import (
    InklessError,
    NotFoundError,
    PolicyError,
    ValidationError,
)
from inkless.metrics import memory, rollup
from inkless.pki.model import CertPurpose
from inkless.search.index import sent_texts
from inkless.streams import ChunkReader
from inkless.text import check_text

__all__ = ["DeliveryService", "EmailRecipients", "NewDocument", "build_delivery"]


class DeliveryService(OutboxPasses):
    """Sends and receives CMS envelopes between offices (local or on pinned peers)."""

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
        # Read before the write transaction: a lookup inside it would take a second connection while the
        # first holds the (SQLite) write lock, and under load every connection ends up waiting for the lock.
        office_names = [n for n in (self._office_name(r.address) for r in recipients) if n]
        meta = env.MessageMetadata(
            message_id=message_id, sender=sender, recipients=tuple(r.address for r in recipients),
            subject=subject, classification=classification, priority=priority, created_at=now,
            procedure_code=procedure_code, reply_to=reply_to,
        )
        docs = [env.Document(d.name, d.content_type, d.data) for d in documents]
        digest, envelope_size = self._seal(meta, docs, office.code, [r for r in recipients if not r.local],
                                           [r.office for r in recipients if r.local])
        expires = now + timedelta(hours=self._settings.delivery_expiry_hours)
        with self._db.begin() as conn:
            conn.execute(insert(messages).values(
                id=message_id, office_id=office.id, sender_login=actor.login, classification=classification,
                priority=priority, procedure_code=procedure_code, reply_to=reply_to,
                subject_enc=self._box.seal(subject.encode(), subject_context(message_id)),
                envelope_sha256=digest, envelope_size=envelope_size, document_count=len(docs), created_at=now,
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
                office_names, actor.login))
            self._audit.record(conn, AuditEvent(
                actor=actor.login, action="message.sent", object_type="message", object_id=message_id,
                digests={"envelope": digest},
                details={"from": sender, "recipients": [r.address for r in recipients],
                         "email_recipients": len(new_pickups),
                         "classification": classification, "priority": priority,
                         "documents": len(docs), "size": envelope_size, "reply_to": reply_to},
            ), at=now)
        return message_id

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
            fax_first=stored_fax_first(r.fax_first), fax_copy_message_id=r.fax_copy_message_id,
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
            recipients=tuple(recipient_status(s) for s in statuses),
        )

    def _subject(self, sealed: bytes, message_id: str) -> str:
        return self._box.open(sealed, subject_context(message_id)).decode()

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
        buffers: dict[int, io.BytesIO] = {}

        def sink(number: int) -> BinaryIO:
            buffers[number] = io.BytesIO()
            return buffers[number]

        opened, found = self._read(actor, message_id, sink)
        documents = [env.Document(d.name, d.content_type, buffers[i].getvalue()) for i, d in enumerate(found, 1)]
        return dataclasses.replace(opened, documents=documents)

    def _read(self, actor: Actor, message_id: str,
              sink: env.DocumentSink) -> tuple[OpenedMessage, list[env.ReceivedDocument]]:
        """Decrypt, verify and read a message for ``actor`` in one pass, its documents into ``sink``; the
        OpenedMessage comes without documents (what the sink kept is the caller's)."""
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
        with self._db.begin() as conn:
            key, cert = self._key(conn, CertPurpose.OFFICE_ENCRYPTION, office)
        read = env.read_envelope(ChunkReader(self._blobs.stream(digest)).as_binary(), cert, key, sink)
        if authenticated:
            _, sender_node = split_address(sender)
            anchor_node = sender_node
        else:
            anchor_node = self.node_id  # deposits are sealed by the receiving office itself
        # Opening re-checks the signature: stored bytes are trusted no more than received ones.
        verified = env.verify_read(read.signed, self._trust_anchor(anchor_node), self._clock.now())
        meta, found = read.message()
        opened = OpenedMessage(metadata=meta, documents=[], envelope_sha256=digest,
                               signer_address=verified.signer_address, authenticated=authenticated,
                               copy=copy, office=office)
        return opened, found

    def status(self, message_id: str, viewer: str | None) -> list[RecipientStatus]:
        """Per-recipient delivery status, for the sending office."""
        actor = self.actor(viewer)
        sent, _copies, _level = self._holders(message_id)
        if sent is None or not (actor.is_operator or actor.office == sent.code):
            raise NotFoundError("no sent message {message_id}", message_id=message_id)
        with self._db.read() as conn:
            rows = conn.execute(select(outbox).where(outbox.c.message_id == message_id).order_by(outbox.c.id)).all()
        return [recipient_status(r) for r in rows]

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
        """Write the documents, the raw ``envelope.p7m`` and the receipts (``.p7s``) into ``out_dir``.

        Streamed: each document is decoded into a temporary file in ``out_dir`` as the envelope is read, and
        takes its name only once the signature holds; a message of any size is exported in bounded memory.
        """
        actor = self.actor(viewer)
        out_dir.mkdir(parents=True, exist_ok=True)
        parts: dict[int, Path] = {}
        files: list[BinaryIO] = []
        # Names no document can take (a document's name comes from the sender).
        token = secrets.token_hex(8)

        def sink(number: int) -> BinaryIO:
            parts[number] = out_dir / f".inkless-{token}-{number}.part"
            files.append(parts[number].open("wb"))
            return files[-1]

        try:
            try:
                opened, found = self._read(actor, message_id, sink)
            finally:
                for fh in files:
                    fh.close()
            receipts = self.receipts(message_id, viewer)
            written = []
            for i, doc in enumerate(found, 1):
                path = out_dir / (Path(doc.name).name or f"document-{i}")
                parts.pop(i).replace(path)
                written.append(path)
        finally:
            for leftover in parts.values():
                leftover.unlink(missing_ok=True)
        path = out_dir / "envelope.p7m"
        with path.open("wb") as fh:
            for chunk in self._blobs.stream(opened.envelope_sha256):
                fh.write(chunk)
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


def build_delivery(node: Any) -> DeliveryService:
    """The delivery service of ``node`` (a :class:`inkless.app.Node`); transport and peers are read late,
    so federation may fill them in after this runs."""
    return DeliveryService(
        node.settings, node.db, node.blobs, node.pki, node.directory, node.audit, node.box, node.clock,
        transport=lambda: node.transport, peers=lambda: node.peers,
    )
