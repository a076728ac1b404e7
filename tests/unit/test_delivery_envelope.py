"""Envelopes and receipts without a node: a throw-away PKI, real CMS, every refusal named."""

from __future__ import annotations

import base64
import dataclasses
import email
import email.policy
import hashlib
import json
import quopri
import re
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from inkless import timefmt
from inkless.delivery import envelope as env
from inkless.delivery.receipt import ReceiptFacts, make_receipt, verify_receipt
from inkless.errors import EnvelopeError
from tests.helpers import cms

# cryptography stamps the signing time from the wall clock, so the checks run at the real time.
NOW = datetime.now(UTC).replace(microsecond=0)


def now() -> datetime:
    """The time of the check: envelopes carry the real signing time, however long the suite runs."""
    return datetime.now(UTC)
FIXED = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class PKI:
    """A CA with an office signing (EC) and encryption (RSA) key pair per office."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.ca = (
            x509.CertificateBuilder().subject_name(_name(f"{node} CA")).issuer_name(_name(f"{node} CA"))
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - timedelta(days=1)).not_valid_after(NOW + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    def leaf(self, office: str, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, signing: bool,
             days: int = 365, *, names_office: bool = True, serial: int | None = None) -> x509.Certificate:
        usage = x509.KeyUsage(signing, signing, not signing, False, False, False, False, False, False)
        builder = (
            x509.CertificateBuilder().subject_name(_name(office)).issuer_name(self.ca.subject)
            .public_key(key.public_key()).serial_number(serial or x509.random_serial_number())
            .not_valid_before(NOW - timedelta(days=1)).not_valid_after(NOW + timedelta(days=days))
            .add_extension(usage, critical=True)
        )
        if names_office:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(f"urn:inkless:office:{office}@{self.node}")]), critical=False)
        return builder.sign(self.key, hashes.SHA256())

    def office(self, code: str) -> Office:
        sk = ec.generate_private_key(ec.SECP256R1())
        ek = rsa.generate_private_key(65537, 2048)
        return Office(f"{code}@{self.node}", sk, self.leaf(code, sk, True), ek, self.leaf(code, ek, False), self)


@dataclasses.dataclass
class Office:
    address: str
    sign_key: ec.EllipticCurvePrivateKey
    sign_cert: x509.Certificate
    enc_key: rsa.RSAPrivateKey
    enc_cert: x509.Certificate
    pki: PKI


@pytest.fixture(scope="module")
def world() -> dict[str, Office]:
    a, b = PKI("a"), PKI("b")
    return {"sender": a.office("civil"), "recipient": b.office("police"), "other": b.office("fire")}


def message(sender: Office, recipient: Office) -> tuple[env.MessageMetadata, list[env.Document]]:
    meta = env.MessageMetadata("4d1c6a52-7f1e-4a7e-8b7c-2f1d5e6a9b10", sender.address, (recipient.address,),
                               "至急：照会", 2, "urgent", NOW, procedure_code="K-12", reply_to=None)
    docs = [env.Document("被害届（写し）.pdf", "application/pdf", b"%PDF-1.7\n" + bytes(range(256)) * 40),
            env.Document("memo.txt", "text/plain", "メモ\r\n".encode())]
    return meta, docs


def seal(sender: Office, recipient: Office) -> bytes:
    meta, docs = message(sender, recipient)
    signed = env.sign(env.build_mime(meta, docs), sender.sign_key, sender.sign_cert, [sender.pki.ca])
    return env.encrypt(signed, [recipient.enc_cert, sender.enc_cert])


def test_round_trip_and_mime_layout(world: dict[str, Office]) -> None:
    sender, recipient = world["sender"], world["recipient"]
    meta, docs = message(sender, recipient)
    mime = env.build_mime(meta, docs)
    parsed = email.message_from_bytes(mime, policy=email.policy.default)
    parts = list(parsed.iter_parts())  # type: ignore[attr-defined]
    assert parsed.get_content_type() == "multipart/mixed"
    assert [p.get_content_type() for p in parts] == ["application/json", "application/pdf", "text/plain"]
    assert all(p["Content-Transfer-Encoding"] == "base64" for p in parts[1:])
    # RFC 2231 for the Japanese file name; ASCII names stay plain.
    assert b"filename*0*=utf-8''%E8%A2%AB%E5%AE%B3" in mime
    assert parts[1].get_filename() == "被害届（写し）.pdf"
    assert parts[2].get_filename() == "memo.txt"
    long_name = "令和八年度" * 40 + ".pdf"
    long_mime = env.build_mime(meta, [env.Document(long_name, "application/pdf", b"%PDF")])
    assert max(len(line) for line in long_mime.split(b"\r\n")) <= 78
    assert env.parse_mime(long_mime)[1][0].name == long_name
    assert list(email.message_from_bytes(long_mime, policy=email.policy.default)  # type: ignore[attr-defined]
                .iter_parts())[1].get_filename() == long_name

    envelope = seal(sender, recipient)
    for office in (recipient, sender):  # the sender keeps a copy it can open
        signed = env.decrypt(envelope, office.enc_cert, office.enc_key)
        verified = env.verify(signed, sender.pki.ca, now(), expected_signer=sender.address)
        assert verified.signer_address == sender.address and verified.signing_time is not None
        got_meta, got_docs = env.parse_mime(verified.content)
        assert got_docs == docs
        assert got_meta.subject == "至急：照会" and got_meta.classification == 2 and got_meta.priority == "urgent"
        assert [d["sha256"] for d in got_meta.documents] == [d.sha256 for d in docs]


def test_refusals_name_their_reason(world: dict[str, Office]) -> None:
    sender, recipient, other = world["sender"], world["recipient"], world["other"]
    envelope = seal(sender, recipient)
    signed = env.decrypt(envelope, recipient.enc_cert, recipient.enc_key)
    tampered = bytearray(signed)
    tampered[tampered.index(b"Content-Transfer-Encoding") + 200] ^= 0x01
    expired = dataclasses.replace(sender, sign_cert=sender.pki.leaf("civil", sender.sign_key, True, days=1))
    old = env.sign(b"x", expired.sign_key, expired.sign_cert, [])
    cases = [
        (lambda: env.decrypt(envelope, other.enc_cert, other.enc_key), "cannot be opened"),
        (lambda: env.decrypt(b"\x30\x03\x02\x01\x00", recipient.enc_cert, recipient.enc_key), "cannot be opened"),
        (lambda: env.verify(b"not der", sender.pki.ca, now()), "not a valid CMS SignedData (ValueError: "),
        (lambda: env.verify(bytes(tampered), sender.pki.ca, now()),
         "the content does not match the signed message digest: it was altered"),
        (lambda: env.verify(signed, recipient.pki.ca, now()), "not issued by the trusted CA"),
        (lambda: env.verify(signed, sender.pki.ca, now(), expected_signer="fire@a"), "claims to be fire@a"),
        (lambda: env.verify(old, sender.pki.ca, now() + timedelta(days=30)), "expired"),
        (lambda: env.verify(signed, sender.pki.ca, now(), is_revoked=lambda c: True), "revoked"),
        (lambda: env.verify(envelope, sender.pki.ca, now()), "expected CMS SignedData"),
        (lambda: env.parse_mime(b"Content-Type: text/plain\r\n\r\nhello"), "the message body is not multipart/mixed"),
    ]
    for call, words in cases:
        with pytest.raises(EnvelopeError) as caught:
            call()
        assert words in str(caught.value), (words, str(caught.value))
        assert str(caught.value)[:1].islower() and "XX" not in str(caught.value)


def test_documents_must_match_their_listed_digest(world: dict[str, Office]) -> None:
    meta, docs = message(world["sender"], world["recipient"])
    mime = env.build_mime(meta, docs)
    swapped = mime.replace(b"memo.txt", b"memo.txx")
    assert env.parse_mime(swapped)[1][1].name == "memo.txx"  # names are labels; contents are what is checked
    forged = mime.replace(b"44Oh44OiDQo=", b"QUFBQUFBQUE=")  # memo.txt's content, swapped
    assert forged != mime
    with pytest.raises(EnvelopeError, match=r"^document 2 does not match its listed SHA-256$"):
        env.parse_mime(forged)
    with pytest.raises(EnvelopeError, match="invalid classification"):
        env.MessageMetadata.from_json({**meta.to_json(), "classification": 7})


def test_receipt_is_canonical_and_bound_to_the_envelope(world: dict[str, Office]) -> None:
    recipient = world["recipient"]
    facts = ReceiptFacts("m-1", "ab" * 32, recipient.address, FIXED)
    assert facts.canonical_json() == (
        b'{"envelope_sha256":"' + b"ab" * 32 + b'","message_id":"m-1","received_at":"2026-04-01T09:00:00+00:00",'
        b'"recipient":"police@b"}'
    )
    receipt = make_receipt(facts, recipient.sign_key, recipient.sign_cert, [recipient.pki.ca])
    checked = verify_receipt(receipt, recipient.pki.ca, now(), message_id="m-1", envelope_sha256="ab" * 32,
                             recipient=recipient.address)
    assert checked.facts == facts and checked.signer_address == recipient.address
    wrong = [
        ({"message_id": "m-2"}, "for message m-1, not m-2"),
        ({"envelope_sha256": "cd" * 32}, "different envelope digest"),
        ({"recipient": "fire@b"}, "claims to be fire@b"),
    ]
    for override, words in wrong:
        args = {"message_id": "m-1", "envelope_sha256": "ab" * 32, "recipient": recipient.address, **override}
        with pytest.raises(EnvelopeError, match=words):
            verify_receipt(receipt, recipient.pki.ca, now(), **args)
    with pytest.raises(EnvelopeError, match="canonical"):
        ReceiptFacts.from_json(b'{"message_id": "m-1", "envelope_sha256": "x", "recipient": "r", '
                               b'"received_at": "2026-04-01T09:00:00+00:00"}')


def test_receipt_refusals_name_their_reason(world: dict[str, Office]) -> None:
    """A sender accepts only its own message's receipt, signed by the addressed office, not revoked."""
    recipient = world["recipient"]
    key, cert, ca = recipient.sign_key, recipient.sign_cert, recipient.pki.ca
    expected = {"message_id": "m-1", "envelope_sha256": "ab" * 32, "recipient": recipient.address}
    good = make_receipt(ReceiptFacts("m-1", "ab" * 32, recipient.address, FIXED), key, cert, [ca])
    # police@b signs a receipt whose facts say another office of its node stored the message.
    for_fire = make_receipt(ReceiptFacts("m-1", "ab" * 32, "fire@b", FIXED), key, cert, [ca])
    cases: list[tuple[bytes, dict[str, object], str]] = [
        (good, {"message_id": "m-2"}, r"^the receipt is for message m-1, not m-2$"),
        (good, {"envelope_sha256": "cd" * 32},
         r"^the receipt names a different envelope digest: the peer stored other bytes$"),
        (for_fire, {}, r"^the receipt is for fire@b, not police@b$"),
        (good, {"is_revoked": lambda c: c == cert}, rf"^the signer certificate \(serial {cert.serial_number:x}\) is "
                                                     r"revoked$"),
    ]
    for receipt, override, reason in cases:
        with pytest.raises(EnvelopeError, match=reason):
            verify_receipt(receipt, ca, now(), **{**expected, **override})  # type: ignore[arg-type]
    assert verify_receipt(good, ca, now(), **expected, is_revoked=lambda c: c != cert).facts.message_id == "m-1"
    malformed = [
        (b"not json", r"^the receipt content is not the expected JSON \(Expecting value"),
        (b'{"message_id":"m-1"}', r"^the receipt content is not the expected JSON \('envelope_sha256'\)$"),
        (b'{"envelope_sha256":"x","message_id":"m-1","received_at":"yesterday","recipient":"r"}',
         r"^the receipt content is not the expected JSON \(Invalid isoformat string"),
        (b'{"message_id": "m-1", "envelope_sha256": "x", "recipient": "r", '
         b'"received_at": "2026-04-01T09:00:00+00:00"}', r"^the receipt content is not in canonical form$"),
    ]
    for content, reason in malformed:
        with pytest.raises(EnvelopeError, match=reason):
            ReceiptFacts.from_json(content)
        # The same content, signed by the right office, is refused by the sender's check as well.
        with pytest.raises(EnvelopeError, match=reason):
            verify_receipt(env.sign(content, key, cert, [ca]), ca, now(), **expected)  # type: ignore[arg-type]


