"""One SIP fax call's media: G.711 audio over RTP or T.38 over UDPTL, on one UDP port, in real time.

A :class:`FaxMediaSession` runs in its own thread with its own spandsp terminal,
socket and buffers, ticking every 20 ms on a monotonic clock. The signalling
side (the SIP dialog) tells it where to send and what was negotiated:
``start_audio`` after the answer, ``switch_to_t38`` after a T.38 re-INVITE
(T.30 restarts on a :class:`~inkless.fax.terminal.T38Terminal`),
``switch_to_audio`` when T.38 was refused or failed, ``set_remote`` when a
re-INVITE moves the far end, ``hangup`` on BYE/CANCEL. ``wait`` gives the
T.30 :class:`~inkless.fax.terminal.Outcome`.

Nothing from the network can stop the session except by ending its call:
datagrams from any address but the negotiated one are ignored (and counted),
as are malformed, truncated and oversized ones and RTP of other payload
types (telephone-event, comfort noise). Every failure inside the session is
caught and becomes the call's outcome with a reason.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from inkless.errors import FaxError
from inkless.fax import spandsp as sd
from inkless.fax.sip import g711, rtp, tones, udptl
from inkless.fax.sip.media_model import MediaCounters, MediaProgress, T38Params
from inkless.fax.sip.port import MediaPort, resolve
from inkless.fax.terminal import (
    FRAME_BYTES,
    FRAME_SAMPLES,
    LINGER_S,
    SAMPLE_RATE,
    AudioTerminal,
    Outcome,
    T38Terminal,
    TerminalOptions,
)

__all__ = ["FaxMediaSession", "MediaCounters", "MediaPort", "MediaProgress", "T38Params"]

log = logging.getLogger("inkless.fax.sip.media")

TICK_S = FRAME_SAMPLES / SAMPLE_RATE  # 20 ms
# A session this far behind its clock (a stalled machine) restarts the clock instead of bursting.
MAX_BEHIND_S = 0.2
# Datagrams longer than this are not RTP G.711 nor UDPTL from any sane peer: ignored.
MAX_DATAGRAM = 2048
# Datagrams read per tick at most: a flood cannot starve the terminal of its ticks.
MAX_READS_PER_TICK = 256
# How long a session whose T.38 failed in phase B waits for the signalling side to restore audio.
T38_FALLBACK_WAIT_S = 15.0
# Playout buffer for modems, in 20 ms packets: fixed 100 ms prefetch, at most 400 ms.
PLAYOUT_PREFETCH = 5
PLAYOUT_MAX = 20
# A T.38 far end that has sent no usable packet this long after the switch has failed in phase B.
T38_SILENT_S = 10.0
# How long a gap in the UDPTL sequence that redundancy could not fill is waited for (an overtaken datagram).
UDPTL_HOLD_S = 0.06
# Completion code of outcomes that T.30 did not produce (no terminal ran, media failure, voice).
NO_FAX_SESSION = -1


def _no_session(text: str) -> Outcome:
    return Outcome(
        completion_code=NO_FAX_SESSION, completion_text=text, pages_tx=0, pages_rx=0, pages_in_file=-1,
        bit_rate=0, ecm=False, encoding=0, bad_rows=0, remote_ident=None, sub_address=None, x_dpi=0, y_dpi=0,
    )


@dataclass(frozen=True)
class _Audio:
    remote: tuple[str, int]
    payload_type: int
    codec: str
    red_payload_type: int | None
    red_depth: int


@dataclass(frozen=True)
class _T38:
    remote: tuple[str, int]
    params: T38Params


@dataclass(frozen=True)
class _Move:
    remote: tuple[str, int]


_Command = _Audio | _T38 | _Move


class FaxMediaSession:
    """One fax call's media, run in its own thread, real-time paced (20 ms ticks)."""

    def __init__(
        self,
        port: MediaPort,
        *,
        calling: bool,
        options: TerminalOptions,
        tx_tiff: Path | None,
        rx_tiff: Path | None,
        header: str | None = None,
        voice_timeout_s: float = 30.0,
        max_duration_s: float = 3600.0,
        on_t38_failed: Callable[[Outcome], None] | None = None,
        name: str = "fax-media",
    ) -> None:
        if calling and tx_tiff is None:
            raise FaxError("a calling fax media session needs a TIFF to send")
        self.port = port
        self.calling = calling
        self.options = options
        self.tx_tiff = tx_tiff
        self.rx_tiff = rx_tiff
        # The header line is stamped on the TIFF before dialling (inkless.fax.header); kept for reports.
        self.header = header
        self.voice_timeout_s = voice_timeout_s
        self.max_duration_s = max_duration_s
        self.on_t38_failed = on_t38_failed
        self.name = name
        self.counters = MediaCounters()
        self.t38_failed = False
        self._lock = threading.Lock()
        # Held while the terminal is read from another thread or released: spandsp state is freed then.
        self._terminal_lock = threading.Lock()
        self._commands: list[_Command] = []
        self._hangup = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._outcome: Outcome | None = None
        self._media = ""
        self._remote: tuple[str, int] | None = None
        self._terminal: AudioTerminal | T38Terminal | None = None
        self._codec: g711.G711Codec | None = None
        self._payload_type = 0
        self._red_type: int | None = None
        self._red: rtp.RedundantSender | None = None
        self._sender: rtp.RtpSender | None = None
        self._playout: rtp.PlayoutBuffer | None = None
        self._carry = b""
        self._encoder: udptl.UdptlEncoder | None = None
        self._decoder: udptl.UdptlDecoder | None = None
        self._tones = tones.FaxToneDetector()
        self._voice = False
        self._audio_since: float | None = None
        self._t38_failed_at = 0.0
        self._t38_since = 0.0
        self._t38_outcome: Outcome | None = None
        self._phase_memory = "A"
        self._media_started: float | None = None
        self._media_ended: float | None = None
        self._pages_memory = 0

    # ---- the signalling side's calls (any thread) ----

    def start_audio(
        self,
        remote: tuple[str, int],
        payload_type: int,
        codec: str,
        *,
        red_payload_type: int | None = None,
        red_depth: int = 2,
    ) -> None:
        """Start (or restart) the call in G.711 ``codec`` ("PCMU" | "PCMA") towards ``remote``.

        With ``red_payload_type`` (SDP ``red/8000``, RFC 2198, as ITU-T V.152 advises for voice-band
        data) every packet also carries the ``red_depth`` previous frames, and the far end's redundant
        frames fill the gaps of lost packets: no concealment, the real audio a packet later.
        """
        self._command(_Audio(
            resolve(remote, self.port.family), payload_type, g711.codec(codec).name, red_payload_type,
            max(0, min(red_depth, 4)),
        ))

    def switch_to_t38(self, remote: tuple[str, int], params: T38Params) -> None:
        """Carry the call as T.38 over UDPTL towards ``remote``: T.30 restarts on a T.38 terminal."""
        self._command(_T38(resolve(remote, self.port.family), params))

    def switch_to_audio(
        self, remote: tuple[str, int], payload_type: int, codec: str, *, red_payload_type: int | None = None
    ) -> None:
        """Back to G.711 (softmodem fallback after a refused or failed T.38): T.30 restarts on audio."""
        self.start_audio(remote, payload_type, codec, red_payload_type=red_payload_type)

    def set_remote(self, remote: tuple[str, int]) -> None:
        """Send to (and only accept from) ``remote`` from now on; the media stays as it is."""
        self._command(_Move(resolve(remote, self.port.family)))

    def hangup(self) -> None:
        """The call is over (BYE, CANCEL, kill time): stop within a tick; the outcome says so."""
        self._hangup.set()
        with self._lock:
            started = self._thread is not None
        if not started:
            self.port.close()
            self._finish(_no_session("hung up before media started"))

    def wait(self, timeout_s: float | None = None) -> Outcome:
        """The call's outcome once the session has ended; FaxError if it is still running after ``timeout_s``."""
        if not self._done.wait(timeout_s):
            raise FaxError(f"fax media session still running after {timeout_s} s")
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        assert self._outcome is not None
        return self._outcome

    @property
    def duration_s(self) -> float:
        """Seconds of line time: from the start of media to its end (or to now while it runs)."""
        if self._media_started is None:
            return 0.0
        end = self._media_ended if self._media_ended is not None else time.monotonic()
        return round(end - self._media_started, 3)

    @property
    def done(self) -> bool:
        """True once the session has ended (its socket closed, its terminal released)."""
        return self._done.is_set()

    @property
    def media(self) -> str:
        """"g711" or "t38" (what the call is carried as now), "" before media started."""
        return self._media

    @property
    def fax_tones_heard(self) -> bool:
        """CNG, CED or a V.21 preamble has been heard on the audio (or the call went T.38)."""
        return self._tones.fax_tone_heard or self._media == "t38"

    @property
    def ended_as_voice(self) -> bool:
        """The call ended because no fax tone came within ``voice_timeout_s``: a person called."""
        return self._voice

    @property
    def progress(self) -> MediaProgress:
        """What the call is doing now (safe to read from any thread)."""
        terminal = self._terminal
        phase, pages, expected, bit_rate = self._phase_memory, self._pages_memory, None, 0
        outcome = self._outcome
        if outcome is not None:
            phase = "E"
            pages = max(outcome.pages_tx, outcome.pages_rx)
            expected = outcome.pages_in_file if self.calling and outcome.pages_in_file >= 0 else None
            bit_rate = outcome.bit_rate
        elif terminal is not None:
            with self._terminal_lock, contextlib.suppress(AssertionError):
                stats = terminal.stats()
                phase = terminal.phase
                pages = max(stats.pages_tx, stats.pages_rx)
                expected = stats.pages_in_file if self.calling and stats.pages_in_file >= 0 else None
                bit_rate = stats.bit_rate
        return MediaProgress(
            media=self._media, phase=phase, pages=pages, pages_expected=expected, bit_rate=bit_rate,
            tones=tuple(sorted(self._tones.heard)), codec=self._codec.name if self._codec else None,
            counters=dataclasses.replace(self.counters),
            playout=dataclasses.replace(self._playout.stats) if self._playout else None,
            udptl=dataclasses.replace(self._decoder.stats) if self._decoder else None,
        )

    def _command(self, command: _Command) -> None:
        with self._lock:
            if self._done.is_set() or self._hangup.is_set():
                return
            self._commands.append(command)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()

    # ---- the session's own thread ----

    def _run(self) -> None:
        outcome: Outcome | None = None
        try:
            outcome = self._loop()
        except Exception as exc:  # one call's failure is that call's outcome, never the line's
            log.exception("fax media session %s failed", self.name)
            reason = f"media failure: {exc.__class__.__name__}: {exc}"
            try:
                outcome = self._abandon(reason)
            except Exception:
                outcome = _no_session(reason)
        finally:
            try:
                self._release_terminal()
            finally:
                self.port.close()
                # Whatever happened, waiters learn that the call is over.
                self._finish(outcome if outcome is not None else _no_session("media failure"))

    def _finish(self, outcome: Outcome) -> None:
        if self._media_started is not None and self._media_ended is None:
            self._media_ended = time.monotonic()
        with self._lock:
            if self._outcome is None:
                self._outcome = outcome
            self._done.set()

    def _loop(self) -> Outcome:
        started = self._media_started = time.monotonic()
        deadline = started + self.max_duration_s
        next_tick = started
        linger = 0
        while True:
            self._apply_commands()
            now = time.monotonic()
            if self._hangup.is_set():
                return self._abandon("hung up", keep_t30=True)
            if now >= deadline:
                return self._abandon(f"maximum call duration of {self.max_duration_s:g} s reached", keep_t30=True)
            self._receive()
            terminal = self._terminal
            if terminal is not None and not terminal.done:
                self._tick(terminal)
                if self._t38_silent(now):
                    # The far end took the T.38 re-INVITE but sends nothing: that is T.38 failing in
                    # phase B, said now rather than after T.30's 35 s timer.
                    ended = self._conclude(self._abandon(f"no T.38 packets from the far end in {T38_SILENT_S:g} s"))
                    if ended is not None:
                        return ended
            elif terminal is not None:
                self._tick(terminal)
                linger += 1
                if linger * TICK_S >= LINGER_S:
                    linger = 0
                    assert terminal.outcome is not None
                    ended = self._conclude(terminal.outcome)
                    if ended is not None:
                        return ended
            elif self._t38_outcome is not None and now - self._t38_failed_at > T38_FALLBACK_WAIT_S:
                return self._t38_outcome
            if (
                self._media == "g711"
                and self._audio_since is not None
                and not self._tones.fax_tone_heard
                and now - self._audio_since >= self.voice_timeout_s
            ):
                self._voice = True
                return self._abandon(f"voice call: no fax tone within {self.voice_timeout_s:g} s")
            next_tick += TICK_S
            delay = next_tick - time.monotonic()
            if delay > 0:
                self._hangup.wait(delay)
            elif delay < -MAX_BEHIND_S:
                next_tick = time.monotonic()

    def _t38_silent(self, now: float) -> bool:
        return (
            self._media == "t38"
            and self._decoder is not None
            and self._decoder.stats.delivered == 0
            and now - self._t38_since >= T38_SILENT_S
        )

    def _conclude(self, outcome: Outcome) -> Outcome | None:
        """The call's outcome once its terminal is done; None while a T.38 failure may fall back to audio."""
        failed_in_b = (
            self._media == "t38"
            and outcome.completion_code != sd.T30_ERR_OK
            and outcome.pages_tx == 0
            and outcome.pages_rx == 0
        )
        if not (failed_in_b and self.on_t38_failed is not None and not self.t38_failed):
            return outcome
        # T.38 failed in phase B: the signalling side may fall back to audio (a re-INVITE).
        self.t38_failed = True
        self._t38_outcome = outcome
        self._t38_failed_at = time.monotonic()
        self._release_terminal()
        self._phase_memory = "B"  # the call is back to negotiating (now over audio), not over
        try:
            self.on_t38_failed(outcome)
        except Exception:
            log.exception("fax media session %s: on_t38_failed hook failed", self.name)
        return None

    def _abandon(self, reason: str, *, keep_t30: bool = False) -> Outcome:
        terminal = self._terminal
        if terminal is None:
            return self._t38_outcome if self._t38_outcome is not None else _no_session(reason)
        was_done = terminal.done
        outcome = terminal.abandon()
        if was_done and keep_t30:
            return outcome  # phase E came first: the hang-up only ended the linger
        return dataclasses.replace(outcome, completion_text=f"{reason} ({outcome.completion_text})")

    def _release_terminal(self) -> None:
        with self._terminal_lock:
            self._release_terminal_locked()

    def _release_terminal_locked(self) -> None:
        terminal, self._terminal = self._terminal, None
        if terminal is not None:
            with contextlib.suppress(AssertionError):
                stats = terminal.stats()
                self._pages_memory = max(self._pages_memory, stats.pages_tx, stats.pages_rx)
            self._phase_memory = terminal.phase
            terminal.close()

    def _apply_commands(self) -> None:
        with self._lock:
            commands, self._commands = self._commands, []
        for command in commands:
            if isinstance(command, _Move):
                self._remote = command.remote
            elif isinstance(command, _Audio):
                self._start_audio(command)
            else:
                self._start_t38(command)

    def _start_audio(self, command: _Audio) -> None:
        self._remote = command.remote
        self._codec = g711.codec(command.codec)
        self._payload_type = command.payload_type
        self._red_type = command.red_payload_type
        self._red = (
            rtp.RedundantSender(command.red_payload_type, command.payload_type, command.red_depth)
            if command.red_payload_type is not None
            else None
        )
        wire_type = command.payload_type if command.red_payload_type is None else command.red_payload_type
        if self._media == "g711" and self._terminal is not None:
            # A re-INVITE that only changed the codec: keep the call, renumber nothing.
            if self._sender is not None:
                self._sender.payload_type = wire_type
            return
        self._release_terminal()
        self._sender = rtp.RtpSender(wire_type)
        self._playout = rtp.PlayoutBuffer(
            prefetch=PLAYOUT_PREFETCH, maximum=PLAYOUT_MAX, silence=bytes([self._codec.silence_code]) * FRAME_SAMPLES
        )
        self._carry = b""
        self._terminal = AudioTerminal(
            calling=self.calling, options=self.options, tx_file=self.tx_tiff, rx_file=self.rx_tiff
        )
        self._media = "g711"
        self._audio_since = time.monotonic()
        self._t38_outcome = None

    def _start_t38(self, command: _T38) -> None:
        self._remote = command.remote
        params = command.params
        self._release_terminal()
        redundancy = params.redundancy if params.udp_ec == "t38UDPRedundancy" else 0
        self._encoder = udptl.UdptlEncoder(redundancy=redundancy, max_datagram=params.max_datagram)
        options = dataclasses.replace(self.options, modems=self.options.modems & params.modems or params.modems)
        terminal = T38Terminal(
            calling=self.calling, options=options, send=self._send_ifp, tx_file=self.tx_tiff, rx_file=self.rx_tiff,
        )
        terminal.configure(
            version=params.version,
            max_datagram=params.max_datagram,
            transferred_tcf=params.rate_management.lower() != "localtcf",
            fill_bit_removal=params.fill_bit_removal,
        )
        self._decoder = udptl.UdptlDecoder(terminal.rx_packet, hold_s=UDPTL_HOLD_S)
        self._terminal = terminal
        self._media = "t38"
        self._t38_since = time.monotonic()
        self._audio_since = None

    def _send(self, datagram: bytes) -> None:
        if self._remote is None:
            return
        try:
            self.port.sock.sendto(datagram, self._remote)
        except OSError:  # an ICMP unreachable from an earlier datagram, a full buffer: the line is lossy
            self.counters.send_errors += 1

    def _send_ifp(self, packet: bytes, count: int) -> None:
        assert self._encoder is not None
        datagram = self._encoder.encode(packet)
        # spandsp asks for repeats of indicators and control data; UDPTL redundancy covers image data.
        for _ in range(max(1, min(count, 3))):
            self._send(datagram)
            self.counters.udptl_out += 1

    def _receive(self) -> None:
        sock = self.port.sock
        for _ in range(MAX_READS_PER_TICK):
            try:
                data, source = sock.recvfrom(MAX_DATAGRAM + 1)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. ECONNREFUSED reported for an earlier send: not a datagram
                continue
            if self._remote is None or (str(source[0]), int(source[1])) != self._remote:
                self.counters.foreign += 1
                continue
            if len(data) > MAX_DATAGRAM:
                self.counters.oversized += 1
                continue
            if self._media == "g711":
                self._take_rtp(data)
            elif self._media == "t38":
                self._take_udptl(data)

    def _take_rtp(self, data: bytes) -> None:
        packet = rtp.parse_rtp(data)
        if packet is None:
            self.counters.malformed += 1
            return
        assert self._playout is not None
        if packet.payload_type == self._payload_type:
            self.counters.rtp_in += 1
            self._playout.push(packet)
            return
        if packet.payload_type != self._red_type or self._red_type is None:
            self.counters.other_payload += 1
            return
        blocks = rtp.parse_red(packet.payload)
        if blocks is None or not blocks or blocks[-1].payload_type != self._payload_type:
            self.counters.malformed += 1
            return
        self.counters.rtp_in += 1
        primary = blocks[-1].data
        self._playout.push(dataclasses.replace(packet, payload=primary))
        for block in blocks[:-1]:
            # A redundant copy of an earlier packet: ``offset`` samples back, one packet per primary's length.
            if block.payload_type != self._payload_type or not primary or block.offset % len(primary):
                continue
            back = block.offset // len(primary)
            earlier = dataclasses.replace(packet, sequence=(packet.sequence - back) & 0xFFFF, payload=block.data)
            self._playout.push(earlier, recovered=True)

    def _take_udptl(self, data: bytes) -> None:
        assert self._decoder is not None
        if self._decoder.receive(data, time.monotonic()):
            self.counters.udptl_in += 1
        else:
            self.counters.malformed += 1

    def _tick(self, terminal: AudioTerminal | T38Terminal) -> None:
        if isinstance(terminal, T38Terminal):
            if self._decoder is not None:
                self._decoder.poll(time.monotonic())
            terminal.tick()
            return
        assert self._codec is not None and self._playout is not None and self._sender is not None
        carry = self._carry
        for _ in range(8):  # packets of 10 ms (or odd sizes) need more than one per tick
            if len(carry) >= FRAME_BYTES:
                break
            carry += self._codec.decode(self._playout.pop())
        frame, self._carry = carry[:FRAME_BYTES], carry[FRAME_BYTES:FRAME_BYTES * PLAYOUT_MAX]
        terminal.rx_frame(frame.ljust(FRAME_BYTES, b"\0"))
        if not self._tones.fax_tone_heard:
            self._tones.feed(frame)
        encoded = self._codec.encode(terminal.tx_frame())
        payload = encoded if self._red is None else self._red.payload(encoded)
        self._send(self._sender.packet(payload, len(encoded)))
        self.counters.rtp_out += 1
