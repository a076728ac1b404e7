"""Outbound call set-up against scripted gateways: busy and no answer go to the retry schedule, a 503
fails over to the next gateway (a 486 does not), and a call that rings too long is CANCELled."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from inkless.config import load_settings
from inkless.errors import FaxError
from inkless.fax.line import BUSY, NO_ANSWER
from inkless.fax.sip import line as sip_line
from inkless.fax.sip.line import SipLine
from inkless.fax.sip.message import SipMessage, parse, response_to
from tests.helpers.faxdocs import simple_fax_tiff
from tests.helpers.kamailio import free_udp_port


class ScriptedGateway:
    """Answers every INVITE with ``statuses`` (provisional ones first); answers CANCEL with 200 + 487."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = statuses
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.uri = f"sip:127.0.0.1:{self.sock.getsockname()[1]}"
        self.received: list[SipMessage] = []
        self._pending: dict[str, SipMessage] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, source = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            msg = parse(data)
            if not msg.is_request:
                continue
            self.received.append(msg)
            if msg.method == "INVITE" and msg.top_via.branch not in self._pending:
                self._pending[msg.top_via.branch] = msg
                for status in self.statuses:
                    self.sock.sendto(response_to(msg, status, to_tag="gw").encode(), source)
            elif msg.method == "CANCEL":
                self.sock.sendto(response_to(msg, 200).encode(), source)
                invite = self._pending.get(msg.top_via.branch)
                if invite is not None:
                    self.sock.sendto(response_to(invite, 487, to_tag="gw").encode(), source)

    def methods(self) -> list[str]:
        """The methods received, once nothing more has arrived for 0.3 s (the ACK of a final answer is
        sent as the dial returns: it may still be on its way)."""
        deadline = time.monotonic() + 3
        seen = -1
        while len(self.received) != seen and time.monotonic() < deadline:
            seen = len(self.received)
            time.sleep(0.3)
        return [m.method or "" for m in self.received]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def gateways() -> Iterator[list[ScriptedGateway]]:
    made: list[ScriptedGateway] = []
    yield made
    for gateway in made:
        gateway.close()


def _dial(tmp_path: Path, *gateways: ScriptedGateway) -> FaxError:
    data = tmp_path / "node"
    data.mkdir()
    line = SipLine(load_settings(data, env={
        "INKLESS_FAX_LINE": "sip", "INKLESS_FAX_SIP_LISTEN": f"127.0.0.1:{free_udp_port()}",
        "INKLESS_FAX_SIP_GATEWAYS": ",".join(g.uri for g in gateways), "INKLESS_FAX_SIP_RTP_PORTS": "43000-43099",
    }))
    try:
        with pytest.raises(FaxError) as raised:
            line.dial("0335804111", simple_fax_tiff(1, rows=300), ident="0669410351", header=None)
        return raised.value
    finally:
        line.close()


def test_busy_is_busy_and_does_not_fail_over(tmp_path: Path, gateways: list[ScriptedGateway]) -> None:
    gateways += [ScriptedGateway(100, 486), ScriptedGateway(100, 486)]
    assert _dial(tmp_path, *gateways).message == BUSY
    assert gateways[0].methods() == ["INVITE", "ACK"] and gateways[1].methods() == []


def test_503_fails_over_to_the_next_gateway(tmp_path: Path, gateways: list[ScriptedGateway]) -> None:
    gateways += [ScriptedGateway(503), ScriptedGateway(100, 480)]
    assert _dial(tmp_path, *gateways).message == NO_ANSWER
    assert gateways[0].methods() == ["INVITE", "ACK"] and gateways[1].methods() == ["INVITE", "ACK"]


def test_a_call_that_rings_too_long_is_cancelled(
        tmp_path: Path, gateways: list[ScriptedGateway], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sip_line, "RING_TIMEOUT_S", 2.0)
    gateways.append(ScriptedGateway(100, 180))
    assert _dial(tmp_path, *gateways).message == NO_ANSWER
    assert gateways[0].methods() == ["INVITE", "CANCEL", "ACK"]
    invite, cancel = gateways[0].received[:2]
    assert cancel.top_via.branch == invite.top_via.branch and cancel.cseq == (invite.cseq[0], "CANCEL")


def test_a_ringing_call_is_cancelled_at_once_when_the_process_stops(
        tmp_path: Path, gateways: list[ScriptedGateway]) -> None:
    # The gateway rings for ever; the worker stops 1 s into the ringing: CANCEL goes out then, not after
    # the two minutes of ring time, and the dial ends as "no answer" (the job goes back to the queue).
    gateways.append(ScriptedGateway(100, 180))
    data = tmp_path / "node"
    data.mkdir()
    line = SipLine(load_settings(data, env={
        "INKLESS_FAX_LINE": "sip", "INKLESS_FAX_SIP_LISTEN": f"127.0.0.1:{free_udp_port()}",
        "INKLESS_FAX_SIP_GATEWAYS": gateways[0].uri, "INKLESS_FAX_SIP_RTP_PORTS": "43100-43199",
    }))
    outcome: list[FaxError] = []

    def dial() -> None:
        try:
            line.dial("0335804111", simple_fax_tiff(1, rows=300), ident="0669410351", header=None)
        except FaxError as exc:
            outcome.append(exc)

    caller = threading.Thread(target=dial)
    try:
        caller.start()
        deadline = time.monotonic() + 10
        while "INVITE" not in gateways[0].methods() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)
        stopped_at = time.monotonic()
        line.hang_up()
        caller.join(20)
        assert not caller.is_alive()
        assert time.monotonic() - stopped_at < 10
    finally:
        line.close()
    assert [e.message for e in outcome] == [NO_ANSWER]
    assert gateways[0].methods() == ["INVITE", "CANCEL", "ACK"]
