"""UDPTL (T.38 clause 9.1): hand-checked byte vectors, malformed input, and recovery from loss by redundancy."""

from __future__ import annotations

import random

import pytest

from inkless.fax.sip.udptl import UdptlDecoder, UdptlEncoder, UdptlFormatError, UdptlPacket, parse_udptl

CNG = bytes.fromhex("02")  # IFP t30-indicator cng, as spandsp sends it
V21_PREAMBLE = bytes.fromhex("06")


def test_first_packet_bytes() -> None:
    # seq 0 | primary: length 1, IFP | error-recovery: redundancy (0x00) | no secondaries yet (length 0)
    assert UdptlEncoder(redundancy=3).encode(CNG) == bytes.fromhex("0000 01 02 00 00")


def test_redundancy_bytes_newest_secondary_first() -> None:
    encoder = UdptlEncoder(redundancy=2)
    encoder.encode(CNG)
    encoder.encode(V21_PREAMBLE)
    third = encoder.encode(b"\xc0\x01\x80")
    # seq 2 | len 3 primary | redundancy, 2 secondaries: seq 1 (len 1, 06) then seq 0 (len 1, 02)
    assert third == bytes.fromhex("0002 03 c00180 00 02 01 06 01 02")
    assert parse_udptl(third) == UdptlPacket(2, b"\xc0\x01\x80", (V21_PREAMBLE, CNG))


def test_no_ec_is_redundancy_with_zero_secondaries() -> None:
    encoder = UdptlEncoder(redundancy=0)
    encoder.encode(CNG)
    assert encoder.encode(CNG) == bytes.fromhex("0001 01 02 00 00")


def test_long_ifp_uses_a_two_octet_length() -> None:
    ifp = bytes(range(200))
    wire = UdptlPacket(0x1234, ifp).pack()
    assert wire[:4] == bytes.fromhex("1234 80c8") and wire[4:204] == ifp and wire[204:] == b"\x00\x00"
    assert parse_udptl(wire).primary == ifp


def test_secondaries_are_dropped_to_fit_the_far_ends_max_datagram() -> None:
    encoder = UdptlEncoder(redundancy=3, max_datagram=120)
    for _ in range(3):
        encoder.encode(bytes(50))
    datagram = encoder.encode(bytes(50))
    assert len(datagram) <= 120
    assert len(parse_udptl(datagram).secondaries) == 1  # 2 + 51 + 1 + 1 + 51 = 106; a second would not fit


def test_fec_packets_are_read_for_their_primary() -> None:
    # seq 5 | primary 02 | fec-info (0x80): npackets as a 1-octet integer (3), 2 entries of parity data
    wire = bytes.fromhex("0005 01 02 80 01 03 02 02 aabb 01 cc")
    packet = parse_udptl(wire)
    assert packet.seq == 5 and packet.primary == CNG and packet.fec and packet.secondaries == ()


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (b"", "truncated"),
        (bytes.fromhex("00"), "truncated"),
        (bytes.fromhex("0001 05 0102"), "truncated"),  # primary longer than the datagram
        (bytes.fromhex("0001 01 02"), "truncated"),  # no error-recovery field
        (bytes.fromhex("0001 01 02 40 00"), "unknown UDPTL error recovery"),
        (bytes.fromhex("0001 01 02 00 10") + bytes.fromhex("0100") * 16, "more than accepted"),
        (bytes.fromhex("0001 01 02 00 00 ff"), "octets after"),  # trailing garbage
        (bytes.fromhex("0001 00 00 00"), "empty primary"),
        (bytes.fromhex("0001 c7"), "bad UDPTL length fragment"),
        # an RTP packet arriving after the switch to T.38 is refused, not decoded as nonsense
        (bytes.fromhex("8000 1234 000000a0 11223344") + b"\xff" * 160, "."),
    ],
)
def test_malformed_datagrams_are_refused(wire: bytes, message: str) -> None:
    with pytest.raises(UdptlFormatError, match=message):
        parse_udptl(wire)


def test_random_garbage_is_refused_or_decoded_never_crashes() -> None:
    rng = random.Random(11)
    decoder = UdptlDecoder(lambda _ifp, _seq: None)
    for _ in range(20000):
        decoder.receive(bytes(rng.randrange(256) for _ in range(rng.randrange(30))))
    assert decoder.stats.malformed > 15000


def run_path(ifps: list[bytes], lost: set[int], *, redundancy: int, reorder: bool = False) -> list[tuple[int, bytes]]:
    encoder = UdptlEncoder(redundancy=redundancy)
    datagrams = [encoder.encode(ifp) for ifp in ifps]
    kept = [d for n, d in enumerate(datagrams) if n not in lost]
    if reorder:
        for i in range(0, len(kept) - 1, 5):
            kept[i], kept[i + 1] = kept[i + 1], kept[i]
    delivered: list[tuple[int, bytes]] = []
    decoder = UdptlDecoder(lambda ifp, seq: delivered.append((seq, ifp)))
    for datagram in kept:
        decoder.receive(datagram)
    return delivered