# --- the verifier's refusals, each on a CMS built to break exactly one rule ---------------------------

CONTENT = b"MIME-Version: 1.0\r\n\r\nsigned content"


def test_a_hand_built_signature_verifies_and_only_issuer_and_serial_pick_the_signer(
        world: dict[str, Office]) -> None:
    sender = world["sender"]
    good = cms.simple(CONTENT, sender.sign_key, sender.sign_cert, [sender.pki.ca])
    assert env.verify(good, sender.pki.ca, now(), expected_signer=sender.address).content == CONTENT
    # SHA-512 declared: the digest is computed with the declared algorithm, not assumed SHA-256.
    sha512 = cms.simple(CONTENT, sender.sign_key, sender.sign_cert, digest="sha512")
    assert env.verify(sha512, sender.pki.ca, now()).signer_address == sender.address
    # A certificate of another CA with the signer's serial number, listed first, is not taken for the signer.
    stranger = PKI("z")
    twin = stranger.leaf("civil", sender.sign_key, True, serial=sender.sign_cert.serial_number)
    both = cms.signed_data(CONTENT, [cms.signer_info(CONTENT, sender.sign_key, sender.sign_cert)],
                           [twin, sender.sign_cert])
    assert env.verify(both, sender.pki.ca, now()).signer == sender.sign_cert
    only_twin = cms.signed_data(CONTENT, [cms.signer_info(CONTENT, sender.sign_key, sender.sign_cert)], [twin])
    with pytest.raises(EnvelopeError, match="signer's certificate is not included"):
        env.verify(only_twin, sender.pki.ca, now())


