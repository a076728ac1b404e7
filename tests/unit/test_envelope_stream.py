"""Envelopes written and read as streams: damaged, truncated or padded ones get the same clear refusals as
whole ones; the signature is judged before the MIME inside; many recipients share one encrypted content."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest

from inkless.delivery import envelope as env
from inkless.errors import EnvelopeError
from tests.unit.test_delivery_envelope import PKI, Office, message

NOT_OPENED = "the envelope cannot be opened with this office's key"


@pytest.fixture(scope="module")
def world() -> dict[str, Office]:
    a, b = PKI("a"), PKI("b")
    return {"sender": a.office("civil"), "recipient": b.office("police"), "fire": b.office("fire"),
            "other": PKI("c").office("tax")}


def sealed(sender: Office, *recipients: Office, mime: bytes | None = None) -> bytes:
    meta, docs = message(sender, recipients[0])
    content = mime if mime is not None else env.build_mime(meta, docs)
    signed = env.sign(content, sender.sign_key, sender.sign_cert, [sender.pki.ca])
    return env.encrypt(signed, [r.enc_cert for r in recipients])


def read(envelope: bytes, office: Office) -> env.ReadEnvelope:
    return env.read_envelope(io.BytesIO(envelope), office.enc_cert, office.enc_key)


def test_a_streamed_envelope_is_read_verified_and_its_documents_hashed(world: dict[str, Office]) -> None:
    sender, recipient = world["sender"], world["recipient"]
    kept: dict[int, io.BytesIO] = {}

    def sink(number: int) -> io.BytesIO:
        kept[number] = io.BytesIO()
        return kept[number]

    opened = env.read_envelope(io.BytesIO(sealed(sender, recipient)), recipient.enc_cert, recipient.enc_key, sink)
    checked = env.verify_read(opened.signed, sender.pki.ca, datetime.now(UTC), expected_signer=sender.address)
    assert checked.signer_address == sender.address
    meta, docs = opened.message()
    assert meta.subject == "至急：照会"
    _, sent = message(sender, recipient)
    assert [(d.name, d.size, d.sha256) for d in docs] == [(d.name, len(d.data), d.sha256) for d in sent]
    assert [kept[i].getvalue() for i in sorted(kept)] == [d.data for d in sent]


@pytest.mark.parametrize("cut", [1, 40, 600, 2000, -100, -17, -1])
def test_a_truncated_envelope_does_not_open(world: dict[str, Office], cut: int) -> None:
    """Cut in its header, its recipient infos, its ciphertext, or short of its last block: never half-read."""
    envelope = sealed(world["sender"], world["recipient"])
    with pytest.raises(EnvelopeError) as refused:
        read(envelope[:cut], world["recipient"])
    assert str(refused.value).startswith(NOT_OPENED), str(refused.value)


def test_bytes_after_an_envelope_or_a_foreign_recipient_do_not_open(world: dict[str, Office]) -> None:
    envelope = sealed(world["sender"], world["recipient"])
    with pytest.raises(EnvelopeError, match=r"there are bytes after the CMS structure"):
        read(envelope + b"\x00", world["recipient"])
    with pytest.raises(EnvelopeError, match=r"^the envelope cannot be opened with this office's key: no recipient "
                                            r"info names this office's certificate \(not addressed to it\)$"):
        read(envelope, world["other"])
    with pytest.raises(EnvelopeError, match=r"^the envelope cannot be opened with this office's key: expected CMS "
                                            r"EnvelopedData, got signed_data$"):
        read(env.sign(b"x", world["sender"].sign_key, world["sender"].sign_cert, []), world["recipient"])


def test_a_flipped_ciphertext_byte_is_an_altered_content(world: dict[str, Office]) -> None:
    """AES-CBC garbles the block: the signature check names it, before anything the MIME would say."""
    sender, recipient = world["sender"], world["recipient"]
    envelope = bytearray(sealed(sender, recipient))
    envelope[len(envelope) // 2] ^= 0x01
    opened = read(bytes(envelope), recipient)
    with pytest.raises(EnvelopeError, match=r"^the content does not match the signed message digest: it was altered$"):
        env.verify_read(opened.signed, sender.pki.ca, datetime.now(UTC))


def test_a_signed_data_cut_short_inside_a_whole_envelope_is_not_valid_cms(world: dict[str, Office]) -> None:
    sender, recipient = world["sender"], world["recipient"]
    meta, docs = message(sender, recipient)
    signed = env.sign(env.build_mime(meta, docs), sender.sign_key, sender.sign_cert, [sender.pki.ca])
    envelope = env.encrypt(signed[:-30], [recipient.enc_cert])
    with pytest.raises(EnvelopeError, match=r"^not a valid CMS SignedData \(ValueError: the data ends inside a CMS "
                                            r"structure \(truncated\)\)$"):
        read(envelope, recipient)


def test_broken_mime_under_a_good_signature_is_refused_after_the_signature_holds(world: dict[str, Office]) -> None:
    sender, recipient = world["sender"], world["recipient"]
    opened = read(sealed(sender, recipient, mime=b"Content-Type: text/plain\r\n\r\nhello"), recipient)
    assert env.verify_read(opened.signed, sender.pki.ca, datetime.now(UTC)).signer_address == sender.address
    with pytest.raises(EnvelopeError, match=r"^the message body is not multipart/mixed$"):
        opened.message()


def test_many_recipients_share_one_encrypted_content(world: dict[str, Office]) -> None:
    """Broadcast: each further office adds its key transport (a few hundred bytes), not another copy."""
    sender, recipient, fire = world["sender"], world["recipient"], world["fire"]
    one = sealed(sender, recipient)
    three = sealed(sender, recipient, fire, sender)
    assert len(three) - len(one) < 2 * 600
    for office in (recipient, fire, sender):
        assert env.verify_read(read(three, office).signed, sender.pki.ca, datetime.now(UTC)).signer == sender.sign_cert


def test_a_signer_digest_the_signed_data_does_not_declare_is_refused(world: dict[str, Office]) -> None:
    """The content is hashed as it streams with the algorithms declared before it: a signer's other one is refused."""
    from asn1crypto import cms as asn1_cms

    from tests.helpers import cms

    sender = world["sender"]
    content = b"MIME-Version: 1.0\r\n\r\nsigned content"
    info = asn1_cms.ContentInfo.load(cms.simple(content, sender.sign_key, sender.sign_cert, digest="sha512"))
    sd = info["content"]
    sd["digest_algorithms"] = [{"algorithm": "sha384"}]
    relabelled = asn1_cms.ContentInfo({"content_type": "signed_data", "content": sd}).dump(force=True)
    with pytest.raises(EnvelopeError, match=r"^the signer's digest algorithm sha512 is not among those the "
                                            r"SignedData declares$"):
        env.verify(relabelled, sender.pki.ca, datetime.now(UTC))


