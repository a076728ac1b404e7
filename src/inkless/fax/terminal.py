"""Software fax terminals (audio and T.38) on spandsp, and the runners that join two of them.

A terminal is one end of one call: its own spandsp state, its own files, no
global state, so any number of calls can run at once in separate threads
(ctypes releases the GIL while spandsp works). The line, not the CPU, is the
limit: a page takes seconds of *line* time but milliseconds of CPU, and the
runners here exchange audio or packets as fast as the CPU allows.
"""

from __future__ import annotations

import ctypes
import sys
from abc import ABC, abstractmethod
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Self

from inkless.errors import FaxError
from inkless.fax import spandsp as sd
from inkless.fax.model import CallResult, CallSetup

SAMPLE_RATE = 8000
FRAME_SAMPLES = 160  # 20 ms at 8 kHz: one RTP packet's worth, and the tick of the T.38 timers
FRAME_BYTES = FRAME_SAMPLES * 2
SILENCE = bytes(FRAME_BYTES)

ALL_COMPRESSIONS = (
    sd.T30_SUPPORT_T4_1D_COMPRESSION | sd.T30_SUPPORT_T4_2D_COMPRESSION | sd.T30_SUPPORT_T6_COMPRESSION
)
ALL_MODEMS = sd.T30_SUPPORT_V27TER | sd.T30_SUPPORT_V29 | sd.T30_SUPPORT_V17
# How long a terminal may keep the line after the far end went silent before we give up
# on T.30's own timers (they fire within ~40 s of line time, which costs little CPU).
DROPPED_LINE_GRACE_S = 90.0
# Post-page commands (and their procedure-interrupt variants): phase D starts.
_POST_PAGE = frozenset(
    (sd.T30_MPS, sd.T30_EOP, sd.T30_EOM, sd.T30_PPS, sd.T30_EOR, sd.T30_MPS | 0x10, sd.T30_EOP | 0x10,
     sd.T30_EOM | 0x10)
)
# Line time a caller keeps exchanging audio after its phase E, so the DCN reaches the far end.
LINGER_S = 1.0