def test_a_correct_digest_under_a_bad_signature_is_refused(world: dict[str, Office]) -> None:
    sender, other = world["sender"], world["other"]
    forged = cms.simple(CONTENT, sender.sign_key, sender.sign_cert, corrupt_signature=True)
    with pytest.raises(EnvelopeError, match=r"^the signature is invalid"):
        env.verify(forged, sender.pki.ca, now())
    # The right digest, signed by another office's key under the sender's certificate.
    impostor = cms.simple(CONTENT, sender.sign_key, sender.sign_cert, signing_key=other.sign_key)
    with pytest.raises(EnvelopeError, match=r"^the signature is invalid"):
        env.verify(impostor, sender.pki.ca, now())


def test_every_envelope_verifier_refusal_names_its_reason(world: dict[str, Office]) -> None:
    sender, other = world["sender"], world["other"]
    key, cert, ca = sender.sign_key, sender.sign_cert, sender.pki.ca
    digest = hashlib.sha256(CONTENT).digest()
    when = NOW - timedelta(minutes=1)
    no_usage = sender.pki.leaf("civil", key, False)  # keyEncipherment only
    no_office = sender.pki.leaf("civil", key, True, names_office=False)
    two = cms.signed_data(CONTENT, [cms.signer_info(CONTENT, key, cert), cms.signer_info(CONTENT, other.sign_key,
                                                                                         other.sign_cert)],
                          [cert, other.sign_cert])
    cases: list[tuple[str, bytes, str]] = [
        ("detached", cms.simple(CONTENT, key, cert, detached=True),
         "the signed data carries no content (detached signatures are not accepted)"),
        ("several signers", two, "expected exactly one signer, found 2"),
        ("no certificate", cms.signed_data(CONTENT, [cms.signer_info(CONTENT, key, cert)], []),
         "the signer's certificate is not included in the signature"),
        ("sha-1", cms.simple(CONTENT, key, cert, digest="sha1"), "digest algorithm sha1 is not accepted"),
        ("no signed attributes", cms.simple(CONTENT, key, cert, no_attrs=True),
         "the signature has no signed attributes"),
        ("rsa mechanism, ec key", cms.simple(CONTENT, key, cert, mechanism="sha256_rsa"),
         "signature algorithm rsassa_pkcs1v15 does not fit the signer's ec key"),
        ("future", cms.simple(CONTENT, key, cert, signing_time=now() + timedelta(hours=1)),
         "the signing time lies in the future"),
        ("before the certificate", cms.simple(CONTENT, key, cert, signing_time=NOW - timedelta(days=30)),
         "the signer certificate was not valid at the signing time "
         f"({timefmt.format_datetime(NOW - timedelta(days=30), 'en')})"),
        ("no signing usage", cms.simple(CONTENT, key, no_usage),
         "the signer certificate may not make signatures (its key usage lacks digitalSignature)"),
        ("no office", cms.simple(CONTENT, key, no_office), "the signer certificate names no inkless office"),
        ("two digests", cms.simple(CONTENT, key, cert, attrs=[
            cms.attribute("content_type", "data"), cms.attribute("message_digest", digest),
            cms.attribute("message_digest", hashlib.sha256(b"other").digest())]),
         "the signed attribute message_digest appears more than once"),
        ("two signing times", cms.simple(CONTENT, key, cert, attrs=[
            cms.attribute("content_type", "data"), cms.attribute("message_digest", digest),
            cms.attribute("signing_time", when), cms.attribute("signing_time", when - timedelta(days=9))]),
         "the signed attribute signing_time appears more than once"),
        ("two values", cms.simple(CONTENT, key, cert, attrs=[
            cms.attribute("content_type", "data"), cms.attribute("message_digest", digest, digest)]),
         "the signed attribute message_digest must have exactly one value"),
        ("altered content", cms.simple(CONTENT, key, cert, attrs=[
            cms.attribute("content_type", "data"), cms.attribute("message_digest", hashlib.sha256(b"x").digest())]),
         "the content does not match the signed message digest: it was altered"),
        ("content type attribute", cms.simple(CONTENT, key, cert, attrs=[
            cms.attribute("content_type", "signed_data"), cms.attribute("message_digest", digest)]),
         "the signature cannot be validated: Content type signed_data did not match expected value data"),
    ]
    for name, signed, reason in cases:
        with pytest.raises(EnvelopeError) as refused:
            env.verify(signed, ca, now())
        assert str(refused.value).startswith(reason), (name, str(refused.value))


