"""SIP message parsing: well-formed messages in every shape, and garbage refused with SipMessageError."""

from __future__ import annotations

import pytest

from inkless.errors import SipMessageError
from inkless.fax.sip.message import MAX_MESSAGE_BYTES, NameAddr, SipUri, parse, response_to

INVITE = (
    b"INVITE sip:0312345678@192.0.2.10:5070 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b"v: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKfirst, SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKsecond\r\n"
    b"Max-Forwards: 70\r\n"
    b"Record-Route: <sip:192.0.2.10:5060;lr>, <sip:10.0.0.9;lr>\r\n"
    b"t: <sip:0312345678@example.org>\r\n"
    b'f: "Sender" <sip:0398765432@example.org>;tag=1928301774\r\n'
    b"i: a84b4c76e66710@pc33.example.org\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"m: <sip:sender@192.0.2.10:5062>\r\n"
    b"Subject: a folded\r\n header line\r\n"
    b"c: application/sdp\r\n"
    b"l: 4\r\n\r\nv=0\r\nEXTRA"
)


def test_a_request_with_compact_headers_and_multiple_vias_parses() -> None:
    msg = parse(INVITE)
    assert msg.method == "INVITE" and msg.request_uri.user == "0312345678"
    assert msg.request_uri.port == 5070
    assert [v.branch for v in msg.vias] == ["z9hG4bK776asdhds", "z9hG4bKfirst", "z9hG4bKsecond"]
    assert msg.top_via.param("rport") == ""
    assert msg.values("Record-Route") == ["<sip:192.0.2.10:5060;lr>", "<sip:10.0.0.9;lr>"]
    assert msg.to.uri.user == "0312345678" and msg.to.tag is None
    assert msg.from_.tag == "1928301774" and msg.from_.display == "Sender"
    assert msg.call_id == "a84b4c76e66710@pc33.example.org"
    assert msg.cseq == (314159, "INVITE")
    assert msg.get("Subject") == "a folded header line"
    assert msg.body == b"v=0\r"  # Content-Length wins over trailing bytes


def test_encode_then_parse_round_trips() -> None:
    msg = parse(INVITE)
    again = parse(msg.encode())
    assert again.headers == [(k, v) for k, v in msg.headers if k != "Content-Length"] + [("Content-Length", "4")]
    assert again.body == msg.body


def test_a_response_keeps_via_from_to_callid_cseq_and_adds_the_to_tag() -> None:
    msg = parse(INVITE)
    ok = response_to(msg, 200, to_tag="abc")
    assert ok.status == 200 and ok.reason == "OK"
    assert len(ok.values("Via")) == 3 and ok.to.tag == "abc"
    assert ok.values("Record-Route") == msg.values("Record-Route")
    trying = response_to(msg, 100)
    assert trying.to.tag is None and trying.values("Record-Route") == []


@pytest.mark.parametrize("data", [
    b"",
    b"\x00\xff\xfe garbage",
    b"INVITE sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n",  # no end of headers
    INVITE[: len(INVITE) - 20],  # truncated: body shorter than Content-Length
    INVITE.replace(b"CSeq: 314159 INVITE", b"CSeq: x INVITE"),
    INVITE.replace(b"CSeq: 314159 INVITE", b"CSeq: 1 BYE"),
    INVITE.replace(b"i: a84b4c76e66710@pc33.example.org\r\n", b""),
    INVITE.replace(b"Via: SIP/2.0/UDP 192.0.2.10:5060", b"Via: SIP/3.0/UDP 192.0.2.10:5060"),
    INVITE.replace(b"192.0.2.10:5060;branch", b"192.0.2.10:99999;branch"),
    INVITE.replace(b"INVITE sip:0312345678@192.0.2.10:5070 SIP/2.0", b"INVITE  SIP/2.0"),
    INVITE.replace(b"l: 4", b"l: -4"),
    INVITE.replace(b"Max-Forwards: 70", b"Max Forwards: 70"),
    b"SIP/2.0 99 Weird\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n",
    b"SIP/2.0 200 OK\r\n" + b"X-A: b\r\n" * 200 + b"\r\n",
    b"INVITE sip:a@b SIP/2.0\r\n" + b"X: " + b"a" * MAX_MESSAGE_BYTES + b"\r\n\r\n",  # oversized
    "INVITE sip:a@b SIP/2.0\r\nVia: \udcff\r\n\r\n".encode("utf-8", "surrogateescape"),
])
def test_garbage_is_refused_with_sip_message_error(data: bytes) -> None:
    with pytest.raises(SipMessageError):
        parse(data)


def test_uris_and_name_addrs() -> None:
    uri = SipUri.parse("sip:0312345678@[::1]:5070;transport=udp;lr")
    assert (uri.user, uri.host, uri.port, uri.lr) == ("0312345678", "::1", 5070, True)
    assert str(uri) == "sip:0312345678@[::1]:5070;transport=udp;lr"
    bare = NameAddr.parse("sip:a@example.org;tag=99")
    assert bare.tag == "99" and bare.uri.params == ()
    with pytest.raises(SipMessageError):
        SipUri.parse("tel:+81312345678")
    with pytest.raises(SipMessageError):
        NameAddr.parse("<sip:a@b")


def test_the_called_and_calling_numbers_of_an_inbound_call() -> None:
    from inkless.fax.sip.line import call_setup

    plain = parse(INVITE)
    assert (call_setup(plain).called_number, call_setup(plain).calling_number) == ("0312345678", "0398765432")
    carrier = parse(INVITE.replace(b"Max-Forwards: 70\r\n", (
        b"Max-Forwards: 70\r\nP-Called-Party-ID: <sip:0335804111@example.org>\r\n"
        b"Diversion: <sip:0355550000@example.org>;reason=unconditional\r\n"
        b"P-Asserted-Identity: \"Osaka\" <sip:0669410351@example.org>\r\n")))
    setup = call_setup(carrier)
    assert (setup.called_number, setup.calling_number) == ("0335804111", "0669410351")
    forwarded = parse(INVITE.replace(b"Max-Forwards: 70\r\n",
                                     b"Max-Forwards: 70\r\nDiversion: <sip:0355550000@example.org>\r\n"))
    assert call_setup(forwarded).called_number == "0355550000"
