"""CMS written as a stream: SignedData (the office seal key) inside EnvelopedData (AES-256-CBC, RSA key
transport to each recipient), in DER with every length computed ahead, in bounded memory.

The content is read twice, so it is given as a function that yields it afresh: once to hash it (the
signature covers its digest, which comes before the content is written), once to encrypt it. The small
structures (the signer info, the recipient infos, certificates) are asn1crypto's; the content passes
through ``cryptography``'s AES-CBC chunk by chunk. ``openssl cms -decrypt`` and ``-verify`` open the result.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from asn1crypto import algos as asn1_algos  # type: ignore[import-untyped,unused-ignore]
from asn1crypto import cms as asn1_cms  # type: ignore[import-untyped,unused-ignore]
from asn1crypto import core as asn1_core  # type: ignore[import-untyped,unused-ignore]
from asn1crypto import x509 as asn1_x509  # type: ignore[import-untyped,unused-ignore]
from cryptography import x509
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from inkless.delivery.cms_stream import der
from inkless.errors import EnvelopeError

Content = Callable[[], Iterator[bytes]]
_BLOCK = 16


def _asn1_cert(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def _length_header(tag: int, size: int) -> bytes:
    """A DER identifier and definite length for a value of ``size`` bytes (the value follows)."""
    if size < 0x80:
        return bytes([tag, size])
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(octets)]) + octets


@dataclass(frozen=True)
class SignedFrame:
    """A SignedData around content of known size and digest: ``head`` + content + ``tail`` is its DER."""

    head: bytes
    tail: bytes

    def size(self, content_size: int) -> int:
        return len(self.head) + content_size + len(self.tail)


def _signer_info(digest: bytes, key: Any, certificate: x509.Certificate, signing_time: datetime) -> bytes:
    cert = _asn1_cert(certificate)
    attributes = [
        asn1_cms.CMSAttribute({"type": "content_type", "values": ["data"]}),
        asn1_cms.CMSAttribute({"type": "signing_time", "values": [asn1_cms.Time({"utc_time": signing_time})]}),
        asn1_cms.CMSAttribute({"type": "message_digest", "values": [digest]}),
    ]
    # DER sorts a SET OF by encoding; verifiers (OpenSSL) re-encode the attributes before checking.
    signed_attrs = asn1_cms.CMSAttributes(sorted(attributes, key=lambda a: a.dump()))
    to_sign = signed_attrs.dump()
    if isinstance(key, ec.EllipticCurvePrivateKey):
        mechanism = "sha256_ecdsa"
        signature = key.sign(to_sign, ec.ECDSA(hashes.SHA256()))
    elif isinstance(key, rsa.RSAPrivateKey):
        mechanism = "rsassa_pkcs1v15"
        signature = key.sign(to_sign, asym_padding.PKCS1v15(), hashes.SHA256())
    else:
        raise EnvelopeError(f"an office seal key of type {type(key).__name__} cannot sign")
    info = asn1_cms.SignerInfo({
        "version": "v1",
        "sid": asn1_cms.SignerIdentifier({"issuer_and_serial_number": asn1_cms.IssuerAndSerialNumber(
            {"issuer": cert.issuer, "serial_number": cert.serial_number})}),
        "digest_algorithm": asn1_algos.DigestAlgorithm({"algorithm": "sha256"}),
        "signed_attrs": signed_attrs,
        "signature_algorithm": asn1_algos.SignedDigestAlgorithm({"algorithm": mechanism}),
        "signature": signature,
    })
    return bytes(info.dump())


def signed_frame(content_size: int, digest: bytes, key: Any, certificate: x509.Certificate,
                 chain: Sequence[x509.Certificate], signing_time: datetime | None = None) -> SignedFrame:
    """The DER around attached content of ``content_size`` bytes whose SHA-256 is ``digest``: signed by ``key``
    (signing-time attribute), the signer's certificate and ``chain`` included."""
    when = (signing_time or datetime.now(UTC)).replace(microsecond=0)
    certificates = b"".join(_asn1_cert(c).dump() for c in [certificate, *chain])
    algorithms_set = der(0x31, asn1_algos.DigestAlgorithm({"algorithm": "sha256"}).dump())
    version = asn1_core.Integer(1).dump()
    data_type = asn1_cms.ContentType("data").dump()
    octets = _length_header(0x04, content_size)
    explicit = _length_header(0xA0, len(octets) + content_size)
    eci = _length_header(0x30, len(data_type) + len(explicit) + len(octets) + content_size)
    eci += data_type + explicit + octets
    after = der(0xA0, certificates) + der(0x31, _signer_info(digest, key, certificate, when))
    sd_size = len(version) + len(algorithms_set) + len(eci) + content_size + len(after)
    sd = _length_header(0x30, sd_size)
    signed_type = asn1_cms.ContentType("signed_data").dump()
    wrapper = _length_header(0xA0, len(sd) + sd_size)
    outer = _length_header(0x30, len(signed_type) + len(wrapper) + len(sd) + sd_size)
    head = outer + signed_type + wrapper + sd + version + algorithms_set + eci
    return SignedFrame(head, after)


