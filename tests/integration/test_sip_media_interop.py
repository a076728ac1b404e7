"""The media formats against implementations we did not write: sox for G.711, Wireshark's dissector for UDPTL."""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
from pathlib import Path

import pytest

from inkless.fax.sip import g711
from inkless.fax.sip.media import FaxMediaSession, MediaPort
from inkless.fax.sip.udptl import UdptlEncoder
from inkless.fax.terminal import PacketPath, T38Terminal, TerminalOptions, run_t38_back_to_back
from tests.helpers.faxdocs import simple_fax_tiff

SOX_LAW = {"PCMU": "mu-law", "PCMA": "a-law"}


def sox(*args: str) -> None:
    subprocess.run(["sox", "-D", *args], check=True, capture_output=True)


@pytest.mark.skipif(shutil.which("sox") is None, reason="needs sox")
@pytest.mark.parametrize("name", ["PCMU", "PCMA"])
def test_sox_reads_our_g711_and_we_read_sox(tmp_path: Path, name: str) -> None:
    codec = g711.codec(name)
    law = SOX_LAW[name]
    # A sweep over the whole 16-bit range, and every code.
    pcm = struct.pack("<65536h", *range(-32768, 32768))
    ours = tmp_path / "ours.g711"
    ours.write_bytes(codec.encode(pcm))
    decoded_by_sox = tmp_path / "ours.raw"
    sox("-t", "raw", "-r", "8000", "-c", "1", "-e", law, "-b", "8", str(ours),
        "-t", "raw", "-e", "signed-integer", "-b", "16", str(decoded_by_sox))
    assert decoded_by_sox.read_bytes() == codec.decode(ours.read_bytes())
    # sox encodes; we decode its codes exactly as sox itself does.
    raw = tmp_path / "sweep.raw"
    raw.write_bytes(pcm)
    theirs = tmp_path / "theirs.g711"
    sox("-t", "raw", "-r", "8000", "-c", "1", "-e", "signed-integer", "-b", "16", str(raw),
        "-t", "raw", "-e", law, "-b", "8", str(theirs))
    back = tmp_path / "theirs.raw"
    sox("-t", "raw", "-r", "8000", "-c", "1", "-e", law, "-b", "8", str(theirs),
        "-t", "raw", "-e", "signed-integer", "-b", "16", str(back))
    assert codec.decode(theirs.read_bytes()) == back.read_bytes()
    # The two encoders differ only at decision boundaries (sox rounds to the nearer level there).
    differing = sum(a != b for a, b in zip(theirs.read_bytes(), ours.read_bytes(), strict=True))
    assert differing < 0.02 * 65536


