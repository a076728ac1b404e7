"""SIP fax media end to end: two FaxMediaSessions over real UDP on loopback, real spandsp, real time.

Each call here takes the wall time a fax takes on a telephone line (about 20 s
for a short page), so these are marked slow; they still run in ``make test``.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from inkless.errors import FaxError
from inkless.fax import imaging
from inkless.fax import spandsp as sd
from inkless.fax.sip import g711
from inkless.fax.sip.media import FaxMediaSession, MediaPort, T38Params
from inkless.fax.sip.rtp import RtpPacket, RtpSender
from inkless.fax.terminal import AudioTerminal, Outcome, T38Terminal, TerminalOptions
from tests.helpers.faxdocs import simple_fax_tiff
from tests.helpers.udp_impair import UdpImpairRelay

# A call is paced at 20 ms in real time: a machine that stalls the test process long enough breaks the modem
# exchange as a bad telephone line would, and the fax job queue would dial again. Here too two more tries;
# a call that fails three times fails the test, with the media statistics of the last try in its message.
pytestmark = [pytest.mark.slow, pytest.mark.realtime, pytest.mark.flaky(reruns=2, only_rerun=["AssertionError"])]

CALL_TIMEOUT_S = 180.0
CALLER_ID = "+81 3 1111 2222"
ANSWERER_ID = "+81 3 3333 4444"


@pytest.fixture
def port_range() -> tuple[int, int]:
    """A block of ports starting at one the kernel just handed out (so free now, on any machine)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        base = probe.getsockname()[1]
    base = min(base - base % 2, 65535 - 200)
    return base, base + 199


@pytest.fixture(autouse=True)
def no_thread_leak() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5
    while True:
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not extra or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not extra, f"threads left running: {extra}"


@dataclass
class Call:
    caller: FaxMediaSession
    answerer: FaxMediaSession
    sent: bytes
    rx_file: Path

    def wait(self) -> tuple[Outcome, Outcome]:
        return self.caller.wait(CALL_TIMEOUT_S), self.answerer.wait(CALL_TIMEOUT_S)


def new_call(tmp_path: Path, port_range: tuple[int, int], pages: int, **answerer_kwargs: object) -> Call:
    tiff = simple_fax_tiff(pages)
    tx_file = tmp_path / "tx.tif"
    tx_file.write_bytes(tiff)
    rx_file = tmp_path / "rx.tif"
    caller = FaxMediaSession(
        MediaPort.allocate("127.0.0.1", port_range), calling=True, options=TerminalOptions(ident=CALLER_ID),
        tx_tiff=tx_file, rx_tiff=None, name="test-caller",
    )
    answerer = FaxMediaSession(
        MediaPort.allocate("127.0.0.1", port_range), calling=False, options=TerminalOptions(ident=ANSWERER_ID),
        tx_tiff=None, rx_tiff=rx_file, name="test-answerer", **answerer_kwargs,  # type: ignore[arg-type]
    )
    return Call(caller, answerer, tiff, rx_file)


def address(session: FaxMediaSession) -> tuple[str, int]:
    return (session.port.host, session.port.port)


def line_stats(session: FaxMediaSession) -> str:
    progress = session.progress
    return f"playout {progress.playout}, udptl {progress.udptl}, counters {progress.counters}"


def assert_delivered(call: Call, pages: int) -> None:
    sent, received = call.wait()
    # On failure, what the media did (late, missing and recovered packets) says why the modems gave up.
    media = f"caller {line_stats(call.caller)}; answerer {line_stats(call.answerer)}"
    assert sent.completion_code == sd.T30_ERR_OK, f"{sent.completion_text} ({media})"
    assert received.completion_code == sd.T30_ERR_OK, f"{received.completion_text} ({media})"
    assert sent.pages_tx == sent.pages_in_file == pages and received.pages_rx == pages
    assert sent.remote_ident == ANSWERER_ID and received.remote_ident == CALLER_ID
    assert sent.ecm and received.ecm
    # ECM makes the transfer exact: every page decodes to the pixels that were sent.
    got = imaging.tiff_images(call.rx_file.read_bytes())
    want = imaging.tiff_images(call.sent)
    assert len(got) == len(want) == pages
    for page_got, page_want in zip(got, want, strict=True):
        assert imaging.pixel_difference(page_got, page_want) == 0.0
    for session in (call.caller, call.answerer):
        assert session.progress.phase == "E" and not session.ended_as_voice
        assert session.port.sock.fileno() == -1  # the socket is closed when the session ends
        duration = session.duration_s
        assert 10 < duration < CALL_TIMEOUT_S
        time.sleep(0.05)
        assert session.duration_s == duration  # line time stops with the call


