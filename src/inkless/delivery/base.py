"""The state and the shared lookups of the delivery service (keys, certificates, trust anchors, offices).

The service is split along what it does: sending and reading (:mod:`inkless.delivery.service`), receiving
(:mod:`inkless.delivery.receiving`) and the outbox passes (:mod:`inkless.delivery.passes`).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from cryptography import x509
from sqlalchemy import Connection, Row, select

from inkless.audit.model import AuditRecorder
from inkless.blobs import BlobStore
from inkless.clock import Clock
from inkless.config import Settings
from inkless.db import tables as t
from inkless.db.engine import Database
from inkless.delivery import envelope as env
from inkless.delivery.faxnote import FaxFirst, note, parse_fax_first
from inkless.delivery.model import (
    RecipientStatus,
)
from inkless.delivery.policy import Actor, Recipient
from inkless.delivery.transport import PeerLookup, PeerTransport
from inkless.directory.service import DirectoryService
from inkless.errors import (
    EnvelopeError,
    MessageIdMismatchError,
    MessageTooLargeError,
    NotFoundError,
    PolicyError,
    ValidationError,
)
from inkless.pki.ca import NodeCA
from inkless.pki.keystore import SecretBox
from inkless.pki.model import CertPurpose
from inkless.search.index import SearchIndex, tokens_of
from inkless.streams import ChunkReader
from inkless.text import UnsafeTextError, check_text

if TYPE_CHECKING:
    from inkless.pickup.model import NewPickup


class EmailRecipients(Protocol):
    """Secure pickup as sending uses it (:class:`inkless.pickup.service.PickupService`)."""

    @property
    def enabled(self) -> bool: ...

    def check(
        self, actor: Actor, office_code: str, classification: int, recipients: Sequence[NewPickup], confirmed: bool
    ) -> None: ...

    def record(
        self,
        conn: Connection,
        *,
        message_id: str,
        office_id: int,
        office_code: str,
        sender_login: str,
        subject: str,
        recipients: Sequence[NewPickup],
        now: datetime,
    ) -> list[int]: ...


log = logging.getLogger("inkless.delivery")

LIST_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
PROCEDURE_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class NewDocument:
    """A document handed to :meth:`DeliveryService.send`."""

    name: str
    data: bytes
    content_type: str = "application/pdf"


def subject_context(message_id: str) -> str:
    return f"inkless/subject/{message_id}"


class DeliveryBase:
    """What every part of the delivery service shares: its collaborators and lookups."""

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

    def actor(self, login: str | None) -> Actor:
        """The acting user by login, or the node operator for None."""
        if login is None:
            return Actor.operator()
        user = self._directory.user(login)
        if not user.active:
            raise PolicyError("user {login} is deactivated", login=login)
        return Actor.of(user)

    def check_size(self, size: int) -> None:
        """MessageTooLargeError if ``size`` bytes of documents exceed the node's limit."""
        limit = self._settings.max_message_bytes
        if size > limit:
            raise MessageTooLargeError(
                f"the message is {size:,} bytes; this node accepts at most {limit:,} bytes (max_message_bytes)",
                limit=limit,
            )

    def _seal(
        self,
        meta: env.MessageMetadata,
        docs: list[env.Document],
        from_office: str,
        remote: Iterable[Recipient],
        local_offices: Iterable[str],
    ) -> tuple[str, int]:
        """MIME → signed by the sending office → encrypted to every recipient and the sender, streamed into the
        blob store (one content key whatever the number of recipients); returns the envelope's digest and size."""
        message = env.mime_message(meta, docs)
        with self._db.begin() as conn:
            key, cert = self._key(conn, CertPurpose.OFFICE_SIGNING, from_office)
            ca = x509.load_der_x509_certificate(self._pki.ca_certificate(conn).der)
            certs = [self._encryption_cert(conn, from_office)]
            certs += [self._encryption_cert(conn, code) for code in local_offices]
        peers = self._peers()
        for r in remote:
            assert peers is not None
            certs.append(peers.office(r.address).encryption_certificate)
        size = 0

        def counted() -> Iterator[bytes]:
            nonlocal size
            for chunk in env.seal(message, key, cert, [ca], certs):
                size += len(chunk)
                yield chunk

        digest = self._blobs.put_stream(ChunkReader(counted()).as_binary())
        return digest, size

    # --- reading -------------------------------------------------------------------------

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
        return x509.load_der_x509_certificate(self._pki.certificate(conn, CertPurpose.OFFICE_ENCRYPTION, office).der)

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
        with self._db.read() as conn:
            revoked = conn.execute(
                select(t.certificates.c.revoked_at).where(t.certificates.c.serial == format(cert.serial_number, "x"))
            ).scalar()
        return revoked is not None

    def _office_name(self, address: str) -> str | None:
        """The name of a sending office of this node (found by name as well as by address)."""
        code, _, node = address.partition("@")
        if node != self.node_id:
            return None
        try:
            return self._directory.office(code).name
        except NotFoundError:
            return None


def check_received_text(meta: env.MessageMetadata, docs: Sequence[env.Document | env.ReceivedDocument]) -> None:
    """A peer's subject and file names pass the same text check as ours (a disguised file name is refused)."""
    fields = [("subject", meta.subject)] + [("document name", d.name) for d in docs]
    for field, value in fields:
        try:
            check_text(value, field)
        except UnsafeTextError as exc:
            raise EnvelopeError("the envelope's {exc}", exc=exc) from None


def thread_id_of(reply_to: str | None) -> str | None:
    """The id a received message answers, kept for threading only when it looks like a message id."""
    if reply_to and len(reply_to) <= 36 and all(c.isalnum() or c == "-" for c in reply_to):
        return reply_to
    return None


def check_claimed_id(claimed: str | None, signed: str) -> None:
    """The id a delivery names must be the signed one: receipts, replay checks and logs all go by it."""
    if claimed is not None and claimed != signed:
        raise MessageIdMismatchError(
            f"the Inkless-Message-Id header says {claimed[:128]!r}, the signed envelope says {signed!r}"
        )


def recipient_status(r: Row[Any]) -> RecipientStatus:
    pending = r.state in ("queued", "retrying")
    return RecipientStatus(
        recipient=r.recipient,
        state=r.state,
        attempts=r.attempts,
        next_attempt_at=r.next_attempt_at if pending else None,
        last_error=r.last_error,
        expires_at=r.expires_at,
        delivered_at=r.delivered_at,
        received_at=r.received_at,
        has_receipt=r.receipt is not None,
        fax_decision=note(r.fax_decision, r.fax_decision_params, r.fax_updated_at),
        fax_outcome=note(r.fax_outcome, r.fax_outcome_params, r.fax_updated_at),
    )


def stored_fax_first(stored: str | None) -> FaxFirst | None:
    if not stored:
        return None
    try:
        return parse_fax_first(stored)
    except ValidationError:
        return None
