"""The node CA, checked with the real openssl binary: chains, extensions, CRL, keys at rest."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy import select

from inkless.app import Node
from inkless.db import schema
from inkless.db import tables as t
from inkless.directory.demo import DemoSample
from inkless.errors import ConflictError, NotFoundError, ValidationError
from inkless.pki.model import CertPurpose
from tests.helpers.pki import ca_pem, cert_and_key_pem, crl_der


def openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)


def test_every_certificate_chains_to_the_node_ca(node: Node, demo: DemoSample, tmp_path: Path) -> None:
    ca = ca_pem(node, tmp_path)
    with node.db.begin() as conn:
        certs = node.pki.certificates(conn)
    purposes = {c.purpose for c in certs}
    assert purposes == set(CertPurpose)
    for info in certs:
        path = tmp_path / f"{info.id}.pem"
        path.write_bytes(x509.load_der_x509_certificate(info.der).public_bytes(serialization.Encoding.PEM))
        result = openssl("verify", "-x509_strict", "-CAfile", str(ca), str(path))
        assert result.returncode == 0, (info.purpose, result.stderr)


def test_office_certificates_have_the_right_keys_and_usages(node: Node, demo: DemoSample, tmp_path: Path) -> None:
    with node.db.begin() as conn:
        enc_key, enc = node.pki.key_and_certificate(conn, CertPurpose.OFFICE_ENCRYPTION, "civil-affairs")
        sig_key, sig = node.pki.key_and_certificate(conn, CertPurpose.OFFICE_SIGNING, "civil-affairs")
        _, seal = node.pki.key_and_certificate(conn, CertPurpose.USER_SEAL, "tanaka")
        _, tsa = node.pki.key_and_certificate(conn, CertPurpose.TSA, "moj")
    assert isinstance(enc_key, rsa.RSAPrivateKey) and enc_key.key_size >= 3072
    assert isinstance(sig_key, ec.EllipticCurvePrivateKey)
    ku = enc.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.key_encipherment and not ku.value.digital_signature
    ku = sig.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and ku.content_commitment
    assert ExtendedKeyUsageOID.EMAIL_PROTECTION in enc.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    eku = tsa.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical and list(eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]
    # Names in UTF-8: office and organisation in Japanese, as a verifier will display them.
    assert enc.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "法務省"
    assert enc.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == "民事局"
    assert seal.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "田中 花子"
    san = sig.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "urn:inkless:office:civil-affairs@moj" in san.get_values_for_type(x509.UniformResourceIdentifier)
    cdp = enc.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert cdp[0].full_name[0].value == node.settings.base_url + "/pki/crl"
    # openssl agrees on the purposes.
    cert_path, _ = cert_and_key_pem(node, CertPurpose.OFFICE_ENCRYPTION, "civil-affairs", tmp_path)
    ca = ca_pem(node, tmp_path)
    assert openssl("verify", "-purpose", "smimeencrypt", "-CAfile", str(ca), str(cert_path)).returncode == 0
    text = openssl("x509", "-in", str(cert_path), "-noout", "-text", "-nameopt", "utf8").stdout
    assert "民事局" in text and "Key Encipherment" in text


def test_crl_lists_revoked_certificates_and_openssl_rejects_them(node: Node, demo: DemoSample, tmp_path: Path) -> None:
    ca = ca_pem(node, tmp_path)
    empty = crl_der(node, tmp_path)
    assert openssl("crl", "-inform", "DER", "-in", str(empty), "-CAfile", str(ca), "-noout").returncode == 0
    with node.db.begin() as conn:
        seal = node.pki.certificate(conn, CertPurpose.USER_SEAL, "sato")
        node.pki.revoke(conn, seal.serial, "keyCompromise")
    crl_path = crl_der(node, tmp_path)
    crl = x509.load_der_x509_crl(crl_path.read_bytes())
    entry = crl.get_revoked_certificate_by_serial_number(int(seal.serial, 16))
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.key_compromise
    listing = openssl("crl", "-inform", "DER", "-in", str(crl_path), "-CAfile", str(ca), "-noout", "-text")
    assert listing.returncode == 0, listing.stderr
    assert "Key Compromise" in listing.stdout
    crl_pem = tmp_path / "crl.pem"
    crl_pem.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    cert_path = tmp_path / "sato.pem"
    cert_path.write_bytes(x509.load_der_x509_certificate(seal.der).public_bytes(serialization.Encoding.PEM))
    result = openssl("verify", "-crl_check", "-CAfile", str(ca), "-CRLfile", str(crl_pem), str(cert_path))
    assert result.returncode != 0 and "revoked" in (result.stdout + result.stderr)
    # A revoked certificate is no longer the current one; issuing goes on for others.
    with node.db.begin() as conn, pytest.raises(NotFoundError):
        node.pki.certificate(conn, CertPurpose.USER_SEAL, "sato")


def test_revocation_bad_input_changes_nothing(node: Node, demo: DemoSample) -> None:
    with node.db.begin() as conn:
        seal = node.pki.certificate(conn, CertPurpose.USER_SEAL, "ito")
        ca = node.pki.ca_certificate(conn)
    for serial, reason, error in [
        (seal.serial, "because", ValidationError),
        ("abcdef", "unspecified", NotFoundError),
        (ca.serial, "unspecified", ValidationError),
    ]:
        with node.db.begin() as conn, pytest.raises(error):
            node.pki.revoke(conn, serial, reason)
    with node.db.begin() as conn:
        assert conn.execute(select(t.certificates).where(t.certificates.c.revoked_at.is_not(None))).all() == []
        node.pki.revoke(conn, seal.serial, "superseded")
    with node.db.begin() as conn, pytest.raises(ConflictError):
        node.pki.revoke(conn, seal.serial, "superseded")


def test_ca_is_created_once(node: Node) -> None:
    with node.db.begin() as conn, pytest.raises(ConflictError):
        node.pki.initialise(conn)


def _secret_forms(node: Node) -> dict[str, bytes]:
    """Every private key and TOTP secret in the forms it could leak in."""
    forms: dict[str, bytes] = {}
    with node.db.begin() as conn:
        rows = conn.execute(select(t.private_keys.c.id)).all()
        for (key_id,) in rows:
            key = node.keystore.get(conn, key_id)
            forms[f"key {key_id} pkcs8"] = key.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            numbers = key.private_numbers()  # type: ignore[union-attr]
            scalar = numbers.private_value if isinstance(key, ec.EllipticCurvePrivateKey) else numbers.d
            raw = scalar.to_bytes((scalar.bit_length() + 7) // 8, "big")
            forms[f"key {key_id} raw"] = raw
            forms[f"key {key_id} pem"] = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )[40:120]
    for user in node.directory.users():
        forms[f"totp {user.login}"] = node.directory.totp_secret(user.login).encode()
    return forms


def test_no_private_key_or_totp_secret_in_clear_anywhere(node: Node, demo: DemoSample) -> None:
    forms = _secret_forms(node)
    assert len([f for f in forms if f.endswith("pkcs8")]) == 3 + 3 * 2 + 8  # CA+node+TSA, 3 offices, 8 users
    haystacks: dict[str, bytes] = {}
    for path in node.settings.data_dir.rglob("*"):
        if path.is_file() and path != node.settings.master_key_file:
            haystacks[str(path)] = path.read_bytes()
    if node.settings.backend == "postgresql":
        with node.db.begin() as conn:
            dump = b""
            for table in schema.metadata.sorted_tables:
                for row in conn.execute(select(table)).all():
                    for value in row:
                        dump += value if isinstance(value, bytes) else str(value).encode()
            haystacks["postgresql"] = dump
    assert haystacks
    for name, secret in forms.items():
        for where, data in haystacks.items():
            assert secret not in data, f"{name} found in clear in {where}"


def test_keys_do_not_open_under_another_master_key(node: Node, tmp_path: Path) -> None:
    import os

    from inkless.errors import KeyStoreError
    from inkless.pki.keystore import KeyStore, SecretBox

    other = KeyStore(SecretBox(os.urandom(32)))
    with node.db.begin() as conn:
        key_id = conn.execute(select(t.private_keys.c.id)).scalars().first()
        assert key_id is not None
        with pytest.raises(KeyStoreError, match="wrong master key"):
            other.get(conn, key_id)