@pytest.mark.parametrize(("codec", "pages"), [("PCMU", 1), ("PCMA", 2)])
def test_fax_over_g711(tmp_path: Path, port_range: tuple[int, int], codec: str, pages: int) -> None:
    call = new_call(tmp_path, port_range, pages)
    pt = g711.PAYLOAD_TYPES[codec]
    call.caller.start_audio(address(call.answerer), pt, codec)
    call.answerer.start_audio(address(call.caller), pt, codec)
    assert_delivered(call, pages)
    for session in (call.caller, call.answerer):
        progress = session.progress
        assert progress.media == "g711" and progress.codec == codec and progress.bit_rate == 14400
        assert progress.pages == pages and session.fax_tones_heard
        assert progress.counters.rtp_in > 500 and progress.counters.foreign == 0
    assert "CNG" in call.answerer.progress.tones  # the calling fax machine's tone
    assert "CED" in call.caller.progress.tones  # the answering one's
    assert call.caller.progress.pages_expected == pages


def test_fax_over_t38_after_the_switch(tmp_path: Path, port_range: tuple[int, int]) -> None:
    call = new_call(tmp_path, port_range, 2)
    call.caller.start_audio(address(call.answerer), 0, "PCMU")
    call.answerer.start_audio(address(call.caller), 0, "PCMU")
    deadline = time.monotonic() + 10
    while not call.answerer.fax_tones_heard and time.monotonic() < deadline:
        time.sleep(0.05)
    assert call.answerer.fax_tones_heard  # CNG: the moment a gateway would send its T.38 re-INVITE
    call.answerer.switch_to_t38(address(call.caller), T38Params())
    call.caller.switch_to_t38(address(call.answerer), T38Params())
    assert_delivered(call, 2)
    for session in (call.caller, call.answerer):
        progress = session.progress
        assert progress.media == "t38" and progress.udptl is not None and progress.udptl.delivered > 20
        assert progress.counters.udptl_in > 20


@pytest.mark.parametrize("media", ["g711", "t38", "t38-noec"])
def test_fax_through_loss_and_jitter(tmp_path: Path, port_range: tuple[int, int], media: str) -> None:
    """2 % of datagrams lost and ±40 ms of jitter: G.711 with ECM (and RFC 2198), T.38 with and without redundancy.

    Without UDPTL redundancy what gets through is spandsp's repeated control packets, the decoder's wait
    for overtaken datagrams, and ECM for the image data.
    """
    call = new_call(tmp_path, port_range, 1)
    with UdpImpairRelay(address(call.caller), address(call.answerer), loss=0.02, delay_s=0.04, jitter_s=0.04,
                        seed=20261203) as relay:
        if media == "g711":
            call.caller.start_audio(relay.for_a, 0, "PCMU", red_payload_type=96)
            call.answerer.start_audio(relay.for_b, 0, "PCMU", red_payload_type=96)
        else:
            params = T38Params(udp_ec="t38UDPNoEC" if media == "t38-noec" else "t38UDPRedundancy")
            call.caller.switch_to_t38(relay.for_a, params)
            call.answerer.switch_to_t38(relay.for_b, params)
        assert_delivered(call, 1)
    # the relay's losses are seeded per direction: the same datagrams are lost in every run
    assert relay.stats["a->b"].dropped >= 2 and relay.stats["b->a"].dropped >= 2
    for session in (call.caller, call.answerer):
        progress = session.progress
        if media == "g711":
            assert progress.playout is not None and progress.playout.recovered > 0
        elif media == "t38":
            assert progress.udptl is not None and progress.udptl.recovered > 0
        else:
            assert progress.udptl is not None and progress.udptl.recovered == 0


def test_a_150_ms_sender_stall_mid_page_still_completes(tmp_path: Path, port_range: tuple[int, int]) -> None:
    call = new_call(tmp_path, port_range, 1)
    with UdpImpairRelay(address(call.caller), address(call.answerer), loss=0.0, delay_s=0.0, jitter_s=0.0) as relay:
        call.caller.start_audio(relay.for_a, 8, "PCMA")
        call.answerer.start_audio(relay.for_b, 8, "PCMA")
        deadline = time.monotonic() + 60
        while call.answerer.progress.phase != "C" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert call.answerer.progress.phase == "C"
        time.sleep(0.5)  # into the page's image data
        relay.stall("a->b", 0.15)
        assert_delivered(call, 1)
    assert relay.stats["a->b"].stalled >= 6
    playout = call.answerer.progress.playout
    assert playout is not None and playout.held > 0 and playout.missing == 0