def test_metadata_carries_every_field_and_defaults_what_an_older_peer_leaves_out(world: dict[str, Office]) -> None:
    sender, recipient, other = world["sender"], world["recipient"], world["other"]
    faxed = env.MessageMetadata(
        "0b7c6f1e-3d2a-4c5b-9e8f-7a6b5c4d3e2f", sender.address, (recipient.address, other.address), "FAX受信：照会",
        0, "normal", NOW, procedure_code="K-12", reply_to="4d1c6a52-7f1e-4a7e-8b7c-2f1d5e6a9b10", source="fax",
        facts={"fax_from": "+81-3-1234-5678", "pages": 3},
    )
    docs = [env.Document("fax.pdf", "application/pdf", b"%PDF-1.7\n" + bytes(range(256)))]
    got, got_docs = env.parse_mime(env.build_mime(faxed, docs))
    listed = ({"name": "fax.pdf", "content_type": "application/pdf", "size": 265, "sha256": docs[0].sha256},)
    # Classification 0 (public) is a classification; the reply link, procedure, source and facts arrive.
    assert got == dataclasses.replace(faxed, documents=listed) and got_docs == docs
    minimal = {"message_id": "m-1", "from": sender.address, "to": [recipient.address], "subject": "照会",
               "classification": 3, "priority": "urgent", "created_at": "2026-04-01T09:00:00+00:00"}
    assert env.MessageMetadata.from_json(minimal) == env.MessageMetadata(
        "m-1", sender.address, (recipient.address,), "照会", 3, "urgent", FIXED, procedure_code=None, reply_to=None,
        documents=(), source="inkless", facts={})
    refused = [
        ({k: v for k, v in minimal.items() if k != "from"},
         r"^the message metadata is incomplete or malformed \('from'\)$"),
        ({**minimal, "classification": -1}, r"^the message metadata has an invalid classification or priority$"),
        ({**minimal, "classification": 4}, r"^the message metadata has an invalid classification or priority$"),
        ({**minimal, "priority": "low"}, r"^the message metadata has an invalid classification or priority$"),
        ({**minimal, "created_at": "2026-04-01T09:00:00"},
         r"^the message metadata has a creation time without time zone$"),
    ]
    for data, reason in refused:
        with pytest.raises(EnvelopeError, match=reason):
            env.MessageMetadata.from_json(data)


