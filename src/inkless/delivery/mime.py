"""The message inside an envelope: JSON metadata and documents as a MIME multipart, written and read as streams.

Written directly (not with the email package's generator, which is several times slower on large
attachments) as plain RFC 2045/2046/2231 MIME with CRLF line ends; read front to back in chunks, each
document decoded, hashed and handed to a sink as it passes, so that a message of any size is read in
bounded memory.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import email.parser
import email.policy
import hashlib
import io
import itertools
import json
import quopri
import re
import secrets
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from typing import Any, BinaryIO

from inkless.errors import EnvelopeError

CHUNK = 1024 * 1024

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


def _base64_lines(data: bytes | memoryview) -> bytes:
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


@dataclass(frozen=True)
class MimeMessage:
    """A message ready to be written: :meth:`chunks` gives the same bytes every time, a piece at a time."""

    metadata: MessageMetadata  # with its documents listed (name, type, size, SHA-256)
    documents: Sequence[Document]
    boundary: str

    def chunks(self) -> Iterator[bytes]:
        """The multipart/mixed body: the JSON metadata first, then one base64 part per document."""
        boundary = self.boundary
        body = json.dumps(self.metadata.to_json(), ensure_ascii=True, indent=1, sort_keys=True).encode("ascii")
        yield (
            b"MIME-Version: 1.0\r\n"
            + f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n--{boundary}\r\n'.encode("ascii")
            + b"Content-Type: application/json\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + _base64_lines(body)
        )
        for doc in self.documents:
            ctype = doc.content_type if _TOKEN_RE.match(doc.content_type) else "application/octet-stream"
            yield (f"--{boundary}\r\nContent-Type: {ctype}\r\nContent-Transfer-Encoding: base64\r\n"
                   f"Content-Disposition: {_disposition(doc.name)}\r\n\r\n").encode("ascii")
            data = memoryview(doc.data)
            # Whole 57-byte groups per piece: the same 76-character lines as encoding it at once.
            for start in range(0, len(data), _BASE64_PIECE):
                yield _base64_lines(data[start:start + _BASE64_PIECE])
        yield f"--{boundary}--\r\n".encode("ascii")


_BASE64_PIECE = 57 * 16384


def mime_message(meta: MessageMetadata, documents: Sequence[Document]) -> MimeMessage:
    """The message to write: the documents listed in the metadata (each hashed once), a fresh boundary.

    Written directly (not with the email package's generator, which is several times slower on
    large attachments); the result is plain RFC 2045/2046/2231 MIME with CRLF line ends.
    """
    listed = tuple(
        {"name": d.name, "content_type": d.content_type, "size": len(d.data), "sha256": d.sha256}
        for d in documents
    )
    return MimeMessage(dataclasses.replace(meta, documents=listed), documents, "=_inkless_" + secrets.token_hex(12))


def build_mime(meta: MessageMetadata, documents: Sequence[Document]) -> bytes:
    """The whole MIME body of :func:`mime_message` in memory (small messages, tests)."""
    return b"".join(mime_message(meta, documents).chunks())


# --- reading --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedDocument:
    """A document as read from a message: its bytes went to a sink (or were only hashed)."""

    name: str
    content_type: str
    size: int
    sha256: str


# Where a document's bytes go as they are decoded (called with the document's number, from 1); None: hashed only.
DocumentSink = Callable[[int], BinaryIO | None]


def _split_head(part: bytes) -> tuple[bytes, bytes]:
    # No header lines at all: the part opens with the blank line (RFC 2046: the body is then text/plain),
    # and a blank line inside the body must not be taken for the end of a header section.
    if part.startswith(b"\r\n"):
        return b"", part[2:]
    if part.startswith(b"\n"):
        return b"", part[1:]
    crlf = part.find(b"\r\n\r\n")
    # A bare blank line counts only if it comes first: searched no further than the CRLF one (the body after
    # it is a megabyte of base64 lines, and a search through all of it costs more than decoding it).
    lf = part.find(b"\n\n", 0, crlf + 2 if crlf >= 0 else len(part))
    if crlf >= 0 and (lf < 0 or crlf <= lf):
        return part[:crlf + 2], part[crlf + 4:]
    if lf >= 0:
        return part[:lf + 1], part[lf + 2:]
    return part, b""


def _head_of(chunks: Iterator[bytes]) -> tuple[bytes, Iterator[bytes]]:
    """The header section of a streamed entity (as :func:`_split_head` finds it) and the chunks of its body."""
    buf = b""
    for chunk in chunks:
        searched = max(0, len(buf) - 3)
        buf += chunk
        if buf == b"\r":
            continue
        # CRLF first: when it is there (as inkless writes it), the whole chunk is not searched for a bare one too.
        if buf.startswith((b"\r\n", b"\n")) or buf.find(b"\r\n\r\n", searched) >= 0 or buf.find(b"\n\n", searched) >= 0:
            head, body = _split_head(buf)
            return head, itertools.chain([body], chunks)
    head, body = _split_head(buf)
    return head, iter([body])


class _BrokenStructure(EnvelopeError):
    """The multipart structure itself is broken: reported at once, whatever part was being read."""


class _Body:
    """The body of a multipart, split at its delimiter lines as it is read (RFC 2046 §5.1.1)."""

    def __init__(self, chunks: Iterator[bytes], delimiter: bytes) -> None:
        self._chunks = chunks
        self._delimiter = delimiter
        self._buf = b""

    def _more(self) -> bool:
        chunk = next(self._chunks, None)
        if chunk is None:
            return False
        self._buf += chunk
        return True

    def parts(self) -> Iterator[Iterator[bytes]]:
        """Each part's bytes in chunks; a part must be read to its end before the next is asked for."""
        delimiter = self._delimiter
        while (pos := self._buf.find(delimiter)) < 0:
            # The preamble is dropped but for its last len(delimiter) bytes: a delimiter may begin among them,
            # and one found later has the byte before it in view (so it is never at 0 after a cut).
            self._buf = self._buf[-len(delimiter):]
            if not self._more():
                raise _BrokenStructure("the multipart body has no parts")
        if pos > 0 and self._buf[pos - 1:pos] != b"\n":  # a delimiter starts a line, or the body
            raise _BrokenStructure("the multipart body has no parts")
        while True:
            after = pos + len(delimiter)
            while len(self._buf) < after + 2 and self._more():
                pass
            if self._buf[after:after + 2] == b"--":
                return
            while (line_end := self._buf.find(b"\n", after)) < 0:
                if not self._more():
                    raise _BrokenStructure("the multipart body is truncated")
            # The line end stays: the next delimiter may start right at it (an empty part).
            self._buf = self._buf[line_end:]
            yield self._part()
            pos = 1

    def _part(self) -> Iterator[bytes]:
        pattern = b"\n" + self._delimiter
        start = 1
        while (end := self._buf.find(pattern)) < 0:
            # Everything before the last len(pattern) bytes is data (a delimiter and its CR come after it).
            cut = len(self._buf) - len(pattern)
            if cut > start:
                yield self._buf[start:cut]
                self._buf, start = self._buf[cut:], 0
            if not self._more():
                raise _BrokenStructure("the multipart body is not terminated")
        data = self._buf[start:end]
        self._buf = self._buf[end:]
        # The CRLF before a delimiter belongs to the delimiter.
        yield data[:-1] if data.endswith(b"\r") else data


