"""RTP packets (RFC 3550), RFC 2198 redundancy, and the fixed playout buffer for modem audio."""

from __future__ import annotations

import random
from itertools import pairwise

import pytest

from inkless.fax.sip import rtp
from inkless.fax.sip.rtp import PlayoutBuffer, RedBlock, RtpPacket, RtpSender, parse_red, parse_rtp

SILENCE = b"\xff" * 160


def test_header_bytes_are_as_rfc_3550_draws_them() -> None:
    packet = RtpPacket(payload_type=8, sequence=0x1234, timestamp=0xA0, ssrc=0x11223344, payload=b"\xd5" * 4,
                       marker=True)
    wire = packet.pack()
    # V=2 P=0 X=0 CC=0 | M=1 PT=8 | sequence | timestamp | SSRC
    assert wire == bytes.fromhex("80 88 1234 000000a0 11223344") + b"\xd5" * 4
    assert parse_rtp(wire) == packet


def test_csrc_extension_and_padding_are_skipped() -> None:
    header = bytes.fromhex("b2 00 0001 00000000 00000001")  # V=2, P=1, X=1, CC=2
    csrcs = bytes(8)
    extension = bytes.fromhex("bede 0001") + bytes(4)
    wire = header + csrcs + extension + b"\x01\x02\x03" + b"\x00\x00\x03"  # 3 padding octets
    packet = parse_rtp(wire)
    assert packet is not None and packet.payload == b"\x01\x02\x03" and packet.payload_type == 0


@pytest.mark.parametrize(
    "wire",
    [
        b"",
        b"\x80\x00\x00",  # truncated header
        bytes.fromhex("40 00 0001 00000000 00000001") + b"x",  # version 1
        bytes.fromhex("8f 00 0001 00000000 00000001"),  # 15 CSRCs announced, none there
        bytes.fromhex("90 00 0001 00000000 00000001 bede"),  # truncated extension header
        bytes.fromhex("90 00 0001 00000000 00000001 bede ffff"),  # extension longer than the datagram
        bytes.fromhex("a0 00 0001 00000000 00000001 aa 00"),  # padding count 0
        bytes.fromhex("a0 00 0001 00000000 00000001 aa 40"),  # more padding than payload
        bytes.fromhex("80 00 0001 00000000 00000001") + bytes(rtp.MAX_PAYLOAD + 1),  # oversized
    ],
)
def test_malformed_packets_are_none_never_an_exception(wire: bytes) -> None:
    assert parse_rtp(wire) is None


def test_random_garbage_never_raises() -> None:
    rng = random.Random(7)
    for _ in range(20000):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
        parse_rtp(data)
        parse_red(data)


def test_sender_numbers_packets_and_marks_the_first() -> None:
    sender = RtpSender(0, ssrc=42)
    first = parse_rtp(sender.packet(SILENCE))
    second = parse_rtp(sender.packet(SILENCE))
    assert first is not None and second is not None
    assert first.marker and not second.marker
    assert second.sequence == (first.sequence + 1) & 0xFFFF
    assert second.timestamp == (first.timestamp + 160) & 0xFFFFFFFF
    assert first.ssrc == second.ssrc == 42
    third = parse_rtp(sender.packet(b"x" * 500, samples=160))  # a red payload still advances one frame
    assert third is not None and third.timestamp == (second.timestamp + 160) & 0xFFFFFFFF


def test_red_payload_layout_and_round_trip() -> None:
    # RFC 2198 section 3: F=1|PT, 14-bit offset, 10-bit length per redundant block; F=0|PT for the primary.
    wire = rtp.pack_red(0, b"P" * 3, [RedBlock(0, 320, b"A" * 2), RedBlock(0, 160, b"B" * 2)])
    assert wire[:9] == bytes.fromhex("80 0500 02  80 0280 02  00")
    assert wire[9:] == b"AABBPPP"
    assert parse_red(wire) == [RedBlock(0, 320, b"AA"), RedBlock(0, 160, b"BB"), RedBlock(0, 0, b"PPP")]
    assert parse_red(bytes.fromhex("80 0500 ff 00") + b"short") is None


def test_redundant_sender_repeats_the_previous_frames() -> None:
    red = rtp.RedundantSender(96, 0, depth=2)
    payloads = [parse_red(red.payload(bytes([n]) * 160)) for n in range(4)]
    assert payloads[0] == [RedBlock(0, 0, b"\x00" * 160)]
    assert payloads[3] == [RedBlock(0, 320, b"\x01" * 160), RedBlock(0, 160, b"\x02" * 160),
                           RedBlock(0, 0, b"\x03" * 160)]


def packet(seq: int, ssrc: int = 1) -> RtpPacket:
    return RtpPacket(0, seq & 0xFFFF, (seq * 160) & 0xFFFFFFFF, ssrc, seq.to_bytes(4, "big", signed=True))


def frame_of(seq: int) -> bytes:
    return seq.to_bytes(4, "big", signed=True)


def buffer() -> PlayoutBuffer:
    return PlayoutBuffer(prefetch=5, maximum=20, silence=b"")


def test_prefetch_then_in_order_play_out() -> None:
    buf = buffer()
    out = []
    for seq in range(40):
        buf.push(packet(seq))
        out.append(buf.pop())
    # 100 ms (5 packets) gathered before anything is played, then every packet in order.
    assert out[:4] == [b""] * 4
    assert [o for o in out if o] == [frame_of(s) for s in range(36)]
    assert buf.stats.missing == buf.stats.late == 0


