"""EnvelopedData built by hand, one part changed at a time: the variants BER and other writers allow are
read (originator info, unprotected attributes, indefinite lengths, segments, AES-128, RSA-OAEP), and
every structure outside the profile is refused with its own reason."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from typing import Any

import pytest
from asn1crypto import cms as asn1_cms
from asn1crypto import core as asn1_core
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from inkless.delivery.cms_stream import decrypted, der
from inkless.errors import EnvelopeError
from tests.unit.test_delivery_envelope import PKI, Office

SIGNED = b"0\x03\x02\x01\x00"  # what is inside does not matter here: decryption alone is tested
NOT_OPENED = "the envelope cannot be opened with this office's key: "


@pytest.fixture(scope="module")
def office() -> Office:
    return PKI("b").office("police")


def _ktri(office: Office, cek: bytes, transport: str) -> bytes:
    cert = asn1_x509.Certificate.load(office.enc_cert.public_bytes(serialization.Encoding.DER))
    public = office.enc_cert.public_key()
    algorithm: dict[str, Any] = {"algorithm": transport}
    if transport == "rsaes_oaep":
        algorithm["parameters"] = {"hash_algorithm": {"algorithm": "sha256"},
                                   "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": "sha256"}}}
        sha256 = hashes.SHA256()
        encrypted = public.encrypt(cek, asym_padding.OAEP(asym_padding.MGF1(sha256), sha256, None))  # type: ignore[union-attr]
    elif transport == "rsaes_oaep_sha1":
        algorithm = {"algorithm": "rsaes_oaep"}
        sha1 = hashes.SHA1()  # OAEP's default hash, as other writers use it
        encrypted = public.encrypt(cek, asym_padding.OAEP(asym_padding.MGF1(sha1), sha1, None))  # type: ignore[union-attr]
    else:
        encrypted = public.encrypt(cek, asym_padding.PKCS1v15())  # type: ignore[union-attr]
    return bytes(asn1_cms.RecipientInfo({"ktri": {
        "version": "v0",
        "rid": {"issuer_and_serial_number": {"issuer": cert.issuer, "serial_number": cert.serial_number}},
        "key_encryption_algorithm": algorithm, "encrypted_key": encrypted}}).dump())


def enveloped(office: Office, *, cipher: str = "aes256_cbc", transport: str = "rsaes_pkcs1v15",
              change: Callable[[dict[str, bytes]], None] | None = None, indefinite: bool = False,
              padded: bool = True) -> bytes:
    size = {"aes128_cbc": 16, "aes192_cbc": 24, "aes256_cbc": 32}.get(cipher, 24)
    cek, iv = os.urandom(size), os.urandom(16)
    padder = padding.PKCS7(128).padder()
    plain = padder.update(SIGNED) + padder.finalize() if padded else SIGNED + b"\x00" * 11
    if cipher.startswith("aes"):
        encryptor = Cipher(algorithms.AES(cek), modes.CBC(iv)).encryptor()
        ciphertext = encryptor.update(plain) + encryptor.finalize()
    else:
        ciphertext = os.urandom(len(plain))
        iv = iv[:8]
    parts = {
        "version": asn1_core.Integer(0).dump(),
        "originator": b"",
        "recipients": der(0x31, _ktri(office, cek, transport)),
        "type": asn1_cms.ContentType("data").dump(),
        "algorithm": asn1_cms.EncryptionAlgorithm({"algorithm": cipher, "parameters": iv}).dump(),
        "content": der(0x80, ciphertext),
        "more": b"",
        "unprotected": b"",
    }
    if change is not None:
        change(parts)
    if indefinite:
        segments = b"".join(der(0x04, ciphertext[i:i + 16]) for i in range(0, len(ciphertext), 16))
        parts["content"] = b"\xa0\x80" + segments + b"\x00\x00"
        eci = b"\x30\x80" + parts["type"] + parts["algorithm"] + parts["content"] + parts["more"] + b"\x00\x00"
        ed = (b"\x30\x80" + parts["version"] + parts["originator"] + parts["recipients"] + eci
              + parts["unprotected"] + b"\x00\x00")
        return b"\x30\x80" + asn1_cms.ContentType("enveloped_data").dump() + b"\xa0\x80" + ed + b"\x00\x00" * 2
    eci = der(0x30, parts["type"] + parts["algorithm"] + parts["content"] + parts["more"])
    ed = der(0x30, parts["version"] + parts["originator"] + parts["recipients"] + eci + parts["unprotected"])
    return der(0x30, asn1_cms.ContentType("enveloped_data").dump() + der(0xA0, ed))


def opened(envelope: bytes, office: Office, key: Any = None) -> bytes:
    return b"".join(decrypted(io.BytesIO(envelope), office.enc_cert, key or office.enc_key))


def _set(name: str, value: bytes) -> Callable[[dict[str, bytes]], None]:
    return lambda parts: parts.__setitem__(name, value)


@pytest.mark.parametrize(("variant", "arguments"), [
    ("the plain form", {}),
    ("indefinite lengths and a content in segments", {"indefinite": True}),
    ("AES-128", {"cipher": "aes128_cbc"}),
    ("AES-192", {"cipher": "aes192_cbc"}),
    ("RSA-OAEP with SHA-256", {"transport": "rsaes_oaep"}),
    ("RSA-OAEP with its default SHA-1", {"transport": "rsaes_oaep_sha1"}),
    ("originator info", {"change": _set("originator", der(0xA0, b""))}),
    ("unprotected attributes", {"change": _set("unprotected", der(0xA1, b""))}),
])
def test_what_other_writers_may_write_opens(office: Office, variant: str, arguments: dict[str, Any]) -> None:
    assert opened(enveloped(office, **arguments), office) == SIGNED, variant


@pytest.mark.parametrize(("arguments", "reason"), [
    ({"cipher": "tripledes_3key"}, "content encryption tripledes_3key is not supported (AES-CBC only)"),
    ({"change": _set("recipients", der(0x30, b""))}, "not addressed to it, damaged or not CMS (ValueError: the "
                                                     "recipient infos are not a SET)"),
    ({"change": lambda p: p.__setitem__("content", b"")}, "not addressed to it, damaged or not CMS (ValueError: "
                                                          "the envelope carries no encrypted content)"),
    ({"change": lambda p: p.__setitem__("more", der(0x80, b"x" * 16))},
     "not addressed to it, damaged or not CMS (ValueError: the encrypted content info holds more than its type, "
     "algorithm and content)"),
    ({"change": lambda p: p.__setitem__("more", der(0x04, b"x"))},
     "not addressed to it, damaged or not CMS (ValueError: the encrypted content info holds more than its type, "
     "algorithm and content)"),
])
def test_an_envelope_outside_the_profile_is_refused_with_its_reason(office: Office, arguments: dict[str, Any],
                                                                    reason: str) -> None:
    with pytest.raises(EnvelopeError) as refused:
        opened(enveloped(office, **arguments), office)
    assert str(refused.value) == NOT_OPENED + reason


def test_an_encrypted_content_info_that_is_not_a_sequence_is_refused(office: Office) -> None:
    good = enveloped(office)
    recipients = der(0x31, _ktri(office, os.urandom(32), "rsaes_pkcs1v15"))
    broken = der(0x30, asn1_cms.ContentType("enveloped_data").dump() + der(0xA0, der(
        0x30, asn1_core.Integer(0).dump() + recipients + der(0x31, b""))))
    assert good != broken
    with pytest.raises(EnvelopeError, match=r"\(ValueError: the encrypted content info is not a SEQUENCE\)$"):
        opened(broken, office)


def test_a_key_transport_other_than_rsa_or_an_office_key_other_than_rsa_is_refused(office: Office) -> None:
    with pytest.raises(EnvelopeError, match=r"^the envelope cannot be opened with this office's key: key transport "
                                            r"1\.2\.840\.10045\.2\.1 is not supported$"):
        opened(enveloped(office, transport="1.2.840.10045.2.1"), office)  # an EC key's OID, no key transport
    with pytest.raises(EnvelopeError, match=r"^the envelope cannot be opened with this office's key: an office "
                                            r"encryption key is an RSA key$"):
        opened(enveloped(office), office, ec.generate_private_key(ec.SECP256R1()))


def test_an_unterminated_indefinite_envelope_or_bytes_after_it_do_not_open(office: Office) -> None:
    streamed = enveloped(office, indefinite=True)
    for damaged, reason in [(streamed[:-2], "(truncated)"), (streamed[:-4] + b"\x04\x00" + streamed[-2:],
                                                             "holds more than its profile allows"),
                            (streamed + b"\x00", "there are bytes after the CMS structure")]:
        with pytest.raises(EnvelopeError) as refused:
            opened(damaged, office)
        assert str(refused.value).startswith(NOT_OPENED) and reason in str(refused.value), str(refused.value)


def test_a_content_whose_padding_is_wrong_does_not_decrypt(office: Office) -> None:
    with pytest.raises(EnvelopeError) as refused:
        opened(enveloped(office, padded=False), office)
    assert str(refused.value) == NOT_OPENED + "not addressed to it, damaged or not CMS (the content does not decrypt)"
    with pytest.raises(EnvelopeError) as refused:
        opened(enveloped(office) + b"\x00", office)
    assert str(refused.value) == NOT_OPENED + ("not addressed to it, damaged or not CMS (ValueError: there are bytes "
                                               "after the CMS structure)")


def test_an_enveloped_data_that_is_not_a_sequence_is_refused(office: Office) -> None:
    broken = der(0x30, asn1_cms.ContentType("enveloped_data").dump() + der(0xA0, der(0x31, b"")))
    with pytest.raises(EnvelopeError) as refused:
        opened(broken, office)
    assert str(refused.value) == NOT_OPENED + ("not addressed to it, damaged or not CMS (ValueError: expected an "
                                               "EnvelopedData SEQUENCE (tag 0x30), found tag 0x31)")


def test_other_recipient_infos_before_ours_are_passed_over(office: Office) -> None:
    """A key-encryption-key recipient, and a key transport named by subject key identifier, come first."""
    kekri = asn1_cms.RecipientInfo({"kekri": {"version": "v4", "kekid": {"key_identifier": b"k"},
                                              "key_encryption_algorithm": {"algorithm": "aes256_wrap"},
                                              "encrypted_key": b"\x00" * 40}}).dump()
    by_key_id = asn1_cms.RecipientInfo({"ktri": {"version": "v2", "rid": {"subject_key_identifier": b"\x01" * 20},
                                                 "key_encryption_algorithm": {"algorithm": "rsaes_pkcs1v15"},
                                                 "encrypted_key": b"\x00" * 256}}).dump()

    def others_first(parts: dict[str, bytes]) -> None:
        ours = parts["recipients"][2 if parts["recipients"][1] < 0x80 else 2 + (parts["recipients"][1] & 0x7F):]
        parts["recipients"] = der(0x31, kekri + by_key_id + ours)

    assert opened(enveloped(office, change=others_first), office) == SIGNED


def test_a_key_transport_that_does_not_decrypt_gives_a_random_key(office: Office,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """As OpenSSL does: no answer tells a padding failure of the key transport from a wrong content."""
    from inkless.delivery import cms_stream

    short = os.urandom(16)
    drawn: list[int] = []

    def urandom(size: int) -> bytes:
        drawn.append(size)
        return b"\x07" * size

    monkeypatch.setattr(cms_stream.os, "urandom", urandom)
    for cek in (short, b"garbage"):  # a key of the wrong size; a transport that does not decrypt
        infos = asn1_cms.RecipientInfos.load(der(0x31, _ktri(office, cek, "rsaes_pkcs1v15")))
        if cek == b"garbage":
            info = infos[0].chosen
            info["encrypted_key"] = b"\x01" * 256
        assert cms_stream._recipient_key(infos, office.enc_cert, office.enc_key, 32) == b"\x07" * 32
    assert drawn == [32, 32]


_ENVELOPED_OID = asn1_cms.ContentType("enveloped_data").dump()
_ID_DATA = asn1_cms.ContentType("data").dump()


@pytest.mark.parametrize(("fields", "missing"), [
    (b"", "the EnvelopedData's version"),
    (b"\x02\x01\x00", "the recipient infos"),
    (b"\x02\x01\x00" + der(0xA0, b""), "the recipient infos"),  # originator info, then nothing
    (b"\x02\x01\x00" + der(0x31, b""), "the encrypted content info"),
    (b"\x02\x01\x00" + der(0x31, b"") + der(0x30, b""), "the encrypted content type"),
    (b"\x02\x01\x00" + der(0x31, b"") + der(0x30, _ID_DATA), "the content encryption algorithm"),
])
def test_an_enveloped_data_that_ends_early_is_refused_naming_what_is_missing(office: Office, fields: bytes,
                                                                              missing: str) -> None:
    """Found by fuzzing: a bare ``next`` on the fields raised StopIteration, a RuntimeError out of the reader."""
    envelope = der(0x30, _ENVELOPED_OID + der(0xA0, der(0x30, fields)))
    with pytest.raises(EnvelopeError) as refused:
        opened(envelope, office)
    assert str(refused.value) == NOT_OPENED + (
        f"not addressed to it, damaged or not CMS (ValueError: {missing} is missing)")
