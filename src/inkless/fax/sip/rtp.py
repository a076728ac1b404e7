"""RTP (RFC 3550) for fax audio: packet format, a sender, and a fixed playout buffer made for modems.

Modem audio is not speech: a V.17 receiver cannot hear through packet-loss
concealment, comfort noise or a buffer that shrinks and grows under it. The
playout buffer here therefore waits a fixed prefetch (100 ms) before it plays,
reorders by sequence number, keeps every packet that arrives in time (a late
packet inside the window is played, not discarded), feeds a missing packet as
silence, and only drops audio when more than the maximum (400 ms) has piled
up. When the sender stalls and nothing at all is buffered, play-out *holds*
(silence, without skipping the sequence) so that the stalled audio is still
played once it arrives: the delay grows by the stall instead of a hole
opening in the middle of a training sequence.
"""

from __future__ import annotations

import secrets
import struct
from dataclasses import dataclass

RTP_VERSION = 2
HEADER = struct.Struct("!BBHII")
HEADER_BYTES = HEADER.size  # 12
# Payloads longer than this are not G.711 telephony (60 ms at 8 kHz is 480 bytes): refused.
MAX_PAYLOAD = 1200


@dataclass(frozen=True)
class RtpPacket:
    """One RTP packet: the header fields we use and the payload."""

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False

    def pack(self) -> bytes:
        """The wire form: 12-byte header (no CSRC, no extension, no padding) and the payload."""
        return HEADER.pack(
            RTP_VERSION << 6,
            (0x80 if self.marker else 0) | (self.payload_type & 0x7F),
            self.sequence & 0xFFFF,
            self.timestamp & 0xFFFFFFFF,
            self.ssrc & 0xFFFFFFFF,
        ) + self.payload


def parse_rtp(data: bytes) -> RtpPacket | None:
    """The packet in ``data``, or None when it is not a well-formed RTP packet (never raises)."""
    if len(data) < HEADER_BYTES:
        return None
    first, second, sequence, timestamp, ssrc = HEADER.unpack_from(data)
    if first >> 6 != RTP_VERSION:
        return None
    offset = HEADER_BYTES + 4 * (first & 0x0F)  # CSRC list
    end = len(data)
    if first & 0x10:  # header extension: 16-bit profile, 16-bit length in 32-bit words
        if end < offset + 4:
            return None
        (words,) = struct.unpack_from("!H", data, offset + 2)
        offset += 4 + 4 * words
    if first & 0x20:  # padding: the last octet counts the padding octets, itself included
        pad = data[-1]
        if pad == 0:
            return None
        end -= pad
    if offset > end or end - offset > MAX_PAYLOAD:
        return None
    return RtpPacket(
        payload_type=second & 0x7F,
        sequence=sequence,
        timestamp=timestamp,
        ssrc=ssrc,
        payload=bytes(data[offset:end]),
        marker=bool(second & 0x80),
    )


class RtpSender:
    """Numbers outgoing packets: random initial sequence, timestamp and SSRC; marker on the first."""

    def __init__(self, payload_type: int, *, ssrc: int | None = None) -> None:
        self.payload_type = payload_type
        self.ssrc = secrets.randbits(32) if ssrc is None else ssrc
        self.sequence = secrets.randbits(16)
        self.timestamp = secrets.randbits(32)
        self._first = True
        self.sent = 0

    def packet(self, payload: bytes, samples: int | None = None) -> bytes:
        """The next packet carrying ``payload``; the timestamp advances by ``samples`` (default: one per byte)."""
        packet = RtpPacket(self.payload_type, self.sequence, self.timestamp, self.ssrc, payload, marker=self._first)
        self._first = False
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.timestamp = (self.timestamp + (len(payload) if samples is None else samples)) & 0xFFFFFFFF
        self.sent += 1
        return packet.pack()


@dataclass(frozen=True)
class RedBlock:
    """One block of an RFC 2198 redundant-audio payload; ``offset`` is how many samples it is older."""

    payload_type: int
    offset: int
    data: bytes


def pack_red(primary_type: int, primary: bytes, redundant: list[RedBlock]) -> bytes:
    """An RFC 2198 payload: the redundant blocks (oldest first) and then the primary."""
    out = bytearray()
    for block in redundant:
        if not 0 < block.offset < 0x4000 or len(block.data) >= 0x400:
            raise ValueError("a redundant block's offset or length does not fit RFC 2198's fields")
        out += struct.pack("!BHB", 0x80 | block.payload_type, (block.offset << 2) | (len(block.data) >> 8),
                           len(block.data) & 0xFF)
    out.append(primary_type & 0x7F)
    for block in redundant:
        out += block.data
    out += primary
    return bytes(out)


def parse_red(payload: bytes) -> list[RedBlock] | None:
    """The blocks of an RFC 2198 payload, oldest first, the primary last (offset 0); None if malformed."""
    headers: list[tuple[int, int, int]] = []
    pos = 0
    while True:
        if pos >= len(payload):
            return None
        first = payload[pos]
        if not first & 0x80:
            headers.append((first & 0x7F, 0, -1))
            pos += 1
            break
        if pos + 4 > len(payload) or len(headers) >= 16:
            return None
        (word,) = struct.unpack_from("!I", payload, pos)
        headers.append((first & 0x7F, (word >> 10) & 0x3FFF, word & 0x3FF))
        pos += 4
    blocks = []
    for payload_type, offset, length in headers:
        if length < 0:
            length = len(payload) - pos
        if length < 0 or pos + length > len(payload):
            return None
        blocks.append(RedBlock(payload_type, offset, payload[pos:pos + length]))
        pos += length
    return blocks


