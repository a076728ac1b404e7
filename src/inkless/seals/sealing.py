"""PAdES sealing: a seal imprint as the visible appearance of a pyHanko signature.

Every seal is one incremental update (earlier seals stay valid), a PAdES signature
(ETSI.CAdES.detached) made with the signer's key from the node key store, timestamped by the
node TSA (or the configured external one), with the node CA certificate and its CRL embedded
in the DSS so that it validates offline (PAdES B-LT). ``extend_to_lta_async`` adds a document
timestamp on top (B-LTA).
"""

from __future__ import annotations

import asyncio
import binascii
import functools
import hashlib
import io
import logging
import re
import uuid
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from asn1crypto import crl as asn1_crl
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils import content
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.layout import BoxConstraints
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.fields import FieldMDPAction, FieldMDPSpec, MDPPerm, SigFieldSpec, SigSeedSubFilter
from pyhanko.sign.general import SigningError
from pyhanko.sign.signers.pdf_signer import PdfTimeStamper
from pyhanko.sign.timestamps import TimeStamper
from pyhanko.stamp import StaticStampStyle
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore
from sqlalchemy import Connection, func, select

from inkless import timefmt
from inkless.aio import run_on_thread_loop
from inkless.audit.model import AuditEvent, AuditRecorder
from inkless.clock import Clock
from inkless.db import tables as t
from inkless.db.engine import Database
from inkless.directory.model import Role, User
from inkless.errors import InklessError, PolicyError, SealError, ValidationError
from inkless.pki import asn1names  # noqa: F401  (pyHanko's OID names, known by name)
from inkless.pki.ca import NodeCA
from inkless.pki.model import CertPurpose
from inkless.seals.imprint import (
    PT_PER_MM,
    SealImprint,
    SealKind,
    date_seal,
    office_seal,
    personal_seal,
    render_pdf,
)
from inkless.seals.model import SealPlacement, VerificationReport

if TYPE_CHECKING:
    from inkless.directory.service import DirectoryService

__all__ = ["SealKind", "SealPlacement", "SealingService", "SignerMaterial", "imprint_for"]

MAX_PDF_BYTES = 200 * 1024 * 1024
CRL_REUSE = timedelta(minutes=10)
# Who may press the office seal (角印) of their own office.
OFFICE_SEAL_ROLES = frozenset({Role.ADMIN, Role.APPROVER})

TrustSource = Callable[[], list[cx509.Certificate]]
# Changes with every revocation: the CRL is signed again only then (built once, not per seal).
_REVOCATION_MARKER = select(func.count(), func.max(t.certificates.c.revoked_at)).where(
    t.certificates.c.revoked_at.is_not(None))


class _OfflineEmbeddingNotice(logging.Filter):
    # We embed validation data without fetching on purpose (the CA and CRL are local), so pyHanko's
    # warning about it is noise in every CLI run and log.
    def filter(self, record: logging.LogRecord) -> bool:
        return "fetching is not allowed" not in record.getMessage()


logging.getLogger("pyhanko.sign.signers.pdf_signer").addFilter(_OfflineEmbeddingNotice())


class ImprintPage(content.ImportedPdfPage):
    """A page imported from PDF bytes in memory (pyHanko's ``ImportedPdfPage`` only reads files)."""

    def __init__(self, pdf: bytes) -> None:
        super().__init__(file_name="<imprint>", page_ix=0)  # type: ignore[no-untyped-call]
        self._pdf = pdf

    def render(self) -> bytes:
        writer = self._ensure_writer
        xobj = writer.import_page_as_xobject(PdfFileReader(io.BytesIO(self._pdf)), page_ix=0)
        resource_name = b"/Import" + binascii.hexlify(uuid.uuid4().bytes)
        self.resources.xobject[resource_name.decode("ascii")] = xobj
        x1, y1, x2, y2 = xobj.get_object()["/BBox"]
        self.box = BoxConstraints(width=abs(x1 - x2), height=abs(y1 - y2))
        return resource_name + b" Do"