def test_a_foreign_certificate_is_refused_for_its_ca_within_the_clock_skew_and_for_its_dates_beyond(
        world: dict[str, Office]) -> None:
    """Nodes' clocks may differ by CLOCK_SKEW: up to it a certificate's dates are not the reason given."""
    sender = world["sender"]
    stranger = PKI("z")
    foreign = stranger.leaf("civil", sender.sign_key, True)
    signed = cms.simple(CONTENT, sender.sign_key, foreign, signing_time=foreign.not_valid_before_utc)
    second = timedelta(seconds=1)
    start, end = foreign.not_valid_before_utc - env.CLOCK_SKEW, foreign.not_valid_after_utc + env.CLOCK_SKEW
    not_ours = r"^the signer certificate \(CN=civil\) was not issued by the trusted CA of the sending node \(CN=a CA\)$"
    dates = (rf"^the signer certificate is not valid now \(valid {foreign.not_valid_before_utc:%Y-%m-%d} to "
             rf"{foreign.not_valid_after_utc:%Y-%m-%d}\): expired or not yet valid$")
    for at, reason in [(start, not_ours), (start + 2 * env.CLOCK_SKEW - second, not_ours), (end, not_ours),
                       (end - 2 * env.CLOCK_SKEW + second, not_ours), (start - second, dates), (end + second, dates)]:
        with pytest.raises(EnvelopeError, match=reason):
            env.verify(signed, sender.pki.ca, at)
    no_usage = sender.pki.leaf("civil", sender.sign_key, False)
    with pytest.raises(EnvelopeError, match=r"^the signer certificate may not make signatures \(its key usage lacks "
                                            r"digitalSignature\)$"):
        env.verify(cms.simple(CONTENT, sender.sign_key, no_usage), sender.pki.ca, now())