def test_lost_primaries_come_back_from_later_secondaries_in_order_exactly_once() -> None:
    ifps = [bytes([n % 256]) * (1 + n % 7) for n in range(300)]
    lost = {3, 10, 11, 12, 50, 51, 52, 100, 200, 201}  # singles and bursts up to the redundancy depth
    delivered = run_path(ifps, lost, redundancy=3)
    assert delivered == list(enumerate(ifps))


def test_a_burst_longer_than_the_redundancy_is_skipped_not_reordered() -> None:
    ifps = [bytes([n]) for n in range(40)]
    delivered = run_path(ifps, {10, 11, 12, 13, 14}, redundancy=3)
    # 10 and 11 are gone for good; 12-14 come back from packet 15's three secondaries.
    assert [seq for seq, _ in delivered] == [s for s in range(40) if s not in (10, 11)]


def test_random_loss_with_redundancy_delivers_everything_recoverable() -> None:
    rng = random.Random(5)
    ifps = [rng.randbytes(rng.randrange(1, 60)) for _ in range(2000)]
    lost = {n for n in range(2000) if rng.random() < 0.05} - {1999}
    delivered = run_path(ifps, lost, redundancy=3)
    unrecoverable = {n for n in lost if all(m in lost for m in range(n, min(n + 4, 2000)))}
    assert delivered == [(n, ifps[n]) for n in range(2000) if n not in unrecoverable]


def test_reordered_datagrams_are_delivered_once_in_order() -> None:
    ifps = [bytes([n % 256, 1]) for n in range(100)]
    delivered = run_path(ifps, set(), redundancy=2, reorder=True)
    assert delivered == list(enumerate(ifps))


def test_no_ec_loses_what_is_lost_and_drops_duplicates() -> None:
    ifps = [bytes([n]) for n in range(20)]
    encoder = UdptlEncoder(redundancy=0)
    datagrams = [encoder.encode(ifp) for ifp in ifps]
    delivered: list[int] = []
    decoder = UdptlDecoder(lambda _ifp, seq: delivered.append(seq))
    for n, datagram in enumerate(datagrams):
        if n != 7:
            decoder.receive(datagram)
            decoder.receive(datagram)  # sent twice (spandsp's repeat count)
    assert delivered == [n for n in range(20) if n != 7]
    assert decoder.stats.lost == 1 and decoder.stats.duplicates == 19


def test_sequence_numbers_wrap_around() -> None:
    delivered: list[int] = []
    decoder = UdptlDecoder(lambda _ifp, seq: delivered.append(seq))
    for seq in (65534, 65535, 1, 2):
        decoder.take(UdptlPacket(seq, b"\x02", (b"\x04",) if seq == 1 else ()))
    assert delivered == [65534, 65535, 0, 1, 2]


def test_without_redundancy_an_overtaken_packet_is_waited_for() -> None:
    encoder = UdptlEncoder(redundancy=0)
    datagrams = [encoder.encode(bytes([n])) for n in range(30)]
    order = list(range(30))
    for i in range(2, 28, 6):  # every sixth datagram overtaken by its successor
        order[i], order[i + 1] = order[i + 1], order[i]
    delivered: list[int] = []
    decoder = UdptlDecoder(lambda _ifp, seq: delivered.append(seq), hold_s=0.06)
    for tick, n in enumerate(order):
        now = tick * 0.02
        decoder.poll(now)
        decoder.receive(datagrams[n], now)
    assert delivered == list(range(30)) and decoder.stats.lost == 0


def test_a_gap_that_never_fills_is_given_up_after_the_hold() -> None:
    encoder = UdptlEncoder(redundancy=0)
    datagrams = [encoder.encode(bytes([n])) for n in range(10)]
    delivered: list[int] = []
    decoder = UdptlDecoder(lambda _ifp, seq: delivered.append(seq), hold_s=0.06)
    for n in (0, 1, 3, 4):  # 2 is lost
        decoder.receive(datagrams[n], now=n * 0.02)
    assert delivered == [0, 1]  # 3 and 4 wait for 2
    decoder.poll(0.10)
    assert delivered == [0, 1]
    decoder.poll(0.13)  # 60 ms after the gap opened
    assert delivered == [0, 1, 3, 4] and decoder.stats.lost == 1
    decoder.receive(datagrams[2], now=0.14)  # too late now: dropped, not delivered out of order
    assert delivered == [0, 1, 3, 4] and decoder.stats.duplicates == 1


def test_the_hold_is_bounded() -> None:
    delivered: list[int] = []
    decoder = UdptlDecoder(lambda _ifp, seq: delivered.append(seq), hold_s=10.0)
    decoder.take(UdptlPacket(0, b"\x02"))
    for seq in range(2, 2 + UdptlDecoder.MAX_HELD + 1):  # 1 never comes
        decoder.take(UdptlPacket(seq, b"\x02"))
    assert delivered == [0, *range(2, 2 + UdptlDecoder.MAX_HELD + 1)]