class _Decoder:
    """A content transfer encoding undone chunk by chunk."""

    def __init__(self, headers: Message) -> None:
        self.encoding = str(headers.get("Content-Transfer-Encoding", "7bit")).strip().lower()
        if self.encoding not in ("base64", "quoted-printable", "7bit", "8bit", "binary"):
            raise EnvelopeError(f"unsupported content transfer encoding {self.encoding!r}")
        self._pending = b""
        self._padded = False

    def feed(self, chunk: bytes) -> bytes:
        if self.encoding == "base64":
            # Line breaks and other characters outside the alphabet are skipped, as binascii does. Data after
            # the padding is refused: binascii would decode it differently depending on where the chunks are cut.
            text = chunk.translate(None, _NOT_BASE64)
            padding = 0 if self._padded else text.find(b"=")
            if padding >= 0:
                if text[padding:].strip(b"="):
                    raise ValueError("base64 data follows its padding")
                self._padded = True
            self._pending += text
            whole = len(self._pending) // 4 * 4
            data, self._pending = self._pending[:whole], self._pending[whole:]
            return binascii.a2b_base64(data)
        if self.encoding == "quoted-printable":
            # Quoted-printable decodes line by line: whole lines go, the last partial one waits.
            self._pending += chunk
            cut = self._pending.rfind(b"\n") + 1
            data, self._pending = self._pending[:cut], self._pending[cut:]
            return quopri.decodestring(data) if data else b""
        return chunk

    def finish(self) -> bytes:
        rest, self._pending = self._pending, b""
        if self.encoding == "base64":
            return binascii.a2b_base64(rest) if rest else b""
        return quopri.decodestring(rest) if rest else b""