def test_mime_written_by_another_program_opens(world: dict[str, Office]) -> None:
    """A peer's MIME writer may use LF line ends, quoted-printable text and parts without a transfer encoding."""
    sender, recipient = world["sender"], world["recipient"]
    pdf = b"%PDF-1.7\n" + bytes(range(256)) * 4
    text = "照会の件\r\n第2項をご確認ください。".encode()
    meta, _ = message(sender, recipient)
    listed = [{"name": "scan.pdf", "content_type": "application/pdf", "size": len(pdf),
               "sha256": hashlib.sha256(pdf).hexdigest()},
              {"name": "memo.txt", "content_type": "text/plain", "size": len(text),
               "sha256": hashlib.sha256(text).hexdigest()}]
    metadata = json.dumps({**meta.to_json(), "documents": listed}).encode("ascii")
    mime = b"\n".join([
        b"MIME-Version: 1.0", b'Content-Type: multipart/mixed; boundary="b1"', b"", b"--b1",
        b"Content-Type: application/json", b"", metadata,  # no Content-Transfer-Encoding: 7bit
        b"--b1", b"Content-Type: application/pdf", b"Content-Transfer-Encoding: BASE64",
        b'Content-Disposition: attachment; filename="scan.pdf"', b"", base64.encodebytes(pdf).rstrip(b"\n"),
        b"--b1", b"Content-Type: text/plain; charset=utf-8", b"Content-Transfer-Encoding: quoted-printable",
        b'Content-Disposition: attachment; filename="memo.txt"', b"", quopri.encodestring(text),
        b"--b1--", b"",
    ])
    assert b"\r\n" not in mime.replace(quopri.encodestring(text), b"")  # LF line ends only
    got_meta, docs = env.parse_mime(mime)
    assert got_meta.subject == "至急：照会" and got_meta.sender == sender.address
    assert [(d.name, d.content_type, d.data) for d in docs] == [
        ("scan.pdf", "application/pdf", pdf), ("memo.txt", "text/plain", text)]
    # 8bit and binary parts carry the bytes as they are (RFC 2045 §6.2).
    for encoding in (b"8bit", b"binary"):
        raw = env.parse_mime(mime.replace(b"Content-Transfer-Encoding: quoted-printable",
                                          b"Content-Transfer-Encoding: " + encoding).replace(quopri.encodestring(text),
                                                                                              text))
        assert raw[1][1].data == text
    with pytest.raises(EnvelopeError, match=r"^unsupported content transfer encoding 'x-uuencode'$"):
        env.parse_mime(mime.replace(b"quoted-printable", b"x-uuencode"))


@pytest.mark.parametrize("eol", [b"\r\n", b"\n"])
def test_a_part_without_header_lines_keeps_the_blank_lines_of_its_body(world: dict[str, Office], eol: bytes) -> None:
    """RFC 2046: a part may have no header lines (then it is text/plain, 7bit); its body starts after the
    blank line that opens the part, and a blank line inside that body belongs to the body."""
    sender, recipient = world["sender"], world["recipient"]
    text = eol.join([b"first paragraph", b"", b"Content-Type: application/pdf", b"", b"second paragraph"])
    meta, _ = message(sender, recipient)
    listed = [{"name": "note", "content_type": "text/plain", "size": len(text),
               "sha256": hashlib.sha256(text).hexdigest()}]
    metadata = json.dumps({**meta.to_json(), "documents": listed}).encode("ascii")
    mime = eol.join([
        b"MIME-Version: 1.0", b'Content-Type: multipart/mixed; boundary="b1"', b"", b"--b1",
        b"Content-Type: application/json", b"", metadata,
        b"--b1", b"", text,  # no header lines at all
        b"--b1--", b"",
    ])
    _, docs = env.parse_mime(mime)
    assert [(d.name, d.content_type, d.data) for d in docs] == [("document", "text/plain", text)]


