"""Signed node documents and certificate checks, with a throw-away CA built in memory."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from inkless.directory.peers import normalise_fingerprint, normalise_url
from inkless.errors import PKIError, ValidationError
from inkless.federation.documents import (
    DIRECTORY_DOCUMENT,
    NODE_DOCUMENT,
    check_node_certificate,
    check_office_certificate,
    open_document,
    sign_document,
    verify_document,
)
from inkless.federation.httpsig import SignatureError

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@dataclass
class ThrowawayCA:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @staticmethod
    def create(cn: str = "test CA") -> ThrowawayCA:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn)).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(NOW - timedelta(days=1))
            .not_valid_after(NOW + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256())
        )
        return ThrowawayCA(key, cert)

    def issue(self, eku: list[x509.ObjectIdentifier], *, key: object = None, days: int = 365, urn: str | None = None,
              encipher: bool = False) -> tuple[object, x509.Certificate]:
        key = key or ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder().subject_name(_name("leaf")).issuer_name(self.cert.subject)
            .public_key(key.public_key())  # type: ignore[attr-defined]
            .serial_number(x509.random_serial_number()).not_valid_before(NOW - timedelta(days=1))
            .not_valid_after(NOW + timedelta(days=days))
            .add_extension(x509.ExtendedKeyUsage(eku), critical=False)
            .add_extension(x509.KeyUsage(digital_signature=not encipher, content_commitment=False,
                                         key_encipherment=encipher, data_encipherment=False, key_agreement=False,
                                         key_cert_sign=False, crl_sign=False, encipher_only=False,
                                         decipher_only=False), critical=True)
        )
        if urn:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(urn)]),
                                            critical=False)
        return key, builder.sign(self.key, hashes.SHA256())


NODE_EKU = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]


def test_fingerprints_and_urls_are_normalised_or_refused() -> None:
    hexa = "3f" * 32
    expected = "SHA256:" + "3F" * 32
    for text in (expected, hexa, "sha256:" + hexa, ":".join(["3F"] * 32), " SHA256:" + ":".join(["3f"] * 32) + " "):
        assert normalise_fingerprint(text) == expected
    for bad in ("", "SHA256:", "SHA1:" + hexa, hexa[:-2], hexa + "00", "z" * 64):
        with pytest.raises(ValidationError, match="not a SHA-256 fingerprint"):
            normalise_fingerprint(bad)
    assert normalise_url("http://inkless.example.jp:18080/") == "http://inkless.example.jp:18080"
    assert normalise_url("https://Example.jp:443/inkless/") == "https://example.jp/inkless"
    for bad in ("inkless.example.jp:18080", "ftp://x", "https://x/?a=1", "https://x/#f", "https://"):
        with pytest.raises(ValidationError):
            normalise_url(bad)


def test_document_round_trip_and_tampering() -> None:
    ca = ThrowawayCA.create()
    key, cert = ca.issue(NODE_EKU)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    payload = {"type": DIRECTORY_DOCUMENT, "node_id": "npa", "offices": [{"name": "警備局"}]}
    jws = sign_document(payload, key, cert)
    assert verify_document(jws, ca.cert, NOW, DIRECTORY_DOCUMENT) == payload
    assert open_document(jws)[1] == cert

    head, _body, sig = jws.split(".")
    other = sign_document({**payload, "node_id": "kyoto"}, key, cert).split(".")[1]
    with pytest.raises(SignatureError, match="does not verify"):
        verify_document(f"{head}.{other}.{sig}", ca.cert, NOW, DIRECTORY_DOCUMENT)
    with pytest.raises(SignatureError, match="expected a signed inkless-node document"):
        verify_document(jws, ca.cert, NOW, NODE_DOCUMENT)
    with pytest.raises(SignatureError, match="not issued by the pinned CA"):
        verify_document(jws, ThrowawayCA.create("another CA").cert, NOW, DIRECTORY_DOCUMENT)
    for garbage in ("", "a.b", "a.b.c", "!!.??.**"):
        with pytest.raises(SignatureError, match="malformed"):
            verify_document(garbage, ca.cert, NOW, DIRECTORY_DOCUMENT)


def test_only_a_valid_node_certificate_of_the_pinned_ca_speaks_for_the_node() -> None:
    ca = ThrowawayCA.create()
    _, node_cert = ca.issue(NODE_EKU)
    check_node_certificate(node_cert, ca.cert, NOW)
    _, office = ca.issue([ExtendedKeyUsageOID.EMAIL_PROTECTION], urn="urn:inkless:office:x@npa")
    _, tsa = ca.issue([ExtendedKeyUsageOID.TIME_STAMPING])
    _, rsa_node = ca.issue(NODE_EKU, key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    _, short = ca.issue(NODE_EKU, days=1)
    _, foreign = ThrowawayCA.create("another CA").issue(NODE_EKU)
    cases = [
        (office, NOW, "not the peer's node certificate"),
        (tsa, NOW, "not the peer's node certificate"),
        (rsa_node, NOW, "ECDSA P-256"),
        (short, NOW + timedelta(days=2), "expired"),
        (node_cert, NOW - timedelta(days=2), "not valid before"),
        (foreign, NOW, "not issued by the pinned CA"),
    ]
    for cert, when, reason in cases:
        with pytest.raises(SignatureError, match=reason):
            check_node_certificate(cert, ca.cert, when)


def test_office_certificates_must_name_the_office_and_fit_their_purpose() -> None:
    ca = ThrowawayCA.create()
    email_eku = [ExtendedKeyUsageOID.EMAIL_PROTECTION]
    _, enc = ca.issue(email_eku, urn="urn:inkless:office:security@npa", encipher=True)
    _, sig = ca.issue(email_eku, urn="urn:inkless:office:security@npa")
    check_office_certificate(enc, ca.cert, NOW, "security@npa", "encryption")
    check_office_certificate(sig, ca.cert, NOW, "security@npa", "signing")
    _, no_email = ca.issue(NODE_EKU, urn="urn:inkless:office:security@npa")
    _, foreign = ThrowawayCA.create("x").issue(email_eku, urn="urn:inkless:office:security@npa", encipher=True)
    cases = [
        (enc, "traffic@npa", "encryption", "names office 'security@npa', not 'traffic@npa'"),
        (sig, "security@npa", "encryption", "does not allow key encipherment"),
        (enc, "security@npa", "signing", "does not allow signatures"),
        (no_email, "security@npa", "signing", "not for S/MIME"),
        (foreign, "security@npa", "encryption", "not issued by the pinned CA"),
    ]
    for cert, address, purpose, reason in cases:
        with pytest.raises(PKIError, match=reason):
            check_office_certificate(cert, ca.cert, NOW, address, purpose)
    with pytest.raises(PKIError, match="expired"):
        check_office_certificate(enc, ca.cert, NOW + timedelta(days=400), "security@npa", "encryption")
