"""The ``sip`` line: inkless as a native SIP fax endpoint (a FaxLine like loopback and spool).

One asyncio loop in a thread carries the SIP signalling (registration, every call's dialog);
each call's media runs in its own FaxMediaSession thread; ``dial`` blocks its caller's thread
until its call is over, as every FaxLine does. See docs/fax-sip.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import tempfile
import threading
import time
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inkless import timefmt
from inkless.clock import Clock, SystemClock
from inkless.errors import FaxError
from inkless.fax import header as fax_header
from inkless.fax.line import BUSY, DEFAULT_DIAL_TIMEOUT_S, NO_ANSWER, IncomingCallHandler, register_line
from inkless.fax.model import CallResult, CallSetup
from inkless.fax.sip import sdp
from inkless.fax.sip.call import CallPolicy, SipCall
from inkless.fax.sip.dialog import Dialog
from inkless.fax.sip.message import NameAddr, SipMessage, SipUri, new_branch, new_tag, response_to
from inkless.fax.sip.options import SipOptions, sip_options
from inkless.fax.sip.register import Registration, RegistrationState
from inkless.fax.sip.status import CallStatus, LineStatusFile, SoftmodemMemory
from inkless.fax.sip.transaction import Address, ServerTransaction
from inkless.fax.sip.ua import Credentials, SipTimeout, UserAgent, address_matcher, out_of_dialog_request
from inkless.fax.terminal import TerminalOptions, call_result

if TYPE_CHECKING:
    from inkless.config import Settings
    from inkless.fax.sip.media import FaxMediaSession, MediaPort, T38Params

log = logging.getLogger("inkless.fax.sip")

# How long an outbound call may ring before we CANCEL it ("no answer"), within the dial timeout.
RING_TIMEOUT_S = 60.0
# How long a caller is listened to for fax tones before a voice call is hung up.
VOICE_TIMEOUT_S = 30.0
# The longest call we keep (a runaway far end is hung up).
MAX_CALL_S = 3600.0
FAILOVER_STATUSES = (408, 500, 502, 503, 504)


def _local_address(options: SipOptions) -> str:
    """The address to put in Via, Contact and SDP: the listen address, or the route towards the far end."""
    host = options.listen[0]
    if host not in ("0.0.0.0", "::"):  # noqa: S104 - comparing, not binding
        return host
    targets = options.outbound_targets
    probe_host = targets[0].host if targets else "127.0.0.1"
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((probe_host, 9))  # no packet is sent: this only asks the kernel for the route
        return str(probe.getsockname()[0])
    return "127.0.0.1"


def _user(value: str | None) -> str | None:
    if not value:
        return None
    with contextlib.suppress(Exception):
        return NameAddr.parse(value).uri.user
    return None


def call_setup(invite: SipMessage) -> CallSetup:
    """DID and CID of an inbound INVITE (P-Called-Party-ID / Diversion / To / Request-URI; PAI / From)."""
    diversion = invite.values("Diversion")
    asserted = invite.values("P-Asserted-Identity")
    called = (_user(invite.get("P-Called-Party-ID")) or _user(diversion[0] if diversion else None)
              or invite.to.uri.user or invite.request_uri.user)
    calling = _user(asserted[0] if asserted else None) or invite.from_.uri.user
    return CallSetup(called_number=(called or None) and called[:64], calling_number=(calling or None) and calling[:64])


class SipLine:
    """A FaxLine over SIP: registration, outbound calls through the gateways, inbound calls answered."""

    name = "sip"

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        # The header line shows the office's time of the call (Tokyo), whatever the server's TZ is.
        self.clock: Clock = clock or SystemClock()
        self.options = sip_options(settings)
        self.host = _local_address(self.options)
        self.status = LineStatusFile(settings.data_dir / "fax" / "sip-status.json")
        self.softmodem = SoftmodemMemory(settings)
        self.status.set_audit(self._audit_later)
        self._audited: dict[str, float] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ua: UserAgent | None = None
        self._registration: Registration | None = None
        self._handler: IncomingCallHandler | None = None
        self._calls: dict[str, tuple[SipCall, CallStatus]] = {}
        self._lock = threading.Lock()
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._publisher: asyncio.Task[None] | None = None

    # --- the loop ------------------------------------------------------------------------

    def _ensure_started(self) -> UserAgent:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run_loop, name="sip-line", daemon=True)
                self._thread.start()
        self._started.wait(10.0)
        if self._start_error is not None:
            raise FaxError(f"SIP line cannot listen on {self.options.listen[0]}:{self.options.listen[1]}: "
                           f"{self._start_error}")
        assert self._ua is not None
        return self._ua

    def _run_loop(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            ua = UserAgent(loop, on_invite=self._on_invite, trusted=address_matcher(list(self.options.trusted)),
                           on_untrusted=self._on_untrusted, advertised_host=self.host)
            loop.run_until_complete(loop.create_datagram_endpoint(lambda: ua, local_addr=self.options.listen))
            self._ua = ua
            if self.options.registrar is not None:
                self._registration = Registration(ua, self.options.registrar, self._credentials(),
                                                  on_change=lambda _s: self._publish())
                self._registration.start()
            self._publisher = loop.create_task(self._publish_loop())
        except BaseException as exc:  # reported to the thread that started the line
            self._start_error = exc
            self._started.set()
            loop.close()
            return
        self._started.set()
        log.info("SIP line listening on %s:%s (advertised as %s)", *self.options.listen, self.host)
        try:
            loop.run_forever()
        finally:
            loop.close()

    def _credentials(self) -> Credentials | None:
        if not self.options.username:
            return None
        return Credentials(self.options.username, self.options.password)

    def _call_soon(self, coro: Any) -> Future[Any]:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    # --- status ----------------------------------------------------------------------------

    async def _publish_loop(self) -> None:
        while True:
            self._publish()
            await asyncio.sleep(1.0)

    def _publish(self) -> None:
        registration = self._registration.state if self._registration else RegistrationState(state="none")
        with self._lock:
            calls = [status.refreshed(call) for call, status in self._calls.values()]
        malformed = self._ua.malformed if self._ua else 0
        self.status.write(registration, calls, listen=f"{self.options.listen[0]}:{self.options.listen[1]}",
                          malformed=malformed)

    @property
    def registration(self) -> RegistrationState:
        """The registration as it is now (state, expiry, last error)."""
        return self._registration.state if self._registration else RegistrationState(state="none")

    # --- media ------------------------------------------------------------------------------

    def _media(self, *, calling: bool, options: TerminalOptions, tx: Path | None, rx: Path | None,
               holder: list[SipCall], header: str | None = None) -> tuple[MediaPort, FaxMediaSession]:
        from inkless.fax.sip.media import FaxMediaSession, MediaPort

        port = MediaPort.allocate(self.host, self.options.rtp_ports)

        def t38_failed(_outcome: object) -> None:
            # T.38 failed in phase B (media thread): the call moves back to G.711 by re-INVITE.
            if holder and self._loop is not None:
                asyncio.run_coroutine_threadsafe(holder[0].offer_audio_fallback(), self._loop)

        try:
            session = FaxMediaSession(port, calling=calling, options=options, tx_tiff=tx, rx_tiff=rx, header=header,
                                      voice_timeout_s=VOICE_TIMEOUT_S, max_duration_s=MAX_CALL_S,
                                      on_t38_failed=t38_failed)
        except BaseException:
            port.close()
            raise
        return port, session

    def _t38_params(self) -> T38Params:
        from inkless.fax.sip.media_model import T38Params

        return T38Params()

    def _policy(self, remote_number: str | None) -> CallPolicy:
        audio_only = bool(remote_number) and self.softmodem.remembered(remote_number or "")
        return CallPolicy(codecs=self.options.codecs, t38=self.options.t38, t38_params=self._t38_params(),
                          audio_only=audio_only)

    def _track(self, call: SipCall, status: CallStatus) -> None:
        with self._lock:
            self._calls[call.call_id] = (call, status)

    def _untrack(self, call: SipCall) -> None:
        with self._lock:
            self._calls.pop(call.call_id, None)

    # --- outbound ---------------------------------------------------------------------------

    def dial(self, number: str, tiff: bytes, *, ident: str, header: str | None, ecm: bool = True,
             timeout_s: float = DEFAULT_DIAL_TIMEOUT_S) -> CallResult:
        """Call ``number`` through the gateways in order and send ``tiff``."""
        ua = self._ensure_started()
        targets = self.options.outbound_targets
        if not targets:
            raise FaxError("the SIP line has no gateway or registrar to call through (set fax_sip_gateways)")
        with self._lock:
            if len(self._calls) >= self.options.max_calls:
                raise FaxError(BUSY)
        if header:
            tiff = fax_header.stamp_tiff(tiff, header, timefmt.to_local(self.clock.now(), self.settings.tz))
        started = datetime.now(UTC)
        setup = CallSetup(called_number=number, calling_number=ident or None)
        options = TerminalOptions(ident=ident, ecm=ecm)
        with tempfile.TemporaryDirectory(prefix="inkless-sip-") as tmp:
            tx_file = Path(tmp) / "tx.tif"
            tx_file.write_bytes(tiff)
            holder: list[SipCall] = []
            port, session = self._media(calling=True, options=options, tx=tx_file, rx=None, holder=holder)
            call = SipCall(ua, port=port, session=session, policy=self._policy(number), host=self.host,
                           on_fallback=lambda reason: self.softmodem.remember(number, reason))
            holder.append(call)
            call.call_id = secrets.token_hex(12) + "@" + self.host
            status = CallStatus(call_id=call.call_id, direction="SEND", number=number, started_at=started)
            self._track(call, status)
            try:
                try:
                    answered_at = self._call_soon(self._invite(call, number, targets, timeout_s, ident)).result()
                except BaseException:
                    session.hangup()
                    raise
                try:
                    outcome = session.wait(timeout_s)
                except FaxError:  # the dial timeout (kill time) passed mid-call: hang up
                    session.hangup()
                    outcome = session.wait(30.0)
                with contextlib.suppress(Exception):
                    self._call_soon(call.hang_up()).result(45.0)
            finally:
                self._untrack(call)
                port.close()
            # The media session's own count of line time (audio/T.38 ticks), else the wall time since answer.
            line_s = session.duration_s or max(0.0, time.monotonic() - answered_at)
            result = call_result(outcome, sending=True, line_seconds=line_s, started_at=started,
                                 local_ident=ident, setup=setup)
        return _with_sip(result, call)

    async def _invite(self, call: SipCall, number: str, targets: tuple[SipUri, ...], timeout_s: float,
                      ident: str) -> float:
        ua = call.ua
        last_error = NO_ANSWER
        for gateway in targets:
            call.gateway = str(gateway)
            body = call.sdp.offer_audio(call.port.port, self.options.codecs, bump=False)
            uri = SipUri(host=gateway.host, port=gateway.port, user=number)
            user = self.options.username or ident or "inkless"
            domain = self.options.registrar.host if self.options.registrar else self.host
            from_ = f"<sip:{user}@{domain}>;tag={new_tag()}"
            to = f"<sip:{number}@{domain}>"
            sent: list[tuple[SipMessage, Any]] = []

            def on_sent(request: SipMessage, tx: Any, sent: list[tuple[SipMessage, Any]] = sent) -> None:
                sent.append((request, tx))

            def build(cseq: int, uri: SipUri = uri, from_: str = from_, to: str = to, body: bytes = body,
                      user: str = user) -> SipMessage:
                return out_of_dialog_request("INVITE", str(uri), via=ua.via, from_=from_, to=to, call_id=call.call_id,
                                             cseq=cseq, contact=ua.contact(user), branch=new_branch(), body=body)

            def on_provisional(response: SipMessage) -> None:
                if response.status == 183 and response.body and call.media is None:
                    with contextlib.suppress(Exception):  # early media is a courtesy; the 200 decides
                        media = sdp.answered_media(sdp.parse(response.body), "audio", self.options.codecs)
                        if media is not None:
                            call.apply(media)

            if call.stop_ringing.is_set():
                break  # the process is stopping: no new INVITE
            ring = min(RING_TIMEOUT_S, timeout_s)
            task = ua.loop.create_task(ua.request_with_auth(
                build, gateway.address(), self._credentials(), on_provisional=on_provisional,
                on_sent=on_sent))
            stopping = ua.loop.create_task(call.stop_ringing.wait())
            try:
                await asyncio.wait({task, stopping}, timeout=ring, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopping.cancel()
            if not task.done():
                # Rang too long, or the process is stopping: CANCEL the INVITE, as a caller hangs up.
                await self._cancel(ua, sent)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(task, 40.0)
                raise FaxError(NO_ANSWER)
            try:
                invite, response = task.result()
            except SipTimeout:
                log.warning("SIP gateway %s did not answer; trying the next", gateway)
                last_error = NO_ANSWER
                continue
            status = response.status or 0
            if 200 <= status < 300:
                local_contact = ua.contact(user)
                dialog = Dialog.as_uac(invite, response, local_contact)
                call.dialog = dialog
                ua.add_dialog(dialog, call)
                ack = dialog.request("ACK", ua.via, cseq=invite.cseq[0])
                ua.send(ack.encode(), dialog.next_hop())
                try:
                    media = sdp.answered_media(sdp.parse(response.body), "audio", self.options.codecs)
                except Exception:  # a bad answer ends the call like a refused one
                    media = None
                if media is None:
                    await call.hang_up()
                    raise FaxError(f"the far end answered without usable audio (SIP gateway {gateway})")
                call.local_body = body
                call.apply(media)
                call.schedule_t38_offer()
                return time.monotonic()
            if status == 486 or status == 600:
                raise FaxError(BUSY)
            if status in FAILOVER_STATUSES or status >= 500:
                log.warning("SIP gateway %s answered %s %s; trying the next", gateway, status, response.reason)
                last_error = f"SIP {status} {response.reason}"
                continue
            if status in (401, 407):
                raise FaxError(f"the SIP gateway {gateway} refused our credentials ({status})")
            if status in (404, 408, 480, 487, 603):
                raise FaxError(NO_ANSWER)
            raise FaxError(f"call refused: SIP {status} {response.reason}")
        raise FaxError(NO_ANSWER if last_error == NO_ANSWER else last_error)

    async def _cancel(self, ua: UserAgent, sent: list[Any]) -> None:
        if not sent:
            return
        invite, _tx = sent[-1]
        cancel = SipMessage(method="CANCEL", uri=invite.uri)
        cancel.add("Via", invite.values("Via")[0])
        for value in invite.values("Route"):
            cancel.add("Route", value)
        for name in ("From", "To", "Call-ID"):
            cancel.add(name, invite.get(name) or "")
        cancel.add("CSeq", f"{invite.cseq[0]} CANCEL")
        cancel.add("Max-Forwards", "70")
        future, _ = ua.request(cancel, _tx.destination)
        with contextlib.suppress(SipTimeout, TimeoutError):
            await asyncio.wait_for(future, 40.0)

    # --- inbound ----------------------------------------------------------------------------

    def hang_up(self) -> None:
        """Drop the outbound calls in progress (the process is stopping); their jobs go back to the queue.

        A call whose media runs ends at once; a call still ringing is CANCELled at once.
        """
        with self._lock:
            outbound = [call for call, status in self._calls.values() if status.direction == "SEND"]
        for call in outbound:
            with contextlib.suppress(Exception):
                call.session.hangup()
            if call.dialog is None:
                with contextlib.suppress(RuntimeError):  # the loop is already closed: nothing rings
                    call.ua.loop.call_soon_threadsafe(call.stop_ringing.set)

    def listen(self, handler: IncomingCallHandler) -> None:
        """Answer inbound calls (registering first when a registrar is set)."""
        self._handler = handler
        self._ensure_started()

    def _audit_later(self, action: str, details: dict[str, Any]) -> None:
        # At most one audit entry per source a minute: a flood must not become a flood of database writes.
        now = time.monotonic()
        key = f"{action}:{details.get('source')}"
        if now - self._audited.get(key, -1e9) < 60.0:
            return
        self._audited[key] = now
        threading.Thread(target=self.softmodem.audit, args=(action, details), name="sip-audit", daemon=True).start()

    def _on_untrusted(self, request: SipMessage, source: Address) -> None:
        log.warning("SIP: refused an INVITE from untrusted %s:%s (403)", *source)
        self.status.audit_refusal(source, request)

    def _on_invite(self, invite: SipMessage, tx: ServerTransaction, source: Address) -> None:
        assert self._ua is not None
        ua = self._ua
        if self._handler is None:
            tx.respond(response_to(invite, 480))
            return
        with self._lock:
            busy = len(self._calls) >= self.options.max_calls
        if busy:
            tx.respond(response_to(invite, 486))
            return
        try:
            offer = sdp.parse(invite.body) if invite.body else None
        except Exception as exc:  # malformed SDP is refused, never a crash
            log.warning("SIP: INVITE %s with malformed SDP: %s", invite.call_id, exc)
            tx.respond(response_to(invite, 488, "Not Acceptable Here (malformed SDP)"))
            return
        setup = call_setup(invite)
        policy = self._policy(setup.calling_number)
        chosen = sdp.choose(offer, policy.codecs, policy.accept_t38) if offer is not None else None
        if offer is None or chosen is None:
            tx.respond(response_to(invite, 488))
            return
        tmp = Path(tempfile.mkdtemp(prefix="inkless-sip-"))
        rx_file = tmp / "rx.tif"
        csi = self.options.ident or setup.called_number or ""
        try:
            holder: list[SipCall] = []
            port, session = self._media(calling=False, options=TerminalOptions(ident=csi), tx=None, rx=rx_file,
                                        holder=holder)
        except FaxError as exc:
            log.warning("SIP: no media port for a call: %s", exc)
            tx.respond(response_to(invite, 503))
            _rmtree(tmp)
            return
        call = SipCall(ua, port=port, session=session, policy=policy, host=self.host,
                       on_fallback=lambda reason: self.softmodem.remember(setup.calling_number or "", reason))
        holder.append(call)
        call.call_id = invite.call_id
        call.invite_tx = tx
        local_tag = new_tag()
        user = self.options.username or (invite.request_uri.user or "")
        dialog = Dialog.as_uas(invite, local_tag, ua.contact(user))
        call.dialog = dialog
        ua.add_dialog(dialog, call)
        media, index = chosen
        body = call.sdp.answer(offer, media, index, port.port, policy.t38_params, bump=False)
        call.local_body = body
        ok = response_to(invite, 200, to_tag=local_tag)
        ok.add("Contact", dialog.local_contact)
        ok.add("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE")
        ok.add("Content-Type", "application/sdp")
        ok.body = body

        def never_acked() -> None:
            call.session.hangup()

        tx.on_ack_timeout = never_acked
        tx.respond(ok)
        call.apply(media)
        if isinstance(media, sdp.AudioMedia):
            call.schedule_t38_offer()
        status = CallStatus(call_id=call.call_id, direction="RECV", number=setup.calling_number,
                            started_at=datetime.now(UTC))
        self._track(call, status)
        threading.Thread(target=self._finish_inbound, args=(call, setup, csi, tmp, status),
                         name="sip-call", daemon=True).start()

    def _finish_inbound(self, call: SipCall, setup: CallSetup, csi: str, tmp: Path, status: CallStatus) -> None:
        answered = time.monotonic()
        try:
            outcome = call.session.wait(MAX_CALL_S + 60.0)
            with contextlib.suppress(Exception):
                self._call_soon(call.hang_up()).result(45.0)
            call.port.close()
            rx_file = tmp / "rx.tif"
            received = rx_file.read_bytes() if rx_file.exists() and rx_file.stat().st_size > 0 else None
            line_s = call.session.duration_s or time.monotonic() - answered
            result = call_result(outcome, sending=False, line_seconds=line_s,
                                 started_at=status.started_at, local_ident=csi, setup=setup, received_tiff=received)
            result = _with_sip(result, call)
            if self._handler is not None:
                self._handler(result)
        except Exception:  # one call's failure never takes the line down
            log.exception("SIP call %s failed", call.call_id)
        finally:
            self._untrack(call)
            _rmtree(tmp)

    # --- shutdown ----------------------------------------------------------------------------

    def close(self) -> None:
        """Hang up every call, unregister and stop the loop."""
        loop = self._loop
        if loop is None or self._thread is None:
            return
        with self._lock:
            calls = [c for c, _ in self._calls.values()]
        for call in calls:
            call.session.hangup()
        if self._registration is not None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._registration.stop(), loop).result(5.0)

        async def stop() -> None:
            if self._publisher is not None:
                self._publisher.cancel()
            if self._ua is not None and self._ua.transport is not None:
                self._ua.transport.close()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(stop(), loop).result(5.0)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(10.0)
        self.status.remove()
        self.softmodem.close()
        self._thread = None


def _with_sip(result: CallResult, call: SipCall) -> CallResult:
    from dataclasses import replace

    voice = bool(getattr(call.session, "ended_as_voice", False))
    media = getattr(call.session, "media", None) or (call.media.kind if call.media else None)
    result = replace(result, media="t38" if media == "t38" else ("g711" if media else None),
                     call_id=call.call_id[:128], gateway=call.gateway, voice=voice)
    if voice and result.pages_transferred == 0:
        result = replace(result, t30_text="voice call: no fax tones heard, hung up")
    return result


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


__all__ = ["SipLine", "SipTimeout", "call_setup"]


register_line("sip", SipLine)