def test_the_metadata_part_is_the_documented_json(world: dict[str, Office]) -> None:
    """docs/delivery.md lists the metadata fields: a peer's reader relies on exactly these, in version 1."""
    meta, docs = message(world["sender"], world["recipient"])
    parts = list(email.message_from_bytes(env.build_mime(meta, docs), policy=email.policy.default)  # type: ignore[attr-defined]
                 .iter_parts())
    fields = json.loads(parts[0].get_content())
    assert sorted(fields) == sorted(["version", "message_id", "from", "to", "subject", "classification", "priority",
                                     "procedure_code", "reply_to", "created_at", "documents", "source", "facts"])
    assert fields["version"] == 1 and fields["procedure_code"] == "K-12" and fields["source"] == "inkless"
    with pytest.raises(EnvelopeError, match=r"^an envelope needs at least one recipient certificate$"):
        env.encrypt(b"x", [])


@pytest.mark.parametrize("name", ['say "hi".pdf', "C:\\scans\\a.pdf", "報告 2026/04;v=2?.pdf",
                                  "2026/04 report;v=2.pdf"])
def test_file_names_with_mime_special_characters_arrive_unchanged(world: dict[str, Office], name: str) -> None:
    """Quotes, backslashes, '/', ';', '=', '?' in a name: read back as written, by us and by any MIME parser."""
    meta, _ = message(world["sender"], world["recipient"])
    mime = env.build_mime(meta, [env.Document(name, "application/pdf", b"%PDF")])
    assert env.parse_mime(mime)[1][0].name == name
    part = list(email.message_from_bytes(mime, policy=email.policy.default).iter_parts())[1]  # type: ignore[attr-defined]
    assert part.get_filename() == name
    disposition = mime.split(b"Content-Disposition: ")[1].split(b"\r\n\r\n")[0].decode("ascii")
    if name.isascii() and '"' not in name and "\\" not in name:  # a quoted string holds it as it is
        assert disposition == f'attachment; filename="{name}"'
    else:
        # RFC 2231 values are attribute-chars and %XX only: no tspecials such as / ; = ? " \.
        values = re.findall(r"filename\*\d+\*=(?:utf-8'')?([^;\r\n]*)", disposition)
        assert values and all(re.fullmatch(r"(?:[A-Za-z0-9!#$&+.^_`|~-]|%[0-9A-F]{2})+", v) for v in values), values


def _multipart(*parts: bytes, preamble: bytes = b"", end: bytes = b"--b1--\r\n") -> bytes:
    head = b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b1"\r\n\r\n' + preamble
    return head + b"".join(b"--b1\r\n" + p + b"\r\n" for p in parts) + end


def test_hostile_mime_is_refused_with_its_reason(world: dict[str, Office]) -> None:
    meta, _ = message(world["sender"], world["recipient"])
    text = "一行目\r\n二行目".encode()
    listed = [{"name": "document", "content_type": "text/plain", "size": len(text),
               "sha256": hashlib.sha256(text).hexdigest()}]
    metadata = b"Content-Type: application/json\r\n\r\n" + json.dumps({**meta.to_json(), "documents": listed}).encode()
    plain = b"Content-Type: text/plain\r\n\r\n" + text  # 7bit, CRLF line ends, no file name
    # A preamble before the first delimiter is allowed (RFC 2046 §5.1.1); the CRLF before a delimiter is not data.
    for preamble in (b"", b"This is a multi-part message.\r\n"):
        got_meta, docs = env.parse_mime(_multipart(metadata, plain, preamble=preamble))
        assert got_meta.message_id == meta.message_id
        assert [(d.name, d.content_type, d.data) for d in docs] == [("document", "text/plain", text)]
    cases = [
        (b"Content-Type: multipart/mixed\r\n\r\n--b1\r\n", "the multipart body has no boundary"),
        (b'Content-Type: multipart/mixed; boundary=""\r\n\r\n--\r\n', "the multipart body has no boundary"),
        (_multipart(metadata, preamble=b"x"), "the multipart body has no parts"),  # a delimiter starts a line
        (_multipart(end=b"text only"), "the multipart body has no parts"),
        (_multipart(end=b"--b1"), "the multipart body is truncated"),
        (_multipart(metadata, end=b""), "the multipart body is not terminated"),
        (_multipart(plain), "the message body does not start with its JSON metadata part"),
        (_multipart(), "the message body does not start with its JSON metadata part"),
        (_multipart(b"Content-Type: application/json\r\n\r\n{not json"), "the message metadata is not valid JSON ("),
        (_multipart(b"Content-Type: application/json\r\nContent-Transfer-Encoding: base64\r\n\r\nQUJDQ"),
         "the message body is not valid MIME ("),
        (_multipart(metadata), "the metadata lists 1 documents but 0 are present"),
    ]
    for mime, reason in cases:
        with pytest.raises(EnvelopeError) as refused:
            env.parse_mime(mime)
        assert str(refused.value).startswith(reason), (mime[:120], str(refused.value))


