"""SDP offer/answer for fax: G.711, T.38 in both offer shapes, refusals, malformed bodies."""

from __future__ import annotations

import pytest

from inkless.errors import SipMessageError
from inkless.fax.sip import sdp
from inkless.fax.sip.media_model import T38Params

AUDIO_OFFER = (b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
               b"m=audio 4000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n")
T38_REPLACING = (b"v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
                 b"m=image 4002 udptl t38\r\na=T38FaxVersion:0\r\na=T38MaxBitRate:9600\r\n"
                 b"a=T38FaxRateManagement:transferredTCF\r\na=T38FaxUdpEC:t38UDPRedundancy\r\n")
T38_ADDED = (b"v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n"
             b"m=audio 0 RTP/AVP 0\r\nc=IN IP4 192.0.2.1\r\n"
             b"m=image 4004 udptl t38\r\nc=IN IP4 192.0.2.7\r\na=T38FaxMaxDatagram:272\r\n")
BARESIP_REFUSAL = (b"v=0\r\no=- 1 3 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
                   b"m=image 0 udptl t38\r\n")


def test_audio_offer_picks_the_offerers_first_codec_we_support() -> None:
    offer = sdp.parse(AUDIO_OFFER)
    chosen = sdp.choose(offer, ("PCMU", "PCMA"), accept_t38=True)
    assert chosen == (sdp.AudioMedia("192.0.2.1", 4000, 8, "PCMA"), 0)
    assert sdp.choose(offer, ("PCMU",), accept_t38=True) == (sdp.AudioMedia("192.0.2.1", 4000, 0, "PCMU"), 0)


def test_answer_to_audio_has_only_g711_ptime_20_and_no_telephone_event() -> None:
    offer = sdp.parse(AUDIO_OFFER)
    media, index = sdp.choose(offer, ("PCMU", "PCMA"), accept_t38=True) or (None, 0)
    assert media is not None
    session = sdp.SdpSession("127.0.0.1", 42)
    answer = session.answer(offer, media, index, 20000, T38Params()).decode()
    assert "m=audio 20000 RTP/AVP 8\r\n" in answer and "a=ptime:20" in answer
    assert "telephone-event" not in answer and "a=rtpmap:8 PCMA/8000" in answer
    assert "o=inkless 42 43 IN IP4 127.0.0.1" in answer


@pytest.mark.parametrize(("body", "host", "port", "index"), [
    (T38_REPLACING, "192.0.2.1", 4002, 0), (T38_ADDED, "192.0.2.7", 4004, 1),
])
def test_both_t38_offer_shapes_are_accepted_and_answered_line_for_line(
        body: bytes, host: str, port: int, index: int) -> None:
    offer = sdp.parse(body)
    chosen = sdp.choose(offer, ("PCMU", "PCMA"), accept_t38=True)
    assert chosen is not None
    media, at = chosen
    assert isinstance(media, sdp.T38Media) and (media.host, media.port, at) == (host, port, index)
    answer = sdp.parse(sdp.SdpSession("127.0.0.1", 1).answer(offer, media, at, 20002, T38Params()))
    assert len(answer.media) == len(offer.media)
    assert answer.media[at].kind == "image" and answer.media[at].port == 20002
    assert all(m.port == 0 for i, m in enumerate(answer.media) if i != at)
    assert answer.media[at].attribute("T38FaxUdpEC") == "t38UDPRedundancy"


def test_redundant_audio_is_offered_and_answered_only_when_offered() -> None:
    ours = sdp.SdpSession("127.0.0.1", 7).offer_audio(20000, ("PCMU", "PCMA")).decode()
    assert "m=audio 20000 RTP/AVP 0 8 96\r\n" in ours and "a=rtpmap:96 red/8000" in ours and "a=fmtp:96 0/0/0" in ours
    offer = sdp.parse(AUDIO_OFFER.replace(b"RTP/AVP 8 0 101", b"RTP/AVP 8 0 101 99") + b"a=rtpmap:99 red/8000\r\n")
    media, index = sdp.choose(offer, ("PCMU", "PCMA"), accept_t38=False) or (None, 0)
    assert isinstance(media, sdp.AudioMedia) and media.red_payload_type == 99
    answer = sdp.SdpSession("127.0.0.1", 1).answer(offer, media, index, 1, T38Params()).decode()
    assert "m=audio 1 RTP/AVP 8 99\r\n" in answer and "a=rtpmap:99 red/8000" in answer
    plain = sdp.parse(AUDIO_OFFER)
    media, index = sdp.choose(plain, ("PCMU", "PCMA"), accept_t38=False) or (None, 0)
    assert media is not None and media.red_payload_type is None
    assert "red" not in sdp.SdpSession("127.0.0.1", 1).answer(plain, media, index, 1, T38Params()).decode()


def test_t38_answer_takes_the_lower_bit_rate() -> None:
    offer = sdp.parse(T38_REPLACING)
    media, at = sdp.choose(offer, ("PCMU",), accept_t38=True) or (None, 0)
    assert isinstance(media, sdp.T38Media) and media.params.max_bit_rate == 9600
    answer = sdp.parse(sdp.SdpSession("127.0.0.1", 1).answer(offer, media, at, 1, T38Params()))
    assert answer.media[0].attribute("T38MaxBitRate") == "9600"


def test_t38_is_not_taken_when_off_and_an_image_only_offer_is_then_refused() -> None:
    assert sdp.choose(sdp.parse(T38_REPLACING), ("PCMU",), accept_t38=False) is None


def test_an_image_port_0_answer_is_a_refusal() -> None:
    assert sdp.answered_media(sdp.parse(BARESIP_REFUSAL), "t38", ("PCMU",)) is None
    assert isinstance(sdp.answered_media(sdp.parse(T38_REPLACING), "t38", ("PCMU",)), sdp.T38Media)


@pytest.mark.parametrize("body", [
    b"", b"garbage", b"v=0\r\nc=IN IP4 999.1.1.1\r\nm=audio 1 RTP/AVP 0\r\n", b"v=0\r\nm=audio x RTP/AVP 0\r\n",
    b"v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 70000 RTP/AVP 0\r\n", b"v=1\r\nm=audio 1 RTP/AVP 0\r\n",
    b"v=0\r\n" + b"a=x\r\n" * 3000, b"v=0\r\n\xff\xfe\r\n",
])
def test_malformed_sdp_is_refused(body: bytes) -> None:
    with pytest.raises(SipMessageError):
        sdp.parse(body)


def test_audio_without_connection_address_cannot_be_used() -> None:
    offer = sdp.parse(b"v=0\r\nm=audio 4000 RTP/AVP 0\r\n")
    with pytest.raises(SipMessageError):
        sdp.choose(offer, ("PCMU",), accept_t38=False)