@dataclass(frozen=True)
class TerminalOptions:
    """How a terminal presents itself and what it accepts."""

    ident: str = ""
    ecm: bool = True
    compressions: int = ALL_COMPRESSIONS
    modems: int = ALL_MODEMS
    sub_address: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What T.30 reported at phase E (or when the call was abandoned)."""

    completion_code: int
    completion_text: str
    pages_tx: int
    pages_rx: int
    pages_in_file: int
    bit_rate: int
    ecm: bool
    encoding: int
    bad_rows: int
    remote_ident: str | None
    sub_address: str | None
    x_dpi: int
    y_dpi: int

    @property
    def compression(self) -> str:
        return sd.ENCODING_NAMES.get(self.encoding, f"encoding {self.encoding}")


def _dpi(pixels_per_metre: int) -> int:
    # spandsp reports resolutions in pixels per metre; fax resolutions are nominal 204 / 98 / 196 dpi.
    if pixels_per_metre <= 0:
        return 0
    dpi = pixels_per_metre * 0.0254
    for nominal in (98, 196, 204, 391, 408):
        if abs(dpi - nominal) < 6:
            return nominal
    return round(dpi)


def _text(raw: bytes | None) -> str | None:
    if not raw:
        return None
    text = raw.decode("latin-1").strip()
    return text or None


class _T30Terminal(ABC):
    """What audio and T.38 terminals share: the T.30 engine, its files and its phase E."""

    def __init__(self, calling: bool, options: TerminalOptions) -> None:
        self.lib = sd.spandsp()
        self.calling = calling
        self.options = options
        self.outcome: Outcome | None = None
        self.samples = 0  # line time consumed, in 8 kHz samples
        self._state: int | None = None
        self._t30: int | None = None
        # T.30 phase as the frames on the line show it: A (call set-up, tones), B (negotiation),
        # C (page transfer), D (post-page exchange), E (done).
        self.phase = "A"
        self._last_post_page = 0
        # The CFUNCTYPE objects must outlive the spandsp state that holds their addresses.
        self._phase_e = sd.PhaseEHandler(self._on_phase_e)
        self._frame_handler = sd.RealTimeFrameHandler(self._on_frame)

    def _setup_t30(self, t30: int, tx_file: Path | None, rx_file: Path | None) -> None:
        lib = self.lib
        self._t30 = t30
        lib.t30_set_tx_ident(t30, self.options.ident.encode("ascii", "replace")[:20])
        if self.options.sub_address:
            lib.t30_set_tx_sub_address(t30, self.options.sub_address.encode("ascii", "replace")[:20])
        lib.t30_set_ecm_capability(t30, 1 if self.options.ecm else 0)
        lib.t30_set_supported_compressions(t30, self.options.compressions)
        lib.t30_set_supported_modems(t30, self.options.modems)
        # Receive into T.6 where possible: the smallest TIFF-F, embedded as-is into the inbox PDF.
        lib.t30_set_rx_encoding(t30, sd.T4_COMPRESSION_ITU_T6)
        lib.t30_set_phase_e_handler(t30, self._phase_e, None)
        lib.t30_set_real_time_frame_handler(t30, self._frame_handler, None)
        if tx_file is not None:
            lib.t30_set_tx_file(t30, str(tx_file).encode(), -1, -1)
        if rx_file is not None:
            lib.t30_set_rx_file(t30, str(rx_file).encode(), -1)

    def _on_phase_e(self, _t30: Any, _user: Any, code: int) -> None:
        # Runs inside fax_rx/fax_tx/send_timeout on this call's thread; the state is still valid.
        self.phase = "E"
        self.outcome = self._read_outcome(int(code))

    def _on_frame(self, _t30: Any, _user: Any, _direction: int, msg: Any, length: int) -> None:
        # msg is the HDLC frame: address 0xFF, control 0x03/0x13, then the facsimile control field
        # (its low bit is the X bit); a PPS frame carries the post-page command in its next octet.
        if length < 3 or self.phase == "E":
            return
        fcf = msg[2] & 0xFE
        if fcf in (sd.T30_DIS, sd.T30_DCS, sd.T30_FTT):  # DTC is DIS with the X bit
            self.phase = "B"
        elif fcf == sd.T30_CFR:
            self.phase = "C"
        elif fcf in _POST_PAGE:
            self.phase = "D"
            self._last_post_page = msg[3] & 0xFE if fcf == sd.T30_PPS and length > 3 else fcf
        elif fcf == sd.T30_MCF:
            # after MPS or a partial page the next transfer follows; after EOM negotiation; after EOP the end
            last = self._last_post_page | 0x10
            self.phase = "D" if last == sd.T30_EOP | 0x10 else "B" if last == sd.T30_EOM | 0x10 else "C"
        elif fcf == sd.T30_DCN:
            self.phase = "E"

    def _read_outcome(self, code: int) -> Outcome:
        assert self._t30 is not None
        stats = sd.T30Stats()
        self.lib.t30_get_transfer_statistics(self._t30, ctypes.byref(stats))
        return Outcome(
            completion_code=code,
            completion_text=self.lib.completion_text(code),
            pages_tx=stats.pages_tx,
            pages_rx=stats.pages_rx,
            pages_in_file=stats.pages_in_file,
            bit_rate=stats.bit_rate,
            ecm=bool(stats.error_correcting_mode),
            encoding=stats.encoding,
            bad_rows=stats.bad_rows,
            remote_ident=_text(self.lib.t30_get_rx_ident(self._t30)),
            sub_address=_text(self.lib.t30_get_rx_sub_address(self._t30)),
            x_dpi=_dpi(stats.x_resolution),
            y_dpi=_dpi(stats.y_resolution),
        )

    def stats(self) -> sd.T30Stats:
        """The running transfer statistics (pages so far, bit rate ...)."""
        assert self._t30 is not None
        stats = sd.T30Stats()
        self.lib.t30_get_transfer_statistics(self._t30, ctypes.byref(stats))
        return stats

    @property
    def done(self) -> bool:
        """True once T.30 has reached phase E."""
        return self.outcome is not None

    def abandon(self) -> Outcome:
        """End the call now (the line is gone); phase E reports why if it had not yet."""
        if self.outcome is None and self._t30 is not None:
            self.lib.t30_terminate(self._t30)
        if self.outcome is None:
            self.outcome = self._read_outcome(sd.T30_ERR_CALLDROPPED)
        return self.outcome

    @abstractmethod
    def close(self) -> None:
        """Release the spandsp state of this terminal."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AudioTerminal(_T30Terminal):
    """A fax terminal on 8 kHz 16-bit linear audio (``fax_init``/``fax_rx``/``fax_tx``)."""

    def __init__(
        self,
        *,
        calling: bool,
        options: TerminalOptions,
        tx_file: Path | None = None,
        rx_file: Path | None = None,
    ) -> None:
        super().__init__(calling, options)
        state = self.lib.fax_init(None, 1 if calling else 0)
        if not state:
            raise FaxError("spandsp could not create a fax terminal")
        self._state = state
        # Emit silence rather than nothing while idle, so each side always has a full frame to send.
        self.lib.fax_set_transmit_on_idle(state, 1)
        self._setup_t30(self.lib.fax_get_t30_state(state), tx_file, rx_file)
        self._tx_buf = (ctypes.c_int16 * FRAME_SAMPLES)()
        self.samples = 0

    def tx_frame(self) -> bytes:
        """The next 20 ms of audio this terminal sends (zero-padded), little-endian int16."""
        assert self._state is not None
        n = self.lib.fax_tx(self._state, self._tx_buf, FRAME_SAMPLES)
        if n < FRAME_SAMPLES:
            ctypes.memset(ctypes.addressof(self._tx_buf) + 2 * max(n, 0), 0, 2 * (FRAME_SAMPLES - max(n, 0)))
        data = bytes(self._tx_buf)
        return data if sys.byteorder == "little" else _swap(data)

    def rx_frame(self, data: bytes) -> None:
        """Feed 20 ms of received audio (little-endian int16) to the terminal."""
        assert self._state is not None
        if len(data) != FRAME_BYTES:
            raise FaxError(f"audio frame of {len(data)} bytes; expected {FRAME_BYTES}")
        if sys.byteorder != "little":
            data = _swap(data)
        buf = (ctypes.c_int16 * FRAME_SAMPLES).from_buffer_copy(data)
        self.lib.fax_rx(self._state, buf, FRAME_SAMPLES)
        self.samples += FRAME_SAMPLES

    @property
    def line_seconds(self) -> float:
        return self.samples / SAMPLE_RATE

    def close(self) -> None:
        """Release the spandsp state (idempotent)."""
        if self._state is not None:
            self.lib.fax_release(self._state)
            self.lib.fax_free(self._state)
            self._state = None
            self._t30 = None