def pcap(datagrams: list[bytes], dst_port: int) -> bytes:
    """A classic pcap file (link type 101, raw IP) of UDP datagrams from 127.0.0.1:4000 to 127.0.0.1:dst_port."""
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101))
    for n, data in enumerate(datagrams):
        udp = struct.pack("!HHHH", 4000, dst_port, 8 + len(data), 0) + data
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), n & 0xFFFF, 0x4000, 64, 17, 0,
                         bytes((127, 0, 0, 1)), bytes((127, 0, 0, 1))) + udp
        out += struct.pack("<IIII", n // 50, (n % 50) * 20000, len(ip), len(ip)) + ip
    return bytes(out)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark")
def test_wireshark_decodes_our_udptl_around_spandsp_ifps(tmp_path: Path) -> None:
    tx_file = tmp_path / "tx.tif"
    tx_file.write_bytes(simple_fax_tiff(1))
    encoder = UdptlEncoder(redundancy=3, max_datagram=400)
    ifps: list[bytes] = []
    datagrams: list[bytes] = []

    class Capture(PacketPath):
        def send(self, packet: bytes, count: int) -> None:
            ifps.append(packet)
            datagrams.append(encoder.encode(packet))
            super().send(packet, count)

    forward, backward = Capture(), PacketPath()
    with T38Terminal(calling=True, options=TerminalOptions(), send=forward.send, tx_file=tx_file) as caller, \
         T38Terminal(calling=False, options=TerminalOptions(), send=backward.send,
                     rx_file=tmp_path / "rx.tif") as answerer:
        run_t38_back_to_back(caller, answerer, forward, backward)
        assert caller.outcome is not None and caller.outcome.completion_code == 0
    capture = tmp_path / "udptl.pcap"
    capture.write_bytes(pcap(datagrams, 5000))
    result = subprocess.run(
        ["tshark", "-r", str(capture), "-d", "udp.port==5000,t38", "-T", "fields", "-E", "separator=|",
         "-e", "t38.seq_number", "-e", "t38.type_of_msg", "-e", "t38.secondary_ifp_packets", "-e", "_ws.malformed",
         "-e", "_ws.expert"],
        check=True, capture_output=True, text=True,
    )
    rows = [line.split("|") for line in result.stdout.splitlines()]
    assert len(rows) == len(datagrams) > 50
    for n, (seq, types, secondaries, malformed, expert) in enumerate(rows):
        assert int(seq) == n and not malformed and not expert, rows[n]
        assert int(secondaries) == min(n, 3)
        # type-of-msg of the primary and of each secondary (newest first): 0 indicator, 1 data
        kinds = [int(k) for k in types.split(",")]
        expected = [ifps[m][0] >> 6 & 1 for m in range(n, max(n - 4, -1), -1)]
        assert kinds == expected, (n, kinds, expected)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark")
@pytest.mark.parametrize("red", [None, 96])
def test_wireshark_decodes_our_rtp_and_rfc_2198(tmp_path: Path, red: int | None) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as far_end:
        far_end.bind(("127.0.0.1", 0))
        far_end.settimeout(5)
        session = FaxMediaSession(
            MediaPort.allocate("127.0.0.1", (far_end.getsockname()[1] + 1, far_end.getsockname()[1] + 100)),
            calling=False, options=TerminalOptions(),
            tx_tiff=None, rx_tiff=tmp_path / "rx.tif", name="test-rtp-capture",
        )
        session.start_audio(far_end.getsockname(), 0, "PCMU", red_payload_type=red)
        try:
            datagrams = [far_end.recv(4096) for _ in range(40)]
        finally:
            session.hangup()
            session.wait(2)
    capture = tmp_path / "rtp.pcap"
    capture.write_bytes(pcap(datagrams, 5004))
    decode = ["-d", "udp.port==5004,rtp"] + (["-d", f"rtp.pt=={red},rtp_rfc2198"] if red is not None else [])
    result = subprocess.run(
        ["tshark", "-r", str(capture), *decode, "-T", "fields", "-E", "separator=|",
         "-e", "rtp.version", "-e", "rtp.p_type", "-e", "rtp.seq", "-e", "rtp.timestamp", "-e", "rtp.marker",
         "-e", "rtp.ssrc", "-e", "rtp.timestamp-offset", "-e", "rtp.block-length", "-e", "_ws.malformed",
         "-e", "_ws.expert"],
        check=True, capture_output=True, text=True,
    )
    rows = [line.split("|") for line in result.stdout.splitlines()]
    assert len(rows) == 40
    first_seq, first_ts, ssrc = int(rows[0][2]), int(rows[0][3]), rows[0][5]
    for n, (version, types, seq, timestamp, marker, row_ssrc, offsets, lengths, malformed, expert) in enumerate(rows):
        assert version == "2" and not malformed and not expert, rows[n]
        assert int(seq) == (first_seq + n) & 0xFFFF and int(timestamp) == (first_ts + 160 * n) & 0xFFFFFFFF
        assert marker == ("1" if n == 0 else "0") and row_ssrc == ssrc
        if red is None:
            assert types == "0" and not offsets
        else:
            # the RTP payload type, then each block's: the redundant ones (oldest first) and the primary, PCMU
            kinds = types.split(",")
            assert kinds[0] == str(red) and set(kinds[1:]) == {"0"} and len(kinds) == 2 + min(n, 2)
            assert offsets == ",".join(str(160 * k) for k in range(min(n, 2), 0, -1))
            assert lengths == ",".join(["160"] * min(n, 2))