class RedundantSender:
    """RFC 2198 framing for a sender: each packet repeats the ``depth`` previous frames."""

    def __init__(self, red_type: int, codec_type: int, depth: int = 2) -> None:
        self.red_type = red_type
        self.codec_type = codec_type
        self.depth = depth
        self._history: list[bytes] = []

    def payload(self, frame: bytes) -> bytes:
        """The red payload carrying ``frame`` and the frames before it."""
        redundant = [
            RedBlock(self.codec_type, len(frame) * (len(self._history) - i), data)
            for i, data in enumerate(self._history)
        ]
        self._history = [*self._history, frame][-self.depth:] if self.depth else []
        return pack_red(self.codec_type, frame, redundant)


def seq_diff(a: int, b: int) -> int:
    """``a - b`` for 16-bit sequence numbers, in -32768..32767 (wrap-around aware)."""
    return ((a - b + 0x8000) & 0xFFFF) - 0x8000


@dataclass
class PlayoutStats:
    """What the playout buffer did, for line status and tests."""

    received: int = 0
    played: int = 0
    missing: int = 0  # frames played as silence because their packet never came
    held: int = 0  # frames of silence while nothing was buffered (sender stalled)
    late: int = 0  # packets that came after their turn had passed
    duplicates: int = 0
    overflow: int = 0  # packets dropped because more than the maximum was buffered
    recovered: int = 0  # frames taken from RFC 2198 redundancy because their own packet was missing
    resyncs: int = 0  # the stream jumped (new SSRC or a sequence far out of the window)
    depth_max: int = 0  # most packets buffered at once


class PlayoutBuffer:
    """A fixed jitter buffer for modem audio over RTP; ``push`` on arrival, ``pop`` every frame tick.

    Sizes are in packets (20 ms each for the fax media session): ``prefetch``
    packets are gathered (or as many ticks pass) before play-out starts, and at
    most ``maximum`` are held ahead of the play-out point.
    """

    def __init__(self, *, prefetch: int = 5, maximum: int = 20, silence: bytes = b"") -> None:
        if not 0 <= prefetch < maximum:
            raise ValueError("prefetch must be below the maximum")
        self.prefetch = prefetch
        self.maximum = maximum
        self.silence = silence
        self.stats = PlayoutStats()
        self._packets: dict[int, bytes] = {}
        self._next: int | None = None  # the sequence number to play next
        self._ssrc: int | None = None
        self._waiting = 0  # ticks spent gathering the prefetch
        self._playing = False

    def reset(self) -> None:
        """Forget everything buffered (a new stream starts with a new prefetch)."""
        self._packets.clear()
        self._next = None
        self._ssrc = None
        self._waiting = 0
        self._playing = False

    @property
    def depth(self) -> int:
        """Packets buffered ahead of the play-out point."""
        return len(self._packets)

    def push(self, packet: RtpPacket, *, recovered: bool = False) -> None:
        """Take one received packet (any order); ``recovered`` ones (RFC 2198 copies) only fill gaps."""
        if recovered:
            if self._next is None or packet.ssrc != self._ssrc:
                return
            ahead = seq_diff(packet.sequence, self._next)
            if 0 <= ahead < self.maximum and packet.sequence not in self._packets:
                self._packets[packet.sequence] = packet.payload
                self.stats.recovered += 1
            return
        self.stats.received += 1
        if self._ssrc is not None and packet.ssrc != self._ssrc:
            self.stats.resyncs += 1
            self.reset()
        if self._next is None:
            self._ssrc = packet.ssrc
            self._next = packet.sequence
        ahead = seq_diff(packet.sequence, self._next)
        if ahead < 0:
            if not self._playing and ahead > -self.maximum:
                # Reordered before play-out started: start earlier so it is played.
                self._next = packet.sequence
                ahead = 0
            elif ahead > -self.maximum:
                self.stats.late += 1
                return
            else:
                self.stats.resyncs += 1
                self.reset()
                self._ssrc, self._next, ahead = packet.ssrc, packet.sequence, 0
        elif ahead >= 4 * self.maximum:
            # Far beyond anything a jitter would explain: the sender restarted its numbering.
            self.stats.resyncs += 1
            self.reset()
            self._ssrc, self._next, ahead = packet.ssrc, packet.sequence, 0
        if packet.sequence in self._packets:
            self.stats.duplicates += 1
            return
        self._packets[packet.sequence] = packet.payload
        if self._span() > self.maximum:
            # Too much piled up (a far end whose clock runs fast, a long stall's backlog): drop from the
            # oldest end, once, down to the prefetch, rather than a packet here and there (each is a
            # hole in the modem signal).
            while self._span() > max(self.prefetch, 1):
                if self._packets.pop(self._next, None) is not None:
                    self.stats.overflow += 1
                self._next = (self._next + 1) & 0xFFFF
        self.stats.depth_max = max(self.stats.depth_max, len(self._packets))

    def _span(self) -> int:
        if self._next is None or not self._packets:
            return 0
        return max(seq_diff(seq, self._next) for seq in self._packets) + 1

    def pop(self) -> bytes:
        """The payload to play for this tick (``silence`` when there is none)."""
        if self._next is None:
            return self.silence
        if not self._playing:
            self._waiting += 1
            if len(self._packets) < self.prefetch and self._waiting <= self.prefetch:
                return self.silence
            self._playing = True
        payload = self._packets.pop(self._next, None)
        if payload is not None:
            self._next = (self._next + 1) & 0xFFFF
            self.stats.played += 1
            return payload
        if not self._packets:
            # Nothing at all buffered: the sender stalled (or its clock is slow). Hold the play-out point
            # and gather the prefetch again, so a slow far end costs one pause now and then, not many.
            self.stats.held += 1
            self._playing = False
            self._waiting = 0
            return self.silence
        self._next = (self._next + 1) & 0xFFFF
        self.stats.missing += 1
        return self.silence