def _swap(data: bytes) -> bytes:
    samples = array("h", data)
    samples.byteswap()
    return samples.tobytes()


class T38Terminal(_T30Terminal):
    """A fax terminal that speaks T.38 IFP packets; ``send`` gets (packet, repeat count)."""

    def __init__(
        self,
        *,
        calling: bool,
        options: TerminalOptions,
        send: Callable[[bytes, int], None],
        tx_file: Path | None = None,
        rx_file: Path | None = None,
    ) -> None:
        super().__init__(calling, options)
        self._send = send
        self._tx_handler = sd.T38TxPacketHandler(self._on_packet)
        state = self.lib.t38_terminal_init(None, 1 if calling else 0, self._tx_handler, None)
        if not state:
            raise FaxError("spandsp could not create a T.38 terminal")
        self._state = state
        self._core = self.lib.t38_terminal_get_t38_core_state(state)
        # Redundancy: control messages are repeated (UDPTL redundancy); image data relies on ECM.
        for category, count in (
            (sd.T38_PACKET_CATEGORY_INDICATOR, 3),
            (sd.T38_PACKET_CATEGORY_CONTROL_DATA, 3),
            (sd.T38_PACKET_CATEGORY_CONTROL_DATA_END, 3),
            (sd.T38_PACKET_CATEGORY_IMAGE_DATA, 1),
            (sd.T38_PACKET_CATEGORY_IMAGE_DATA_END, 3),
        ):
            self.lib.t38_set_redundancy_control(self._core, category, count)
        self._setup_t30(self.lib.t38_terminal_get_t30_state(state), tx_file, rx_file)
        self.samples = 0

    def configure(
        self, *, version: int = 0, max_datagram: int = 400, transferred_tcf: bool = True, fill_bit_removal: bool = False
    ) -> None:
        """Apply what SDP negotiated: T.38 version, the far end's largest datagram, TCF, fill-bit removal."""
        lib = self.lib
        lib.t38_set_fill_bit_removal(self._core, 1 if fill_bit_removal else 0)
        lib.t38_set_t38_version(self._core, max(0, min(version, 3)))
        lib.t38_set_max_datagram_size(self._core, max(100, min(max_datagram, 1400)))
        lib.t38_set_data_rate_management_method(
            self._core,
            sd.T38_DATA_RATE_MANAGEMENT_TRANSFERRED_TCF if transferred_tcf else sd.T38_DATA_RATE_MANAGEMENT_LOCAL_TCF,
        )

    def _on_packet(self, _core: Any, _user: Any, buf: Any, length: int, count: int) -> int:
        self._send(ctypes.string_at(buf, length), int(count))
        return 0

    def rx_packet(self, packet: bytes, seq_no: int) -> None:
        """Deliver one IFP packet received from the far end with its UDPTL sequence number."""
        assert self._state is not None
        buf = (ctypes.c_uint8 * max(len(packet), 1)).from_buffer_copy(packet or b"\0")
        self.lib.t38_core_rx_ifp_packet(self._core, buf, len(packet), seq_no & 0xFFFF)

    def tick(self, samples: int = FRAME_SAMPLES) -> None:
        """Let ``samples`` of time pass (drives T.30 timers and paced transmission)."""
        assert self._state is not None
        self.lib.t38_terminal_send_timeout(self._state, samples)
        self.samples += samples

    @property
    def line_seconds(self) -> float:
        return self.samples / SAMPLE_RATE

    def close(self) -> None:
        """Release the spandsp state (idempotent)."""
        if self._state is not None:
            self.lib.t38_terminal_release(self._state)
            self.lib.t38_terminal_free(self._state)
            self._state = None
            self._t30 = None


