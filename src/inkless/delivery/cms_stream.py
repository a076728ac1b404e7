"""CMS read front to back from a stream: an envelope is decrypted and its signed content hashed and handed on
in chunks, so that a message of any size passes through in bounded memory.

Only the small structures (recipient infos, algorithm identifiers, certificates, signer infos) are held and
parsed with asn1crypto; the large ones (the encrypted content, the signed content) are read by their BER/DER
headers alone. Definite and indefinite lengths, primitive and constructed OCTET STRINGs are read, as BER
allows and ``openssl cms -stream`` writes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from asn1crypto import cms as asn1_cms  # type: ignore[import-untyped,unused-ignore]
from cryptography import x509
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from inkless.errors import EnvelopeError

CHUNK = 1024 * 1024
# Digests computed over signed content as it passes (the signer's, declared up front, must be one of them).
STREAM_DIGESTS = ("sha256", "sha384", "sha512")
_SEQUENCE, _SET, _OCTETS, _OCTETS_CONSTRUCTED = 0x30, 0x31, 0x04, 0x24
_CONTEXT_0, _CONTEXT_0_PRIMITIVE = 0xA0, 0x80


@dataclass(frozen=True)
class Header:
    """One BER/DER identifier and length: ``length`` None for the indefinite form."""

    tag: int  # the identifier octet (class, constructed bit, low tag number)
    length: int | None
    raw: bytes
    end: int | None = None  # the position after the value (definite lengths)

    @property
    def end_of_contents(self) -> bool:
        return self.tag == 0 and self.length == 0


class DerReader:
    """Reads BER/DER headers and values from a stream, keeping count of the position."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.position = 0

    def read(self, size: int) -> bytes:
        data = self._stream.read(size)
        while len(data) < size:
            more = self._stream.read(size - len(data))
            if not more:
                raise ValueError("the data ends inside a CMS structure (truncated)")
            data += more
        self.position += size
        return data

    def at_end(self) -> bool:
        return self._stream.read(1) == b""

    def header(self) -> Header:
        first = self.read(1)
        if first[0] & 0x1F == 0x1F:
            raise ValueError("high tag numbers do not occur in CMS")
        size_byte = self.read(1)
        size = size_byte[0]
        if size < 0x80:
            return Header(first[0], size, first + size_byte, self.position + size)
        if size == 0x80:
            if not first[0] & 0x20:
                raise ValueError("a primitive value has an indefinite length")
            return Header(first[0], None, first + size_byte)
        count = size & 0x7F
        if count > 8:
            raise ValueError(f"a length of {count} bytes is not supported")
        octets = self.read(count)
        length = int.from_bytes(octets, "big")
        return Header(first[0], length, first + size_byte + octets, self.position + length)

    def expect(self, tag: int, what: str) -> Header:
        header = self.header()
        if header.tag != tag:
            raise ValueError(f"expected {what} (tag 0x{tag:02x}), found tag 0x{header.tag:02x}")
        return header

    def value(self, header: Header) -> bytes:
        """The whole encoding (header included) of a value whose header was just read; for small values."""
        if header.length is not None:
            return header.raw + self.read(header.length)
        parts = [header.raw]
        while True:
            inner = self.header()
            parts.append(self.value(inner))
            if inner.end_of_contents:
                return b"".join(parts)

    def tlv(self) -> bytes:
        return self.value(self.header())

    def children(self, header: Header) -> Iterator[Header]:
        """The headers of a constructed value's children; the caller reads each child's value before the next."""
        if header.length is None:
            while not (child := self.header()).end_of_contents:
                yield child
            return
        end = self.position + header.length
        while self.position < end:
            yield self.header()
        if self.position != end:
            raise ValueError("a CMS value runs past the end of the structure holding it")

    def octets(self, header: Header) -> Iterator[bytes]:
        """The bytes of an OCTET STRING (primitive, or constructed of segments), in chunks."""
        if not header.tag & 0x20:
            assert header.length is not None
            left = header.length
            while left:
                chunk = self.read(min(left, CHUNK))
                left -= len(chunk)
                yield chunk
            return
        for segment in self.children(header):
            if segment.tag not in (_OCTETS, _OCTETS_CONSTRUCTED):
                raise ValueError(f"a segment of a constructed OCTET STRING has tag 0x{segment.tag:02x}")
            yield from self.octets(segment)

    def finish(self, *containers: Header) -> None:
        """Read the end-of-contents octets of indefinite containers (innermost first) and check nothing follows."""
        for container in containers:
            if container.length is None:
                if not self.header().end_of_contents:
                    raise ValueError("a CMS structure holds more than its profile allows")
            elif self.position != container.end:
                raise ValueError("a CMS value runs past the end of the structure holding it")