def test_the_signing_time_may_lie_within_the_clock_skew_of_the_certificate_and_of_now(
        world: dict[str, Office]) -> None:
    sender = world["sender"]
    key, cert, ca = sender.sign_key, sender.sign_cert, sender.pki.ca
    start, end, skew, second = cert.not_valid_before_utc, cert.not_valid_after_utc, env.CLOCK_SKEW, timedelta(seconds=1)
    after_end = end + timedelta(minutes=1)  # still within the skew for the certificate itself
    for signed_at, at in [(start - skew, NOW), (start, NOW), (end, after_end), (NOW + skew, NOW)]:
        signed = cms.simple(CONTENT, key, cert, [ca], signing_time=signed_at)
        assert env.verify(signed, ca, at).signing_time == signed_at
    for signed_at, at, reason in [
        (start - skew - second, NOW, "the signer certificate was not valid at the signing time ("),
        (end + second, after_end, "the signer certificate was not valid at the signing time ("),
        (NOW + skew + second, NOW, "the signing time lies in the future"),
    ]:
        with pytest.raises(EnvelopeError) as refused:
            env.verify(cms.simple(CONTENT, key, cert, [ca], signing_time=signed_at), ca, at)
        assert str(refused.value).startswith(reason), (signed_at, str(refused.value))


def test_a_content_type_that_is_not_a_plain_token_is_sent_as_octet_stream(world: dict[str, Office]) -> None:
    """A sender's content type cannot add header lines to the part (``\\r\\nContent-Disposition: ...``)."""
    meta, _ = message(world["sender"], world["recipient"])
    injected = "text/html\r\nContent-Disposition: inline"
    mime = env.build_mime(meta, [env.Document("a.html", injected, b"<p>x</p>"),
                                 env.Document("b.pdf", "application/pdf", b"%PDF")])
    assert mime.count(b"Content-Disposition: inline") == 0
    assert [(d.name, d.content_type) for d in env.parse_mime(mime)[1]] == [
        ("a.html", "application/octet-stream"), ("b.pdf", "application/pdf")]


def test_signed_data_with_bytes_after_it_or_several_repeated_attributes_is_refused(world: dict[str, Office]) -> None:
    sender = world["sender"]
    key, cert, ca = sender.sign_key, sender.sign_cert, sender.pki.ca
    good = cms.simple(CONTENT, key, cert)
    with pytest.raises(EnvelopeError, match=r"^not a valid CMS SignedData \(ValueError: "):
        env.verify(good + b"\x00\x00", ca, now())
    digest = hashlib.sha256(CONTENT).digest()
    when = NOW - timedelta(minutes=1)
    repeated = cms.simple(CONTENT, key, cert, attrs=[
        cms.attribute("content_type", "data"), cms.attribute("message_digest", digest),
        cms.attribute("message_digest", digest), cms.attribute("signing_time", when),
        cms.attribute("signing_time", when)])
    with pytest.raises(EnvelopeError, match=r"^the signed attribute message_digest, signing_time appears more than "
                                            r"once$"):
        env.verify(repeated, ca, now())
    multi = cms.simple(CONTENT, key, cert, attrs=[
        cms.attribute("content_type", "data", "data"), cms.attribute("message_digest", digest, digest)])
    with pytest.raises(EnvelopeError, match=r"^the signed attribute content_type, message_digest must have exactly "
                                            r"one value$"):
        env.verify(multi, ca, now())
