"""The MIME inside an envelope arrives in pieces of any size (a decrypting reader, a socket): every cut through
a delimiter, a header section, a base64 quad or a quoted-printable line reads back the same message, and a
broken body is refused with the same reason however it is cut."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import quopri
from datetime import UTC, datetime
from typing import BinaryIO, cast

import pytest

from inkless.delivery import envelope as env
from inkless.errors import EnvelopeError
from inkless.streams import ChunkReader

AT = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)
PIECES = [1, 2, 3, 4, 5, 6, 7, 11, 64]
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 3
TEXT = "照会の件\r\n第2項をご確認ください。\r\n".encode() + b"=" * 3 + b" tail"


def _pieces(data: bytes, size: int) -> BinaryIO:
    return ChunkReader(iter([data[i:i + size] for i in range(0, len(data), size)])).as_binary()


def _read(data: bytes, size: int) -> tuple[env.MessageMetadata, list[tuple[str, str, bytes]]]:
    kept: dict[int, io.BytesIO] = {}

    def sink(number: int) -> io.BytesIO:
        kept[number] = io.BytesIO()
        return kept[number]

    meta, found = env.read_mime(_pieces(data, size), sink)
    return meta, [(d.name, d.content_type, kept[i].getvalue()) for i, d in enumerate(found, 1)]


def _listed(*documents: tuple[str, str, bytes]) -> list[dict[str, object]]:
    return [{"name": n, "content_type": t, "size": len(d), "sha256": hashlib.sha256(d).hexdigest()}
            for n, t, d in documents]


def _meta() -> env.MessageMetadata:
    return env.MessageMetadata("m-1", "civil@a", ("police@b",), "至急：照会", 1, "normal", AT)


def _foreign(eol: bytes) -> tuple[bytes, list[tuple[str, str, bytes]]]:
    """What another writer may send: a preamble longer than the delimiter, 7bit JSON, base64 and quoted-printable
    parts, a part without header lines and one that is entirely empty (its delimiter follows the last one)."""
    documents = [("scan.pdf", "application/pdf", PDF), ("memo.txt", "text/plain", TEXT),
                 ("document", "text/plain", b"no headers" + eol + eol + b"x"), ("document", "text/plain", b"")]
    metadata = json.dumps({**_meta().to_json(), "documents": _listed(*documents)}).encode("ascii")
    mime = eol.join([
        b"MIME-Version: 1.0", b'Content-Type: multipart/mixed; boundary="b1"', b"",
        b"This is a multi-part message in MIME format; -- b1 is not a delimiter.",
        b"--b1", b"Content-Type: application/json", b"", metadata,
        b"--b1", b"Content-Type: application/pdf", b"Content-Transfer-Encoding: base64",
        b'Content-Disposition: attachment; filename="scan.pdf"', b"", base64.encodebytes(PDF).rstrip(b"\n"),
        b"--b1", b"Content-Type: text/plain; charset=utf-8", b"Content-Transfer-Encoding: quoted-printable",
        b'Content-Disposition: attachment; filename="memo.txt"', b"", quopri.encodestring(TEXT),
        b"--b1", b"", b"no headers", b"", b"x",
        b"--b1",
        b"--b1--", b"",
    ])
    return mime, documents


@pytest.mark.parametrize("size", PIECES)
def test_our_mime_read_in_pieces_of_any_size_is_the_same_message(size: int) -> None:
    documents = [env.Document("被害届（写し）.pdf", "application/pdf", PDF),
                 env.Document("memo.txt", "text/plain", TEXT)]
    mime = env.build_mime(_meta(), documents)
    meta, got = _read(mime, size)
    assert (meta.message_id, meta.subject) == ("m-1", "至急：照会")
    assert got == [(d.name, d.content_type, d.data) for d in documents]


@pytest.mark.parametrize("eol", [b"\r\n", b"\n"])
@pytest.mark.parametrize("size", PIECES)
def test_another_writers_mime_read_in_pieces_of_any_size_is_the_same_message(eol: bytes, size: int) -> None:
    mime, documents = _foreign(eol)
    meta, got = _read(mime, size)
    assert meta.subject == "至急：照会"
    assert got == documents


@pytest.mark.parametrize("size", PIECES)
def test_a_broken_multipart_is_refused_for_the_same_reason_however_it_is_cut(size: int) -> None:
    mime, _ = _foreign(b"\r\n")
    head = mime.partition(b"\r\n\r\n")[0]
    cases = [
        (head + b"\r\n\r\npreamble only, no delimiter\r\n", "the multipart body has no parts"),
        (head + b"\r\n\r\nthe first delimiter is not at a line start --b1\r\n--b1--\r\n",
         "the multipart body has no parts"),
        (mime[:mime.index(b"no headers") + 5], "the multipart body is not terminated"),
        (mime[:mime.rindex(b"--b1\r\n") + 4], "the multipart body is truncated"),
    ]
    for data, reason in cases:
        with pytest.raises(EnvelopeError) as refused:
            _read(data, size)
        assert str(refused.value) == reason, (size, data[-40:])


def _one_base64_part(body: bytes, data: bytes) -> bytes:
    metadata = json.dumps({**_meta().to_json(), "documents": _listed(("document", "text/plain", data))}).encode()
    return (b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\nContent-Type: application/json\r\n\r\n'
            + metadata + b"\r\n--b1\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + body + b"\r\n--b1--\r\n")


@pytest.mark.parametrize("size", [*PIECES, 1 << 20])
def test_base64_data_after_its_padding_is_refused_however_it_is_cut(size: int) -> None:
    """Two encodings run together (``QQ==QUI=``) decode differently depending on where a reader's chunks are cut;
    a document must not depend on that, so the data after the padding is refused, in one piece or many."""
    for body in (b"QQ==QUI=", b"QQ==\r\nQUJD", b"QQ=\r\n=Q", b"QQ==XXXX"):
        with pytest.raises(EnvelopeError) as refused:
            _read(_one_base64_part(body, b"AAB"), size)
        assert str(refused.value) == "the message body is not valid MIME (base64 data follows its padding)", body
    # Padding at the end, however long the line before it, and extra padding after it, decode as binascii does.
    assert _read(_one_base64_part(b"QUJD\r\nRA==", b"ABCD"), size)[1] == [("document", "text/plain", b"ABCD")]
    assert _read(_one_base64_part(b"QUJDRA==\r\n==", b"ABCD"), size)[1] == [("document", "text/plain", b"ABCD")]


class _Watched(io.RawIOBase):
    """A stream that records what it was asked for and how far it has been read."""

    def __init__(self, data: bytes, size: int) -> None:
        self._data, self._size, self.position = data, size, 0
        self.asked: list[int | None] = []

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        self.asked.append(size)
        n = len(self._data) if size is None or size < 0 else min(size, self._size)
        out = self._data[self.position:self.position + n]
        self.position += len(out)
        return out


@pytest.mark.parametrize("eol", [b"\r\n", b"\n"])
@pytest.mark.parametrize("size", [1, 64])
def test_documents_reach_the_sink_as_the_body_is_read_never_all_at_once(eol: bytes, size: int) -> None:
    """Bounded memory: the body is asked for in chunks, header sections end at their blank line however it is cut,
    and each document's bytes go to the sink while its part is still being read (a quoted-printable one line by
    line), not when its end was found."""
    mime = _foreign(eol)[0]
    stream = _Watched(mime, size)
    first_write: dict[int, int] = {}

    class Sink(io.BytesIO):
        def __init__(self, number: int) -> None:
            super().__init__()
            self.number = number

        def write(self, data: bytes) -> int:  # type: ignore[override]
            if data:
                first_write.setdefault(self.number, stream.position)
            return super().write(data)

    env.read_mime(cast(BinaryIO, stream), Sink)
    assert stream.asked and all(isinstance(n, int) and 0 < n <= env.CHUNK for n in stream.asked), stream.asked
    for number, marker in [(1, b"Content-Type: application/pdf"), (2, b"Content-Type: text/plain; charset")]:
        part_end = mime.index(eol + b"--b1", mime.index(marker))
        assert first_write[number] < part_end - 64, (number, first_write, part_end)


@pytest.mark.parametrize(("eol", "other"), [(b"\r\n", b"\n\n"), (b"\n", b"\r\n\r\n")])
@pytest.mark.parametrize("size", [1, 5, 4096])
def test_a_header_section_ends_at_its_first_blank_line_whatever_kind_the_body_holds_later(
        eol: bytes, other: bytes, size: int) -> None:
    text = b"first" + other + b"Content-Type: text/html" + other + b"last"
    documents = [("memo.txt", "text/plain", text)]
    metadata = json.dumps({**_meta().to_json(), "documents": _listed(*documents)}).encode("ascii")
    mime = eol.join([
        b"MIME-Version: 1.0", b'Content-Type: multipart/mixed; boundary="b1"', b"",
        b"--b1", b"Content-Type: application/json", b"", metadata,
        b"--b1", b"Content-Type: text/plain", b"Content-Transfer-Encoding: 8bit",
        b'Content-Disposition: attachment; filename="memo.txt"', b"", text,
        b"--b1--", b"",
    ])
    meta, got = _read(mime, size)
    assert meta.subject == "至急：照会"
    assert got == documents
