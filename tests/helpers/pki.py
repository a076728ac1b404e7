"""The shared test PKI: a node's certificates and keys as PEM files for independent tools (openssl)."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

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