def run_audio_back_to_back(
    caller: AudioTerminal,
    answerer: AudioTerminal,
    *,
    max_line_s: float = 1200.0,
    hangup: Callable[[], bool] | None = None,
) -> float:
    """Join two audio terminals frame by frame until both reach phase E; returns line seconds.

    ``hangup`` is asked after every frame; once it answers True the line goes
    silent for both ends (a dropped call) and each end finishes on its own timers.
    """
    max_samples = int(max_line_s * SAMPLE_RATE)
    dropped_at: int | None = None
    samples = 0
    while not (caller.done and answerer.done):
        a = caller.tx_frame()
        b = answerer.tx_frame()
        if dropped_at is not None:
            a = b = SILENCE
        answerer.rx_frame(a)
        caller.rx_frame(b)
        samples += FRAME_SAMPLES
        if dropped_at is None and hangup is not None and hangup():
            dropped_at = samples
        limit = max_samples if dropped_at is None else dropped_at + int(DROPPED_LINE_GRACE_S * SAMPLE_RATE)
        if samples >= limit:
            break
    for terminal in (caller, answerer):
        if not terminal.done:
            terminal.abandon()
    return samples / SAMPLE_RATE


class PacketPath:
    """An in-memory UDPTL-like path in one direction: sequence numbers, loss and reordering.

    ``lose(n)`` says whether the n-th datagram on this path is lost; ``hold(n)``
    says whether it is delayed by one tick (delivered after its successors).
    """

    def __init__(
        self,
        lose: Callable[[int], bool] = lambda _n: False,
        hold: Callable[[int], bool] = lambda _n: False,
    ) -> None:
        self._lose = lose
        self._hold = hold
        self._seq = 0
        self._datagrams = 0
        self._ready: list[tuple[int, bytes]] = []
        self._held: list[tuple[int, bytes]] = []
        self.sent = 0
        self.lost = 0
        self.reordered = 0

    def send(self, packet: bytes, count: int) -> None:
        """Queue one IFP packet, sent ``count`` times under one sequence number (redundancy)."""
        seq = self._seq
        self._seq = (self._seq + 1) & 0xFFFF
        for _ in range(max(count, 1)):
            n = self._datagrams
            self._datagrams += 1
            self.sent += 1
            if self._lose(n):
                self.lost += 1
                continue
            if self._hold(n):
                self.reordered += 1
                self._held.append((seq, packet))
            else:
                self._ready.append((seq, packet))

    def deliver(self, terminal: T38Terminal) -> None:
        """Hand this tick's datagrams to ``terminal``; held ones follow their successors."""
        ready, self._ready = self._ready, []
        held, self._held = self._held, []
        for seq, packet in ready + held:
            terminal.rx_packet(packet, seq)


