"""The message envelope: MIME multipart → CMS SignedData (office seal key) → CMS EnvelopedData (AES-256).

Everything here is pure: chunks or bytes and certificates in, chunks or bytes or :class:`EnvelopeError`
out. Envelopes are written (:func:`seal`) and read (:func:`read_envelope`) as streams, in bounded memory
whatever their size; the whole-bytes functions serve small things (receipts, tests). The layers are the
ones ``openssl cms`` understands, so anyone can open an exported envelope with standard tools::

    openssl cms -decrypt -inform DER -in envelope.p7m -recip office.pem -inkey office.key \\
      | openssl cms -verify -inform DER -CAfile sender-ca.pem
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO

from cryptography import x509

from inkless.delivery.cms_stream import SignedDataStream, decrypted, read_signed
from inkless.delivery.cms_write import enveloped, sealed, signed_frame
from inkless.delivery.mime import CHUNK as CHUNK
from inkless.delivery.mime import METADATA_TYPE as METADATA_TYPE
from inkless.delivery.mime import METADATA_VERSION as METADATA_VERSION
from inkless.delivery.mime import PRIORITIES as PRIORITIES
from inkless.delivery.mime import Document as Document
from inkless.delivery.mime import DocumentSink as DocumentSink
from inkless.delivery.mime import MessageMetadata as MessageMetadata
from inkless.delivery.mime import MimeMessage as MimeMessage
from inkless.delivery.mime import ReceivedDocument as ReceivedDocument
from inkless.delivery.mime import build_mime as build_mime
from inkless.delivery.mime import mime_message as mime_message
from inkless.delivery.mime import parse_mime as parse_mime
from inkless.delivery.mime import read_mime as read_mime
from inkless.delivery.signed import CLOCK_SKEW as CLOCK_SKEW
from inkless.delivery.signed import OFFICE_URN_PREFIX as OFFICE_URN_PREFIX
from inkless.delivery.signed import SignedContent
from inkless.errors import EnvelopeError
from inkless.streams import ChunkReader

# --- CMS ------------------------------------------------------------------------------------


def sign(content: bytes, key: Any, certificate: x509.Certificate, chain: Sequence[x509.Certificate]) -> bytes:
    """CMS SignedData (DER) with the content attached, signing-time attribute, certificates included."""
    frame = signed_frame(len(content), hashlib.sha256(content).digest(), key, certificate, chain)
    return frame.head + content + frame.tail


def encrypt(content: bytes, recipients: Sequence[x509.Certificate]) -> bytes:
    """CMS EnvelopedData (DER, AES-256-CBC) to every recipient certificate."""
    return b"".join(enveloped(iter([content]), len(content), recipients))


def seal(message: MimeMessage, key: Any, certificate: x509.Certificate, chain: Sequence[x509.Certificate],
         recipients: Sequence[x509.Certificate]) -> Iterator[bytes]:
    """The envelope of a message in chunks: MIME, signed by the office key, encrypted to every recipient."""
    return sealed(message.chunks, key, certificate, chain, recipients)


def decrypt(envelope: bytes, certificate: x509.Certificate, key: Any) -> bytes:
    """Open a CMS EnvelopedData held in memory with an office's encryption key; EnvelopeError if not possible.

    For envelopes of any size, :func:`read_envelope` reads the same front to back.
    """
    return b"".join(decrypted(io.BytesIO(envelope), certificate, key))


class _SourceFailed(Exception):
    """The decryption or the CMS under the MIME reader failed (the reason is kept aside)."""


@dataclass
class ReadEnvelope:
    """An envelope decrypted and read: the signature is checked with :func:`verify_read` on ``signed``, and only
    then is :meth:`message` (the metadata and documents, or the reason they were refused) to be believed."""

    signed: SignedDataStream
    metadata: MessageMetadata | None
    documents: list[ReceivedDocument]
    problem: EnvelopeError | None

    def message(self) -> tuple[MessageMetadata, list[ReceivedDocument]]:
        if self.problem is not None:
            raise self.problem
        assert self.metadata is not None
        return self.metadata, self.documents


def read_envelope(stream: BinaryIO, certificate: x509.Certificate, key: Any,
                  sink: DocumentSink | None = None) -> ReadEnvelope:
    """Decrypt an envelope read from ``stream``, hash its signed content and read the MIME inside, in one pass
    and in bounded memory; the documents' bytes go to ``sink`` (see :func:`inkless.delivery.mime.read_mime`).

    EnvelopeError for an envelope that does not open or whose CMS is malformed, with the same reasons as
    :func:`decrypt` and :func:`verify`; a problem with the MIME is kept for :meth:`ReadEnvelope.message`,
    so that the signature is judged first.
    """
    plain = ChunkReader(decrypted(stream, certificate, key))
    signed = SignedDataStream(plain.as_binary())
    failures: list[EnvelopeError] = []

    def guarded() -> Iterator[bytes]:
        try:
            yield from read_signed(signed.content())
        except EnvelopeError as exc:
            failures.append(exc)
            raise _SourceFailed from None

    content = guarded()
    try:
        try:
            metadata, documents = read_mime(ChunkReader(content).as_binary(), sink)
            problem = None
        except EnvelopeError as exc:
            metadata, documents, problem = None, [], exc
        for _ in content:  # the rest of the signed content (after the MIME's end) is hashed too
            pass
    except _SourceFailed:
        failure = failures[0]
        if not str(failure).startswith("the envelope cannot be opened"):
            # A wrong key decrypts to garbage: that the envelope does not open is the reason, not the garbage.
            plain.read()
        raise failure from None
    return ReadEnvelope(signed, metadata, documents, problem)


def verify_read(
    signed: SignedDataStream,
    trust_anchor: x509.Certificate,
    now: datetime,
    expected_signer: str | None = None,
    is_revoked: Callable[[x509.Certificate], bool] | None = None,
) -> SignedContent:
    """Check the signature of an envelope read with :func:`read_envelope`: see :func:`verify`."""
    from inkless.delivery.cms_verify import verify_read as check

    return check(signed, trust_anchor, now, expected_signer, is_revoked)


def verify(
    signed: bytes,
    trust_anchor: x509.Certificate,
    now: datetime,
    expected_signer: str | None = None,
    is_revoked: Callable[[x509.Certificate], bool] | None = None,
) -> SignedContent:
    """Check a CMS SignedData and return its content: see :func:`inkless.delivery.cms_verify.verify_signed`.

    The verification (pyHanko) lives in its own module, loaded on first use: listing an inbox or
    building a message does not pay for importing pyHanko.
    """
    from inkless.delivery.cms_verify import verify_signed

    return verify_signed(signed, trust_anchor, now, expected_signer, is_revoked)


def envelope_digest(envelope: bytes) -> str:
    """Hex SHA-256 of the envelope bytes: what receipts and transmission reports name."""
    return hashlib.sha256(envelope).hexdigest()