def der(tag: int, content: bytes) -> bytes:
    """A DER TLV with a definite length."""
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(octets)]) + octets + content


def _child(children: Iterator[Header], what: str) -> Header:
    """The next child of a constructed value; a value that ends before it is refused naming what is missing.

    (A bare ``next`` would raise StopIteration, which inside the content generators becomes a RuntimeError.)
    """
    child = next(children, None)
    if child is None:
        raise ValueError(f"{what} is missing")
    return child


def _content_type(reader: DerReader, expected: str) -> tuple[Header, Header]:
    """The outer ContentInfo SEQUENCE and its [0] header, after checking its content type."""
    outer = reader.expect(_SEQUENCE, "a ContentInfo SEQUENCE")
    kind = asn1_cms.ContentType.load(reader.tlv()).native
    if kind != expected:
        raise EnvelopeError(f"expected CMS {'SignedData' if expected == 'signed_data' else 'EnvelopedData'}, "
                            f"got {kind}")
    return outer, reader.expect(_CONTEXT_0, "the [0] content of a ContentInfo")


# --- SignedData -----------------------------------------------------------------------------------------------


class SignedDataStream:
    """A ContentInfo(SignedData) read once: :meth:`content` yields the encapsulated content in chunks, hashing
    it with every accepted digest algorithm the SignedData declares; afterwards :attr:`light` is the same
    SignedData without its content (small, for the signature checks) and :attr:`digests` the content's digests.

    Raises ValueError (or EnvelopeError for another content type) on a malformed structure.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._reader = DerReader(stream)
        self.light = b""
        self.has_content = False
        self.digests: dict[str, bytes] = {}

    def content(self) -> Iterator[bytes]:
        reader = self._reader
        outer, explicit = _content_type(reader, "signed_data")
        sd = reader.expect(_SEQUENCE, "a SignedData SEQUENCE")
        fields = reader.children(sd)
        version = reader.value(_child(fields, "the SignedData's version"))
        algorithms_tlv = reader.value(_child(fields, "the SignedData's digest algorithms"))
        declared = {a["algorithm"].native for a in asn1_cms.DigestAlgorithms.load(algorithms_tlv)}
        hashers = {name: hashlib.new(name) for name in STREAM_DIGESTS if name in declared}
        eci = _child(fields, "the encapsulated content info")
        if eci.tag != _SEQUENCE:
            raise ValueError("the encapsulated content info is not a SEQUENCE")
        eci_fields = reader.children(eci)
        content_type = reader.value(_child(eci_fields, "the encapsulated content type"))
        for wrapper in eci_fields:
            if wrapper.tag != _CONTEXT_0 or self.has_content:
                raise ValueError("the encapsulated content info holds more than a type and a content")
            inner = reader.header()
            if inner.tag not in (_OCTETS, _OCTETS_CONSTRUCTED):
                raise ValueError("the encapsulated content is not an OCTET STRING")
            self.has_content = True
            for chunk in reader.octets(inner):
                for hasher in hashers.values():
                    hasher.update(chunk)
                yield chunk
            reader.finish(wrapper)
        rest = [reader.value(field) for field in fields]
        reader.finish(explicit, outer)
        if not reader.at_end():
            raise ValueError("there are bytes after the CMS structure")
        self.digests = {name: hasher.digest() for name, hasher in hashers.items()}
        light_sd = der(_SEQUENCE, version + algorithms_tlv + der(_SEQUENCE, content_type) + b"".join(rest))
        self.light = der(_SEQUENCE, asn1_cms.ContentType("signed_data").dump() + der(_CONTEXT_0, light_sd))


def read_signed(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The content chunks of a :class:`SignedDataStream`, a malformed structure refused as not valid CMS."""
    try:
        yield from chunks
    except EnvelopeError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
        text = str(exc).strip()
        first = text.splitlines()[0][:300] if text else type(exc).__name__
        raise EnvelopeError(f"not a valid CMS SignedData ({type(exc).__name__}: {first})") from None


# --- EnvelopedData --------------------------------------------------------------------------------------------