@functools.lru_cache(maxsize=256)
def imprint_pdf(imprint: SealImprint) -> bytes:
    """The vector imprint, cached: rendering is deterministic, and a clerk seals many documents a day."""
    return render_pdf(imprint)


def imprint_for(user: User, office_name: str, kind: SealKind, on: datetime,
                size_mm: float | None = None, tz: tzinfo = timefmt.TOKYO) -> SealImprint:
    """The imprint a user's seal of ``kind`` leaves at ``on``: a date seal shows the office-zone date."""
    if kind == SealKind.PERSONAL:
        return personal_seal(user.surname, size_mm or 12.0)
    if kind == SealKind.DATE:
        return date_seal(office_name, user.surname, timefmt.to_local(on, tz).date(), size_mm or 16.5)
    return office_seal(office_name, size_mm or 21.0)


# Public material only (certificates, CRLs): asn1crypto parses lazily and caches what it parsed, so a
# certificate used for the hundredth seal of the day costs nothing to re-read. Keys are never cached.
@functools.lru_cache(maxsize=512)
def asn1_certificate(der: bytes) -> asn1_x509.Certificate:
    """A DER certificate as asn1crypto, parsed once per process."""
    return asn1_x509.Certificate.load(der)


@functools.lru_cache(maxsize=16)
def asn1_crl_list(der: bytes) -> asn1_crl.CertificateList:
    """A DER CRL as asn1crypto, parsed once per process."""
    return asn1_crl.CertificateList.load(der)


class SignerMaterial:
    """A key and its chain, as pyHanko wants them (asn1crypto), decrypted only in memory.

    The key is parsed straight from the decrypted PKCS#8 DER: going through ``cryptography`` objects
    and back (what pyHanko's own loader does) costs two RSA key loads per seal and yields the same bytes.
    """

    def __init__(self, key_der: bytes, cert_der: bytes, ca: asn1_x509.Certificate,
                 crl: asn1_crl.CertificateList) -> None:
        self.key: asn1_keys.PrivateKeyInfo = asn1_keys.PrivateKeyInfo.load(key_der)
        self.cert = asn1_certificate(cert_der)
        self.ca = ca
        self.crl = crl

    def signer(self) -> signers.SimpleSigner:
        return signers.SimpleSigner(
            signing_cert=self.cert, signing_key=self.key,
            cert_registry=SimpleCertificateStore.from_certs([self.ca]),  # type: ignore[no-untyped-call]
        )


def validation_context(trust_roots: list[asn1_x509.Certificate], crls: list[asn1_crl.CertificateList],
                       at: datetime | None = None) -> ValidationContext:
    """Offline validation against known node CAs and their CRLs (no fetching: verifiers may be air-gapped)."""
    return ValidationContext(
        trust_roots=trust_roots, crls=crls, allow_fetching=False, moment=at,
    )


