"""The node certificate authority: issues every certificate of the node and publishes its CRL."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID
from sqlalchemy import Connection, Row, insert, select, update

from inkless.clock import Clock
from inkless.db import tables as t
from inkless.errors import ConflictError, NotFoundError, PKIError, ValidationError
from inkless.pki.keystore import KeyStore
from inkless.pki.model import CertificateInfo, CertPurpose

CA_LIFETIME = timedelta(days=20 * 365)
LEAF_LIFETIME = timedelta(days=3 * 365)
CRL_LIFETIME = timedelta(days=7)
RSA_BITS = 3072

# RFC 5280 reason names, as openssl prints them (removeFromCRL is for delta CRLs, which we do not issue).
REVOCATION_REASONS = {r.value: r for r in x509.ReasonFlags if r is not x509.ReasonFlags.remove_from_crl}


def fingerprint(der: bytes) -> str:
    """``SHA256:<hex>`` of a DER certificate: what administrators compare and pin."""
    return "SHA256:" + hashlib.sha256(der).hexdigest().upper()


@dataclass(frozen=True)
class NodeIdentity:
    """Names that go into every certificate the node issues."""

    node_id: str
    organisation: str
    base_url: str

    @property
    def crl_url(self) -> str:
        return self.base_url.rstrip("/") + "/pki/crl"

    @property
    def ca_url(self) -> str:
        return self.base_url.rstrip("/") + "/pki/ca.pem"


class NodeCA:
    """Issues, stores and revokes the node's certificates; keys go to the :class:`KeyStore`."""

    def __init__(self, keystore: KeyStore, identity: NodeIdentity, clock: Clock) -> None:
        self._keys = keystore
        self._id = identity
        self._clock = clock

    # --- setup -----------------------------------------------------------------------

    def initialise(self, conn: Connection) -> CertificateInfo:
        """Create the root CA, the node key (audit, federation) and the TSA key. Once per node."""
        if conn.execute(select(t.certificates.c.id).where(t.certificates.c.purpose == CertPurpose.CA)).first():
            raise ConflictError("this node already has a CA")
        now = self._clock.now()
        key = ec.generate_private_key(ec.SECP256R1())
        name = self._name(f"{self._id.organisation or self._id.node_id} inkless CA ({self._id.node_id})")
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + CA_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        )
        cert = builder.sign(key, hashes.SHA256())
        key_id = self._keys.put(conn, CertPurpose.CA, self._id.node_id, key, now)
        info = self._store(conn, cert, CertPurpose.CA, self._id.node_id, key_id)
        self._issue(conn, CertPurpose.NODE, self._id.node_id, f"{self._id.node_id} node", None)
        self._issue(conn, CertPurpose.TSA, self._id.node_id, f"{self._id.node_id} time-stamping authority", None)
        return info

    # --- issuing ---------------------------------------------------------------------

    def issue_office_certificates(
        self, conn: Connection, office_code: str, office_name: str
    ) -> list[CertificateInfo]:
        """Issue the office's encryption (RSA-3072) and signing (ECDSA P-256) certificates."""
        return [
            self._issue(conn, CertPurpose.OFFICE_ENCRYPTION, office_code, office_name, office_name),
            self._issue(conn, CertPurpose.OFFICE_SIGNING, office_code, office_name, office_name),
        ]

    def issue_user_certificate(
        self, conn: Connection, login: str, display_name: str, office_code: str, office_name: str
    ) -> CertificateInfo:
        """Issue a user's personal seal certificate."""
        return self._issue(conn, CertPurpose.USER_SEAL, login, display_name, office_name)

    def _issue(
        self, conn: Connection, purpose: CertPurpose, owner: str, common_name: str, unit: str | None
    ) -> CertificateInfo:
        ca_row = self._current(conn, CertPurpose.CA, self._id.node_id)
        ca_cert = x509.load_der_x509_certificate(ca_row.der)
        ca_key = self._keys.get(conn, ca_row.key_id)
        if not isinstance(ca_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise PKIError("the CA key is of an unexpected type")
        now = self._clock.now()
        key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
        if purpose == CertPurpose.OFFICE_ENCRYPTION:
            key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
        else:
            key = ec.generate_private_key(ec.SECP256R1())
        subject = self._name(common_name, unit=unit)
        not_after = min(now + LEAF_LIFETIME, ca_cert.not_valid_after_utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .add_extension(
                x509.CRLDistributionPoints(
                    [x509.DistributionPoint([x509.UniformResourceIdentifier(self._id.crl_url)], None, None, None)]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityInformationAccess(
                    [x509.AccessDescription(AuthorityInformationAccessOID.CA_ISSUERS,
                                            x509.UniformResourceIdentifier(self._id.ca_url))]
                ),
                critical=False,
            )
        )
        for ext, critical in _purpose_extensions(purpose):
            builder = builder.add_extension(ext, critical=critical)
        urn = _urn(purpose, owner, self._id.node_id)
        if urn:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(urn)]), critical=False
            )
        cert = builder.sign(ca_key, hashes.SHA256())
        key_id = self._keys.put(conn, purpose, owner, key, now)
        return self._store(conn, cert, purpose, owner, key_id)

    def _name(self, common_name: str, unit: str | None = None) -> x509.Name:
        attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "JP")]
        if self._id.organisation:
            attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, self._id.organisation))
        if unit:
            attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64]))
        return x509.Name(attrs)

    def _store(
        self, conn: Connection, cert: x509.Certificate, purpose: CertPurpose, owner: str, key_id: int | None
    ) -> CertificateInfo:
        der = cert.public_bytes(serialization.Encoding.DER)
        info = CertificateInfo(
            id=0, serial=format(cert.serial_number, "x"), purpose=purpose, owner=owner,
            subject=cert.subject.rfc4514_string(), fingerprint=fingerprint(der),
            not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc, der=der, revoked_at=None,
        )
        result = conn.execute(
            insert(t.certificates).values(
                serial=info.serial, purpose=purpose.value, owner=owner, key_id=key_id, subject=info.subject,
                fingerprint=info.fingerprint, not_before=info.not_before, not_after=info.not_after, der=der,
                created_at=self._clock.now(),
            )
        )
        return replace(info, id=result.inserted_primary_key[0])  # type: ignore[index]

    # --- lookups ---------------------------------------------------------------------

    def _current(self, conn: Connection, purpose: CertPurpose, owner: str) -> Row[Any]:
        row = conn.execute(
            select(t.certificates)
            .where(
                t.certificates.c.purpose == purpose.value,
                t.certificates.c.owner == owner,
                t.certificates.c.revoked_at.is_(None),
            )
            .order_by(t.certificates.c.not_before.desc(), t.certificates.c.id.desc())
        ).first()
        if row is None:
            raise NotFoundError(f"no valid {purpose.value} certificate for {owner!r}")
        return row

    def certificate(self, conn: Connection, purpose: CertPurpose, owner: str) -> CertificateInfo:
        """The newest unrevoked certificate for ``purpose`` and ``owner``."""
        return _info(self._current(conn, purpose, owner))

    def ca_certificate(self, conn: Connection) -> CertificateInfo:
        return self.certificate(conn, CertPurpose.CA, self._id.node_id)

    def key_and_certificate(
        self, conn: Connection, purpose: CertPurpose, owner: str
    ) -> tuple[Any, x509.Certificate]:
        """The private key (decrypted in memory) and certificate for ``purpose`` and ``owner``."""
        row = self._current(conn, purpose, owner)
        if row.key_id is None:
            raise NotFoundError(f"no private key for {purpose.value} {owner!r}")
        return self._keys.get(conn, row.key_id), x509.load_der_x509_certificate(row.der)

    def key_and_certificate_der(self, conn: Connection, purpose: CertPurpose, owner: str) -> tuple[bytes, bytes]:
        """The decrypted PKCS#8 key and the certificate of ``purpose`` and ``owner``, both as DER.

        For signing with pyHanko, which wants asn1crypto objects: parsing the DER once is cheaper than
        building ``cryptography`` objects (with their key checks) only to serialise them again.
        """
        row = self._current(conn, purpose, owner)
        if row.key_id is None:
            raise NotFoundError(f"no private key for {purpose.value} {owner!r}")
        return self._keys.get_der(conn, row.key_id), bytes(row.der)

    def certificates(self, conn: Connection, owner: str | None = None) -> list[CertificateInfo]:
        query = select(t.certificates).order_by(t.certificates.c.id)
        if owner is not None:
            query = query.where(t.certificates.c.owner == owner)
        return [_info(r) for r in conn.execute(query).all()]

    # --- revocation ------------------------------------------------------------------

    def revoke(self, conn: Connection, serial: str, reason: str = "unspecified") -> CertificateInfo:
        """Revoke a certificate by serial (hex); it appears on the next CRL."""
        if reason not in REVOCATION_REASONS:
            raise ValidationError(f"unknown revocation reason {reason!r} (one of {', '.join(REVOCATION_REASONS)})")
        row = conn.execute(select(t.certificates).where(t.certificates.c.serial == serial.lower())).one_or_none()
        if row is None:
            raise NotFoundError(f"no certificate with serial {serial}")
        if row.purpose == CertPurpose.CA:
            raise ValidationError("the node CA cannot revoke itself")
        if row.revoked_at is not None:
            raise ConflictError(f"certificate {serial} is already revoked")
        now = self._clock.now()
        conn.execute(
            update(t.certificates)
            .where(t.certificates.c.id == row.id)
            .values(revoked_at=now, revocation_reason=reason)
        )
        return _info(conn.execute(select(t.certificates).where(t.certificates.c.id == row.id)).one())

    def crl(self, conn: Connection) -> x509.CertificateRevocationList:
        """A freshly signed CRL listing every revoked certificate of this CA."""
        ca_row = self._current(conn, CertPurpose.CA, self._id.node_id)
        ca_cert = x509.load_der_x509_certificate(ca_row.der)
        ca_key: CertificateIssuerPrivateKeyTypes = self._keys.get(conn, ca_row.key_id)  # type: ignore[assignment]
        now = self._clock.now()
        revoked = conn.execute(
            select(t.certificates).where(t.certificates.c.revoked_at.is_not(None)).order_by(t.certificates.c.id)
        ).all()
        # The CRL number only has to increase: the time in seconds does, without extra state.
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(ca_cert.subject)
            .last_update(now)
            .next_update(now + CRL_LIFETIME)
            .add_extension(x509.CRLNumber(int(now.timestamp())), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
        )
        for row in revoked:
            entry = (
                x509.RevokedCertificateBuilder()
                .serial_number(int(row.serial, 16))
                .revocation_date(row.revoked_at)
                .add_extension(x509.CRLReason(REVOCATION_REASONS[row.revocation_reason]), critical=False)
                .build()
            )
            builder = builder.add_revoked_certificate(entry)
        return builder.sign(ca_key, hashes.SHA256())


