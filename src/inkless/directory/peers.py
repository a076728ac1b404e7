"""Pinned peer nodes: adding them by URL and CA fingerprint, their signed office directories, signed requests.

Pinning works like SSH known_hosts: an administrator gets the peer's CA
fingerprint out of band (by phone, on paper) and runs ``inkless peer add URL
--fingerprint SHA256:...``. From then on everything that peer signs (its node
document, its office directory, its HTTP requests and answers, its envelopes and
receipts) is checked against that CA, and nothing else from it is accepted.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError as DBIntegrityError

from inkless.audit.model import AuditEvent, AuditRecorder
from inkless.audit.traffic import count_anonymous
from inkless.clock import Clock
from inkless.config import NODE_ID_RE
from inkless.db.engine import Database
from inkless.db.tables_federation import federation_nonces, federation_peers
from inkless.delivery.transport import RemoteOffice, split_address
from inkless.directory.service import DirectoryService
from inkless.errors import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PeerUnreachableError,
    PKIError,
    ValidationError,
)
from inkless.federation import httpsig
from inkless.federation.client import DIRECTORY_PATH, NODE_PATH, FederationClient, read_certificate_header
from inkless.federation.documents import (
    DIRECTORY_DOCUMENT,
    NODE_DOCUMENT,
    check_node_certificate,
    check_office_certificate,
    sign_document,
    verify_document,
)
from inkless.federation.httpsig import HttpMessage, SignatureError
from inkless.pki.ca import NodeCA, fingerprint
from inkless.pki.model import CertPurpose

_FINGERPRINT_RE = re.compile(r"^(?:sha256:)?((?:[0-9a-f]{2}:?){31}[0-9a-f]{2})$", re.IGNORECASE)
_URL_RE = re.compile(r"^https?://[^/\s?#]+(/[^\s?#]*)?$")
# Nonces are kept a little longer than a signature can pass the clock check.
if TYPE_CHECKING:
    import httpx

NONCE_LIFETIME = timedelta(seconds=2 * httpsig.MAX_SKEW_SECONDS + 60)


def normalise_fingerprint(text: str) -> str:
    """``SHA256:<64 upper-case hex>`` from the forms people paste (with or without colons, any case)."""
    m = _FINGERPRINT_RE.match(text.strip())
    if not m:
        raise ValidationError(
            f"{text!r} is not a SHA-256 fingerprint (expected SHA256: followed by 64 hex digits, "
            "as printed by 'inkless node info' on the peer)"
        )
    return "SHA256:" + m.group(1).replace(":", "").upper()


def _url_path(url: str) -> str:
    import httpx

    return str(httpx.URL(url).path)


def normalise_url(url: str) -> str:
    """A peer's base URL without trailing slash; ValidationError if it is not http(s)."""
    url = url.strip()
    if not _URL_RE.match(url):
        raise ValidationError(f"{url!r} is not an http:// or https:// base URL (no query, no fragment)")
    import httpx

    return str(httpx.URL(url)).rstrip("/")


@dataclass(frozen=True)
class Peer:
    """A pinned peer node as stored."""

    node_id: str
    url: str
    fingerprint: str
    ca_der: bytes
    added_at: datetime
    last_seen_at: datetime | None
    last_error: str | None
    unreachable_since: datetime | None
    directory_fetched_at: datetime | None
    office_count: int

    @property
    def ca_certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.ca_der)


@dataclass(frozen=True)
class RefreshResult:
    """What happened when one peer's directory was fetched."""

    node_id: str
    ok: bool
    offices: int
    changed: bool
    error: str | None