def run_sync(coro: Coroutine[Any, Any, bytes]) -> bytes:
    """Run an async sealing call from synchronous code (CLI, tests); refuses inside a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run_on_thread_loop(coro)
    coro.close()
    raise SealError("the synchronous sealing API was called inside an event loop: use the *_async method")


class SealingService:
    """Applies seals to PDFs, extends them to B-LTA, and verifies them."""

    def __init__(
        self, db: Database, pki: NodeCA, directory: DirectoryService, audit: AuditRecorder, clock: Clock,
        *, node_id: str, organisation: str, timestamper: TimeStamper, trust_source: TrustSource | None = None,
        timezone: tzinfo = timefmt.TOKYO,
    ) -> None:
        self._db = db
        self.timezone = timezone  # 日付印 carry the office's date (Tokyo), not the server's or UTC's
        self._pki = pki
        self._directory = directory
        self._audit = audit
        self._clock = clock
        self._node_id = node_id
        self._organisation = organisation
        self.timestamper = timestamper
        self._trust_source = trust_source
        self._crl_cache: tuple[tuple[Any, ...], datetime, asn1_crl.CertificateList] | None = None
        self._ca_cache: cx509.Certificate | None = None
        self._anchors_cache: tuple[tuple[bytes, ...], list[asn1_x509.Certificate]] | None = None

    # --- sealing ---------------------------------------------------------------------

    def seal(self, pdf: bytes, signer_login: str, kind: SealKind, placement: SealPlacement, *, actor: str,
             reason: str | None = None, certify: bool = False, size_mm: float | None = None) -> bytes:
        """Synchronous :meth:`seal_async` for the CLI and tests."""
        return run_sync(self.seal_async(pdf, signer_login, kind, placement, actor=actor, reason=reason,
                                        certify=certify, size_mm=size_mm))

    async def seal_async(
        self, pdf: bytes, signer_login: str, kind: SealKind, placement: SealPlacement, *, actor: str,
        reason: str | None = None, certify: bool = False, size_mm: float | None = None,
    ) -> bytes:
        """Seal ``pdf`` as ``signer_login`` with their ``kind`` of seal at ``placement``; returns the new PDF.

        ``certify=True`` makes a certification signature (DocMDP, form filling allowed) on a
        document without seals; on a document that already carries seals (where PDF forbids a
        certification signature) it makes the closing seal, which locks every field and allows
        form filling only (a PDF 2.0 field lock with /P 2).
        """
        kind = SealKind(kind)
        # One transaction for who seals, with what key, under which CA and CRL: a read-only one, so that
        # seals made in parallel (batch sealing) do not queue for the write lock until their audit entry.
        with self._db.read() as conn:
            user, office_code, office_name = self._signer(conn, signer_login, kind)
            material = self._material(conn, signer_login if kind != SealKind.OFFICE else office_code, kind)
        imprint = imprint_for(user, office_name, kind, self._clock.now(), size_mm, self.timezone)
        return await self._apply(pdf, signer_login, kind, placement, material, imprint, actor=actor, reason=reason,
                                 certify=certify)

    async def seal_as_office_async(self, pdf: bytes, office_code: str, placement: SealPlacement, *, actor: str,
                                   reason: str | None = None) -> bytes:
        """Seal ``pdf`` with an office's 角印 on the node's own behalf (no person presses it).

        For documents the node issues by itself for the office, such as the 受付証明 of the public
        intake window: the seal says that this office's node received and recorded what it lists.
        """
        with self._db.read() as conn:
            office = self._directory.office(office_code, conn)
            material = self._material(conn, office.code, SealKind.OFFICE)
        imprint = office_seal(office.name, 21.0)
        return await self._apply(pdf, f"node-{office.code}", SealKind.OFFICE, placement, material, imprint,
                                 actor=actor, reason=reason, certify=True)

    async def _apply(self, pdf: bytes, signer_login: str, kind: SealKind, placement: SealPlacement,
                     material: SignerMaterial, imprint: SealImprint, *, actor: str, reason: str | None,
                     certify: bool) -> bytes:
        writer = _open_writer(pdf)
        field_name, new_field = self._field(writer, placement, kind, signer_login, imprint)
        already_sealed = _has_signatures(writer)
        closing_lock = certify and already_sealed
        if closing_lock and new_field is None:
            _lock_existing_field(writer, field_name)
        meta = signers.PdfSignatureMetadata(
            field_name=field_name,
            md_algorithm="sha256",
            subfilter=SigSeedSubFilter.PADES,
            reason=reason,
            location=self._organisation or None,
            certify=certify and not already_sealed,
            docmdp_permissions=MDPPerm.FILL_FORMS,
            embed_validation_info=True,
            validation_context=validation_context([material.ca], [material.crl]),
        )
        if closing_lock and new_field is not None:
            new_field = SigFieldSpec(
                sig_field_name=new_field.sig_field_name, on_page=new_field.on_page, box=new_field.box,
                field_mdp_spec=FieldMDPSpec(FieldMDPAction.ALL), doc_mdp_update_value=MDPPerm.FILL_FORMS,
            )
        style = StaticStampStyle(background=ImprintPage(imprint_pdf(imprint)), border_width=0)
        pdf_signer = signers.PdfSigner(meta, material.signer(), timestamper=self.timestamper,
                                       stamp_style=style, new_field_spec=new_field)
        out = io.BytesIO()
        try:
            await pdf_signer.async_sign_pdf(writer, output=out)
        except (SigningError, PdfError) as exc:
            raise SealError("cannot seal the document: {exc}", exc=exc) from exc
        except InklessError:
            raise
        except (OSError, ValueError) as exc:
            # The timestamper (an external TSA over HTTP) and pyHanko's validation raise these.
            raise SealError(f"cannot seal the document: {type(exc).__name__}: {exc}") from exc
        sealed = out.getvalue()
        after = _sha(sealed)
        with self._db.begin() as conn:
            self._audit.record(conn, AuditEvent(
                actor=actor, action="seal.applied", object_type="document", object_id=after,
                digests={"before": _sha(pdf), "after": after},
                details={"signer": signer_login, "kind": kind.value, "field": field_name,
                         "page": placement.page, "certify": certify,
                         "certificate": format(material.cert.serial_number, "x")},
            ))
        return sealed

    def _signer(self, conn: Connection, login: str, kind: SealKind) -> tuple[User, str, str]:
        user = self._directory.user(login, conn)
        if not user.active:
            raise PolicyError("user {login!r} is deactivated and cannot seal", login=login)
        office = self._directory.office(user.office_code, conn)
        if kind == SealKind.OFFICE and user.role not in OFFICE_SEAL_ROLES:
            # The 角印 speaks for the whole office: only its approvers and administrators may press it.
            raise PolicyError(f"user {login!r} ({user.role.value}) may not use the office seal of {office.code!r}; "
                              "only approvers and administrators may")
        return user, office.code, office.name

    def placement_at(self, login: str, kind: SealKind, page: int, x: float, y: float,
                     size_mm: float | None = None) -> SealPlacement:
        """A box of the seal's own size with its lower-left corner at (``x``, ``y``) points on ``page``."""
        user = self._directory.user(login)
        office = self._directory.office_by_id(user.office_id)
        imprint = imprint_for(user, office.name, SealKind(kind), self._clock.now(), size_mm, self.timezone)
        side = imprint.size_mm * PT_PER_MM
        return SealPlacement(page=page, box=(x, y, x + side, y + side))

    def signer_material(self, owner: str, kind: SealKind) -> SignerMaterial:
        """The decrypted key, certificate, CA and current CRL for a user's or an office's seal."""
        with self._db.read() as conn:
            return self._material(conn, owner, kind)

    def _material(self, conn: Connection, owner: str, kind: SealKind) -> SignerMaterial:
        purpose = CertPurpose.OFFICE_SIGNING if kind == SealKind.OFFICE else CertPurpose.USER_SEAL
        key_der, cert_der = self._pki.key_and_certificate_der(conn, purpose, owner)
        self._own_ca(conn)
        return SignerMaterial(key_der, cert_der, self._own_ca_asn1(), self._crl(conn))

    def _crl(self, conn: Connection) -> asn1_crl.CertificateList:
        # Signing a CRL costs a key decryption and a signature per seal or verification. Reuse the
        # last one while no certificate was revoked since (the marker changes with every revocation)
        # and it is younger than CRL_REUSE, so a revocation still shows at the very next check.
        marker = tuple(conn.execute(_REVOCATION_MARKER).one())
        now = self._clock.now()
        cached = self._crl_cache
        if cached is not None and cached[0] == marker and timedelta(0) <= now - cached[1] < CRL_REUSE:
            return cached[2]
        crl = asn1_crl_list(self._pki.crl(conn).public_bytes(serialization.Encoding.DER))
        self._crl_cache = (marker, now, crl)
        return crl

    def _field(self, writer: IncrementalPdfFileWriter, placement: SealPlacement, kind: SealKind, login: str,
               imprint: SealImprint) -> tuple[str, SigFieldSpec | None]:
        pages = int(writer.root["/Pages"]["/Count"])
        if placement.page > pages:
            raise ValidationError(
                "the document has {pages} page(s); there is no page {page}",
                pages=pages, page=placement.page)
        if placement.field_name is not None:
            found = list(fields.enumerate_sig_fields(writer, with_name=placement.field_name))
            if not found:
                raise ValidationError(
                    "the document has no signature field named {field_name!r}",
                    field_name=placement.field_name)
            if found[0][1] is not None:
                raise ValidationError(
                    "the signature field {field_name!r} is already sealed",
                    field_name=placement.field_name)
            return placement.field_name, None
        assert placement.box is not None
        media = _page_box(writer, placement.page - 1)
        x1, y1, x2, y2 = placement.box
        if x1 < media[0] or y1 < media[1] or x2 > media[2] or y2 > media[3]:
            raise ValidationError(
                "the seal box {box} lies outside page {page} {media}",
                box=placement.box, page=placement.page, media=media)
        taken = {name for name, _, _ in fields.enumerate_sig_fields(writer)}
        base = re.sub(r"[^A-Za-z0-9_-]", "_", f"seal-{kind.value}-{login}")
        n = 1
        while f"{base}-{n}" in taken:
            n += 1
        name = f"{base}-{n}"
        box = (round(x1), round(y1), round(x2), round(y2))
        return name, SigFieldSpec(sig_field_name=name, on_page=placement.page - 1, box=box)

    # --- B-LTA -----------------------------------------------------------------------

    def extend_to_lta(self, pdf: bytes, *, actor: str = "system") -> bytes:
        """Synchronous :meth:`extend_to_lta_async`."""
        return run_sync(self.extend_to_lta_async(pdf, actor=actor))

    async def extend_to_lta_async(self, pdf: bytes, *, actor: str = "system") -> bytes:
        """Add validation data for every seal to the DSS and a document timestamp over it all (PAdES B-LTA)."""
        writer = _open_writer(pdf)
        if not _has_signatures(writer):
            raise ValidationError("the document carries no seal to extend")
        vc = self.validation_context()
        stamper = PdfTimeStamper(self.timestamper)
        out = io.BytesIO()
        try:
            # Each seal embedded its own validation data when it was applied; this adds the document
            # timestamp (with the TSA's validation data), or renews the last one's chain.
            reader = PdfFileReader(io.BytesIO(pdf))
            await stamper.async_update_archival_timestamp_chain(reader, vc, output=out)
        except (SigningError, PdfError, ValueError, OSError) as exc:
            raise SealError("cannot extend the document to PAdES B-LTA: {exc}", exc=exc) from exc
        result = out.getvalue()
        with self._db.begin() as conn:
            self._audit.record(conn, AuditEvent(
                actor=actor, action="seal.extended", object_type="document", object_id=_sha(result),
                digests={"before": _sha(pdf), "after": _sha(result)}, details={"level": "B-LTA"},
            ))
        return result

    # --- verification ----------------------------------------------------------------

    def _own_ca(self, conn: Connection) -> cx509.Certificate:
        # The node CA never changes during a node's life: read it once.
        if self._ca_cache is None:
            self._ca_cache = cx509.load_der_x509_certificate(self._pki.ca_certificate(conn).der)
        return self._ca_cache

    def _own_ca_asn1(self) -> asn1_x509.Certificate:
        assert self._ca_cache is not None
        return asn1_certificate(self._ca_cache.public_bytes(serialization.Encoding.DER))

    def _trust_roots(self, anchors: list[cx509.Certificate]) -> list[asn1_x509.Certificate]:
        # The anchors change only when a peer is pinned or unpinned: convert them again only then.
        ders = tuple(c.public_bytes(serialization.Encoding.DER) for c in anchors)
        cached = self._anchors_cache
        if cached is None or cached[0] != ders:
            cached = (ders, [asn1_certificate(der) for der in ders])
            self._anchors_cache = cached
        return list(cached[1])

    def trust_anchors(self) -> list[cx509.Certificate]:
        """The CAs whose seals count as trusted: this node's CA and the pinned peers' CAs."""
        # The peers' CAs first, in their own transaction: SQLite allows one writer-style transaction at a time.
        peers = self._trust_source() if self._trust_source is not None else []
        with self._db.read() as conn:
            own = self._own_ca(conn)
        return [own] + [c for c in peers if c != own]

    def validation_context(self, at: datetime | None = None) -> ValidationContext:
        """Trust roots = known node CAs; revocation data = this node's current CRL; no fetching."""
        peers = self._trust_source() if self._trust_source is not None else []
        with self._db.read() as conn:
            own = self._own_ca(conn)
            crl = self._crl(conn)
        anchors = [own] + [c for c in peers if c != own]
        return validation_context(self._trust_roots(anchors), [crl], at)

    def verify(self, pdf: bytes, *, actor: str | None = "anonymous", with_imprints: bool = False) -> VerificationReport:
        """Verify every seal of ``pdf``; see :mod:`inkless.seals.verify`.

        ``actor=None`` for anonymous public requests: they are tallied by the web layer, not audited one by one.
        """
        from inkless.seals.verify import verify_document

        context = self.validation_context()
        assert self._ca_cache is not None
        # Only this node's CRL is at hand: revocation is "good" only for seals chaining to our own CA.
        report = verify_document(pdf, context, self._clock.now(), with_imprints=with_imprints,
                                 crl_anchors=frozenset({_common_name(self._ca_cache)}))
        if actor is None:
            return report
        with self._db.begin() as conn:
            self._audit.record(conn, AuditEvent(
                actor=actor, action="seal.verified", object_type="document", object_id=report.document_sha256,
                digests={"document": report.document_sha256},
                details={"indication": report.indication.value, "seals": len(report.seals)},
            ))
        return report

    async def verify_async(self, pdf: bytes, *, actor: str | None = "anonymous",
                           with_imprints: bool = False) -> VerificationReport:
        """:meth:`verify` off the event loop (validation is CPU-bound)."""
        return await asyncio.to_thread(self.verify, pdf, actor=actor, with_imprints=with_imprints)


