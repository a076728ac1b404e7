"""Envelopes written as streams: what ``seal`` writes opens and verifies, each recipient once, and a content source
that changes between its two readings or an encryption certificate without an RSA key is refused by name."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from asn1crypto import cms as asn1_cms  # type: ignore[import-untyped,unused-ignore]
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from inkless.delivery import cms_write
from inkless.delivery import envelope as env
from inkless.delivery.cms_stream import der
from inkless.errors import EnvelopeError
from tests.unit.test_delivery_envelope import PKI, Office, message


@pytest.fixture(scope="module")
def world() -> dict[str, Office]:
    a, b = PKI("a"), PKI("b")
    return {"sender": a.office("civil"), "recipient": b.office("police"), "fire": b.office("fire")}


def _recipients(envelope: bytes) -> list[int]:
    """The serial numbers the envelope's key transports name."""
    infos = asn1_cms.ContentInfo.load(envelope)["content"]["recipient_infos"]
    return [info.chosen["rid"].chosen["serial_number"].native for info in infos]


def test_a_sealed_message_opens_verifies_and_reads_back_with_its_documents(world: dict[str, Office]) -> None:
    sender, recipient = world["sender"], world["recipient"]
    meta, docs = message(sender, recipient)
    envelope = b"".join(env.seal(env.mime_message(meta, docs), sender.sign_key, sender.sign_cert, [sender.pki.ca],
                                 [recipient.enc_cert]))
    opened = env.read_envelope(io.BytesIO(envelope), recipient.enc_cert, recipient.enc_key)
    checked = env.verify_read(opened.signed, sender.pki.ca, datetime.now(UTC), expected_signer=sender.address)
    assert checked.signer_address == sender.address
    got_meta, got = opened.message()
    assert got_meta.message_id == meta.message_id
    assert [(d.name, d.content_type, d.size, d.sha256) for d in got] == [
        (d.name, d.content_type, len(d.data), d.sha256) for d in docs]


def test_content_that_changes_between_its_two_readings_is_refused(world: dict[str, Office]) -> None:
    """The content is hashed, then read again to be encrypted: a source that gives more or less the second
    time would be signed for one thing and carry another."""
    sender, recipient = world["sender"], world["recipient"]
    readings: list[bytes] = [b"the content as hashed", b"the content as encrypted, longer"]

    def content() -> Iterator[bytes]:
        yield readings.pop(0)

    with pytest.raises(EnvelopeError) as refused:
        b"".join(cms_write.sealed(content, sender.sign_key, sender.sign_cert, [], [recipient.enc_cert]))
    found = re.fullmatch(r"the content to encrypt was (\d+) bytes, not the (\d+) announced", str(refused.value))
    assert found, str(refused.value)
    assert int(found[1]) - int(found[2]) == len(b"the content as encrypted, longer") - len(b"the content as hashed")


def test_each_recipient_certificate_gets_one_key_transport_however_often_it_is_given(
        world: dict[str, Office]) -> None:
    """The sender's own office among the recipients, or an office named twice: one RecipientInfo each, and the
    ones after a repeat are still there."""
    recipient, fire = world["recipient"], world["fire"]
    envelope = env.encrypt(b"content", [recipient.enc_cert, recipient.enc_cert, fire.enc_cert, recipient.enc_cert])
    # A SET OF, which DER sorts by encoding: the order says nothing.
    assert sorted(_recipients(envelope)) == sorted([recipient.enc_cert.serial_number, fire.enc_cert.serial_number])
    # RFC 5652 §6.1: version 0 with no originator info, no unprotected attributes, only version 0 recipient infos.
    assert asn1_cms.ContentInfo.load(envelope)["content"]["version"].native == "v0"
    for office in (recipient, fire):
        assert env.decrypt(envelope, office.enc_cert, office.enc_key) == b"content"


def test_an_encryption_certificate_without_an_rsa_key_is_refused(world: dict[str, Office]) -> None:
    sender = world["sender"]
    with pytest.raises(EnvelopeError) as refused:
        env.encrypt(b"content", [sender.sign_cert])  # an EC key: no RSA key transport to it
    assert str(refused.value) == "an office encryption certificate must hold an RSA key"


@pytest.mark.parametrize("size", [111, 112, 127, 128, 255, 256, 65535, 65536])
def test_contents_whose_lengths_cross_a_der_length_form_open_and_verify(world: dict[str, Office], size: int) -> None:
    """127 bytes is the last short-form length, 128 the first long one (``0x81 0x80``, never the ``0x80`` of the
    indefinite form); 112 to 127 bytes of content encrypt to 128."""
    sender, recipient = world["sender"], world["recipient"]
    content = bytes(range(256)) * (size // 256) + bytes(size % 256)
    signed = env.sign(content, sender.sign_key, sender.sign_cert, [sender.pki.ca])
    assert der(0x04, content) in signed  # DER: the shortest length form, as a strict reader requires
    assert env.verify(signed, sender.pki.ca, datetime.now(UTC)).content == content
    assert env.decrypt(env.encrypt(content, [recipient.enc_cert]), recipient.enc_cert, recipient.enc_key) == content


def test_an_rsa_seal_key_signs_and_a_key_of_another_type_is_refused(world: dict[str, Office]) -> None:
    """An office may hold an RSA seal key (PKCS #1 v1.5 with SHA-256); an Ed25519 one has no mechanism here."""
    sender = world["sender"]
    rsa_key = rsa.generate_private_key(65537, 2048)
    rsa_cert = sender.pki.leaf("civil", rsa_key, True)
    signed = env.sign(b"content", rsa_key, rsa_cert, [sender.pki.ca])
    checked = env.verify(signed, sender.pki.ca, datetime.now(UTC), expected_signer=sender.address)
    assert (checked.content, checked.signer) == (b"content", rsa_cert)
    info = asn1_cms.ContentInfo.load(signed)["content"]
    # RFC 5652 §5.1: version 1 for signers named by issuer and serial over id-data.
    assert info["version"].native == "v1"
    assert info["signer_infos"][0]["signature_algorithm"]["algorithm"].native == "rsassa_pkcs1v15"
    with pytest.raises(EnvelopeError) as refused:
        env.sign(b"content", ed25519.Ed25519PrivateKey.generate(), rsa_cert, [])
    assert str(refused.value) == "an office seal key of type Ed25519PrivateKey cannot sign"