class PeerService:
    """Pins peers, serves this node's signed documents, keeps peers' directories, checks signed requests.

    Implements :class:`~inkless.delivery.transport.PeerLookup` for the delivery core.
    """

    def __init__(
        self,
        db: Database,
        node_id: str,
        base_url: str,
        organisation: str,
        pki: NodeCA,
        directory: DirectoryService,
        audit: AuditRecorder,
        clock: Clock,
        http: httpx.Client | None = None,
    ) -> None:
        self._db = db
        self._node_id = node_id
        self._base_url = base_url.rstrip("/")
        self._organisation = organisation
        self._pki = pki
        self._directory = directory
        self._audit = audit
        self._clock = clock
        self._lock = threading.Lock()
        self._node_key: tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None = None
        # Parsed directories, keyed by peer and fetch time: a refresh invalidates by changing the key.
        self._offices: dict[str, tuple[datetime | None, dict[str, RemoteOffice]]] = {}
        self.client = FederationClient(node_id, self.node_key, clock, http=http)

    # --- this node -----------------------------------------------------------------------

    def node_key(self) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        """The node's signing key and certificate (decrypted once, kept in memory)."""
        with self._lock:
            if self._node_key is None:
                with self._db.begin() as conn:
                    key, cert = self._pki.key_and_certificate(conn, CertPurpose.NODE, self._node_id)
                if not isinstance(key, ec.EllipticCurvePrivateKey):
                    raise PKIError("the node key is not an ECDSA key")
                self._node_key = (key, cert)
            return self._node_key

    def node_document(self) -> dict[str, Any]:
        """What ``GET /federation/v1/node`` answers: identity, CA certificate, and the same signed."""
        with self._db.read() as conn:
            ca = self._pki.ca_certificate(conn)
        ca_pem = x509.load_der_x509_certificate(ca.der).public_bytes(serialization.Encoding.PEM).decode("ascii")
        payload = {
            "type": NODE_DOCUMENT,
            "node_id": self._node_id,
            "organisation": self._organisation,
            "base_url": self._base_url,
            "ca_certificate": ca_pem,
            "ca_fingerprint": ca.fingerprint,
            "issued_at": self._clock.now().isoformat(),
        }
        key, cert = self.node_key()
        return {**{k: v for k, v in payload.items() if k != "type"}, "signed": sign_document(payload, key, cert)}

    def directory_document(self) -> dict[str, Any]:
        """What ``GET /federation/v1/directory`` answers: every office with its public certificates, signed."""
        offices = []
        # Read the offices first: a second transaction inside ours would wait for our own write lock on SQLite.
        own = self._directory.offices()
        with self._db.begin() as conn:
            for office in own:
                enc = self._pki.certificate(conn, CertPurpose.OFFICE_ENCRYPTION, office.code)
                sig = self._pki.certificate(conn, CertPurpose.OFFICE_SIGNING, office.code)
                offices.append({
                    "address": office.address(self._node_id),
                    "name": office.name,
                    "kana": office.kana,
                    "fax_number": office.fax_number,
                    "encryption_certificate": base64.b64encode(enc.der).decode("ascii"),
                    "signing_certificate": base64.b64encode(sig.der).decode("ascii"),
                })
        payload = {
            "type": DIRECTORY_DOCUMENT,
            "node_id": self._node_id,
            "issued_at": self._clock.now().isoformat(),
            "organisation": self._organisation,
            "offices": offices,
        }
        key, cert = self.node_key()
        return {"node_id": self._node_id, "offices": len(offices), "signed": sign_document(payload, key, cert)}

    # --- pinning -------------------------------------------------------------------------

    def add(self, url: str, pinned_fingerprint: str, actor: str = "system") -> tuple[Peer, RefreshResult]:
        """Pin the node at ``url`` if its CA has ``pinned_fingerprint``; then fetch its office directory.

        Nothing is stored unless the fingerprint matches and every signature checks out.
        """
        url = normalise_url(url)
        expected = normalise_fingerprint(pinned_fingerprint)
        answer = self.client.request("GET", url + NODE_PATH, peer=url, ca=None, sign=False)
        if answer.status != 200:
            raise PeerUnreachableError(f"{url} answered HTTP {answer.status} to {NODE_PATH}: {answer.detail()}")
        try:
            signed = json.loads(answer.body)["signed"]
            claimed = json.loads(answer.body)["node_id"]
            ca_pem = json.loads(answer.body)["ca_certificate"]
            ca = x509.load_pem_x509_certificate(ca_pem.encode("ascii"))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValidationError(f"{url}{NODE_PATH} did not return an inkless node document ({exc})") from None
        got = fingerprint(ca.public_bytes(serialization.Encoding.DER))
        if got != expected:
            # The one check that makes pinning worth anything: say exactly what differs.
            raise AuthenticationError(
                f"CA fingerprint mismatch for {url}: you pinned {expected} but the node presents {got}. "
                "Nothing was stored. Check the fingerprint with the peer's administrator "
                "('inkless node info' on that node) and the URL."
            )
        now = self._clock.now()
        try:
            payload = verify_document(signed, ca, now, NODE_DOCUMENT)
        except SignatureError as exc:
            raise AuthenticationError(
                f"the node at {url} presents the pinned CA but its document fails: {exc}"
            ) from None
        node_id = payload.get("node_id")
        if not isinstance(node_id, str) or not NODE_ID_RE.match(node_id) or node_id != claimed:
            raise ValidationError(f"the node at {url} has an invalid node id {node_id!r}")
        if node_id == self._node_id:
            raise ValidationError(f"{url} is this node ({node_id}); a node does not peer with itself")
        advertised = normalise_url(str(payload.get("base_url", "")))
        if advertised != url:
            # Signatures cover the full target URI, which the peer rebuilds from its own base_url.
            raise ValidationError(
                f"the node {node_id} says its URL is {advertised}, not {url}: add it with {advertised} "
                f"(or fix base_url in that node's inkless.toml)"
            )
        try:
            if answer.signer_certificate is None or answer.signer != node_id:
                raise SignatureError(answer.signature_problem or f"signed by {answer.signer!r}, not {node_id!r}")
            check_node_certificate(answer.signer_certificate, ca, now)
        except SignatureError as exc:
            raise AuthenticationError(f"the answer of {node_id} at {url} is not properly signed: {exc}") from None
        with self._db.begin() as conn:
            existing = conn.execute(
                select(federation_peers.c.fingerprint).where(federation_peers.c.node_id == node_id)
            ).scalar()
            if existing is not None:
                if existing == got:
                    raise ConflictError(f"node {node_id} is already pinned with this fingerprint")
                raise ConflictError(
                    f"node {node_id} is already pinned with another CA ({existing}); "
                    f"run 'inkless peer remove {node_id}' first if the peer really changed its CA"
                )
            conn.execute(
                insert(federation_peers).values(
                    node_id=node_id, url=url, ca_der=ca.public_bytes(serialization.Encoding.DER), fingerprint=got,
                    added_at=now, last_seen_at=now,
                )
            )
            self._audit.record(
                conn,
                AuditEvent(actor=actor, action="peer.added", object_type="peer", object_id=node_id,
                           digests={"ca": got}, details={"url": url}),
                at=now,
            )
        result = self._refresh_one(node_id, actor)
        return self.get(node_id), result

    def presented(self, url: str) -> tuple[str, str]:
        """(node id, CA fingerprint) that the node at ``url`` presents now; nothing is stored or trusted.

        The admin console shows this fingerprint for reading aloud; pinning still takes the fingerprint the
        peer's administrator reads out (typed by the admin) and :meth:`add` compares it with this one again.
        """
        url = normalise_url(url)
        answer = self.client.request("GET", url + NODE_PATH, peer=url, ca=None, sign=False)
        if answer.status != 200:
            raise PeerUnreachableError(f"{url} answered HTTP {answer.status} to {NODE_PATH}: {answer.detail()}")
        try:
            document = json.loads(answer.body)
            ca = x509.load_pem_x509_certificate(document["ca_certificate"].encode("ascii"))
            claimed = str(document["node_id"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValidationError(f"{url}{NODE_PATH} did not return an inkless node document ({exc})") from None
        return claimed, fingerprint(ca.public_bytes(serialization.Encoding.DER))

    def remove(self, node_id: str, actor: str = "system") -> None:
        """Unpin a peer: its requests are refused from now on and its directory is forgotten."""
        with self._db.begin() as conn:
            row = conn.execute(select(federation_peers).where(federation_peers.c.node_id == node_id)).one_or_none()
            if row is None:
                raise NotFoundError(f"no pinned peer {node_id!r}")
            conn.execute(delete(federation_peers).where(federation_peers.c.node_id == node_id))
            conn.execute(delete(federation_nonces).where(federation_nonces.c.node_id == node_id))
            self._audit.record(
                conn,
                AuditEvent(actor=actor, action="peer.removed", object_type="peer", object_id=node_id,
                           digests={"ca": row.fingerprint}),
            )
        self._offices.pop(node_id, None)

    def all(self) -> list[Peer]:
        """Every pinned peer, by node id."""
        with self._db.read() as conn:
            rows = conn.execute(select(federation_peers).order_by(federation_peers.c.node_id)).all()
        return [_peer(r) for r in rows]

    def get(self, node_id: str) -> Peer:
        """One pinned peer; NotFoundError if not pinned."""
        with self._db.read() as conn:
            row = conn.execute(select(federation_peers).where(federation_peers.c.node_id == node_id)).one_or_none()
        if row is None:
            raise NotFoundError(f"no pinned peer {node_id!r}")
        return _peer(row)

    # --- directories ---------------------------------------------------------------------

    def refresh(self, node_id: str | None = None, actor: str = "system") -> list[RefreshResult]:
        """Fetch the signed office directory of one peer, or of all; failures are recorded, not raised."""
        if node_id is not None:
            self.get(node_id)
            return [self._refresh_one(node_id, actor)]
        return [self._refresh_one(p.node_id, actor) for p in self.all()]

    def _refresh_one(self, node_id: str, actor: str) -> RefreshResult:
        peer = self.get(node_id)
        # Only a properly signed answer shows the peer is up, whatever it says (a refusal, a bad directory).
        reachable = False
        try:
            answer = self.client.request("GET", peer.url + DIRECTORY_PATH, peer=node_id, ca=peer.ca_certificate)
            if not answer.verified:
                raise PeerUnreachableError(
                    f"{node_id} answered HTTP {answer.status} without a valid signature: {answer.signature_problem}"
                )
            reachable = True
            if answer.status != 200:
                raise PeerUnreachableError(f"{node_id} refused the directory request ({answer.status}): "
                                           f"{answer.detail()}")
            jws = json.loads(answer.body)["signed"]
            offices = self._parse_directory(node_id, jws, peer.ca_certificate)
        except (PeerUnreachableError, SignatureError, PKIError, ValueError, KeyError, TypeError) as exc:
            self.record_contact(node_id, f"directory: {exc}", reachable=reachable)
            return RefreshResult(node_id, False, 0, False, str(exc))
        now = self._clock.now()
        with self._db.begin() as conn:
            previous = conn.execute(
                select(federation_peers.c.directory_jws).where(federation_peers.c.node_id == node_id)
            ).scalar()
            changed = previous is None or _directory_digest(previous) != _directory_digest(jws)
            conn.execute(
                update(federation_peers).where(federation_peers.c.node_id == node_id).values(
                    directory_jws=jws, directory_fetched_at=now, last_seen_at=now, last_error=None,
                    unreachable_since=None,
                )
            )
            if changed:
                # Only changes are audited: the periodic refresh must not flood the log.
                self._audit.record(
                    conn,
                    AuditEvent(actor=actor, action="peer.directory_updated", object_type="peer", object_id=node_id,
                               digests={"directory": _directory_digest(jws)}, details={"offices": len(offices)}),
                    at=now,
                )
        self._offices[node_id] = (now, offices)
        return RefreshResult(node_id, True, len(offices), changed, None)

    def _parse_directory(self, node_id: str, jws: str, ca: x509.Certificate) -> dict[str, RemoteOffice]:
        now = self._clock.now()
        payload = verify_document(jws, ca, now, DIRECTORY_DOCUMENT)
        if payload.get("node_id") != node_id:
            raise SignatureError(f"the directory is for node {payload.get('node_id')!r}, not {node_id!r}")
        offices: dict[str, RemoteOffice] = {}
        organisation = payload.get("organisation")
        for entry in payload.get("offices", []):
            address = str(entry["address"])
            _code, office_node = split_address(address)
            if office_node != node_id:
                raise SignatureError(f"the directory of {node_id} lists a foreign office {address!r}")
            enc = x509.load_der_x509_certificate(base64.b64decode(entry["encryption_certificate"]))
            sig = x509.load_der_x509_certificate(base64.b64decode(entry["signing_certificate"]))
            check_office_certificate(enc, ca, now, address, "encryption")
            check_office_certificate(sig, ca, now, address, "signing")
            offices[address] = RemoteOffice(
                address=address, name=str(entry["name"]), fax_number=entry.get("fax_number"),
                encryption_certificate=enc, signing_certificate=sig,
                kana=str(entry["kana"]) if entry.get("kana") else None,
                organisation=str(organisation) if organisation else None,
            )
        return offices

    # --- PeerLookup ----------------------------------------------------------------------

    def is_pinned(self, node_id: str) -> bool:
        """True if ``node_id`` is a pinned peer."""
        with self._db.read() as conn:
            return conn.execute(
                select(federation_peers.c.node_id).where(federation_peers.c.node_id == node_id)
            ).first() is not None

    def ca_certificates(self) -> list[x509.Certificate]:
        """The pinned CA certificates of every peer (trust anchors for seals), read with one narrow query."""
        with self._db.read() as conn:
            ders = conn.execute(select(federation_peers.c.ca_der).order_by(federation_peers.c.node_id)).scalars()
            return [_ca_from_der(bytes(der)) for der in ders]

    def ca_certificate(self, node_id: str) -> x509.Certificate:
        """The pinned CA certificate of ``node_id``; NotFoundError if not pinned."""
        return self.get(node_id).ca_certificate

    def office(self, address: str) -> RemoteOffice:
        """An office of a pinned peer from its signed directory (fetched now if we have none yet)."""
        _code, node_id = split_address(address)
        peer = self.get(node_id)
        if peer.directory_fetched_at is None:
            # Both sides have just pinned each other: fetch once rather than fail the first send.
            result = self._refresh_one(node_id, "system")
            if not result.ok:
                raise NotFoundError(f"no office directory from {node_id} yet ({result.error})")
            peer = self.get(node_id)
        cached = self._offices.get(node_id)
        if cached is None or cached[0] != peer.directory_fetched_at:
            with self._db.read() as conn:
                jws = conn.execute(
                    select(federation_peers.c.directory_jws).where(federation_peers.c.node_id == node_id)
                ).scalar()
            if jws is None:
                raise NotFoundError(f"no office directory from {node_id} yet")
            try:
                offices = self._parse_directory(node_id, jws, peer.ca_certificate)
            except SignatureError as exc:
                raise PKIError(f"the stored directory of {node_id} no longer verifies: {exc}") from None
            cached = (peer.directory_fetched_at, offices)
            self._offices[node_id] = cached
        office = cached[1].get(address)
        if office is None:
            raise NotFoundError(f"no office {address!r} in the directory of {node_id}")
        now = self._clock.now()
        for cert, what in ((office.encryption_certificate, "encryption"), (office.signing_certificate, "signing")):
            if now > cert.not_valid_after_utc:
                raise PKIError(f"the {what} certificate of {address} expired on {cert.not_valid_after_utc:%Y-%m-%d}")
        return office

    def remote_offices(self, node_id: str | None = None) -> list[RemoteOffice]:
        """Offices of pinned peers known from their directories (for address books and lists)."""
        found: list[RemoteOffice] = []
        for peer in self.all():
            if node_id is not None and peer.node_id != node_id:
                continue
            if peer.directory_fetched_at is None:
                continue
            with self._db.read() as conn:
                jws = conn.execute(
                    select(federation_peers.c.directory_jws).where(federation_peers.c.node_id == peer.node_id)
                ).scalar()
            if jws is None:
                continue
            try:
                found.extend(self._parse_directory(peer.node_id, jws, peer.ca_certificate).values())
            except (SignatureError, PKIError):
                continue
        return sorted(found, key=lambda o: o.address)

    # --- health of peers -----------------------------------------------------------------

    def record_contact(self, node_id: str, error: str | None, *, reachable: bool | None = None) -> None:
        """Remember how the last exchange with a peer went (the fax fallback reads ``unreachable_since``)."""
        if reachable is None:
            reachable = error is None
        now = self._clock.now()
        with self._db.begin() as conn:
            row = conn.execute(
                select(federation_peers.c.unreachable_since).where(federation_peers.c.node_id == node_id)
            ).one_or_none()
            if row is None:
                return
            values: dict[str, Any] = {"last_error": error[:2000] if error else None}
            if reachable:
                values["last_seen_at"] = now
                values["unreachable_since"] = None
            elif row.unreachable_since is None:
                values["unreachable_since"] = now
            conn.execute(update(federation_peers).where(federation_peers.c.node_id == node_id).values(**values))

    def probe(self, node_id: str) -> bool:
        """Ask the peer who it is (a signed request, a signed answer checked against its pinned CA) and record
        the contact: True if it answered, which clears its ``unreachable_since``. The fax fallback asks this
        right before faxing, so a stale "unreachable" flag never sends a fax to a peer that is back."""
        peer = self.get(node_id)
        try:
            answer = self.client.request("GET", peer.url.rstrip("/") + NODE_PATH, peer=node_id,
                                         ca=peer.ca_certificate)
        except PeerUnreachableError as exc:
            self.record_contact(node_id, f"probe: {exc}", reachable=False)
            return False
        if not answer.verified or answer.status >= 500:
            problem = answer.signature_problem if not answer.verified else answer.detail()
            self.record_contact(node_id, f"probe: HTTP {answer.status}: {problem}", reachable=False)
            return False
        self.record_contact(node_id, None, reachable=True)
        return True

    # --- signed requests from peers -----------------------------------------------------

    def verify_request(
        self,
        method: str,
        target_uri: str,
        headers: dict[str, str],
        body: bytes | httpsig.BodyDigest,
        covered: tuple[str, ...] = (),
        client: str | None = None,
    ) -> str:
        """The node id of the pinned peer that signed this request; SignatureError (tallied) otherwise."""
        keyid: str | None = None
        try:
            received = httpsig.parse_signature(headers)
            keyid = received.params.keyid
            if not keyid:
                raise SignatureError("the signature has no 'keyid'")
            try:
                peer = self.get(keyid)
            except NotFoundError:
                raise SignatureError(
                    f"node {keyid!r} is not pinned here; ask this node's administrator to run "
                    f"'inkless peer add URL --fingerprint ...' for it"
                ) from None
            message = HttpMessage(headers=headers)
            cert = read_certificate_header(message.header(httpsig.NODE_CERTIFICATE_HEADER))
            now = self._clock.now()
            check_node_certificate(cert, peer.ca_certificate, now)
            public_key = cert.public_key()
            assert isinstance(public_key, ec.EllipticCurvePublicKey)  # checked by check_node_certificate
            httpsig.verify_request(received, method, target_uri, headers, body, public_key, int(now.timestamp()),
                                   covered)
            assert received.params.nonce is not None
            self._remember_nonce(keyid, received.params.nonce, now)
        except SignatureError:
            # Until the signature holds, the request is anyone's: a stranger can name a pinned peer as
            # easily as none, and replay what they overheard. Such refusals are counted for the
            # periodic tally (by kind, and by the peer named), never one permanent audit entry each;
            # the caller gets the reason in the signed 401, a real peer sees it in its peer list.
            if keyid is None:
                outcome = "unsigned"
            elif self.is_pinned(keyid):
                outcome = f"refused:{keyid}"
            else:
                outcome = "not-pinned"
            with self._db.begin() as conn:
                count_anonymous(conn, "federation", client, self._clock.now(), outcome)
            raise
        return keyid

    def _remember_nonce(self, node_id: str, nonce: str, now: datetime) -> None:
        if len(nonce) > 128:
            raise SignatureError("the nonce is longer than 128 characters")
        try:
            # Not durable on its own: whatever the request goes on to change commits durably after it, which
            # makes the nonce durable too (the log is written in order); a power cut can lose only the nonce
            # of a request that changed nothing, and replaying that one changes nothing either.
            with self._db.begin(durable=False) as conn:
                conn.execute(delete(federation_nonces).where(federation_nonces.c.expires_at < now))
                conn.execute(
                    insert(federation_nonces).values(node_id=node_id, nonce=nonce, expires_at=now + NONCE_LIFETIME)
                )
        except DBIntegrityError:
            # The key (node, nonce) is taken: an earlier request, or a concurrent copy of this one, used the
            # nonce. The insert is the check, so that two copies at once cannot both pass a lookup first.
            raise SignatureError(f"replayed request: the nonce {nonce!r} of {node_id} was already used") from None

    def _refused(self, reason: str, keyid: str | None, method: str, target_uri: str, client: str | None) -> None:
        with self._db.begin() as conn:
            self._audit.record(
                conn,
                AuditEvent(
                    actor=f"peer:{keyid}" if keyid else "anonymous",
                    action="federation.request_refused",
                    object_type="peer",
                    object_id=keyid,
                    details={"reason": reason[:500], "method": method, "path": _url_path(target_uri),
                             "client": client},
                ),
            )

    def refuse(self, reason: str, keyid: str | None, method: str, target_uri: str, client: str | None) -> None:
        """Audit a federation request refused for another reason (too large, wrong sender node).

        Before its signature was checked (``keyid`` None) the request is anyone's: tallied, not audited.
        """
        if keyid is None:
            with self._db.begin() as conn:
                count_anonymous(conn, "federation", client, self._clock.now(), "refused")
            return
        self._refused(reason, keyid, method, target_uri, client)


def _stored_offices(jws: str) -> Any:
    """The ``offices`` of a stored directory's payload, read without checking its signature; None if unreadable."""
    try:
        body = jws.split(".")[1]
        payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        return payload.get("offices", [])
    except (ValueError, IndexError, AttributeError):
        return None


def _directory_digest(jws: str) -> str:
    # The offices only: a freshly signed but otherwise identical directory is no change. An unreadable
    # stored one digests as null, which no verified directory (whose offices are a list) does.
    return hashlib.sha256(json.dumps(_stored_offices(jws), sort_keys=True).encode("utf-8")).hexdigest()


@functools.lru_cache(maxsize=256)
def _ca_from_der(der: bytes) -> x509.Certificate:
    # A certificate object is immutable: parse each pinned CA once per process, not at every verification.
    return x509.load_der_x509_certificate(der)


def _peer(row: Any) -> Peer:
    listed = _stored_offices(row.directory_jws) if row.directory_jws else None
    return Peer(
        node_id=row.node_id, url=row.url, fingerprint=row.fingerprint, ca_der=row.ca_der, added_at=row.added_at,
        last_seen_at=row.last_seen_at, last_error=row.last_error, unreachable_since=row.unreachable_since,
        directory_fetched_at=row.directory_fetched_at, office_count=len(listed) if isinstance(listed, list) else 0,
    )
