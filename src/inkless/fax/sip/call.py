"""One SIP fax call: its dialog, its SDP state and its media session (inbound or outbound).

The signalling runs on the line's asyncio loop; the media (spandsp in real time) runs in the
session's own thread; the thread that placed or answered the call waits for the session's
outcome and then ends the dialog. Rules kept here (each from a field failure, see DESIGN.md):
a refused offer leaves the media exactly as it was; a session refresh (re-INVITE or UPDATE)
is answered with the current SDP and changes nothing; no media change after T.30 phase E;
nothing is sent in a dialog that has ended.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from inkless.errors import SipMessageError
from inkless.fax.sip import sdp
from inkless.fax.sip.dialog import Dialog
from inkless.fax.sip.message import SipMessage, response_to
from inkless.fax.sip.transaction import ServerTransaction
from inkless.fax.sip.ua import SipTimeout, UserAgent

if TYPE_CHECKING:
    from inkless.fax.sip.media import FaxMediaSession, MediaPort, T38Params

log = logging.getLogger("inkless.fax.sip")

REFUSED = (488, 415, 606)
# After answering, the side with fax_sip_t38 = prefer offers T.38 this long after the audio started.
T38_OFFER_DELAY_S = 1.0


@dataclass
class CallPolicy:
    """What this call may negotiate."""

    codecs: tuple[str, ...]
    t38: str  # prefer | accept | off
    t38_params: T38Params
    audio_only: bool = False  # the remote number is remembered as needing the softmodem

    @property
    def accept_t38(self) -> bool:
        return self.t38 != "off" and not self.audio_only

    @property
    def offer_t38(self) -> bool:
        return self.t38 == "prefer" and not self.audio_only


class SipCall:
    """The signalling side of one call (implements ``DialogOwner``)."""

    def __init__(
        self, ua: UserAgent, *, port: MediaPort, session: FaxMediaSession, policy: CallPolicy,
        host: str, on_fallback: Callable[[str], None],
    ) -> None:
        self.ua = ua
        self.port = port
        self.session = session
        self.policy = policy
        self.sdp = sdp.SdpSession(host, 10**6 + secrets.randbelow(10**9))
        self.media: sdp.Media | None = None
        self.local_body = b""
        self.dialog: Dialog | None = None
        self.invite_tx: ServerTransaction | None = None
        self.call_id = ""
        self.gateway: str | None = None
        self.on_fallback = on_fallback
        self.fallback_reason: str | None = None
        # Set (in the event loop) when the process stops while the INVITE still rings: CANCEL it now.
        # (asyncio.Event binds to a loop only when first awaited, so it may be made in any thread.)
        self.stop_ringing = asyncio.Event()
        self._offering = False
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- media state ---------------------------------------------------------------------

    def _past_phase_e(self) -> bool:
        progress = getattr(self.session, "progress", None)
        phase = getattr(progress, "phase", "") if progress is not None else ""
        return str(phase).upper().startswith("E") or bool(getattr(self.session, "finished", False))

    def apply(self, media: sdp.Media) -> None:
        """Point the media session at newly negotiated ``media``."""
        previous = self.media
        self.media = media
        if isinstance(media, sdp.T38Media):
            if not isinstance(previous, sdp.T38Media):
                self.session.switch_to_t38(media.remote, media.params)
            elif previous.remote != media.remote:
                self.session.set_remote(media.remote)
        elif previous is None:
            self.session.start_audio(media.remote, media.payload_type, media.codec,
                                     red_payload_type=media.red_payload_type)
        elif isinstance(previous, sdp.T38Media):
            self.session.switch_to_audio(media.remote, media.payload_type, media.codec,
                                         red_payload_type=media.red_payload_type)
        elif previous.remote != media.remote:
            self.session.set_remote(media.remote)

    def _spawn(self, coro: Any) -> None:
        task = self.ua.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- inbound requests in the dialog --------------------------------------------------

    def on_request(self, request: SipMessage, tx: ServerTransaction | None) -> None:
        method = request.method
        if method == "ACK":
            if self.invite_tx is not None:
                self.invite_tx.ack()
            return
        assert tx is not None
        if self.dialog is None or self.dialog.ended:
            tx.respond(response_to(request, 481))
            return
        if method == "BYE":
            tx.respond(response_to(request, 200))
            self.ua.drop_dialog(self.dialog)
            self.session.hangup()
        elif method == "INVITE":
            self._on_reinvite(request, tx)
        elif method == "UPDATE":
            self._on_update(request, tx)
        elif method == "OPTIONS":
            tx.respond(response_to(request, 200))
        else:
            tx.respond(response_to(request, 405))

    def _ok_with_sdp(self, request: SipMessage, body: bytes) -> SipMessage:
        assert self.dialog is not None
        ok = response_to(request, 200, to_tag=self.dialog.local_tag)
        ok.add("Contact", self.dialog.local_contact)
        ok.add("Content-Type", "application/sdp")
        ok.body = body
        return ok

    def _on_reinvite(self, request: SipMessage, tx: ServerTransaction) -> None:
        assert self.dialog is not None
        if self._offering:
            tx.respond(response_to(request, 491))  # our own offer is in flight (glare)
            return
        self.dialog.refresh_target(request)
        self.invite_tx = tx
        if not request.body:
            # An offerless re-INVITE: we offer what we have now (and keep it).
            tx.respond(self._ok_with_sdp(request, self.local_body))
            return
        try:
            offer = sdp.parse(request.body)
        except SipMessageError as exc:
            log.warning("call %s: malformed SDP in re-INVITE: %s", self.call_id, exc)
            tx.respond(response_to(request, 488, "Not Acceptable Here (malformed SDP)"))
            return
        chosen = sdp.choose(offer, self.policy.codecs, self.policy.accept_t38)
        if chosen is None:
            tx.respond(response_to(request, 488))
            return
        media, index = chosen
        same = self.media is not None and media.kind == self.media.kind and media.remote == self.media.remote
        if same or self._past_phase_e():
            # A session refresh, or a change after phase E: answer with what we have, change nothing.
            answer = self.sdp.answer(offer, self.media or media, index, self.port.port, self.policy.t38_params,
                                     bump=False) if self.media is not None and self.media.kind == media.kind \
                else self.local_body
            tx.respond(self._ok_with_sdp(request, answer))
            return
        body = self.sdp.answer(offer, media, index, self.port.port, self.policy.t38_params)
        self.local_body = body
        tx.respond(self._ok_with_sdp(request, body))
        log.info("call %s: far end moved the media to %s", self.call_id, media.kind)
        self.apply(media)

    def _on_update(self, request: SipMessage, tx: ServerTransaction) -> None:
        assert self.dialog is not None
        self.dialog.refresh_target(request)
        if not request.body:
            ok = response_to(request, 200, to_tag=self.dialog.local_tag)
            ok.add("Contact", self.dialog.local_contact)
            tx.respond(ok)
            return
        # UPDATE during a fax is a session refresh: the current SDP, media as it is.
        tx.respond(self._ok_with_sdp(request, self.local_body))

    # --- our offers ------------------------------------------------------------------------

    def schedule_t38_offer(self) -> None:
        """Offer T.38 shortly after the audio started (``fax_sip_t38 = prefer``)."""
        if self.policy.offer_t38:
            self._spawn(self._t38_offer_later())

    async def _t38_offer_later(self) -> None:
        await asyncio.sleep(T38_OFFER_DELAY_S)
        for attempt in range(2):
            status = await self.offer_t38()
            if status != 491 or attempt:
                return
            await asyncio.sleep(0.5 + secrets.randbelow(1500) / 1000)  # glare: try once more (RFC 3261 §14.1)

    async def offer_t38(self) -> int:
        """Re-INVITE to T.38; returns the final status. A refusal keeps (or restores) the audio."""
        if self.dialog is None or self.dialog.ended or isinstance(self.media, sdp.T38Media) or self._past_phase_e():
            return 0
        saved_version = self.sdp.version
        body = self.sdp.offer_t38(self.port.port, self.policy.t38_params)
        response = await self._reinvite(body)
        if response is None:
            self.sdp.version = saved_version
            return 0
        status = response.status or 0
        if 200 <= status < 300:
            try:
                answered = sdp.answered_media(sdp.parse(response.body), "t38", self.policy.codecs)
            except SipMessageError:
                answered = None
            if isinstance(answered, sdp.T38Media):
                self.local_body = body
                log.info("call %s: T.38 accepted by the far end", self.call_id)
                self.apply(answered)
                return status
            # 200 with the image port 0 (baresip) is a refusal that may have stopped the far end's audio:
            # offer the audio we had again, so both ends are back where they were.
            self._refused("the far end answered the T.38 offer with port 0")
            if self.media is not None and isinstance(self.media, sdp.AudioMedia):
                audio_body = self.sdp.offer_audio(self.port.port, (self.media.codec,))
                restored = await self._reinvite(audio_body)
                if restored is not None and 200 <= (restored.status or 0) < 300:
                    self.local_body = audio_body
                    try:
                        back = sdp.answered_media(sdp.parse(restored.body), "audio", self.policy.codecs)
                    except SipMessageError:
                        back = None
                    if back is not None:
                        self.apply(back)
            return 488
        self.sdp.version = saved_version  # the offer never happened: the next one carries the current SDP
        if status in REFUSED:
            self._refused(f"T.38 re-INVITE refused with {status} {response.reason}")
        return status

    def _refused(self, reason: str) -> None:
        log.info("call %s: %s; the fax goes on in G.711", self.call_id, reason)
        self.fallback_reason = reason
        self.on_fallback(reason)

    async def offer_audio_fallback(self) -> None:
        """T.38 failed in phase B: move back to G.711 by re-INVITE (the softmodem takes over)."""
        if self.dialog is None or self.dialog.ended or not isinstance(self.media, sdp.T38Media):
            return
        self._refused("T.38 failed in phase B")
        body = self.sdp.offer_audio(self.port.port, self.policy.codecs)
        response = await self._reinvite(body)
        if response is not None and 200 <= (response.status or 0) < 300:
            try:
                back = sdp.answered_media(sdp.parse(response.body), "audio", self.policy.codecs)
            except SipMessageError:
                back = None
            if back is not None:
                self.local_body = body
                self.apply(back)

    async def _reinvite(self, body: bytes) -> SipMessage | None:
        assert self.dialog is not None
        self._offering = True
        try:
            request = self.dialog.request("INVITE", self.ua.via, body=body)
            future, _tx = self.ua.request(request, self.dialog.next_hop())
            try:
                response = await future
            except SipTimeout:
                log.warning("call %s: no answer to our re-INVITE", self.call_id)
                return None
            status = response.status or 0
            if 200 <= status < 300 and not self.dialog.ended:
                self.dialog.refresh_target(response)
                ack = self.dialog.request("ACK", self.ua.via, cseq=request.cseq[0])
                self.ua.send(ack.encode(), self.dialog.next_hop())
            return response
        finally:
            self._offering = False

    # --- the end ---------------------------------------------------------------------------

    async def hang_up(self) -> None:
        """Send BYE unless the dialog has already ended (then nothing is sent)."""
        for task in list(self._tasks):
            task.cancel()
        dialog = self.dialog
        if dialog is None or dialog.ended:
            return
        self.ua.drop_dialog(dialog)
        bye = dialog.request("BYE", self.ua.via)
        future, _tx = self.ua.request(bye, dialog.next_hop())
        try:
            await asyncio.wait_for(future, 40.0)
        except (SipTimeout, TimeoutError):
            log.info("call %s: no answer to our BYE", self.call_id)
