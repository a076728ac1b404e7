"""One call's signalling against a scripted far end over loopback UDP, with a fake media session.

The rules from the field failures in DESIGN.md: a session refresh keeps the media; a refused offer
restores the SDP exactly; an image port 0 answer is a refusal; no media change after phase E;
nothing is sent in an ended dialog; unknown methods get 405.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from inkless.fax.sip import sdp
from inkless.fax.sip.call import CallPolicy, SipCall
from inkless.fax.sip.dialog import Dialog
from inkless.fax.sip.media_model import T38Params
from inkless.fax.sip.message import SipMessage, new_tag, parse, response_to
from inkless.fax.sip.transaction import ServerTransaction
from inkless.fax.sip.ua import UserAgent

AUDIO = "v=0\r\no=far 1 {v} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
T38 = ("v=0\r\no=far 1 {v} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=image 4002 udptl t38\r\na=T38FaxVersion:0\r\n")
REFUSED_IMAGE = "v=0\r\no=far 1 {v} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=image 0 udptl t38\r\n"


@dataclass
class FakeProgress:
    phase: str = "B"


@dataclass
class FakeSession:
    """Records what the signalling asks of the media."""

    commands: list[tuple[str, Any]] = field(default_factory=list)
    progress: FakeProgress = field(default_factory=FakeProgress)
    hung_up: bool = False

    def start_audio(self, remote: tuple[str, int], payload_type: int, codec: str, *,
                    red_payload_type: int | None = None) -> None:
        self.commands.append(("audio", remote))

    def switch_to_t38(self, remote: tuple[str, int], params: T38Params) -> None:
        self.commands.append(("t38", remote))

    def switch_to_audio(self, remote: tuple[str, int], payload_type: int, codec: str, *,
                        red_payload_type: int | None = None) -> None:
        self.commands.append(("back-to-audio", remote))

    def set_remote(self, remote: tuple[str, int]) -> None:
        self.commands.append(("move", remote))

    def hangup(self) -> None:
        self.hung_up = True


@dataclass
class FakePort:
    port: int = 40000


class FarEnd:
    """A scripted SIP peer on a UDP socket: sends requests, collects what inkless sends back."""

    def __init__(self, ua_port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.ua = ("127.0.0.1", ua_port)
        self.tag = new_tag()
        self.cseq = 1
        self.remote_tag = ""

    def request(self, method: str, body: str = "", *, in_dialog: bool = True, cseq: int | None = None) -> SipMessage:
        msg = SipMessage(method=method, uri=f"sip:0335804111@127.0.0.1:{self.ua[1]}")
        msg.add("Via", f"SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK{new_tag()};rport")
        msg.add("From", f"<sip:0312340001@127.0.0.1>;tag={self.tag}")
        to_tag = f";tag={self.remote_tag}" if in_dialog and self.remote_tag else ""
        msg.add("To", f"<sip:0335804111@127.0.0.1>{to_tag}")
        msg.add("Call-ID", "call-under-test")
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        msg.add("CSeq", f"{cseq} {method}")
        msg.add("Contact", f"<sip:far@127.0.0.1:{self.port}>")
        if body:
            msg.add("Content-Type", "application/sdp")
            msg.body = body.encode()
        self.sock.sendto(msg.encode(), self.ua)
        return msg

    async def final(self, method: str) -> SipMessage:
        loop = asyncio.get_running_loop()
        while True:
            data = await asyncio.wait_for(loop.sock_recv(self.sock, 65535), 5.0)
            msg = parse(data)
            if msg.is_request:
                self.on_request(msg)
                continue
            if msg.cseq[1] == method and (msg.status or 0) >= 200:
                return msg

    async def next_request(self) -> SipMessage:
        loop = asyncio.get_running_loop()
        while True:
            msg = parse(await asyncio.wait_for(loop.sock_recv(self.sock, 65535), 5.0))
            if msg.is_request:
                return msg

    def on_request(self, msg: SipMessage) -> None:
        pass

    def respond(self, request: SipMessage, status: int, body: str = "") -> None:
        response = response_to(request, status, to_tag=self.tag)
        response.set("To", request.get("To") or "")
        response.add("Contact", f"<sip:far@127.0.0.1:{self.port}>")
        if body:
            response.add("Content-Type", "application/sdp")
            response.body = body.encode()
        self.sock.sendto(response.encode(), self.ua)

    def ack(self, cseq: int) -> None:
        self.request("ACK", cseq=cseq)


@dataclass
class Harness:
    loop: asyncio.AbstractEventLoop
    ua: UserAgent
    far: FarEnd
    calls: list[SipCall]
    session: FakeSession

    @property
    def call(self) -> SipCall:
        return self.calls[0]


@pytest.fixture
def harness() -> Iterator[Harness]:
    loop = asyncio.new_event_loop()
    calls: list[SipCall] = []
    session = FakeSession()

    def on_invite(invite: SipMessage, tx: ServerTransaction, _source: tuple[str, int]) -> None:
        policy = CallPolicy(codecs=("PCMU",), t38="accept", t38_params=T38Params())
        call = SipCall(ua, port=FakePort(), session=session, policy=policy, host="127.0.0.1",  # type: ignore[arg-type]
                       on_fallback=lambda _r: None)
        call.call_id = invite.call_id
        call.invite_tx = tx
        offer = sdp.parse(invite.body)
        media, index = sdp.choose(offer, policy.codecs, policy.accept_t38) or (None, 0)
        assert media is not None
        dialog = Dialog.as_uas(invite, "ourtag", ua.contact("0335804111"))
        call.dialog = dialog
        ua.add_dialog(dialog, call)
        body = call.sdp.answer(offer, media, index, 40000, policy.t38_params, bump=False)
        call.local_body = body
        ok = response_to(invite, 200, to_tag="ourtag")
        ok.add("Contact", dialog.local_contact)
        ok.add("Content-Type", "application/sdp")
        ok.body = body
        tx.respond(ok)
        call.apply(media)
        calls.append(call)

    ua = UserAgent(loop, on_invite=on_invite, trusted=lambda _h: True, on_untrusted=lambda _r, _s: None,
                   advertised_host="127.0.0.1")
    loop.run_until_complete(loop.create_datagram_endpoint(lambda: ua, local_addr=("127.0.0.1", 0)))
    far = FarEnd(ua.port)
    try:
        yield Harness(loop, ua, far, calls, session)
    finally:
        far.sock.close()
        if ua.transport is not None:
            ua.transport.close()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()


def _answered(h: Harness) -> SipMessage:
    async def run() -> SipMessage:
        invite = h.far.request("INVITE", AUDIO.format(v=1), in_dialog=False, cseq=1)
        ok = await h.far.final("INVITE")
        h.far.remote_tag = ok.to.tag or ""
        h.far.ack(invite.cseq[0])
        await asyncio.sleep(0.05)
        return ok
    return h.loop.run_until_complete(run())


def _exchange(h: Harness, method: str, body: str = "") -> SipMessage:
    async def run() -> SipMessage:
        request = h.far.request(method, body)
        final = await h.far.final(method)
        if method == "INVITE":
            h.far.ack(request.cseq[0])
        await asyncio.sleep(0.05)
        return final
    return h.loop.run_until_complete(run())


def _origin(body: bytes) -> str:
    return next(line for line in body.decode().splitlines() if line.startswith("o="))


def test_a_session_refresh_reinvite_or_update_keeps_the_media_and_the_sdp(harness: Harness) -> None:
    ok = _answered(harness)
    assert harness.session.commands == [("audio", ("127.0.0.1", 4000))]
    refresh = _exchange(harness, "INVITE", AUDIO.format(v=1))
    assert refresh.status == 200 and _origin(refresh.body) == _origin(ok.body)
    update = _exchange(harness, "UPDATE", AUDIO.format(v=1))
    assert update.status == 200 and _origin(update.body) == _origin(ok.body)
    offerless = _exchange(harness, "INVITE")
    assert offerless.status == 200 and offerless.body == ok.body
    assert harness.session.commands == [("audio", ("127.0.0.1", 4000))]  # nothing moved


def test_the_far_end_moves_to_t38_and_no_media_change_after_phase_e(harness: Harness) -> None:
    _answered(harness)
    moved = _exchange(harness, "INVITE", T38.format(v=2))
    assert moved.status == 200 and b"m=image 40000 udptl t38" in moved.body
    assert harness.session.commands[-1] == ("t38", ("127.0.0.1", 4002))
    harness.session.progress.phase = "E"
    back = _exchange(harness, "INVITE", AUDIO.format(v=3))
    assert back.status == 200 and b"m=image 40000" in back.body  # the current SDP, unchanged
    assert harness.session.commands[-1] == ("t38", ("127.0.0.1", 4002))


def test_a_refused_t38_offer_leaves_the_sdp_exactly_as_it_was(harness: Harness) -> None:
    ok = _answered(harness)

    async def offer_refused() -> tuple[int, SipMessage]:
        task = asyncio.ensure_future(harness.call.offer_t38())
        reinvite = await harness.far.next_request()
        assert b"m=image 40000 udptl t38" in reinvite.body
        harness.far.respond(reinvite, 488)
        return await task, reinvite

    status, reinvite = harness.loop.run_until_complete(offer_refused())
    assert status == 488 and harness.call.fallback_reason is not None
    # Our offer carried version +1; refused, the next answer carries the version we had before.
    assert int(_origin(reinvite.body).split()[2]) == int(_origin(ok.body).split()[2]) + 1
    offerless = _exchange(harness, "INVITE")
    assert offerless.body == ok.body
    assert harness.session.commands == [("audio", ("127.0.0.1", 4000))]
    # The refused offer never happened: a later offer is again the current version + 1.
    _status, second = harness.loop.run_until_complete(offer_refused())
    assert _origin(second.body) == _origin(reinvite.body)


def test_an_image_port_0_answer_is_a_refusal_and_the_audio_is_offered_again(harness: Harness) -> None:
    _answered(harness)

    async def baresip_style() -> tuple[int, SipMessage]:
        task = asyncio.ensure_future(harness.call.offer_t38())
        reinvite = await harness.far.next_request()
        harness.far.respond(reinvite, 200, REFUSED_IMAGE.format(v=2))
        again = await harness.far.next_request()  # the ACK ...
        while again.method == "ACK":
            again = await harness.far.next_request()  # ... then the audio offer
        harness.far.respond(again, 200, AUDIO.format(v=3))
        return await task, again

    status, audio_offer = harness.loop.run_until_complete(baresip_style())
    assert status == 488 and audio_offer.method == "INVITE" and b"m=audio 40000 RTP/AVP 0" in audio_offer.body
    assert ("t38", ("127.0.0.1", 4002)) not in harness.session.commands


def test_unknown_methods_get_405_and_bye_ends_the_dialog_for_good(harness: Harness) -> None:
    _answered(harness)
    info = _exchange(harness, "INFO")
    assert info.status == 405 and "BYE" in (info.get("Allow") or "")
    bye = _exchange(harness, "BYE")
    assert bye.status == 200 and harness.session.hung_up
    assert harness.call.dialog is not None and harness.call.dialog.ended

    async def hang_up_sends_nothing() -> None:
        await harness.call.hang_up()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(harness.far.next_request(), 0.5)

    harness.loop.run_until_complete(hang_up_sends_nothing())
    late = _exchange(harness, "INVITE", AUDIO.format(v=9))
    assert late.status == 481


def test_t38_failing_in_phase_b_moves_the_call_back_to_g711_and_is_remembered(harness: Harness) -> None:
    _answered(harness)
    _exchange(harness, "INVITE", T38.format(v=2))  # the far end moved us to T.38
    remembered: list[str] = []
    harness.call.on_fallback = remembered.append

    async def fallback() -> SipMessage:
        task = asyncio.ensure_future(harness.call.offer_audio_fallback())
        reinvite = await harness.far.next_request()
        harness.far.respond(reinvite, 200, AUDIO.format(v=3))
        await task
        return reinvite

    reinvite = harness.loop.run_until_complete(fallback())
    assert reinvite.method == "INVITE" and b"m=audio 40000 RTP/AVP 0" in reinvite.body
    assert harness.session.commands[-1] == ("back-to-audio", ("127.0.0.1", 4000))
    assert remembered == ["T.38 failed in phase B"]