def test_garbage_and_foreign_datagrams_are_ignored(tmp_path: Path, port_range: tuple[int, int]) -> None:
    call = new_call(tmp_path, port_range, 1)
    stop = threading.Event()
    rng = random.Random(9)

    def flood(relay: UdpImpairRelay) -> None:
        intruder = RtpSender(0)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as foreign:
            while not stop.wait(0.01):
                for target in (call.caller, call.answerer):
                    # well-formed RTP of the right payload type, but from an address nobody negotiated
                    foreign.sendto(intruder.packet(bytes(rng.randrange(256) for _ in range(160))), address(target))
                    foreign.sendto(rng.randbytes(rng.randrange(1, 300)), address(target))
                for direction in ("a->b", "b->a"):
                    # from the negotiated address: garbage, truncated, oversized, telephone-event RTP
                    relay.inject(direction, rng.randbytes(rng.randrange(1, 11)))
                    relay.inject(direction, bytes.fromhex("40") + rng.randbytes(40))
                    relay.inject(direction, b"\x80" * 3000)
                    event = RtpPacket(101, rng.randrange(65536), 0, 1, bytes.fromhex("01 0a 00a0")).pack()
                    relay.inject(direction, event)

    with UdpImpairRelay(address(call.caller), address(call.answerer), loss=0.0, delay_s=0.0, jitter_s=0.0) as relay:
        flooder = threading.Thread(target=flood, args=(relay,), name="test-flood")
        flooder.start()
        try:
            call.caller.start_audio(relay.for_a, 0, "PCMU")
            call.answerer.start_audio(relay.for_b, 0, "PCMU")
            call.wait()
        finally:
            stop.set()
            flooder.join()
        assert_delivered(call, 1)
    for session in (call.caller, call.answerer):
        counters = session.progress.counters
        assert counters.foreign > 500 and counters.malformed > 500
        assert counters.oversized > 200 and counters.other_payload > 200


def speech_pcm(tmp_path: Path) -> bytes:
    """A person speaking (espeak-ng), as 8 kHz 16-bit PCM (sox)."""
    wav = tmp_path / "speech.wav"
    raw = tmp_path / "speech.raw"
    text = "Hello, this is Tanaka from the city office. Is this the disaster office? I would like to ask."
    subprocess.run(["espeak-ng", "-w", str(wav), text], check=True, capture_output=True)
    subprocess.run(["sox", str(wav), "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer", "-t", "raw",
                    str(raw)], check=True, capture_output=True)
    return raw.read_bytes()


@pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("sox")), reason="needs espeak-ng and sox")
def test_a_person_calling_is_answered_listened_to_and_hung_up(tmp_path: Path, port_range: tuple[int, int]) -> None:
    speech = speech_pcm(tmp_path)
    answerer = FaxMediaSession(
        MediaPort.allocate("127.0.0.1", port_range), calling=False, options=TerminalOptions(ident=ANSWERER_ID),
        tx_tiff=None, rx_tiff=tmp_path / "rx.tif", voice_timeout_s=6.0, name="test-voice",
    )
    codec = g711.codec("PCMU")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as phone:
        phone.bind(("127.0.0.1", 0))
        started = time.monotonic()
        answerer.start_audio(phone.getsockname(), 0, "PCMU")
        sender = RtpSender(0)
        offset = 0
        next_send = time.monotonic()
        while not answerer.done and time.monotonic() - started < 20:
            chunk = speech[offset:offset + 320].ljust(320, b"\0")
            offset = (offset + 320) % len(speech)
            phone.sendto(sender.packet(codec.encode(chunk)), address(answerer))
            next_send += 0.02
            time.sleep(max(0.0, next_send - time.monotonic()))
        outcome = answerer.wait(5)
        ended_after = time.monotonic() - started
    assert answerer.ended_as_voice and not answerer.fax_tones_heard
    assert 6.0 <= ended_after < 8.0
    assert outcome.pages_rx == 0 and outcome.completion_text.startswith("voice call: no fax tone within 6 s")
    assert answerer.progress.counters.rtp_in > 250


def test_hangup_stops_the_session_within_a_second(tmp_path: Path, port_range: tuple[int, int]) -> None:
    call = new_call(tmp_path, port_range, 1)
    call.caller.start_audio(address(call.answerer), 0, "PCMU")
    call.answerer.start_audio(address(call.caller), 0, "PCMU")
    time.sleep(3)
    assert call.answerer.progress.phase in ("A", "B")
    started = time.monotonic()
    call.caller.hangup()
    call.answerer.hangup()
    sent, received = call.caller.wait(1.0), call.answerer.wait(1.0)
    assert time.monotonic() - started < 1.0
    for outcome in (sent, received):
        assert outcome.completion_text.startswith("hung up") and outcome.completion_code != sd.T30_ERR_OK
    for session in (call.caller, call.answerer):
        assert session.done and session.port.sock.fileno() == -1