def _recipient_key(infos: Any, certificate: x509.Certificate, key: rsa.RSAPrivateKey, size: int) -> bytes:
    """The content-encryption key from the KeyTransRecipientInfo addressed to ``certificate``.

    A key that does not decrypt is replaced by a random one (as OpenSSL does): the failure then shows as an
    undecryptable content, never as a different answer an attacker could tell apart.
    """
    issuer = certificate.issuer.public_bytes()
    for info in infos:
        if info.name != "ktri":
            continue
        ktri = info.chosen
        rid = ktri["rid"]
        if rid.name != "issuer_and_serial_number":
            continue
        if rid.chosen["issuer"].dump() != issuer or rid.chosen["serial_number"].native != certificate.serial_number:
            continue
        algorithm = ktri["key_encryption_algorithm"]
        name = algorithm["algorithm"].native
        try:
            if name == "rsaes_pkcs1v15":
                cek = key.decrypt(ktri["encrypted_key"].native, asym_padding.PKCS1v15())
            elif name == "rsaes_oaep":
                # Parameters absent: RFC 8017's defaults, SHA-1 for the hash and for MGF1.
                params = algorithm["parameters"].native or {}
                sha256 = (params.get("hash_algorithm") or {}).get("algorithm") == "sha256"
                digest = hashes.SHA256() if sha256 else hashes.SHA1()  # noqa: S303 (OAEP's default hash, not a signature)
                oaep = asym_padding.OAEP(asym_padding.MGF1(digest), digest, None)
                cek = key.decrypt(ktri["encrypted_key"].native, oaep)
            else:
                raise EnvelopeError(f"key transport {name} is not supported")
        except ValueError:
            cek = b""
        return cek if len(cek) == size else os.urandom(size)
    raise EnvelopeError("no recipient info names this office's certificate (not addressed to it)")


def decrypted(stream: BinaryIO, certificate: x509.Certificate, key: Any) -> Iterator[bytes]:
    """The plaintext of a CMS EnvelopedData (AES-CBC, RSA key transport) read from ``stream``, in chunks.

    Any failure raises EnvelopeError "the envelope cannot be opened …"; a wrong key or damaged ciphertext is
    found at the end (the padding), after the chunks before it were handed on.
    """
    try:
        yield from _decrypted(DerReader(stream), certificate, key)
    except EnvelopeError as exc:
        if str(exc).startswith("the envelope cannot be opened"):
            raise
        raise EnvelopeError(f"the envelope cannot be opened with this office's key: {exc}") from None
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
        raise EnvelopeError(
            "the envelope cannot be opened with this office's key: not addressed to it, damaged or not CMS "
            f"({type(exc).__name__}: {exc})"
        ) from None


def _decrypted(reader: DerReader, certificate: x509.Certificate, key: Any) -> Iterator[bytes]:
    if not isinstance(key, rsa.RSAPrivateKey):
        raise EnvelopeError("an office encryption key is an RSA key")
    outer, explicit = _content_type(reader, "enveloped_data")
    ed = reader.expect(_SEQUENCE, "an EnvelopedData SEQUENCE")
    fields = reader.children(ed)
    reader.value(_child(fields, "the EnvelopedData's version"))
    field = _child(fields, "the recipient infos")
    if field.tag == _CONTEXT_0:  # originatorInfo: certificates we do not need
        reader.value(field)
        field = _child(fields, "the recipient infos")
    if field.tag != _SET:
        raise ValueError("the recipient infos are not a SET")
    infos = asn1_cms.RecipientInfos.load(reader.value(field))
    eci = _child(fields, "the encrypted content info")
    if eci.tag != _SEQUENCE:
        raise ValueError("the encrypted content info is not a SEQUENCE")
    eci_fields = reader.children(eci)
    reader.value(_child(eci_fields, "the encrypted content type"))  # id-data; what it is, the signed data says
    algorithm = asn1_cms.EncryptionAlgorithm.load(reader.value(_child(eci_fields, "the content encryption algorithm")))
    if algorithm.encryption_cipher != "aes" or algorithm.encryption_mode != "cbc":
        raise EnvelopeError(f"content encryption {algorithm['algorithm'].native} is not supported (AES-CBC only)")
    cek = _recipient_key(infos, certificate, key, algorithm.key_length)
    decryptor = Cipher(algorithms.AES(cek), modes.CBC(algorithm.encryption_iv)).decryptor()
    unpadder = padding.PKCS7(128).unpadder()
    found = False
    for content in eci_fields:
        if content.tag not in (_CONTEXT_0_PRIMITIVE, _CONTEXT_0) or found:
            raise ValueError("the encrypted content info holds more than its type, algorithm and content")
        found = True
        for chunk in reader.octets(content):
            yield unpadder.update(decryptor.update(chunk))
    if not found:
        raise ValueError("the envelope carries no encrypted content")
    for unprotected in fields:  # unprotected attributes: nothing here relies on them
        reader.value(unprotected)
    reader.finish(explicit, outer)
    if not reader.at_end():
        raise ValueError("there are bytes after the CMS structure")
    try:
        yield unpadder.update(decryptor.finalize()) + unpadder.finalize()
    except ValueError:
        raise EnvelopeError(
            "the envelope cannot be opened with this office's key: not addressed to it, damaged or not CMS "
            "(the content does not decrypt)"
        ) from None
