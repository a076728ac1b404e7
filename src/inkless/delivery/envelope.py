"""The message envelope: MIME multipart → CMS SignedData (office seal key) → CMS EnvelopedData (AES-256).

Everything here is pure: bytes and certificates in, bytes or :class:`EnvelopeError` out. The
layers are the ones ``openssl cms`` understands, so anyone can open an exported envelope with
standard tools::

    openssl cms -decrypt -inform DER -in envelope.p7m -recip office.pem -inkey office.key \\
      | openssl cms -verify -inform DER -CAfile sender-ca.pem
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import email
import email.parser
import email.policy
import hashlib
import json
import quopri
import re
import secrets
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.serialization import pkcs7

from inkless.delivery.signed import CLOCK_SKEW as CLOCK_SKEW
from inkless.delivery.signed import OFFICE_URN_PREFIX as OFFICE_URN_PREFIX
from inkless.delivery.signed import SignedContent
from inkless.errors import EnvelopeError

METADATA_TYPE = "application/json"
METADATA_VERSION = 1
PRIORITIES = ("normal", "urgent")


@dataclass(frozen=True)
class Document:
    """One file carried by a message."""

    name: str
    content_type: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class MessageMetadata:
    """The JSON metadata part: everything about a message except its documents' bytes."""

    message_id: str
    sender: str
    recipients: tuple[str, ...]
    subject: str
    classification: int
    priority: str
    created_at: datetime
    procedure_code: str | None = None
    reply_to: str | None = None
    documents: tuple[dict[str, Any], ...] = ()
    # Set for messages that entered through a bridge (fax): the sender is not authenticated.
    source: str = "inkless"
    facts: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": METADATA_VERSION,
            "message_id": self.message_id,
            "from": self.sender,
            "to": list(self.recipients),
            "subject": self.subject,
            "classification": self.classification,
            "priority": self.priority,
            "procedure_code": self.procedure_code,
            "reply_to": self.reply_to,
            "created_at": self.created_at.isoformat(),
            "documents": list(self.documents),
            "source": self.source,
            "facts": self.facts,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MessageMetadata:
        try:
            meta = cls(
                message_id=str(data["message_id"]),
                sender=str(data["from"]),
                recipients=tuple(str(a) for a in data["to"]),
                subject=str(data["subject"]),
                classification=int(data["classification"]),
                priority=str(data["priority"]),
                created_at=datetime.fromisoformat(str(data["created_at"])),
                procedure_code=data.get("procedure_code"),
                reply_to=data.get("reply_to"),
                documents=tuple(dict(d) for d in data.get("documents", [])),
                source=str(data.get("source", "inkless")),
                facts=dict(data.get("facts") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise EnvelopeError(f"the message metadata is incomplete or malformed ({exc})") from None
        if not 0 <= meta.classification <= 3 or meta.priority not in PRIORITIES:
            raise EnvelopeError("the message metadata has an invalid classification or priority")
        if meta.created_at.tzinfo is None:
            raise EnvelopeError("the message metadata has a creation time without time zone")
        return meta


# --- MIME -----------------------------------------------------------------------------------


_TOKEN_RE = re.compile(r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+$")
_SAFE_FILENAME_RE = re.compile(r"^[ -~]+$")


def _base64_lines(data: bytes) -> bytes:
    # binascii does the work (76-character lines); RFC 2045 wants CRLF line ends.
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def _disposition(name: str) -> str:
    """Content-Disposition with the file name: plain if ASCII, RFC 2231 (utf-8, continued) otherwise."""
    if _SAFE_FILENAME_RE.match(name) and '"' not in name and "\\" not in name and len(name) < 60:
        return f'attachment; filename="{name}"'
    # Continuations keep every header line short, however long a Japanese name is; a %XX escape
    # is never split between two of them.
    tokens = re.findall(r"%[0-9A-F]{2}|.", urllib.parse.quote(name, safe=""))
    chunks: list[str] = [""]
    for token in tokens:
        if len(chunks[-1]) + len(token) > 50:
            chunks.append("")
        chunks[-1] += token
    params = ";\r\n ".join(
        f"filename*{i}*=utf-8''{chunk}" if i == 0 else f"filename*{i}*={chunk}" for i, chunk in enumerate(chunks)
    )
    return f"attachment;\r\n {params}"


def build_mime(meta: MessageMetadata, documents: Sequence[Document]) -> bytes:
    """The multipart/mixed body: the JSON metadata first, then one base64 part per document.

    Written directly (not with the email package's generator, which is several times slower on
    large attachments); the result is plain RFC 2045/2046/2231 MIME with CRLF line ends.
    """
    listed = tuple(
        {"name": d.name, "content_type": d.content_type, "size": len(d.data), "sha256": d.sha256}
        for d in documents
    )
    meta = dataclasses.replace(meta, documents=listed)
    boundary = "=_inkless_" + secrets.token_hex(12)
    body = json.dumps(meta.to_json(), ensure_ascii=True, indent=1, sort_keys=True).encode("ascii")
    out = [
        b"MIME-Version: 1.0\r\n",
        f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'.encode("ascii"),
        f"--{boundary}\r\n".encode("ascii"),
        b"Content-Type: application/json\r\nContent-Transfer-Encoding: base64\r\n\r\n",
        _base64_lines(body),
    ]
    for doc in documents:
        ctype = doc.content_type if _TOKEN_RE.match(doc.content_type) else "application/octet-stream"
        out.append(f"--{boundary}\r\n".encode("ascii"))
        out.append(f"Content-Type: {ctype}\r\nContent-Transfer-Encoding: base64\r\n"
                   f"Content-Disposition: {_disposition(doc.name)}\r\n\r\n".encode("ascii"))
        out.append(_base64_lines(doc.data))
    out.append(f"--{boundary}--\r\n".encode("ascii"))
    return b"".join(out)


def _split_head(part: bytes) -> tuple[bytes, bytes]:
    # No header lines at all: the part opens with the blank line (RFC 2046: the body is then text/plain),
    # and a blank line inside the body must not be taken for the end of a header section.
    if part.startswith(b"\r\n"):
        return b"", part[2:]
    if part.startswith(b"\n"):
        return b"", part[1:]
    crlf, lf = part.find(b"\r\n\r\n"), part.find(b"\n\n")
    if crlf >= 0 and (lf < 0 or crlf <= lf):
        return part[:crlf + 2], part[crlf + 4:]
    if lf >= 0:
        return part[:lf + 1], part[lf + 2:]
    return part, b""


def _headers(head: bytes) -> Message:
    return email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(head + b"\r\n")


def _decode(headers: Message, body: bytes) -> bytes:
    cte = str(headers.get("Content-Transfer-Encoding", "7bit")).strip().lower()
    if cte == "base64":
        return binascii.a2b_base64(body)  # line breaks (CRLF or LF) are skipped
    if cte == "quoted-printable":
        return quopri.decodestring(body)
    if cte in ("7bit", "8bit", "binary"):
        return body
    raise EnvelopeError(f"unsupported content transfer encoding {cte!r}")


def parse_mime(data: bytes) -> tuple[MessageMetadata, list[Document]]:
    """Split the MIME body into metadata and documents; checks every document against its listed digest."""
    try:
        head, body = _split_head(data)
        top = _headers(head)
        if top.get_content_type() != "multipart/mixed":
            raise EnvelopeError("the message body is not multipart/mixed")
        boundary = top.get_param("boundary")
        if not isinstance(boundary, str) or not boundary:
            raise EnvelopeError("the multipart body has no boundary")
        delimiter = b"--" + boundary.encode("ascii")
        raw_parts: list[bytes] = []
        pos = body.find(delimiter)
        if pos < 0 or (pos > 0 and body[pos - 1:pos] != b"\n"):
            raise EnvelopeError("the multipart body has no parts")
        while True:
            after = pos + len(delimiter)
            if body[after:after + 2] == b"--":
                break
            line_end = body.find(b"\n", after)
            if line_end < 0:
                raise EnvelopeError("the multipart body is truncated")
            nxt = body.find(b"\n" + delimiter, line_end)
            if nxt < 0:
                raise EnvelopeError("the multipart body is not terminated")
            part = body[line_end + 1:nxt]
            raw_parts.append(part[:-1] if part.endswith(b"\r") else part)
            pos = nxt + 1
        parts = []
        for raw in raw_parts:
            part_head, part_body = _split_head(raw)
            headers = _headers(part_head)
            parts.append((headers, _decode(headers, part_body)))
    except EnvelopeError:
        raise
    except (ValueError, UnicodeError, binascii.Error) as exc:
        raise EnvelopeError(f"the message body is not valid MIME ({exc})") from None
    if not parts or parts[0][0].get_content_type() != METADATA_TYPE:
        raise EnvelopeError("the message body does not start with its JSON metadata part")
    try:
        meta = MessageMetadata.from_json(json.loads(parts[0][1]))
    except ValueError as exc:
        raise EnvelopeError(f"the message metadata is not valid JSON ({exc})") from None
    try:
        # The email package decodes RFC 2231 parameters lazily, and refuses some (a NUL) only here.
        documents = [
            Document(headers.get_filename() or "document", headers.get_content_type(), payload)
            for headers, payload in parts[1:]
        ]
    except (ValueError, UnicodeError, LookupError) as exc:
        raise EnvelopeError(f"a document's MIME headers are not valid ({exc})") from None
    if len(documents) != len(meta.documents):
        raise EnvelopeError(f"the metadata lists {len(meta.documents)} documents but {len(documents)} are present")
    for number, (doc, listed) in enumerate(zip(documents, meta.documents, strict=True), 1):
        if doc.sha256 != listed.get("sha256") or len(doc.data) != listed.get("size"):
            # By number, not name: file names can be as revealing as subjects, and errors are logged.
            raise EnvelopeError(f"document {number} does not match its listed SHA-256")
    return meta, documents


# --- CMS ------------------------------------------------------------------------------------


def sign(content: bytes, key: Any, certificate: x509.Certificate, chain: Sequence[x509.Certificate]) -> bytes:
    """CMS SignedData (DER) with the content attached, signing-time attribute, certificates included."""
    builder = pkcs7.PKCS7SignatureBuilder().set_data(content).add_signer(certificate, key, hashes.SHA256())
    for cert in chain:
        builder = builder.add_certificate(cert)
    # Binary: without it the content would be rewritten as text MIME (CRLF) and the bytes would change.
    return builder.sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])


def encrypt(content: bytes, recipients: Sequence[x509.Certificate]) -> bytes:
    """CMS EnvelopedData (DER, AES-256-CBC) to every recipient certificate."""
    if not recipients:
        raise EnvelopeError("an envelope needs at least one recipient certificate")
    builder = pkcs7.PKCS7EnvelopeBuilder().set_data(content).set_content_encryption_algorithm(algorithms.AES256)
    seen: set[bytes] = set()
    for cert in recipients:
        der = cert.public_bytes(serialization.Encoding.DER)
        if der not in seen:
            seen.add(der)
            builder = builder.add_recipient(cert)
    return builder.encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])


def decrypt(envelope: bytes, certificate: x509.Certificate, key: Any) -> bytes:
    """Open a CMS EnvelopedData with an office's encryption key; EnvelopeError if not possible."""
    try:
        return pkcs7.pkcs7_decrypt_der(envelope, certificate, key, [])
    except ValueError as exc:
        raise EnvelopeError(
            f"the envelope cannot be opened with this office's key: not addressed to it, damaged or not CMS ({exc})"
        ) from None


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