def test_maximum_duration_ends_the_call(tmp_path: Path, port_range: tuple[int, int]) -> None:
    call = new_call(tmp_path, port_range, 1, max_duration_s=2.0)
    call.caller.start_audio(address(call.answerer), 0, "PCMU")
    call.answerer.start_audio(address(call.caller), 0, "PCMU")
    received = call.answerer.wait(4.0)
    assert received.completion_text.startswith("maximum call duration of 2 s reached")
    call.caller.hangup()
    call.caller.wait(2.0)


def test_a_failing_session_is_that_calls_outcome_only(tmp_path: Path, port_range: tuple[int, int]) -> None:
    """A fault inside one call's media thread ends that call with the reason; a call beside it completes."""
    (tmp_path / "broken").mkdir()
    (tmp_path / "good").mkdir()
    broken = new_call(tmp_path / "broken", port_range, 1)
    good = new_call(tmp_path / "good", port_range, 1)
    real_tick = broken.caller._tick
    ticks = [0]

    def faulty_tick(terminal: AudioTerminal | T38Terminal) -> None:
        ticks[0] += 1
        if ticks[0] == 150:  # three seconds into the call
            raise RuntimeError("injected fault")
        real_tick(terminal)

    broken.caller._tick = faulty_tick  # type: ignore[method-assign]
    for call in (broken, good):
        call.caller.start_audio(address(call.answerer), 0, "PCMU")
        call.answerer.start_audio(address(call.caller), 0, "PCMU")
    failed = broken.caller.wait(30)
    assert failed.completion_text.startswith("media failure: RuntimeError: injected fault")
    assert failed.completion_code != sd.T30_ERR_OK
    assert broken.caller.port.sock.fileno() == -1
    assert not good.caller.done and not good.answerer.done  # the other call goes on
    assert_delivered(good, 1)
    broken.answerer.hangup()  # its far end hears silence; the SIP side would send BYE
    assert broken.answerer.wait(2).completion_text.startswith("hung up")


def test_port_allocation_is_even_and_exhaustion_is_a_clear_error(port_range: tuple[int, int]) -> None:
    low = port_range[0]
    ports = [MediaPort.allocate("127.0.0.1", (low, low + 5)) for _ in range(3)]
    try:
        assert sorted(p.port for p in ports) == [low, low + 2, low + 4]
        with pytest.raises(FaxError, match=f"no free media port in {low}-{low + 5}"):
            MediaPort.allocate("127.0.0.1", (low, low + 5))
    finally:
        for port in ports:
            port.close()


def test_t38_failing_in_phase_b_falls_back_to_audio(tmp_path: Path, port_range: tuple[int, int]) -> None:
    """A gateway that accepts T.38 but never carries it: after 10 s the hook fires, the call is redone in G.711."""
    call = new_call(tmp_path, port_range, 1)
    failures: list[Outcome] = []

    def fall_back(outcome: Outcome) -> None:
        # What the SIP side does: re-INVITE back to audio, and both ends restart T.30 in G.711.
        failures.append(outcome)
        call.answerer.start_audio(address(call.caller), 0, "PCMU")
        call.caller.switch_to_audio(address(call.answerer), 0, "PCMU")

    call.caller.on_t38_failed = fall_back
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as black_hole:
        black_hole.bind(("127.0.0.1", 0))
        call.caller.switch_to_t38(black_hole.getsockname(), T38Params(udp_ec="t38UDPNoEC"))
        assert_delivered(call, 1)
    assert len(failures) == 1 and failures[0].pages_tx == 0 and failures[0].completion_code != sd.T30_ERR_OK
    assert failures[0].completion_text.startswith("no T.38 packets from the far end in 10 s")
    assert call.caller.t38_failed and call.caller.media == "g711"


def test_media_over_ipv6_loopback(tmp_path: Path) -> None:
    try:
        far_end = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        far_end.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    with far_end:
        far_end.settimeout(5)
        base = far_end.getsockname()[1]
        session = FaxMediaSession(
            MediaPort.allocate("::1", (base + 1, base + 100)), calling=False, options=TerminalOptions(),
            tx_tiff=None, rx_tiff=tmp_path / "rx.tif", name="test-ipv6",
        )
        session.start_audio(("::1", base), 8, "PCMA")
        packets = [far_end.recvfrom(4096) for _ in range(10)]
        assert all(source[1] == session.port.port for _, source in packets)
        sender = RtpSender(8)
        for _ in range(20):
            far_end.sendto(sender.packet(b"\xd5" * 160), ("::1", session.port.port))
        time.sleep(0.5)
        assert session.progress.counters.rtp_in == 20 and session.progress.counters.foreign == 0
        session.hangup()
        assert session.wait(1.0).completion_text.startswith("hung up")