def _urn(purpose: CertPurpose, owner: str, node_id: str) -> str | None:
    # The inkless address of the holder, so that a verifier can tell which office or user a key is for.
    if purpose in (CertPurpose.OFFICE_ENCRYPTION, CertPurpose.OFFICE_SIGNING):
        return f"urn:inkless:office:{owner}@{node_id}"
    if purpose == CertPurpose.USER_SEAL:
        return f"urn:inkless:user:{owner}@{node_id}"
    return None


def _key_usage(**flags: bool) -> x509.KeyUsage:
    names = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
             "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")
    return x509.KeyUsage(**{n: flags.get(n, False) for n in names})


def _purpose_extensions(purpose: CertPurpose) -> list[tuple[x509.ExtensionType, bool]]:
    if purpose == CertPurpose.OFFICE_ENCRYPTION:
        return [
            (_key_usage(key_encipherment=True), True),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False),
        ]
    if purpose in (CertPurpose.OFFICE_SIGNING, CertPurpose.USER_SEAL):
        # Non-repudiation (content commitment): these keys seal documents and sign receipts.
        return [
            (_key_usage(digital_signature=True, content_commitment=True), True),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION,
                                    x509.ObjectIdentifier("1.3.6.1.4.1.311.10.3.12")]), False),  # documentSigning
        ]
    if purpose == CertPurpose.TSA:
        # RFC 3161 §2.3: the TSA certificate must carry exactly this EKU, marked critical.
        return [
            (_key_usage(digital_signature=True, content_commitment=True), True),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), True),
        ]
    if purpose == CertPurpose.NODE:
        return [
            (_key_usage(digital_signature=True), True),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), False),
        ]
    raise PKIError(f"no profile for {purpose}")


def _info(row: Row[Any]) -> CertificateInfo:
    return CertificateInfo(
        id=row.id, serial=row.serial, purpose=CertPurpose(row.purpose), owner=row.owner, subject=row.subject,
        fingerprint=row.fingerprint, not_before=row.not_before, not_after=row.not_after, der=row.der,
        revoked_at=row.revoked_at,
    )