def _common_name(cert: cx509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(cx509.NameOID.COMMON_NAME)
    return str(names[0].value) if names else cert.subject.rfc4514_string()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _open_writer(pdf: bytes) -> IncrementalPdfFileWriter:
    if len(pdf) > MAX_PDF_BYTES:
        raise ValidationError("the document is larger than {mib} MiB", mib=MAX_PDF_BYTES // (1024 * 1024))
    if not pdf.lstrip()[:5] == b"%PDF-":
        raise ValidationError("the file is not a PDF (it does not start with %PDF-)")
    try:
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
        writer.root["/Pages"]["/Count"]
    except (PdfError, KeyError, ValueError, TypeError, IndexError) as exc:
        raise ValidationError("the PDF cannot be read: {exc}", exc=exc) from exc
    if writer.prev.encrypted:
        raise ValidationError("encrypted PDFs cannot be sealed; remove the password first")
    return writer


def _has_signatures(writer: IncrementalPdfFileWriter) -> bool:
    return any(value is not None for _, value, _ in fields.enumerate_sig_fields(writer))


def _page_box(writer: IncrementalPdfFileWriter, index: int) -> tuple[float, float, float, float]:
    page, _ = writer.find_page_for_modification(index)  # type: ignore[no-untyped-call]
    box = page.get_object().get("/MediaBox")
    if box is None:
        box = writer.root["/Pages"].get("/MediaBox", [0, 0, 595, 842])
    return (float(box[0]), float(box[1]), float(box[2]), float(box[3]))


def _lock_existing_field(writer: IncrementalPdfFileWriter, field_name: str) -> None:
    # A closing seal into an existing field relies on the /Lock that field was given when it was
    # created (before the first seal). Adding a lock now would change a field that earlier seals
    # cover, and pyHanko's difference analysis rightly reports that as tampering with them.
    for _, _, ref in fields.enumerate_sig_fields(writer, with_name=field_name):
        if "/Lock" not in ref.get_object():
            raise SealError(
                f"field {field_name!r} has no lock, and one cannot be added after the first seal without "
                "breaking the earlier seals: seal at a new position, or create the field with a lock "
                "before the first seal (as approval routes do)"
            )
