"""UDPTL (ITU-T T.38 clause 9.1) framing of T.38 IFP packets, with redundancy, as spandsp/Asterisk/FreeSWITCH do.

A UDPTL packet is the ASN.1 PER (aligned) encoding of::

    UDPTLPacket ::= SEQUENCE {
        seq-number          INTEGER (0..65535),                 -- 2 octets, big-endian
        primary-ifp-packet  TYPE-IDENTIFIER.&Type(IFPPacket),   -- open type: length + octets
        error-recovery      CHOICE {                            -- 1 octet: 0x00 or 0x80
            secondary-ifp-packets  SEQUENCE OF open type,       -- count, then each (newest first)
            fec-info               SEQUENCE { fec-npackets INTEGER, fec-data SEQUENCE OF OCTET STRING }
        }
    }

Lengths are PER length determinants: one octet below 128, two octets
(``10xxxxxx``) below 16384, otherwise fragments of 16K multiples (``11000mmm``).
An empty open type is sent as one zero octet (X.691 10.1). ``t38UDPNoEC`` is
the redundancy choice with zero secondaries. FEC packets are decoded for their
primary (their parity data is not used for recovery).

The decoder hands IFP packets on in sequence order, exactly once: a gap is
filled from the secondaries of a later packet, duplicates and packets older
than what was already delivered are dropped, and what cannot be recovered is
skipped (T.38's own sequence check and T.30's ECM take it from there).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

MAX_SECONDARIES = 15  # a redundancy depth beyond this is not what any peer sends: refused
REDUNDANCY = 0x00
FEC = 0x80


class UdptlFormatError(ValueError):
    """The datagram is not a well-formed UDPTL packet."""


def _encode_length(out: bytearray, value: int) -> int:
    """Append a PER length determinant; returns how many items it announces (for fragments)."""
    if value < 0x80:
        out.append(value)
        return value
    if value < 0x4000:
        out += bytes(((0x8000 | value) >> 8, value & 0xFF))
        return value
    multiplier = min(value >> 14, 4)
    out.append(0xC0 | multiplier)
    return multiplier << 14


def _encode_open_type(out: bytearray, data: bytes) -> None:
    if not data:
        data = b"\x00"  # X.691 10.1: an empty open type is one zero octet
    offset = 0
    while True:
        n = _encode_length(out, len(data) - offset)
        out += data[offset:offset + n]
        offset += n
        if n < 0x4000:  # not a fragment: the last (possibly empty) part
            return


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def octet(self) -> int:
        if self.pos >= len(self.data):
            raise UdptlFormatError("truncated UDPTL packet")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def octets(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise UdptlFormatError("truncated UDPTL packet")
        value = self.data[self.pos:self.pos + n]
        self.pos += n
        return value

    def length(self) -> tuple[int, bool]:
        """A length determinant: (value, more fragments follow)."""
        first = self.octet()
        if first & 0x80 == 0:
            return first, False
        if first & 0x40 == 0:
            return ((first & 0x3F) << 8) | self.octet(), False
        multiplier = first & 0x3F
        if not 1 <= multiplier <= 4:
            raise UdptlFormatError("bad UDPTL length fragment")
        return multiplier << 14, True

    def open_type(self) -> bytes:
        parts = []
        while True:
            n, more = self.length()
            parts.append(self.octets(n))
            if not more:
                return b"".join(parts)


@dataclass(frozen=True)
class UdptlPacket:
    """One decoded UDPTL datagram: its sequence number, primary IFP and secondaries (newest first)."""

    seq: int
    primary: bytes
    secondaries: tuple[bytes, ...] = ()
    fec: bool = False

    def pack(self) -> bytes:
        """The wire form (redundancy choice; zero secondaries is t38UDPNoEC)."""
        out = bytearray(((self.seq >> 8) & 0xFF, self.seq & 0xFF))
        _encode_open_type(out, self.primary)
        out.append(REDUNDANCY)
        _encode_length(out, len(self.secondaries))
        for secondary in self.secondaries:
            _encode_open_type(out, secondary)
        return bytes(out)


def parse_udptl(data: bytes) -> UdptlPacket:
    """Decode one datagram; raises UdptlFormatError for anything that is not exactly one UDPTL packet."""
    reader = _Reader(data)
    seq = (reader.octet() << 8) | reader.octet()
    primary = reader.open_type()
    if not primary:
        raise UdptlFormatError("empty primary IFP packet")
    choice = reader.octet()
    secondaries: list[bytes] = []
    fec = False
    if choice == REDUNDANCY:
        count, more = reader.length()
        if more or count > MAX_SECONDARIES:
            raise UdptlFormatError(f"{count} secondary IFP packets is more than accepted ({MAX_SECONDARIES})")
        for _ in range(count):
            secondaries.append(reader.open_type())
    elif choice == FEC:
        fec = True
        span_len = reader.octet()
        reader.octets(span_len)  # fec-npackets (the span), unconstrained integer
        entries, more = reader.length()
        if more or entries > MAX_SECONDARIES:
            raise UdptlFormatError("too many FEC entries")
        for _ in range(entries):
            reader.open_type()
    else:
        raise UdptlFormatError(f"unknown UDPTL error recovery choice 0x{choice:02x}")
    if reader.pos != len(data):
        raise UdptlFormatError(f"{len(data) - reader.pos} octets after the UDPTL packet")
    return UdptlPacket(seq, primary, tuple(secondaries), fec)


class UdptlEncoder:
    """Frames outgoing IFP packets: one sequence number each, with up to ``redundancy`` earlier ones."""

    def __init__(self, *, redundancy: int = 3, max_datagram: int = 400) -> None:
        self.redundancy = max(0, min(redundancy, MAX_SECONDARIES))
        self.max_datagram = max_datagram
        self.seq = 0
        self._history: deque[bytes] = deque(maxlen=max(self.redundancy, 1))

    def encode(self, ifp: bytes) -> bytes:
        """The datagram for ``ifp``: as many secondaries as fit in ``max_datagram`` (newest first)."""
        secondaries = list(self._history)[::-1][: self.redundancy]
        while True:
            datagram = UdptlPacket(self.seq, ifp, tuple(secondaries)).pack()
            if len(datagram) <= self.max_datagram or not secondaries:
                break
            secondaries.pop()  # drop the oldest secondary first
        if self.redundancy:
            self._history.append(ifp)
        self.seq = (self.seq + 1) & 0xFFFF
        return datagram


@dataclass
class UdptlStats:
    """What the decoder did with the datagrams it was given."""

    datagrams: int = 0
    malformed: int = 0
    delivered: int = 0
    recovered: int = 0  # IFP packets taken from a later datagram's secondaries
    lost: int = 0  # sequence numbers that were never received nor recovered
    duplicates: int = 0  # datagrams whose primary had already been delivered (or recovered)


def _seq_diff(a: int, b: int) -> int:
    return ((a - b + 0x8000) & 0xFFFF) - 0x8000


class UdptlDecoder:
    """Delivers IFP packets in order, exactly once, to ``deliver(ifp, seq)``, recovering from redundancy.

    A gap that the secondaries cannot fill is waited for up to ``hold_s`` (call
    ``poll`` every tick): on a jittery path without redundancy (``t38UDPNoEC``)
    the "missing" packet is usually only overtaken and arrives a moment later.
    After ``hold_s`` the gap is given up and what is held goes on in order.
    """

    # A jump this far ahead is a new stream (a restarted peer), not a loss: accept it as the new start.
    RESYNC_GAP = 2000
    # Packets held behind a gap at most; beyond this the gap is given up at once.
    MAX_HELD = 64

    def __init__(self, deliver: Callable[[bytes, int], None], *, hold_s: float = 0.0) -> None:
        self._deliver = deliver
        self.hold_s = hold_s
        self._expected: int | None = None
        self._held: dict[int, bytes] = {}
        self._held_since = 0.0
        self.stats = UdptlStats()

    def receive(self, data: bytes, now: float = 0.0) -> bool:
        """Take one datagram (``now``: a monotonic time, for ``hold_s``); False and counted when malformed."""
        self.stats.datagrams += 1
        try:
            packet = parse_udptl(data)
        except UdptlFormatError:
            self.stats.malformed += 1
            return False
        self.take(packet, now)
        return True

    def take(self, packet: UdptlPacket, now: float = 0.0) -> None:
        """Take one decoded packet."""
        if self._expected is None:
            # The first datagram to arrive may not be the first sent: its secondaries go back further.
            self._expected = (packet.seq - len(packet.secondaries)) & 0xFFFF
        ahead = _seq_diff(packet.seq, self._expected)
        if ahead < 0 or packet.seq in self._held:
            self.stats.duplicates += 1
            return
        if ahead > self.RESYNC_GAP:
            self._give_up()
            self._expected = packet.seq
            ahead = 0
        was_waiting = bool(self._held)
        self._held[packet.seq] = packet.primary
        # secondaries[i] carries seq - 1 - i: keep those of the missing ones we can.
        for index, secondary in enumerate(packet.secondaries[:ahead]):
            seq = (packet.seq - 1 - index) & 0xFFFF
            if secondary and seq not in self._held:
                self._held[seq] = secondary
                self.stats.recovered += 1
        self._flush()
        if self._held:
            if self.hold_s <= 0 or len(self._held) > self.MAX_HELD:
                self._give_up()
            elif not was_waiting:
                self._held_since = now

    def poll(self, now: float) -> None:
        """Give up a gap that has been waited for ``hold_s``."""
        if self._held and now - self._held_since >= self.hold_s:
            self._give_up()

    def _flush(self) -> None:
        assert self._expected is not None
        while self._expected in self._held:
            self._deliver(self._held.pop(self._expected), self._expected)
            self.stats.delivered += 1
            self._expected = (self._expected + 1) & 0xFFFF

    def _give_up(self) -> None:
        """Skip the missing packets and deliver everything held, in order."""
        while self._held:
            assert self._expected is not None
            nearest = min(self._held, key=lambda seq: _seq_diff(seq, self._expected or 0))
            self.stats.lost += _seq_diff(nearest, self._expected)
            self._expected = nearest
            self._flush()
