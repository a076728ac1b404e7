"""Damage deep inside an envelope, each refused with its own reason: the DER a peer (or anyone on the way)
could send, built from a good signature with one part broken, and MIME that other writers produce."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import ExtensionOID

from inkless.delivery import cms_verify
from inkless.delivery import envelope as env
from inkless.errors import EnvelopeError
from tests.helpers import cms
from tests.unit.test_envelope_validation_settings import AT, CA, CONTENT

ID_DATA = bytes.fromhex("06092a864886f70d010701")  # OID 1.2.840.113549.1.7.1, DER
ID_CONTENT_TYPE_ATTRIBUTE = bytes.fromhex("06092a864886f70d010903")  # OID 1.2.840.113549.1.9.3


def _refusal(signed: bytes, ca: CA) -> str:
    with pytest.raises(EnvelopeError) as refused:
        env.verify(signed, ca.cert, AT)
    return str(refused.value)


def test_a_signer_identifier_of_another_asn1_type_is_malformed_cms() -> None:
    """asn1crypto reads the identifier only when pyHanko looks for the signer: still the malformed-CMS refusal."""
    ca = CA("a")
    key, cert = ca.office()
    info = cms.signer_info(CONTENT, key, cert, signing_time=AT)
    der = info.dump()
    signed = cms.signed_data(CONTENT, [info], [cert, ca.cert])
    start = signed.index(der) + 2 + (der[1] & 0x7F if der[1] & 0x80 else 0)
    assert signed[start : start + 4] == b"\x02\x01\x01\x30"  # version 1, then the identifier's SEQUENCE
    broken = signed[: start + 3] + b"\x15" + signed[start + 4 :]  # a [UNIVERSAL 21] where the SEQUENCE was
    assert _refusal(broken, ca) == (
        "not a valid CMS SignedData (ValueError: Value [UNIVERSAL 21] did not match the class and tag of any of "
        "the alternatives in asn1crypto.cms.SignerIdentifier: [UNIVERSAL 16], [CONTEXT 0])"
    )


def test_a_signed_attribute_whose_type_is_not_an_oid_is_malformed_signer_information() -> None:
    ca = CA("a")
    key, cert = ca.office()
    signed = cms.simple(CONTENT, key, cert, [ca.cert], signing_time=AT)
    assert signed.count(ID_CONTENT_TYPE_ATTRIBUTE) == 1
    broken = signed.replace(ID_CONTENT_TYPE_ATTRIBUTE, b"\x04" + ID_CONTENT_TYPE_ATTRIBUTE[1:])  # an OCTET STRING
    assert _refusal(broken, ca).startswith(
        "the signer information is malformed (ValueError: Error parsing asn1crypto.cms.CMSAttributeType - "
        "tag should have been 6, but 4 was found"
    )


def test_signed_content_of_another_type_than_id_data_is_refused() -> None:
    ca = CA("a")
    key, cert = ca.office()
    signed = cms.simple(CONTENT, key, cert, [ca.cert], signing_time=AT)
    # The first id-data is the encapsulated content's type (the second is the content-type attribute's value).
    other = signed.replace(ID_DATA, ID_DATA[:-1] + b"\x09", 1)
    assert _refusal(other, ca) == "the signed content is 1.2.840.113549.1.7.9, not id-data"


def test_a_signer_certificate_that_is_not_strict_der_is_malformed() -> None:
    """asn1crypto reads a BOOLEAN TRUE written as 0x01; cryptography, which checks the key, does not."""
    ca = CA("a")
    key, cert = ca.office()
    der = cert.public_bytes(serialization.Encoding.DER)
    assert der.count(b"\x01\x01\xff") == 1  # the critical flag of the key usage
    signed = cms.simple(CONTENT, key, cert, [ca.cert], signing_time=AT)
    lax = signed.replace(der, der.replace(b"\x01\x01\xff", b"\x01\x01\x01"))
    assert _refusal(lax, ca).startswith(
        "the signer's certificate is malformed (error parsing asn1 value: ParseError { kind: InvalidValue"
    )


def test_a_signer_certificate_whose_key_is_not_on_its_curve_holds_no_usable_key() -> None:
    ca = CA("a")
    key, cert = ca.office()
    der = cert.public_bytes(serialization.Encoding.DER)
    point = cert.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    off_curve = point[:-1] + bytes([point[-1] ^ 1])
    signed = cms.simple(CONTENT, key, cert, [ca.cert], signing_time=AT)
    assert _refusal(signed.replace(der, der.replace(point, off_curve)), ca) == (
        "the signer's certificate holds no usable public key (Invalid key)"
    )


def test_a_signer_key_of_a_type_the_profile_does_not_know_is_refused_for_its_mechanism() -> None:
    """An Ed25519 certificate: no mechanism fits it, whatever the SignerInfo declares."""
    ca = CA("a")
    key, cert = ca.office()
    ed_key = ed25519.Ed25519PrivateKey.generate()
    ed_cert = (
        x509.CertificateBuilder()
        .subject_name(cert.subject)
        .issuer_name(ca.cert.subject)
        .public_key(ed_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(AT - timedelta(days=1))
        .not_valid_after(AT + timedelta(days=30))
        .sign(ca.key, hashes.SHA256())
    )
    signed = cms.simple(CONTENT, key, ed_cert, [ca.cert], signing_time=AT)
    assert _refusal(signed, ca) == "signature algorithm ecdsa does not fit the signer's ed25519 key"


def test_a_pinned_ca_with_a_malformed_extension_anchors_no_path() -> None:
    """cryptography reads a certificate's extensions only when asked, so such a CA can be pinned; pyHanko
    reads them all when it takes the CA as a trust anchor."""
    ca = CA("a")
    ca.cert = (
        x509.CertificateBuilder()
        .subject_name(ca.cert.subject)
        .issuer_name(ca.cert.subject)
        .public_key(ca.key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(AT - timedelta(days=30))
        .not_valid_after(AT + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        # A subject key identifier that is a NULL, not an OCTET STRING.
        .add_extension(x509.UnrecognizedExtension(ExtensionOID.SUBJECT_KEY_IDENTIFIER, b"\x05\x00"),
                       critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    key, cert = ca.office()
    signed = cms.simple(CONTENT, key, cert, [], signing_time=AT)
    assert _refusal(signed, ca) == (
        "the signer certificate does not chain to the sending node's CA "
        "(Error parsing asn1crypto.core.OctetString - tag should have been 4, but 5 was found)"
    )


# --- MIME ---------------------------------------------------------------------------------------------


def _metadata(documents: list[tuple[str, bytes]]) -> bytes:
    meta = env.MessageMetadata("m-1", "civil@a", ("police@b",), "照会", 1, "normal", AT)
    listed = [
        {"name": name, "content_type": "text/plain", "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        for name, data in documents
    ]
    return b"Content-Type: application/json\r\n\r\n" + json.dumps({**meta.to_json(), "documents": listed}).encode()


def _multipart(*parts: bytes) -> bytes:
    head = b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b1"\r\n\r\n'
    return head + b"".join(b"--b1\r\n" + p + b"\r\n" for p in parts) + b"--b1--\r\n"


@pytest.mark.parametrize("part", [b"Content-Type: text/csv\r\n", b"Content-Type: text/csv"])
def test_an_empty_document_written_without_the_blank_line_is_empty(part: bytes) -> None:
    """A writer may end an empty part right after its header lines, with or without the line end."""
    _, [doc] = env.parse_mime(_multipart(_metadata([("document", b"")]), part))
    assert (doc.name, doc.content_type, doc.data) == ("document", "text/csv", b"")


def test_a_file_name_whose_charset_holds_a_nul_is_refused_as_invalid_mime_headers() -> None:
    """The email package decodes RFC 2231 names lazily: the NUL surfaces only when the name is read."""
    part = b"Content-Type: text/plain\r\nContent-Disposition: attachment;\r\n filename*0*=u\x00tf-8''a.txt\r\n\r\nx"
    with pytest.raises(EnvelopeError) as refused:
        env.parse_mime(_multipart(_metadata([("a.txt", b"x")]), part))
    assert str(refused.value) == "a document's MIME headers are not valid (embedded null character)"


def test_only_the_first_section_of_a_long_file_name_names_its_charset() -> None:
    """RFC 2231 §4.1: ``utf-8''`` opens section 0 only; a reader takes it literally in a later section."""
    name = "令和八年度　予算要求資料" * 4 + ".pdf"
    meta = env.MessageMetadata("m-1", "civil@a", ("police@b",), "照会", 1, "normal", AT)
    mime = env.build_mime(meta, [env.Document(name, "application/pdf", b"%PDF")])
    disposition = mime.split(b"Content-Disposition: ")[1].split(b"\r\n\r\n")[0].decode("ascii")
    sections = [s.strip() for s in disposition.split(";")[1:]]
    assert len(sections) > 2
    assert sections[0].startswith("filename*0*=utf-8''%E4%BB%A4")
    assert all(s.startswith(f"filename*{i}*=") and "''" not in s for i, s in enumerate(sections[1:], 1)), sections
    assert env.parse_mime(mime)[1][0].name == name


def test_receipts_name_an_envelope_by_the_sha256_of_its_bytes() -> None:
    envelope = b"0\x80\x06\x09*\x86H\x86\xf7\r\x01\x07\x03" + bytes(range(256))
    assert env.envelope_digest(envelope) == hashlib.sha256(envelope).hexdigest()
    assert env.envelope_digest(envelope + b"\x00") != env.envelope_digest(envelope)


def test_a_library_error_is_reported_by_its_first_line_cut_at_300_characters() -> None:
    """What ``verify`` quotes of an error escaping asn1crypto or pyHanko: one line, bounded, never empty."""
    assert cms_verify._first_line(ValueError("x" * 400 + "\n    while parsing asn1crypto.cms.SignerInfo")) == "x" * 300
    assert cms_verify._first_line(ValueError("  Invalid key\nsecond line")) == "Invalid key"
    assert cms_verify._first_line(KeyError()) == "KeyError"
    assert cms_verify._first_line(IndexError(" \n ")) == "IndexError"


def test_a_truncated_body_is_named_as_such_even_after_a_part_was_refused() -> None:
    """The structure is read to its end before a part's own problem is reported: a body cut short two parts
    after metadata that is not JSON is refused as not terminated, not for the JSON."""
    head = b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b1"\r\n\r\n'
    body = head + b"--b1\r\nContent-Type: application/json\r\n\r\n{not json\r\n" + b"".join(
        b"--b1\r\nContent-Type: text/plain\r\n\r\n" + text for text in (b"a whole part\r\n", b"a part cut short"))
    with pytest.raises(EnvelopeError) as refused:
        env.parse_mime(body)
    assert str(refused.value) == "the multipart body is not terminated"
    with pytest.raises(EnvelopeError, match=r"^the message metadata is not valid JSON \("):
        env.parse_mime(body + b"\r\n--b1--\r\n")


def test_a_boundary_that_is_not_ascii_is_not_valid_mime() -> None:
    body = 'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="境界"\r\n\r\n--境界\r\n'.encode()
    with pytest.raises(EnvelopeError) as refused:
        env.parse_mime(body)
    assert str(refused.value).startswith("the message body is not valid MIME ('ascii' codec can't encode"), str(
        refused.value)