_NOT_BASE64 = bytes(set(range(256)) - set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="))


def _headers(head: bytes) -> Message:
    return email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(head + b"\r\n")


def read_mime(stream: BinaryIO, sink: DocumentSink | None = None) -> tuple[MessageMetadata, list[ReceivedDocument]]:
    """Read the MIME body front to back: the metadata, then each document decoded into ``sink`` and hashed.

    Checks every document against its listed size and digest; EnvelopeError for anything malformed. A
    problem with one part's content is reported after the whole structure was read, so that a truncated
    body is named as such whatever its parts hold.
    """
    chunks = iter(lambda: stream.read(CHUNK), b"")
    problem: EnvelopeError | None = None
    meta: MessageMetadata | None = None
    found: list[ReceivedDocument] = []
    try:
        head, rest = _head_of(chunks)
        top = _headers(head)
        if top.get_content_type() != "multipart/mixed":
            raise EnvelopeError("the message body is not multipart/mixed")
        boundary = top.get_param("boundary")
        if not isinstance(boundary, str) or not boundary:
            raise EnvelopeError("the multipart body has no boundary")
        for number, part in enumerate(_Body(rest, b"--" + boundary.encode("ascii")).parts()):
            part_head, body = _head_of(part)
            if problem is not None:
                for _ in body:
                    pass
                continue
            try:
                headers = _headers(part_head)
                if number == 0:
                    meta = _metadata(headers, body)
                else:
                    found.append(_document(number, headers, body, sink))
            except _BrokenStructure:
                raise
            except EnvelopeError as exc:
                problem = exc
            except (ValueError, UnicodeError) as exc:
                problem = EnvelopeError(f"the message body is not valid MIME ({exc})")
            for _ in body:  # what a refused part left unread
                pass
    except EnvelopeError:
        raise
    except (ValueError, UnicodeError) as exc:
        raise EnvelopeError(f"the message body is not valid MIME ({exc})") from None
    if problem is not None:
        raise problem
    if meta is None:
        raise EnvelopeError("the message body does not start with its JSON metadata part")
    if len(found) != len(meta.documents):
        raise EnvelopeError(f"the metadata lists {len(meta.documents)} documents but {len(found)} are present")
    for number, (doc, listed) in enumerate(zip(found, meta.documents, strict=True), 1):
        if doc.sha256 != listed.get("sha256") or doc.size != listed.get("size"):
            # By number, not name: file names can be as revealing as subjects, and errors are logged.
            raise EnvelopeError(f"document {number} does not match its listed SHA-256")
    return meta, found


def _metadata(headers: Message, body: Iterator[bytes]) -> MessageMetadata:
    if headers.get_content_type() != METADATA_TYPE:
        raise EnvelopeError("the message body does not start with its JSON metadata part")
    decoder = _Decoder(headers)
    data = b"".join(decoder.feed(chunk) for chunk in body) + decoder.finish()
    try:
        parsed = json.loads(data)
    except ValueError as exc:
        raise EnvelopeError(f"the message metadata is not valid JSON ({exc})") from None
    return MessageMetadata.from_json(parsed)


def _document(number: int, headers: Message, body: Iterator[bytes], sink: DocumentSink | None) -> ReceivedDocument:
    try:
        # The email package decodes RFC 2231 parameters lazily, and refuses some (a NUL) only here.
        name = headers.get_filename() or "document"
        content_type = headers.get_content_type()
    except (ValueError, UnicodeError, LookupError) as exc:
        raise EnvelopeError(f"a document's MIME headers are not valid ({exc})") from None
    decoder = _Decoder(headers)
    target = sink(number) if sink is not None else None
    sha = hashlib.sha256()
    size = 0
    for chunk in itertools.chain(body, [b""]):
        data = decoder.feed(chunk) if chunk else decoder.finish()
        sha.update(data)
        size += len(data)
        if target is not None:
            target.write(data)
    return ReceivedDocument(name, content_type, size, sha.hexdigest())


def parse_mime(data: bytes) -> tuple[MessageMetadata, list[Document]]:
    """:func:`read_mime` on a body held in memory, the documents' bytes with them."""
    buffers: dict[int, io.BytesIO] = {}

    def sink(number: int) -> BinaryIO:
        buffers[number] = io.BytesIO()
        return buffers[number]

    meta, found = read_mime(io.BytesIO(data), sink)
    return meta, [Document(d.name, d.content_type, buffers[i].getvalue()) for i, d in enumerate(found, 1)]