def test_a_read_envelope_is_refused_for_another_claimed_sender_or_a_revoked_signer(world: dict[str, Office]) -> None:
    sender, recipient = world["sender"], world["recipient"]
    with pytest.raises(EnvelopeError) as refused:
        env.verify_read(read(sealed(sender, recipient), recipient).signed, sender.pki.ca, datetime.now(UTC),
                        expected_signer="tax@a")
    assert str(refused.value) == f"signed by {sender.address}, but the sender claims to be tax@a"
    with pytest.raises(EnvelopeError) as refused:
        env.verify_read(read(sealed(sender, recipient), recipient).signed, sender.pki.ca, datetime.now(UTC),
                        expected_signer=sender.address, is_revoked=lambda cert: cert == sender.sign_cert)
    assert str(refused.value) == f"the signer certificate (serial {sender.sign_cert.serial_number:x}) is revoked"


def test_garbage_from_a_damaged_envelope_is_refused_as_not_opening_not_as_bad_cms(world: dict[str, Office]) -> None:
    """Damage that makes the decrypted SignedData garbage and its padding wrong: the reason given is that the
    envelope does not open (what a wrong key looks like too), not the garbage it decrypted to."""
    sender, recipient = world["sender"], world["recipient"]
    envelope = bytearray(sealed(sender, recipient))
    plain = env.decrypt(bytes(envelope), recipient.enc_cert, recipient.enc_key)
    padding = 16 - len(plain) % 16
    envelope[-(len(plain) + padding)] ^= 0xFF  # garbles the first plaintext block: the SignedData's header
    envelope[-17] ^= padding  # the last plaintext byte becomes 0, never a valid padding
    with pytest.raises(EnvelopeError) as refused:
        read(bytes(envelope), recipient)
    assert str(refused.value) == (f"{NOT_OPENED}: not addressed to it, damaged or not CMS (the content does not "
                                  "decrypt)")
