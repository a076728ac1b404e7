"""SignedData read as a stream, built by hand one part changed at a time: BER's indefinite lengths and
segments verify as DER does, and every structure outside the profile is refused with its own reason."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from asn1crypto import cms as asn1_cms

from inkless.delivery import envelope as env
from inkless.delivery.cms_stream import der
from inkless.errors import EnvelopeError
from tests.helpers import cms
from tests.unit.test_delivery_envelope import PKI, Office

CONTENT = b"MIME-Version: 1.0\r\n\r\n" + bytes(range(256)) * 3
NOT_CMS = "not a valid CMS SignedData (ValueError: "


@pytest.fixture(scope="module")
def office() -> Office:
    return PKI("a").office("civil")


def _parts(office: Office) -> dict[str, bytes]:
    good = asn1_cms.ContentInfo.load(cms.simple(CONTENT, office.sign_key, office.sign_cert, [office.pki.ca]))
    sd = good["content"]
    return {"version": sd["version"].dump(), "algorithms": sd["digest_algorithms"].dump(),
            "type": asn1_cms.ContentType("data").dump(), "content": der(0xA0, der(0x04, CONTENT)), "more": b"",
            "certificates": sd["certificates"].dump(), "signers": sd["signer_infos"].dump(), "after": b"",
            "after_signed_data": b""}


def signed(office: Office, change: Callable[[dict[str, bytes]], None] | None = None, *,
           indefinite: bool = False) -> bytes:
    parts = _parts(office)
    if change is not None:
        change(parts)
    kind = asn1_cms.ContentType("signed_data").dump()
    if indefinite:
        segments = b"".join(der(0x04, CONTENT[i:i + 100]) for i in range(0, len(CONTENT), 100))
        certificates = b"\xa0\x80" + parts["certificates"][2 + (parts["certificates"][1] & 0x7F):] + b"\x00\x00"
        eci = b"\x30\x80" + parts["type"] + b"\xa0\x80\x24\x80" + segments + b"\x00\x00" * 2 + b"\x00\x00"
        sd = b"\x30\x80" + parts["version"] + parts["algorithms"] + eci + certificates + parts["signers"] + b"\x00\x00"
        return b"\x30\x80" + kind + b"\xa0\x80" + sd + b"\x00\x00" * 2 + parts["after"]
    eci = der(0x30, parts["type"] + parts["content"] + parts["more"])
    sd = der(0x30, parts["version"] + parts["algorithms"] + eci + parts["certificates"] + parts["signers"])
    return der(0x30, kind + der(0xA0, sd + parts["after_signed_data"])) + parts["after"]


def checked(data: bytes, office: Office) -> bytes:
    return env.verify(data, office.pki.ca, datetime.now(UTC)).content


def test_the_indefinite_form_with_segments_and_the_definite_one_verify_alike(office: Office) -> None:
    assert checked(signed(office), office) == CONTENT
    assert checked(signed(office, indefinite=True), office) == CONTENT


@pytest.mark.parametrize(("change", "reason"), [
    (lambda p: p.__setitem__("content", der(0xA0, der(0x30, b""))), "the encapsulated content is not an OCTET STRING"),
    (lambda p: p.__setitem__("more", der(0xA1, b"")),
     "the encapsulated content info holds more than a type and a content"),
    (lambda p: p.__setitem__("content", der(0xA0, der(0x04, CONTENT)) + der(0xA0, der(0x04, b""))),
     "the encapsulated content info holds more than a type and a content"),
    (lambda p: p.__setitem__("content", der(0xA0, der(0x24, der(0x30, b"")))),
     "a segment of a constructed OCTET STRING has tag 0x30"),
    (lambda p: p.__setitem__("content", der(0xA0, b"\x04\x80")), "a primitive value has an indefinite length"),
    (lambda p: p.__setitem__("content", der(0xA0, b"\x04\x89" + b"\x00" * 9)), "a length of 9 bytes is not supported"),
    (lambda p: p.__setitem__("content", der(0xA0, b"\x1f\x01\x00")), "high tag numbers do not occur in CMS"),
    (lambda p: p.__setitem__("content", b"\xa0\x02\x04\x05ab"),
     "a CMS value runs past the end of the structure holding it"),
    (lambda p: p.__setitem__("after", b"\x00"), "there are bytes after the CMS structure"),
    (lambda p: p.__setitem__("content", der(0xA0, b"\x05\x80")), "a primitive value has an indefinite length"),
    (lambda p: p.update(signers=p["signers"] + b"\x04\x03", after_signed_data=b"abc"),
     "a CMS value runs past the end of the structure holding it"),
])
def test_a_signed_data_outside_the_profile_is_refused_with_its_reason(office: Office,
                                                                      change: Callable[[dict[str, bytes]], None],
                                                                      reason: str) -> None:
    with pytest.raises(EnvelopeError) as refused:
        checked(signed(office, change), office)
    assert str(refused.value) == NOT_CMS + reason + ")"


def test_the_structures_around_the_content_are_named_when_they_are_not_sequences(office: Office) -> None:
    kind = asn1_cms.ContentType("signed_data").dump()
    cases = [
        (der(0x31, b""), "expected a ContentInfo SEQUENCE (tag 0x30), found tag 0x31"),
        (der(0x30, kind + der(0xA1, b"")), "expected the [0] content of a ContentInfo (tag 0xa0), found tag 0xa1"),
        (der(0x30, kind + der(0xA0, der(0x31, b""))), "expected a SignedData SEQUENCE (tag 0x30), found tag 0x31"),
        (der(0x30, kind + der(0xA0, der(0x30, _parts(office)["version"] + _parts(office)["algorithms"]
                                        + der(0x31, b"")))), "the encapsulated content info is not a SEQUENCE"),
    ]
    for data, reason in cases:
        with pytest.raises(EnvelopeError) as refused:
            checked(data, office)
        assert str(refused.value) == NOT_CMS + reason + ")"


def test_an_indefinite_signed_data_left_open_or_overfull_is_refused(office: Office) -> None:
    streamed = signed(office, indefinite=True)
    with pytest.raises(EnvelopeError) as refused:
        checked(streamed[:-2], office)
    assert str(refused.value) == NOT_CMS + "the data ends inside a CMS structure (truncated))"
    with pytest.raises(EnvelopeError) as refused:
        checked(streamed[:-4] + b"\x04\x00" + streamed[-2:], office)
    assert str(refused.value) == NOT_CMS + "a CMS structure holds more than its profile allows)"


@pytest.mark.parametrize("size", [127, 128, 255, 256, 65535, 65536])
def test_der_lengths_at_their_boundaries_read_back(size: int) -> None:
    from inkless.delivery.cms_stream import DerReader

    value = der(0x04, b"x" * size)
    reader = DerReader(io.BytesIO(value))
    header = reader.header()
    assert (header.length, header.end, len(reader.value(header))) == (size, len(value), len(value))
    assert value[1] == size if size < 0x80 else value[1] == 0x80 | ((size.bit_length() + 7) // 8)


def test_a_stream_that_gives_a_few_bytes_at_a_time_reads_the_same() -> None:
    """A pipe, a socket or a decrypting reader answers short reads: headers and values are read whole anyway."""
    from inkless.delivery.cms_stream import DerReader
    from inkless.streams import ChunkReader

    value = der(0x30, der(0x04, b"x" * 300) + der(0x04, b"y" * 5))
    pieces = ChunkReader(iter([value[i:i + 7] for i in range(0, len(value), 7)])).as_binary()
    reader = DerReader(pieces)
    outer = reader.header()
    assert [reader.value(child) for child in reader.children(outer)] == [der(0x04, b"x" * 300), der(0x04, b"y" * 5)]
    assert reader.at_end()


def test_a_length_of_eight_bytes_is_read() -> None:
    from inkless.delivery.cms_stream import DerReader

    reader = DerReader(io.BytesIO(b"\x04\x88" + (5).to_bytes(8, "big") + b"abcde"))
    assert reader.value(reader.header()) == b"\x04\x88" + (5).to_bytes(8, "big") + b"abcde"


def test_a_signed_data_that_ends_early_is_refused_naming_what_is_missing(office: Office) -> None:
    """Found by fuzzing: a bare ``next`` on the fields raised StopIteration, a RuntimeError out of the reader."""
    kind = asn1_cms.ContentType("signed_data").dump()
    parts = _parts(office)
    cases = [
        (b"", "the SignedData's version"),
        (parts["version"], "the SignedData's digest algorithms"),
        (parts["version"] + parts["algorithms"], "the encapsulated content info"),
        (parts["version"] + parts["algorithms"] + der(0x30, b""), "the encapsulated content type"),
    ]
    for fields, missing in cases:
        with pytest.raises(EnvelopeError) as refused:
            checked(der(0x30, kind + der(0xA0, der(0x30, fields))), office)
        assert str(refused.value) == NOT_CMS + f"{missing} is missing)"


def test_signer_infos_that_are_not_signer_infos_are_refused_as_not_cms(office: Office) -> None:
    data = signed(office, lambda parts: parts.__setitem__("signers", der(0x31, der(0x02, b"\x01"))))
    with pytest.raises(EnvelopeError) as refused:
        checked(data, office)
    assert str(refused.value) == NOT_CMS + (
        "Error parsing asn1crypto.cms.SignerInfo - method should have been constructed, but primitive was found)")


def test_a_signed_data_read_as_a_stream_is_judged_without_handing_its_content_back(office: Office) -> None:
    from inkless.delivery.cms_stream import SignedDataStream, read_signed
    from inkless.delivery.cms_verify import verify_read

    stream = SignedDataStream(io.BytesIO(signed(office)))
    content = b"".join(read_signed(stream.content()))
    result = verify_read(stream, office.pki.ca, datetime.now(UTC))
    # the content went to whoever read the stream; the verdict carries none of it
    assert content == CONTENT and result.content == b""