def run_t38_back_to_back(
    caller: T38Terminal,
    answerer: T38Terminal,
    caller_to_answerer: PacketPath,
    answerer_to_caller: PacketPath,
    *,
    max_line_s: float = 1200.0,
) -> float:
    """Drive two T.38 terminals in 20 ms ticks until both reach phase E; returns line seconds."""
    max_samples = int(max_line_s * SAMPLE_RATE)
    samples = 0
    while not (caller.done and answerer.done) and samples < max_samples:
        caller.tick()
        answerer.tick()
        caller_to_answerer.deliver(answerer)
        answerer_to_caller.deliver(caller)
        samples += FRAME_SAMPLES
    for terminal in (caller, answerer):
        if not terminal.done:
            terminal.abandon()
    return samples / SAMPLE_RATE


def call_result(
    outcome: Outcome,
    *,
    sending: bool,
    line_seconds: float,
    started_at: datetime,
    local_ident: str,
    setup: CallSetup,
    received_tiff: bytes | None = None,
) -> CallResult:
    """The CallResult of one terminal's call: success only if phase E said OK and all pages went."""
    if sending:
        transferred = outcome.pages_tx
        expected: int | None = outcome.pages_in_file if outcome.pages_in_file >= 0 else None
        success = outcome.completion_code == sd.T30_ERR_OK and expected is not None and transferred == expected > 0
    else:
        transferred = outcome.pages_rx
        expected = None
        success = outcome.completion_code == sd.T30_ERR_OK and transferred > 0
    return CallResult(
        success=success,
        t30_code=outcome.completion_code,
        t30_text=outcome.completion_text,
        pages_transferred=transferred,
        pages_expected=expected,
        remote_ident=outcome.remote_ident,
        local_ident=local_ident,
        calling_number=setup.calling_number,
        called_number=setup.called_number,
        sub_address=outcome.sub_address or setup.sub_address,
        bit_rate=outcome.bit_rate,
        ecm=outcome.ecm,
        compression=outcome.compression,
        bad_rows=outcome.bad_rows,
        duration_s=round(line_seconds, 3),
        started_at=started_at,
        received_tiff=received_tiff if transferred > 0 else None,
    )


def hangup_after_pages(terminal: _T30Terminal, pages: int, *, into_page_s: float = 5.0) -> Callable[[], bool]:
    """A predicate that drops the call part-way into page ``pages + 1`` (for tests and the simulator).

    It fires ``into_page_s`` of line time after ``pages`` pages went through
    (the post-page handshake and retraining take about 2-3 s, so the next page
    is being transferred); for ``pages == 0`` phase B's ~8 s are added.
    """
    mark: list[int] = []
    delay = int((into_page_s + (8.0 if pages == 0 else 0.0)) * SAMPLE_RATE)

    def due() -> bool:
        if not mark:
            stats = terminal.stats()
            if max(stats.pages_tx, stats.pages_rx) >= pages:
                mark.append(terminal.samples)
            return False
        return bool(terminal.samples - mark[0] >= delay)

    return due
