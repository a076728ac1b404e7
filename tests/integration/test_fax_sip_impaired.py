"""Two SIP lines fax each other through Kamailio with an impairment relay on the media path (2 % loss,
40 ms ± 40 ms delay): T.38 with UDPTL redundancy and G.711 with ECM (and RFC 2198 redundant audio)
both complete, and the received pages are the pages sent."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from inkless.config import load_settings
from inkless.fax import imaging
from inkless.fax.model import CallResult
from inkless.fax.sip.line import SipLine
from inkless.fax.sip.status import read_status
from tests.helpers.faxdocs import simple_fax_tiff
from tests.helpers.kamailio import Kamailio, free_udp_port, running_kamailio
from tests.helpers.udp_impair import UdpImpairRelay

# Paced in real time: a stall of the machine breaks a call as a bad line would (see test_sip_media.py).
pytestmark = [pytest.mark.slow, pytest.mark.realtime, pytest.mark.flaky(reruns=2, only_rerun=["AssertionError"])]

A, B = "0669410351", "0335804111"
PASSWORDS = {A: "a-impaired", B: "b-impaired"}


def _even_free_port() -> int:
    while True:
        port = free_udp_port()
        if port % 2 == 0 and port < 65000:
            return port


@pytest.fixture
def kamailio(tmp_path: Path) -> Iterator[Kamailio]:
    with running_kamailio(tmp_path / "kamailio", PASSWORDS) as k:
        yield k


def _line(tmp_path: Path, name: str, number: str, kamailio: Kamailio, media_port: int, t38: str) -> SipLine:
    data = tmp_path / name
    data.mkdir()
    return SipLine(load_settings(data, env={
        "INKLESS_FAX_LINE": "sip", "INKLESS_FAX_SIP_LISTEN": f"127.0.0.1:{free_udp_port()}",
        "INKLESS_FAX_SIP_REGISTRAR": kamailio.uri, "INKLESS_FAX_SIP_USERNAME": number,
        "INKLESS_FAX_SIP_PASSWORD": PASSWORDS[number], "INKLESS_FAX_SIP_GATEWAYS": kamailio.uri,
        "INKLESS_FAX_SIP_RTP_PORTS": f"{media_port}-{media_port}", "INKLESS_FAX_MAX_CALLS": "1",
        "INKLESS_FAX_SIP_T38": t38, "INKLESS_FAX_SIP_TRUSTED_SOURCES": "127.0.0.1",
    }))


class _ViaRelay:
    """A's media goes through the relay: A advertises the relay's B-side port, and sends to its A side."""

    def __init__(self, line: SipLine, relay: UdpImpairRelay) -> None:
        self.relay = relay
        original = line._media

        def media(**kwargs: Any) -> Any:
            port, session = original(**kwargs)
            for name in ("start_audio", "switch_to_t38", "switch_to_audio", "set_remote"):
                real = getattr(session, name)
                setattr(session, name, self._to_relay(real))
            return _AdvertisedPort(port, relay.for_b[1]), session

        line._media = media  # type: ignore[method-assign]

    def _to_relay(self, real: Any) -> Any:
        def call(remote: tuple[str, int], *args: Any, **kwargs: Any) -> Any:
            return real(self.relay.for_a, *args, **kwargs)
        return call


class _AdvertisedPort:
    def __init__(self, real: Any, advertised: int) -> None:
        self.real = real
        self.port = advertised
        self.host = real.host

    def close(self) -> None:
        self.real.close()


@pytest.mark.parametrize("t38", ["prefer", "off"])
def test_a_fax_completes_through_loss_and_jitter(tmp_path: Path, kamailio: Kamailio, t38: str) -> None:
    port_a, port_b = _even_free_port(), _even_free_port()
    a = _line(tmp_path, "a", A, kamailio, port_a, t38)
    b = _line(tmp_path, "b", B, kamailio, port_b, "accept")
    received: list[CallResult] = []
    with UdpImpairRelay(("127.0.0.1", port_a), ("127.0.0.1", port_b), loss=0.02, delay_s=0.04, jitter_s=0.04,
                        seed=7) as relay:
        _ViaRelay(a, relay)
        b.listen(received.append)
        a.listen(lambda _r: None)
        try:
            deadline = time.monotonic() + 30
            while b.registration.state != "registered":
                assert time.monotonic() < deadline
                time.sleep(0.1)
            pages = simple_fax_tiff(2, rows=600)
            # What `inkless fax line status` shows while the call is on: the call, its media and T.30 phase.
            seen: list[dict[str, Any]] = []
            stop = threading.Event()

            def watch() -> None:
                while not stop.wait(0.5):
                    seen.extend(read_status(tmp_path / "a").get("calls") or [])

            watcher = threading.Thread(target=watch)
            watcher.start()
            try:
                sent = a.dial(B, pages, ident=A, header=None, ecm=True)
            finally:
                stop.set()
                watcher.join()
            deadline = time.monotonic() + 60
            while not received:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        finally:
            a.close()
            b.close()
        assert relay.stats["a->b"].dropped > 0 and relay.stats["b->a"].dropped > 0
    [got] = received
    expected_media = "t38" if t38 == "prefer" else "g711"
    assert {c["direction"] for c in seen} == {"SEND"} and {c["call_id"] for c in seen} == {sent.call_id}
    assert any(c["media"] == expected_media and c["phase"] in ("B", "C", "D") for c in seen), seen
    assert any(c["phase"] == "C" and c["bit_rate"] > 0 and c["pages"] == 2 for c in seen), seen
    assert sent.success and got.success, (sent.t30_text, got.t30_text)
    assert (sent.media, got.media) == (expected_media, expected_media) and got.ecm
    assert got.received_tiff is not None
    for theirs, ours in zip(imaging.tiff_images(got.received_tiff), imaging.tiff_images(pages), strict=True):
        assert imaging.pixel_difference(theirs, ours) < 0.01