def test_reordered_packets_inside_the_window_are_all_played_in_order() -> None:
    buf = buffer()
    order = list(range(60))
    rng = random.Random(3)
    for i in range(0, 60, 4):  # shuffle within groups of four (60 ms of jitter)
        group = order[i:i + 4]
        rng.shuffle(group)
        order[i:i + 4] = group
    order = [0, *[s for s in order if s != 0]]
    played = []
    for seq in order:
        buf.push(packet(seq))
        played.append(buf.pop())
    for _ in range(10):
        played.append(buf.pop())
    assert [p for p in played if p] == [frame_of(s) for s in range(60)]
    assert buf.stats.late == 0 and buf.stats.missing == 0


def test_a_lost_packet_is_played_as_silence_not_concealed() -> None:
    buf = buffer()
    played = []
    for seq in range(30):
        if seq not in (10, 11):
            buf.push(packet(seq))
        played.append(buf.pop())
    played += [buf.pop() for _ in range(5)]
    start = played.index(frame_of(0))
    assert played[start:start + 30] == [frame_of(s) if s not in (10, 11) else b"" for s in range(30)]
    assert buf.stats.missing == 2


def test_a_150_ms_sender_stall_loses_nothing() -> None:
    buf = buffer()
    played: list[bytes] = []
    seq = 0
    for tick in range(80):
        if 20 <= tick < 28:
            pass  # the sender stalls for 8 ticks (160 ms): nothing arrives
        elif tick == 28:
            for _ in range(9):  # and then catches up in a burst
                buf.push(packet(seq))
                seq += 1
        else:
            buf.push(packet(seq))
            seq += 1
        played.append(buf.pop())
    got = [p for p in played if p]
    assert got == [frame_of(s) for s in range(len(got))]  # nothing skipped, nothing out of order
    assert len(got) >= seq - buf.prefetch - 9
    assert buf.stats.missing == 0 and buf.stats.late == 0 and buf.stats.overflow == 0


def test_the_buffer_never_holds_more_than_its_maximum() -> None:
    buf = buffer()
    for seq in range(100):  # a burst with no play-out at all
        buf.push(packet(seq))
        assert buf.depth <= 20
    depth = buf.depth
    assert buf.stats.overflow == 100 - depth and buf.prefetch <= depth <= 20
    # the oldest were dropped (once down to the prefetch, not one by one), the newest kept, in order
    assert [buf.pop() for _ in range(depth)] == [frame_of(s) for s in range(100 - depth, 100)]


def test_late_duplicate_and_restarted_streams() -> None:
    buf = buffer()
    for seq in range(10):
        buf.push(packet(seq))
        buf.pop()
    buf.push(packet(0))  # its turn has passed
    assert buf.stats.late == 1
    buf.push(packet(10))
    buf.push(packet(10))  # the same packet twice
    assert buf.stats.duplicates == 1
    buf.push(packet(5000))  # far outside any jitter: the sender restarted its numbering
    assert buf.stats.resyncs == 1
    buf.push(packet(7, ssrc=2))  # a new source (a re-INVITE to another gateway)
    assert buf.stats.resyncs == 2 and buf.depth == 1


def test_sequence_numbers_wrap_around() -> None:
    buf = buffer()
    played = []
    for seq in range(65530, 65530 + 20):
        buf.push(packet(seq))
        played.append(buf.pop())
    # the payloads carry the unwrapped count
    assert [p for p in played if p] == [frame_of(s) for s in range(65530, 65530 + 16)]


def test_red_copies_fill_only_gaps() -> None:
    buf = buffer()
    for seq in range(12):
        if seq != 6:
            buf.push(packet(seq))
        if seq == 7:
            buf.push(packet(6), recovered=True)  # the copy carried in packet 7
            buf.push(packet(5), recovered=True)  # already there: ignored
    played = [buf.pop() for _ in range(20)]
    assert [p for p in played if p][:12] == [frame_of(s) for s in range(12)]
    assert buf.stats.recovered == 1 and buf.stats.missing == 0


def test_a_far_end_with_a_slow_or_fast_clock_plays_in_order_with_rare_pauses() -> None:
    for extra_every, skip_every in ((0, 50), (50, 0)):
        buf = buffer()
        played: list[bytes] = []
        seq = 0
        pauses = 0
        for tick in range(1, 2001):
            sends = 1
            if skip_every and tick % skip_every == 0:
                sends = 0  # 2 % slow
            if extra_every and tick % extra_every == 0:
                sends = 2  # 2 % fast
            for _ in range(sends):
                buf.push(packet(seq))
                seq += 1
            held = buf.stats.held
            played.append(buf.pop())
            if buf.stats.held > held and (len(played) < 2 or played[-2]):
                pauses += 1
        got = [int.from_bytes(p, "big") for p in played if p]
        jumps = sum(1 for a, b in pairwise(got) if b != a + 1)
        assert all(b > a for a, b in pairwise(got))  # always in order
        assert buf.stats.missing == 0 and buf.stats.late == 0
        if skip_every:
            assert jumps == 0  # nothing skipped
            assert pauses <= 12  # one pause per 5 packets of deficit (a new prefetch), not one per packet
        else:
            assert jumps <= 3 and buf.stats.overflow == sum(b - a - 1 for a, b in pairwise(got))