def _recipient_infos(cek: bytes, recipients: Sequence[x509.Certificate]) -> bytes:
    infos = []
    seen: set[bytes] = set()
    for cert in recipients:
        raw = cert.public_bytes(serialization.Encoding.DER)
        if raw in seen:
            continue
        seen.add(raw)
        public = cert.public_key()
        if not isinstance(public, rsa.RSAPublicKey):
            raise EnvelopeError("an office encryption certificate must hold an RSA key")
        asn1 = asn1_x509.Certificate.load(raw)
        infos.append(asn1_cms.RecipientInfo({"ktri": asn1_cms.KeyTransRecipientInfo({
            "version": "v0",
            "rid": asn1_cms.RecipientIdentifier({"issuer_and_serial_number": asn1_cms.IssuerAndSerialNumber(
                {"issuer": asn1.issuer, "serial_number": asn1.serial_number})}),
            "key_encryption_algorithm": asn1_cms.KeyEncryptionAlgorithm({"algorithm": "rsaes_pkcs1v15"}),
            "encrypted_key": public.encrypt(cek, asym_padding.PKCS1v15()),
        })}))
    return bytes(asn1_cms.RecipientInfos(infos).dump())


def enveloped(content: Iterator[bytes], content_size: int, recipients: Sequence[x509.Certificate]) -> Iterator[bytes]:
    """CMS EnvelopedData (DER, AES-256-CBC) of ``content_size`` bytes of ``content`` to every recipient, in chunks.

    One content-encryption key for all: each recipient (or office of a peer) adds only its key transport.
    """
    if not recipients:
        raise EnvelopeError("an envelope needs at least one recipient certificate")
    cek, iv = os.urandom(32), os.urandom(_BLOCK)
    infos = _recipient_infos(cek, recipients)
    encrypted_size = (content_size // _BLOCK + 1) * _BLOCK  # PKCS#7 padding adds 1 to 16 bytes
    algorithm = asn1_cms.EncryptionAlgorithm({"algorithm": "aes256_cbc", "parameters": iv}).dump()
    data_type = asn1_cms.ContentType("data").dump()
    encrypted = _length_header(0x80, encrypted_size)
    eci_size = len(data_type) + len(algorithm) + len(encrypted) + encrypted_size
    eci = _length_header(0x30, eci_size) + data_type + algorithm + encrypted
    version = asn1_core.Integer(0).dump()
    ed_size = len(version) + len(infos) + len(eci) + encrypted_size
    ed = _length_header(0x30, ed_size) + version + infos + eci
    wrapper = _length_header(0xA0, len(ed) + encrypted_size)
    kind = asn1_cms.ContentType("enveloped_data").dump()
    yield _length_header(0x30, len(kind) + len(wrapper) + len(ed) + encrypted_size) + kind + wrapper + ed
    encryptor = Cipher(algorithms.AES(cek), modes.CBC(iv)).encryptor()
    padder = padding.PKCS7(128).padder()
    written = 0
    for chunk in content:
        written += len(chunk)
        yield encryptor.update(padder.update(chunk))
    if written != content_size:
        raise EnvelopeError(f"the content to encrypt was {written} bytes, not the {content_size} announced")
    yield encryptor.update(padder.finalize()) + encryptor.finalize()


def sealed(content: Content, key: Any, certificate: x509.Certificate, chain: Sequence[x509.Certificate],
           recipients: Sequence[x509.Certificate]) -> Iterator[bytes]:
    """The envelope of ``content`` in chunks: signed by the office (SignedData), encrypted to ``recipients``.

    ``content()`` is read twice: to hash it, then to encrypt it with the SignedData around it.
    """
    sha = hashlib.sha256()
    size = 0
    for chunk in content():
        sha.update(chunk)
        size += len(chunk)
    frame = signed_frame(size, sha.digest(), key, certificate, chain)

    def signed() -> Iterator[bytes]:
        yield frame.head
        yield from content()
        yield frame.tail

    return enveloped(signed(), frame.size(size), recipients)
