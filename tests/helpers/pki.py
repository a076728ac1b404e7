"""The shared test PKI: a node's certificates and keys as PEM files for independent tools (openssl)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from inkless.app import Node
from inkless.pki.model import CertPurpose


def ca_pem(node: Node, folder: Path) -> Path:
    """Write the node CA certificate as PEM; returns its path."""
    with node.db.begin() as conn:
        der = node.pki.ca_certificate(conn).der
    path = folder / f"{node.node_id}-ca.pem"
    path.write_bytes(x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM))
    return path


def cert_and_key_pem(node: Node, purpose: CertPurpose, owner: str, folder: Path) -> tuple[Path, Path]:
    """Write a certificate and its private key (PKCS#8 PEM, test use only); returns both paths."""
    with node.db.begin() as conn:
        key, cert = node.pki.key_and_certificate(conn, purpose, owner)
    cert_path = folder / f"{owner}-{purpose.value}.pem"
    key_path = folder / f"{owner}-{purpose.value}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption())
    )
    return cert_path, key_path


def crl_der(node: Node, folder: Path) -> Path:
    with node.db.begin() as conn:
        crl = node.pki.crl(conn)
    path = folder / f"{node.node_id}.crl"
    path.write_bytes(crl.public_bytes(serialization.Encoding.DER))
    return path


class StandaloneCA:
    """A node CA outside any node: what a peer (honest or hostile) would hold, with inkless's certificate profiles.

    Validity is relative to ``now`` (the real time by default), so the tests do not depend on the date.
    """

    def __init__(self, name: str, now: datetime | None = None) -> None:
        self.now = now or datetime.now(UTC)
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(self.key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(self.now - timedelta(days=10))
            .not_valid_after(self.now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode("ascii")

    def issue(self, eku: list[x509.ObjectIdentifier], *, encipher: bool = False, office: str | None = None,
              not_after: datetime | None = None, key: Any = None) -> tuple[Any, x509.Certificate]:
        """A leaf (node certificate by default; an office certificate when ``office`` is an address)."""
        key = key or (rsa.generate_private_key(65537, 2048) if encipher else ec.generate_private_key(ec.SECP256R1()))
        usage = x509.KeyUsage(not encipher, not encipher, encipher, False, False, False, False, False, False)
        builder = (
            x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "leaf")]))
            .issuer_name(self.cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(self.now - timedelta(days=5))
            .not_valid_after(not_after or self.now + timedelta(days=365))
            .add_extension(x509.ExtendedKeyUsage(eku), critical=False).add_extension(usage, critical=True)
        )
        if office is not None:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(f"urn:inkless:office:{office}")]),
                critical=False)
        return key, builder.sign(self.key, hashes.SHA256())
